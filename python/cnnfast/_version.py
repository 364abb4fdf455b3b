"""The package version: the one place it is written.

pyproject.toml reads it at build time (scikit-build-core's regex metadata provider), so the wheel's
metadata, ``cnnfast.__version__`` and ``python -m cnnfast info`` always agree.
"""

__version__ = "0.1.0"
