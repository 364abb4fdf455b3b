"""The functional API: one function per operator, names and defaults as torch.nn.functional."""

import numpy as np

from . import _C


def _require_array(value, op, arg):
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{op}: {arg} must be a numpy.ndarray of float32, got {type(value).__name__}"
        )


def matmul(a, b, *, out=None):
    """Matrix product ``a @ b`` of two 2-D float32 arrays.

    Args:
        a: (m, k) float32 array. Any strides (transposed or sliced views are read in place,
            without a copy).
        b: (k, n) float32 array, any strides.
        out: optional (m, n) float32 array with contiguous rows to write into; must not overlap
            ``a`` or ``b``. It is returned.

    Returns:
        The (m, n) float32 product. ``k == 0`` gives zeros.

    Raises:
        TypeError: an input is not a float32 ndarray (no silent conversion).
        ValueError: not 2-D, inner dimensions differ, or a bad ``out``.
        OverflowError: the result's size does not fit in 64 bits.
    """
    _require_array(a, "matmul", "a")
    _require_array(b, "matmul", "b")
    if out is not None:
        _require_array(out, "matmul", "out")
    return _C.matmul(a, b, out)
