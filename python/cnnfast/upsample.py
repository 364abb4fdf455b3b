"""Upsampling of NCHW float32 maps: upsample_nearest2d and upsample_bilinear2d, PyTorch's
F.interpolate(mode="nearest" / "bilinear") including its float32 index arithmetic. Plain NumPy
(fancy indexing and a separable weighted sum), no C++: it is memory-bound and runs once per
decoder stage (Hourglass, cnnfast.nn.Upsample). Output: a new C-contiguous array.
"""

import math

import numpy as np

from ._args import is_int
from ._typing import Float32Array, OptionalIntOrTuple, ScaleFactor


def _check(x, scale_factor, size, op):
    """(out_h, out_w) and the per-axis scale_factor (or None) after checking every argument."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: x must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise TypeError(f"{op}: x must be float32, got dtype {x.dtype} (no silent conversion: "
                        f"pass x.astype(numpy.float32))")
    if x.ndim != 4 or min(x.shape[2:]) < 1:
        raise ValueError(f"{op}: x must be 4-D (N, C, H, W) with H, W >= 1, got shape {x.shape}")
    if (scale_factor is None) == (size is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    in_h, in_w = x.shape[2:]
    if size is not None:
        sizes = (size, size) if is_int(size) else tuple(size)
        if len(sizes) != 2 or not all(is_int(s) and s >= 1 for s in sizes):
            raise ValueError(f"{op}: size must be an int or (out_h, out_w) of ints >= 1, got "
                             f"{size!r}")
        return tuple(int(s) for s in sizes), (None, None)
    scales = (scale_factor, scale_factor) if not isinstance(scale_factor, (tuple, list)) \
        else tuple(scale_factor)
    if len(scales) != 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and
                                   math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"{op}: scale_factor must be a number > 0 or a pair of them, got "
                         f"{scale_factor!r}")
    out = (math.floor(in_h * float(scales[0])), math.floor(in_w * float(scales[1])))
    if min(out) < 1:
        raise ValueError(f"{op}: scale_factor {scale_factor!r} maps input {x.shape[2:]} to an "
                         f"empty output {out}")
    return out, tuple(float(s) for s in scales)


def _ratio(in_size, out_size, scale):
    """Input pixels per output pixel as PyTorch computes it (compute_scales_value): float32 of
    1/scale_factor when one was given, else in/out."""
    if scale is not None:
        return np.float32(1.0 / scale)
    return np.float32(in_size) / np.float32(out_size)


def _nearest_index(in_size, out_size, scale):
    if out_size == in_size:
        return np.arange(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = np.floor(dst * _ratio(in_size, out_size, scale)).astype(np.int64)
    return np.minimum(src, in_size - 1)


def _linear_weights(in_size, out_size, scale, align_corners):
    """(index0, index1, weight1) per output position: the two neighbours and the weight of the
    second, from PyTorch's area_pixel_compute_source_index in float32."""
    dst = np.arange(out_size, dtype=np.float32)
    if align_corners:
        ratio = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0)
        src = dst * ratio
    else:
        ratio = _ratio(in_size, out_size, scale)
        src = np.maximum(ratio * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    index0 = src.astype(np.int64)  # src >= 0: truncation is floor
    weight1 = np.clip(src - index0.astype(np.float32), 0, 1).astype(np.float32)
    index1 = np.minimum(index0 + 1, in_size - 1)
    return index0, index1, weight1


def upsample_nearest2d(x: Float32Array, scale_factor: ScaleFactor = None,
                       size: OptionalIntOrTuple = None) -> Float32Array:
    """F.interpolate(x, size, scale_factor, mode="nearest") on (N, C, H, W) float32.

    Give ``size`` (int or (out_h, out_w)) or ``scale_factor`` (number or pair; the output is
    floor(in * scale)). Output pixel i copies input floor(i * r), with r = 1/scale_factor when
    given, else in/out, in float32 as PyTorch (so a non-integer scale_factor and the size it
    produces can pick different pixels, exactly as in PyTorch).

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32.
    scale_factor : float or (float, float), optional
        The scale per axis; exactly one of ``scale_factor`` and ``size``.
    size : int or (int, int), optional
        The output's (out_h, out_w).

    Returns
    -------
    numpy.ndarray
        (N, C, out_h, out_w) float32, C-contiguous.

    Raises
    ------
    TypeError
        x is not a float32 ndarray.
    ValueError
        x not 4-D, both or neither of size and scale_factor, or a size or scale that is not
        positive.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.array([[[[1, 2], [3, 4]]]], dtype=np.float32)
    >>> cnnfast.upsample_nearest2d(x, scale_factor=2)[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]], dtype=float32)
    >>> cnnfast.upsample_nearest2d(x, size=(3, 5)).shape
    (1, 1, 3, 5)
    """
    (out_h, out_w), (scale_h, scale_w) = _check(x, scale_factor, size, "upsample_nearest2d")
    rows = _nearest_index(x.shape[2], out_h, scale_h)
    cols = _nearest_index(x.shape[3], out_w, scale_w)
    return np.ascontiguousarray(x[:, :, rows[:, None], cols[None, :]])


def upsample_bilinear2d(x: Float32Array, scale_factor: ScaleFactor = None,
                        size: OptionalIntOrTuple = None,
                        align_corners: bool = False) -> Float32Array:
    """F.interpolate(x, size, scale_factor, mode="bilinear", align_corners) on (N, C, H, W)
    float32.

    With ``align_corners=False`` output pixel i samples input position
    max((i + 0.5) * r - 0.5, 0) (r as in upsample_nearest2d); with True the corner pixels of
    input and output align: i * (in - 1) / (out - 1). Neighbours beyond the edge are clamped.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32.
    scale_factor : float or (float, float), optional
        The scale per axis; exactly one of ``scale_factor`` and ``size``.
    size : int or (int, int), optional
        The output's (out_h, out_w).
    align_corners : bool
        As in PyTorch.

    Returns
    -------
    numpy.ndarray
        (N, C, out_h, out_w) float32, C-contiguous.

    Raises
    ------
    TypeError
        x is not a float32 ndarray, or align_corners is not a bool.
    ValueError
        As :func:`upsample_nearest2d`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.array([[[[0, 4]]]], dtype=np.float32)
    >>> cnnfast.upsample_bilinear2d(x, size=(1, 4))[0, 0]
    array([[0., 1., 3., 4.]], dtype=float32)
    >>> cnnfast.upsample_bilinear2d(x, size=(1, 5), align_corners=True)[0, 0]
    array([[0., 1., 2., 3., 4.]], dtype=float32)
    """
    (out_h, out_w), (scale_h, scale_w) = _check(x, scale_factor, size, "upsample_bilinear2d")
    if not isinstance(align_corners, bool):
        raise TypeError(f"upsample_bilinear2d: align_corners must be a bool, got "
                        f"{align_corners!r}")
    y0, y1, wy = _linear_weights(x.shape[2], out_h, scale_h, align_corners)
    x0, x1, wx = _linear_weights(x.shape[3], out_w, scale_w, align_corners)
    # Rows first (N, C, out_h, W), then columns: two passes over small arrays.
    wy = wy[:, None]
    rows = x[:, :, y0, :] * (np.float32(1) - wy) + x[:, :, y1, :] * wy
    out = rows[..., x0] * (np.float32(1) - wx) + rows[..., x1] * wx
    return np.ascontiguousarray(out, dtype=np.float32)
