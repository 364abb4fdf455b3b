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
    """Name of the SIMD tier kernels run on now: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    return _C.isa()


@contextlib.contextmanager
def max_isa(name: str) -> Iterator[None]:
    """Cap the SIMD tier inside a ``with`` block (like ``CNNFAST_MAX_ISA`` for the whole process).

    ``with cnnfast.max_isa("avx2"): ...`` runs every op on AVX2 kernels or lower, so one machine
    can test every path. The cap is process-wide, not per thread; the previous cap is restored
    on exit.
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
    """Number of threads cnnfast ops use (default: ``OMP_NUM_THREADS`` or the core count)."""
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads cnnfast ops use. Results do not depend on it (bitwise)."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if n > _MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be <= {_MAX_THREADS}, got {n}")
    _C.set_num_threads(n)


def runtime_info() -> dict[str, Any]:
    """A dict of facts about this build and machine: version, ISA tiers, threads, compiler."""
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
    """Print the runtime report (also ``python -m cnnfast info``)."""
    info = runtime_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
