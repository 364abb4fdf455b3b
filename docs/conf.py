# Sphinx configuration of cnnfast's documentation site (docs/): autodoc + napoleon (NumPy-style
# docstrings) + doctest, the default alabaster theme (no download). Built by scripts/ci_docs.sh
# with warnings as errors: sphinx-build -W --keep-going -b html docs build/docs. The package is
# imported from the installed (or editable) cnnfast, so the API pages show the built extension.

import cnnfast

project = "cnnfast"
author = "the cnnfast developers"
copyright = "2026, the cnnfast developers"
release = cnnfast.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]

# NumPy-style sections only (Parameters / Returns / Raises / Examples).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
# Signatures without annotations: the NumPy-style docstrings give every parameter's type in
# words, and the annotations (numpy.typing aliases) would spell out ndarray[...] generics.
autodoc_typehints = "none"

# The tutorial's examples run under `make doctest` / sphinx-build -b doctest too, with these
# names already imported (pytest --doctest-glob uses docs/conftest.py for the same names).
doctest_global_setup = """
import numpy as np
import cnnfast
"""
doctest_default_flags = (__import__("doctest").ELLIPSIS
                         | __import__("doctest").NORMALIZE_WHITESPACE)

templates_path = []
exclude_patterns = ["_build", "conftest.py"]
html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "Fast CPU operators for CNNs on NumPy float32 arrays"}
