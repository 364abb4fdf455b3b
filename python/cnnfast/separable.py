"""Separable convolutions: spatially separable kernels (a rank-1 k x k kernel as a k x 1 then a
1 x k convolution per channel) and the depthwise-separable block (depthwise then pointwise)."""

from typing import Optional

import numpy as np

from . import _C
from ._args import check_activation, conv_padding, int_tuple
from .functional import _conv2d, _float32_array, _require_array
from ._typing import (
    Activation,
    ArrayLike,
    ArrayPair,
    Float32Array,
    IntOrTuple,
    OptionalArray,
    Padding,
)


def separable_factors(kernel_2d: ArrayLike, tol: float = 1e-6) -> Optional[ArrayPair]:
    """(col, row) with ``np.outer(col, row)`` equal to ``kernel_2d`` when that kernel has rank 1
    (within ``tol`` relative to its largest singular value), else None. Found by an SVD;
    returned as float32, the column's first nonzero entry positive. Sobel, Gaussian and box
    kernels factor; a random 3x3 does not.

    Parameters
    ----------
    kernel_2d : array_like
        A non-empty 2-D kernel (any real dtype; computed in float64).
    tol : float
        Relative tolerance on the second singular value.

    Returns
    -------
    tuple of numpy.ndarray or None
        (col, row), float32, or None when the kernel is not rank 1.

    Raises
    ------
    TypeError
        The kernel is complex (the imaginary part would be dropped).
    ValueError
        The kernel is not 2-D, is empty, or holds NaN or Inf.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float32)
    >>> col, row = cnnfast.separable_factors(sobel_x)
    >>> np.allclose(np.outer(col, row), sobel_x)
    True
    >>> print(cnnfast.separable_factors(np.eye(3)))      # rank 3
    None
    """
    if np.iscomplexobj(kernel_2d):  # float64 conversion would drop the imaginary part
        raise TypeError("separable_factors: kernel_2d must be real, got complex values")
    k = np.asarray(kernel_2d, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"separable_factors: kernel_2d must be a non-empty 2-D array, got shape "
                         f"{k.shape}")
    if not np.isfinite(k).all():
        raise ValueError("separable_factors: kernel_2d has non-finite values")
    u, s, vt = np.linalg.svd(k)
    if s[0] == 0.0:
        return np.zeros(k.shape[0], np.float32), np.zeros(k.shape[1], np.float32)
    if len(s) > 1 and s[1] > tol * s[0]:
        return None
    col, row = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    first = np.flatnonzero(np.abs(col) > 1e-6 * np.abs(col).max())[0]
    if col[first] < 0:
        col, row = -col, -row
    return col.astype(np.float32), row.astype(np.float32)


def conv2d_separable(x: Float32Array, col: Float32Array, row: Float32Array,
                     bias: OptionalArray = None, stride: IntOrTuple = 1, padding: Padding = 0,
                     dilation: IntOrTuple = 1, *, activation: Activation = None,
                     negative_slope: float = 0.01, layout: str = "NCHW",
                     out: OptionalArray = None) -> Float32Array:
    """Per-channel 2-D filtering with the rank-1 kernel ``outer(col, row)``, as a k_h x 1 then a
    1 x k_w depthwise convolution: k_h + k_w multiplications per output instead of k_h * k_w.
    Equal (within rounding) to ``conv2d(x, outer(col, row) per channel, groups=C)``.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32, or (N, H, W, C) with ``layout="NHWC"``.
    col : numpy.ndarray
        (k_h,) shared by every channel, or (C, k_h); float32.
    row : numpy.ndarray
        (k_w,) or (C, k_w); float32.
    bias : numpy.ndarray, optional
        (C,) float32, applied after the second pass with the activation.
    stride, padding, dilation
        As :func:`conv2d` ("same", "valid", int, pair, 4-tuple).
    activation, negative_slope, layout, out
        As :func:`conv2d`.

    Returns
    -------
    numpy.ndarray
        (N, C, H_out, W_out) float32 (or NHWC).

    Raises
    ------
    TypeError, ValueError
        Non-float32 arrays; col or row not (k,) or (C, k); x not 4-D; a bad layout.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> box = np.ones(3, dtype=np.float32)
    >>> cnnfast.conv2d_separable(x, box, box)       # a 3x3 box filter in two 1-D passes
    array([[[[45., 54.],
             [81., 90.]]]], dtype=float32)
    """
    op = "conv2d_separable"
    for name, value in (("x", x), ("col", col), ("row", row)):
        _require_array(value, op, name)
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCHW' or 'NHWC'")
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D, got shape {x.shape}")
    c = x.shape[3] if layout == "NHWC" else x.shape[1]

    def per_channel(v, name):
        v = _float32_array(v, op, name)
        if v.ndim == 1:
            v = np.broadcast_to(v, (c, v.shape[0]))
        if v.ndim != 2 or v.shape[0] != c or v.shape[1] < 1:
            raise ValueError(f"{op}: {name} must be (k,) or (C, k) with C={c}, got shape "
                             f"{v.shape}")
        return v

    col, row = per_channel(col, "col"), per_channel(row, "row")
    kh, kw = col.shape[1], row.shape[1]
    stride = int_tuple(stride, 2, op, "stride")
    dilation = int_tuple(dilation, 2, op, "dilation")
    spatial = x.shape[1:3] if layout == "NHWC" else x.shape[2:4]
    (top, bottom), (left, right) = conv_padding(padding, spatial, (kh, kw), stride, dilation, op)
    vertical = np.ascontiguousarray(col.reshape(c, 1, kh, 1))
    horizontal = np.ascontiguousarray(row.reshape(c, 1, 1, kw))
    mid = _conv2d(x, vertical, None, (stride[0], 1), (top, bottom, 0, 0), (dilation[0], 1), c,
                  "zeros", None, negative_slope, layout, "depthwise", None, op)
    return _conv2d(mid, horizontal, bias, (1, stride[1]), (0, 0, left, right), (1, dilation[1]),
                   c, "zeros", activation, negative_slope, layout, "depthwise", out, op)


def separable_conv2d(x: Float32Array, depthwise_weight: Float32Array,
                     pointwise_weight: Float32Array, depthwise_bias: OptionalArray = None,
                     pointwise_bias: OptionalArray = None, stride: IntOrTuple = 1,
                     padding: Padding = 0, dilation: IntOrTuple = 1, *,
                     activation: Activation = None, mid_activation: Activation = None,
                     negative_slope: float = 0.01, layout: str = "NCHW",
                     out: OptionalArray = None) -> Float32Array:
    """MobileNet's depthwise-separable block in one call:
    act(conv2d(mid_act(conv2d(x, depthwise_weight, depthwise_bias, stride, padding, dilation,
    groups=C_in)), pointwise_weight, pointwise_bias)).

    Computed a band of output rows at a time: each band's depthwise result (at most 256 KiB)
    feeds the pointwise GEMM while still in cache, so the middle tensor never goes to memory
    whole.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, H, W) float32, or (N, H, W, C_in) with ``layout="NHWC"``.
    depthwise_weight : numpy.ndarray
        (C_in * m, 1, kh, kw) float32 (m: the channel multiplier).
    pointwise_weight : numpy.ndarray
        (C_out, C_in * m, 1, 1) float32.
    depthwise_bias, pointwise_bias : numpy.ndarray, optional
        (C_in * m,) and (C_out,) float32.
    stride, padding, dilation
        Of the depthwise convolution, as :func:`conv2d` (padding_mode "zeros" only).
    activation, mid_activation : str, optional
        After the pointwise and after the depthwise convolution (names as :func:`conv2d`).
    negative_slope, layout, out
        As :func:`conv2d`.

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) float32 (or NHWC).

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`, for either weight.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.ones((1, 4, 6, 6), dtype=np.float32)
    >>> dw = np.ones((4, 1, 3, 3), dtype=np.float32)
    >>> pw = np.ones((8, 4, 1, 1), dtype=np.float32)
    >>> y = cnnfast.separable_conv2d(x, dw, pw, padding=1, mid_activation="relu6")
    >>> y.shape, float(y[0, 0, 2, 2]), float(y[0, 0, 0, 0])    # 4 channels x min(9, 6); corner 4
    ((1, 8, 6, 6), 24.0, 16.0)
    >>> bool(np.array_equal(y, cnnfast.conv2d(cnnfast.conv2d(x, dw, padding=1, groups=4,
    ...                                                      activation="relu6"), pw)))
    True
    """
    op = "separable_conv2d"
    for name, value in (("x", x), ("depthwise_weight", depthwise_weight),
                        ("pointwise_weight", pointwise_weight)):
        _require_array(value, op, name)
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCHW' or 'NHWC'")
    if out is not None:
        _require_array(out, op, "out")
    x = _float32_array(x, op, "x")
    depthwise_weight = _float32_array(depthwise_weight, op, "depthwise_weight")
    pointwise_weight = _float32_array(pointwise_weight, op, "pointwise_weight")
    biases = [None if b is None else _float32_array(b, op, name)
              for b, name in ((depthwise_bias, "depthwise_bias"),
                              (pointwise_bias, "pointwise_bias"))]
    check_activation(activation, op)
    check_activation(mid_activation, op)
    stride = int_tuple(stride, 2, op, "stride")
    dilation = int_tuple(dilation, 2, op, "dilation")
    pairs = [(0, 0), (0, 0)]
    if x.ndim == 4 and depthwise_weight.ndim == 4:
        spatial = x.shape[1:3] if layout == "NHWC" else x.shape[2:4]
        pairs = conv_padding(padding, spatial, depthwise_weight.shape[2:4], stride, dilation, op)
    flat = (pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1])
    return _C.separable_conv2d(x, depthwise_weight, biases[0], pointwise_weight, biases[1],
                               stride, flat, dilation, activation, mid_activation,
                               float(negative_slope), layout == "NHWC", out)
