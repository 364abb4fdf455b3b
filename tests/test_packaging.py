"""Packaging facts checked against whatever copy of cnnfast is imported (the editable install in
development, the repaired wheel in scripts/ci_wheel.sh): one version everywhere, the type
information shipped (py.typed, the _C.pyi stub covering exactly the extension's functions with
their parameter names), and the OpenMP runtime the extension loads."""

import ast
import importlib.metadata
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import cnnfast
from cnnfast import _C

PACKAGE_DIR = Path(cnnfast.__file__).resolve().parent
STUB = PACKAGE_DIR / "_C.pyi"


def test_version_is_single_sourced():
    from cnnfast._version import __version__

    assert cnnfast.__version__ == __version__
    # The installed distribution's metadata (pyproject.toml reads _version.py when building).
    assert importlib.metadata.version("cnnfast") == cnnfast.__version__
    assert cnnfast.runtime_info()["version"] == cnnfast.__version__


def test_version_is_pep440_release():
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?",
                        cnnfast.__version__), cnnfast.__version__


def test_cli_info_reports_the_version():
    result = subprocess.run([sys.executable, "-m", "cnnfast", "info"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    versions = [line.split()[1] for line in result.stdout.splitlines()
                if line.split()[:1] == ["version"]]
    assert versions == [cnnfast.__version__]


def test_package_ships_type_information():
    assert (PACKAGE_DIR / "py.typed").is_file()
    assert STUB.is_file()


def _stub_functions():
    """name -> [parameter names] of every function defined in _C.pyi."""
    tree = ast.parse(STUB.read_text())
    return {node.name: [a.arg for a in node.args.args + node.args.kwonlyargs]
            for node in tree.body if isinstance(node, ast.FunctionDef)}


def _runtime_parameters(function):
    """Parameter names from pybind11's signature line, e.g. 'f(x: numpy.ndarray, n: int) -> x'."""
    first = function.__doc__.splitlines()[0]
    inside = first[first.index("(") + 1:first.rindex(") ->")]
    names, depth, start = [], 0, 0
    for i, ch in enumerate(inside + ","):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = inside[start:i].strip()
            if part:
                names.append(part.split(":")[0].split("=")[0].strip())
            start = i + 1
    return names


def _stub_classes():
    """name -> sorted public member names of every class defined in _C.pyi."""
    tree = ast.parse(STUB.read_text())
    return {node.name: sorted(n.name for n in node.body if isinstance(n, ast.FunctionDef))
            for node in tree.body if isinstance(node, ast.ClassDef)}


def test_stub_covers_every_extension_function():
    exported = {name for name in dir(_C) if not name.startswith("_")
                and callable(getattr(_C, name)) and not isinstance(getattr(_C, name), type)}
    stubbed = _stub_functions()
    assert sorted(exported - set(stubbed)) == [], "functions missing from _C.pyi"
    assert sorted(set(stubbed) - exported) == [], "functions in _C.pyi the extension lacks"


def test_stub_covers_every_extension_class():
    exported = {name: sorted(m for m in vars(cls) if not m.startswith("_"))
                for name, cls in vars(_C).items() if isinstance(cls, type)}
    assert _stub_classes() == exported


@pytest.mark.parametrize("name", sorted(_stub_functions()))
def test_stub_parameter_names_match_the_extension(name):
    assert _stub_functions()[name] == _runtime_parameters(getattr(_C, name))


def test_runtime_parameter_parser_reads_nested_types():
    def f():
        pass

    f.__doc__ = "f(a: Annotated[list[int], 'FixedSize(2)'], b: object = None) -> object\n"
    assert _runtime_parameters(f) == ["a", "b"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_one_openmp_runtime_is_loaded():
    # In a fresh interpreter (no torch, which brings its own): after an op has started the
    # thread pool exactly one libgomp is mapped, and for a wheel repaired by auditwheel it is
    # the bundled copy in cnnfast.libs/ beside the package, not the system's.
    code = (
        "import numpy as np, cnnfast\n"
        "cnnfast.conv2d(np.ones((1, 8, 32, 32), np.float32), np.ones((8, 8, 3, 3), np.float32))\n"
        "maps = open('/proc/self/maps').read().splitlines()\n"
        "print('\\n'.join(sorted({l.split()[-1] for l in maps if 'libgomp' in l})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert len(loaded) == 1, loaded
    bundled = PACKAGE_DIR.parent / "cnnfast.libs"
    if bundled.is_dir():
        assert Path(loaded[0]).resolve().parent == bundled.resolve(), loaded


def test_typed_api_example_runs():
    # tests/typing/check_api.py is mypy's input (scripts/ci_wheel.sh); running it keeps every
    # call in it a valid call, so its types describe real use.
    example = runpy.run_path(str(Path(__file__).parent / "typing" / "check_api.py"))
    example["main"]()


def test_cli_output_into_a_closed_pipe_exits_quietly():
    # `python -m cnnfast info | head -1`: the reader is gone before the report is written.
    # Regression: this printed a BrokenPipeError traceback.
    child = subprocess.Popen([sys.executable, "-m", "cnnfast", "info"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()  # before the child has imported cnnfast, let alone written
    _, stderr = child.communicate(timeout=120)
    assert b"Traceback" not in stderr, stderr.decode()
    assert child.returncode == 1
