"""Runtime controls: the SIMD tier cap, the thread count, and the runtime report."""

import contextlib
import operator
import os
import warnings
from typing import Any, Iterator

from . import _C
from ._version import __version__

_ISA_ORDER = ("scalar", "avx2", "avx512")
_MAX_THREADS = 4096


def _apply_env_cap():
    cap = os.environ.get("CNNFAST_MAX_ISA")
    if not cap:
        return
    if cap.lower() not in _ISA_ORDER:
        warnings.warn(
            f"CNNFAST_MAX_ISA={cap!r} is not one of {', '.join(_ISA_ORDER)}; ignored",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    _C.set_max_isa(cap.lower())


_apply_env_cap()


def isa() -> str:
    """Name of the SIMD tier kernels run on now: ``"scalar"``, ``"avx2"`` or ``"avx512"``.

    Returns
    -------
    str
        min(detected tier, cap): the cap is ``CNNFAST_MAX_ISA`` or :func:`max_isa`.

    Examples
    --------
    >>> import cnnfast
    >>> cnnfast.isa() in ("scalar", "avx2", "avx512")
    True
    >>> with cnnfast.max_isa("scalar"):
    ...     cnnfast.isa()
    'scalar'
    """
    return _C.isa()


@contextlib.contextmanager
def max_isa(name: str) -> Iterator[None]:
    """Cap the SIMD tier inside a ``with`` block (like ``CNNFAST_MAX_ISA`` for the whole process).

    ``with cnnfast.max_isa("avx2"): ...`` runs every op on AVX2 kernels or lower, so one machine
    can test every path. The cap is process-wide, not per thread; the previous cap is restored
    on exit. A cap above the detected tier has no effect (the active tier is the lower of the
    two).

    Parameters
    ----------
    name : str
        "scalar", "avx2" or "avx512" (any case).

    Returns
    -------
    contextlib.AbstractContextManager
        Use it in a ``with`` statement.

    Raises
    ------
    ValueError
        An unknown tier name.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> a = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> with cnnfast.max_isa("scalar"):
    ...     print(cnnfast.isa())
    ...     scalar = cnnfast.matmul(a, a.T)
    scalar
    >>> bool(np.array_equal(scalar, cnnfast.matmul(a, a.T)))    # small integers: exact on any tier
    True
    """
    if not isinstance(name, str) or name.lower() not in _ISA_ORDER:
        raise ValueError(f"max_isa: unknown ISA tier {name!r}; expected one of {_ISA_ORDER}")
    previous = _C.get_max_isa()
    _C.set_max_isa(name.lower())
    try:
        yield
    finally:
        _C.set_max_isa(previous)


def get_num_threads() -> int:
    """Number of threads cnnfast ops use (default: ``OMP_NUM_THREADS`` or the core count).

    Returns
    -------
    int
        The count set by :func:`set_num_threads`, else ``OMP_NUM_THREADS``, else the cores.

    Examples
    --------
    >>> import cnnfast
    >>> cnnfast.get_num_threads() >= 1
    True
    """
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads cnnfast ops use. Results do not depend on it (bitwise).

    Parameters
    ----------
    n : int
        1 to 4096.

    Raises
    ------
    TypeError
        n is not an int.
    ValueError
        n is out of range.

    Examples
    --------
    >>> import cnnfast
    >>> previous = cnnfast.get_num_threads()
    >>> cnnfast.set_num_threads(1)
    >>> cnnfast.get_num_threads()
    1
    >>> cnnfast.set_num_threads(previous)
    >>> cnnfast.set_num_threads(0)
    Traceback (most recent call last):
        ...
    ValueError: set_num_threads: n must be >= 1, got 0
    """
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if n > _MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be <= {_MAX_THREADS}, got {n}")
    _C.set_num_threads(n)


def runtime_info() -> dict[str, Any]:
    """A dict of facts about this build and machine: version, ISA tiers, threads, compiler.

    Returns
    -------
    dict
        Keys ``version``, ``detected_isa``, ``max_isa``, ``active_isa``, ``gemm_kernel``,
        ``num_threads``, ``cpu_count``, then the build's facts (compiler, flags, OpenMP).

    Examples
    --------
    >>> import cnnfast
    >>> info = cnnfast.runtime_info()
    >>> info["version"] == cnnfast.__version__, info["active_isa"] == cnnfast.isa()
    (True, True)
    """
    info = {
        "version": __version__,
        "detected_isa": _C.detected_isa(),
        "max_isa": _C.get_max_isa(),
        "active_isa": _C.isa(),
        "gemm_kernel": _C.gemm_kernel(),
        "num_threads": _C.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    info.update(_C.build_info())
    return info


def show_runtime() -> None:
    """Print the runtime report (also ``python -m cnnfast info``).

    Examples
    --------
    >>> import cnnfast
    >>> cnnfast.show_runtime()          # doctest: +ELLIPSIS
    version ...
    detected_isa ...
    active_isa ...
    """
    info = runtime_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
