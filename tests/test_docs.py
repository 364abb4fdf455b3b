"""Every public function and class of cnnfast (cnnfast.__all__, cnnfast.nn.__all__,
cnnfast.analysis and cnnfast.models) has a NumPy-style docstring with a runnable Examples
section, and a Parameters section when it takes arguments. The examples themselves run under
`pytest --doctest-modules` (scripts/ci_docs.sh), and the docs site is built from these
docstrings (docs/api.rst)."""

import inspect

import pytest

import cnnfast
from cnnfast import analysis, models, nn


def _public(module, names=None):
    names = names if names is not None else [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        value = getattr(module, name)
        if inspect.ismodule(value) or not callable(value) or isinstance(value, dict):
            continue
        # analysis and models import helpers from elsewhere: only their own names count.
        if names is None or getattr(value, "__module__", "").startswith("cnnfast"):
            yield f"{module.__name__}.{name}", value


def _own(module):
    """The module's own public functions and classes (not the names it imports)."""
    return [n for n, v in vars(module).items() if not n.startswith("_") and callable(v)
            and getattr(v, "__module__", None) == module.__name__]


PUBLIC = dict(list(_public(cnnfast, cnnfast.__all__)) + list(_public(nn, nn.__all__)) +
              list(_public(analysis, _own(analysis))) + list(_public(models, _own(models))))


def _takes_arguments(value):
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return True
    return any(p.name != "self" for p in signature.parameters.values())


def test_the_public_list_is_complete():
    # A guard against the collection above silently finding nothing.
    for name in ("cnnfast.conv2d", "cnnfast.max_pool2d", "cnnfast.nn.Conv2d",
                 "cnnfast.analysis.conv_matrix", "cnnfast.models.resnet18",
                 "cnnfast.analysis.LayerField"):
        assert name in PUBLIC
    assert len(PUBLIC) > 100


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_numpy_style_docstring_with_examples(name):
    doc = inspect.getdoc(PUBLIC[name]) or ""
    assert "Examples\n--------\n" in doc, f"{name}: no NumPy-style Examples section"
    assert ">>> " in doc.split("Examples\n--------\n", 1)[1], f"{name}: Examples without code"
    if _takes_arguments(PUBLIC[name]):
        # Result classes (LayerField, Summary) are built by cnnfast: they list Attributes.
        assert "Parameters\n----------\n" in doc or "Attributes\n----------\n" in doc, \
            f"{name}: no Parameters section"
    for google_style in ("Args:\n", "Returns:\n", "Raises:\n"):
        assert google_style not in doc, f"{name}: Google-style {google_style!r} section"


def _api_page_names():
    """The names docs/api.rst documents (autofunction / autoclass / data directives), fully
    qualified through its currentmodule / automodule lines; None without the source tree."""
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.rst"
    if not page.exists():
        return None
    names, module = set(), "cnnfast"
    for line in page.read_text().splitlines():
        match = re.match(r"\.\. (currentmodule|automodule|autofunction|autoclass|data):: (\S+)",
                         line)
        if not match:
            continue
        kind, name = match.groups()
        if kind in ("currentmodule", "automodule"):
            module = name
        else:
            names.add(f"{module}.{name}")
    return names


def test_the_api_page_documents_every_public_name():
    names = _api_page_names()
    if names is None:
        pytest.skip("docs/api.rst is not next to the tests (an installed copy of the tests)")
    # PUBLIC files the nn names under cnnfast.nn, the analysis / models names under theirs.
    missing = sorted(set(PUBLIC) - names)
    assert not missing, f"docs/api.rst does not document {missing}"
