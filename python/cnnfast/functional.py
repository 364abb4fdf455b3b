"""The functional API: one function per operator, names and defaults as torch.nn.functional."""

import numpy as np

from . import _C
from ._args import (
    PADDING_MODES,
    apply_padding_mode,
    check_activation,
    conv_padding,
    int_tuple,
    is_int,
)
from ._typing import Activation, Float32Array, IntOrTuple, OptionalArray, Padding


def _require_array(value, op, arg):
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{op}: {arg} must be a numpy.ndarray of float32, got {type(value).__name__}"
        )


def matmul(a: Float32Array, b: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """Matrix product ``a @ b`` of two 2-D float32 arrays.

    Parameters
    ----------
    a : numpy.ndarray
        (m, k) float32 array. Any strides (transposed or sliced views are read in place,
        without a copy).
    b : numpy.ndarray
        (k, n) float32 array, any strides.
    out : numpy.ndarray, optional
        (m, n) float32 array with contiguous rows to write into; must not overlap ``a`` or
        ``b``. It is returned.

    Returns
    -------
    numpy.ndarray
        The (m, n) float32 product. ``k == 0`` gives zeros.

    Raises
    ------
    TypeError
        An input is not a float32 ndarray (no silent conversion).
    ValueError
        Not 2-D, inner dimensions differ, a bad ``out``, or a result whose size does not fit
        in 64 bits.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> b = np.ones((3, 2), dtype=np.float32)
    >>> cnnfast.matmul(a, b)
    array([[ 3.,  3.],
           [12., 12.]], dtype=float32)
    >>> c = np.empty((3, 3), dtype=np.float32)
    >>> cnnfast.matmul(a.T, a, out=c) is c      # a transposed view, read in place
    True
    >>> cnnfast.matmul(a.astype(np.float64), b)
    Traceback (most recent call last):
        ...
    TypeError: matmul: a has dtype float64; ...
    """
    _require_array(a, "matmul", "a")
    _require_array(b, "matmul", "b")
    if out is not None:
        _require_array(out, "matmul", "out")
    return _C.matmul(a, b, out)


def conv2d_algorithms() -> list[str]:
    """Names accepted by ``conv2d(..., algo=...)``: "auto" and each algorithm.

    "implicit_gemm" (the default for k x k) builds no column matrix: with at least 16 input
    channels per group and output rows that fill the GEMM's micro-tiles (any rows when the
    convolution is grouped), its micro-kernel reads
    each kernel tap's pixels in place from a zero-padded channels-last copy of x (NCHW input is
    transposed into that copy, and the output back); otherwise it gathers the GEMM's panels
    straight from x. Small NCHW images with enough work per value run on channels-last copies.
    Every path sums in the same order, so NCHW and NHWC results are bitwise equal. "im2col"
    builds the column matrix a block of pixels at a time (bounded memory) and runs the GEMM
    engine; "gemm1x1" runs a 1x1, stride-1, unpadded convolution as one GEMM on x itself;
    "depthwise" is the direct window for one input channel per group; "direct" computes blocks
    of output channels from their windows (any parameters; "auto" picks it for grouped
    convolutions with at most 8 input channels per group).

    Returns
    -------
    list of str
        "auto" first, then every algorithm compiled in.

    Examples
    --------
    >>> import cnnfast
    >>> names = cnnfast.conv2d_algorithms()
    >>> names[0], "implicit_gemm" in names, "gemm1x1" in names
    ('auto', True, True)
    """
    return list(_C.conv2d_algorithms())


def _float32_array(value, op, arg):
    _require_array(value, op, arg)
    if value.dtype != np.float32:
        raise TypeError(f"{op}: {arg} has dtype {value.dtype}; cnnfast computes in float32 only "
                        f"(no silent conversion): pass {arg}.astype(numpy.float32)")
    # The one documented copy for non-contiguous inputs.
    return value if value.flags.c_contiguous else np.ascontiguousarray(value)


def conv2d(x: Float32Array, weight: Float32Array, bias: OptionalArray = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
           groups: int = 1, *, padding_mode: str = "zeros", activation: Activation = None,
           negative_slope: float = 0.01, layout: str = "NCHW", algo: str = "auto",
           out: OptionalArray = None, residual: OptionalArray = None) -> Float32Array:
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``, with a fused
    bias and activation.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, H, W) float32, or (N, H, W, C_in) with ``layout="NHWC"``.
    weight : numpy.ndarray
        (C_out, C_in/groups, kh, kw) float32 (PyTorch's OIHW) in both layouts.
    bias : numpy.ndarray, optional
        (C_out,) float32.
    stride, dilation : int or (int, int)
        Per axis (h, w); dilation is 1-based as in PyTorch.
    padding : int, tuple or str
        int, (ph, pw), (top, bottom, left, right), "valid", or "same" (out = ceil(in / stride),
        the odd pixel at the bottom/right: PyTorch's rule at stride 1, TensorFlow's at any
        stride; PyTorch rejects "same" with stride > 1).
    groups : int
        Divides C_in and C_out; groups == C_in is depthwise.
    padding_mode : str
        "zeros", "reflect", "replicate" or "circular" (as torch.nn.Conv2d; a non-zero mode pads
        a copy of x).
    activation : str, optional
        None, "relu", "relu6", "leaky_relu" (slope ``negative_slope``), "sigmoid", "tanh",
        "silu" or "hardswish", applied after the bias to each output tile while it is in cache.
    negative_slope : float
        The slope of "leaky_relu".
    layout : str
        "NCHW" or "NHWC" (the output has the same layout).
    algo : str
        "auto" or a name from :func:`conv2d_algorithms`; an algorithm that cannot serve the
        parameters raises ValueError.
    out : numpy.ndarray, optional
        C-contiguous float32 array of the output shape, written and returned.
    residual : numpy.ndarray, optional
        C-contiguous float32 array of the output's shape, added before the activation:
        ``act(conv + bias + residual)`` (ResNet's shortcut, fused into the output tile: no
        separate add or activation pass). Must not overlap ``out``.

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) float32 (or (N, H_out, W_out, C_out) with NHWC), where per
        axis out = floor((H + pad_top + pad_bottom - dilation*(kh-1) - 1) / stride) + 1
        (:func:`cnnfast.analysis.conv_output_size`).

    Raises
    ------
    TypeError
        An array is not float32 (no silent conversion), or an argument has the wrong type.
    ValueError
        Shapes that do not match (the message names the argument and the shapes), groups that
        do not divide the channels, a bad padding, layout, algo or ``out``.

    Notes
    -----
    Non-contiguous inputs are copied once. Results are bitwise the same for any thread count
    and in both layouts.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> cnnfast.conv2d(x, w)                      # each output sums a 3x3 window
    array([[[[45., 54.],
             [81., 90.]]]], dtype=float32)
    >>> cnnfast.conv2d(x, w, padding="same", stride=2).shape
    (1, 1, 2, 2)
    >>> y = cnnfast.conv2d(x, w, np.array([-50.0], np.float32), activation="relu")
    >>> y[0, 0]
    array([[ 0.,  4.],
           [31., 40.]], dtype=float32)
    >>> cnnfast.conv2d(x.transpose(0, 2, 3, 1), w, layout="NHWC")[..., 0]   # same numbers
    array([[[45., 54.],
            [81., 90.]]], dtype=float32)
    """
    return _conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode,
                   activation, negative_slope, layout, algo, out, "conv2d", residual=residual)


def _residual_array(residual, op):
    """residual as the extension takes it: None or a float32 ndarray (shape, contiguity and
    overlap are checked there, against the output)."""
    if residual is None:
        return None
    _require_array(residual, op, "residual")
    if residual.dtype != np.float32:
        raise TypeError(f"{op}: residual has dtype {residual.dtype}; expected float32")
    return residual


def _conv_inputs(x, weight, bias, out, layout, activation, groups, op):
    """The checks every convolution makes on its arrays and plain arguments; returns x, weight
    and bias as C-contiguous float32 (the one documented copy for other strides)."""
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCHW' or 'NHWC'")
    if out is not None:
        _require_array(out, op, "out")
        # Checked on the caller's arrays, before any contiguous copy hides the overlap.
        if any(a is not None and np.may_share_memory(out, a) for a in (x, weight, bias)):
            raise ValueError(f"{op}: out overlaps an input; pass a separate array")
    x = _float32_array(x, op, "x")
    weight = _float32_array(weight, op, "weight")
    if bias is not None:
        bias = _float32_array(bias, op, "bias")
    check_activation(activation, op)
    if not is_int(groups):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    return x, weight, bias


def _conv2d(x, weight, bias, stride, padding, dilation, groups, padding_mode, activation,
            negative_slope, layout, algo, out, op, bn=None, packed=None, residual=None):
    """conv2d under the name `op` (conv1d runs here with H = 1 and its own error messages).
    `bn` = (running_mean, running_var, bn_weight, bn_bias, eps): a batch norm folded into the
    epilogue (conv_bn_act). `packed`: the weight packed by _C.conv2d_prepack_weight for this
    layout (cnnfast.nn layers pack once and skip the reorder and packing on every call).
    `residual`: see conv2d.
    """
    if not isinstance(algo, str):
        raise TypeError(f"{op}: algo must be a string, got {algo!r}")
    x, weight, bias = _conv_inputs(x, weight, bias, out, layout, activation, groups, op)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: unknown padding_mode {padding_mode!r}; expected one of "
                         f"{', '.join(PADDING_MODES)}")
    stride = int_tuple(stride, 2, op, "stride")
    dilation = int_tuple(dilation, 2, op, "dilation")
    pairs = [(0, 0), (0, 0)]  # with a wrong ndim the C++ validation reports the shapes
    if x.ndim == 4 and weight.ndim == 4:
        axes = (1, 2) if layout == "NHWC" else (2, 3)
        spatial = [x.shape[a] for a in axes]
        pairs = conv_padding(padding, spatial, weight.shape[2:4], stride, dilation, op)
        if algo != "gemm1x1":  # gemm1x1 takes no padding of any mode: C++ rejects the pads
            x, pairs = apply_padding_mode(x, pairs, axes, padding_mode, op)
    flat_padding = (pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1])
    return _C.conv2d(x, weight, bias, stride, flat_padding, dilation, int(groups), activation,
                     float(negative_slope), layout == "NHWC", algo, out, op == "conv1d", bn,
                     packed, _residual_array(residual, op))


def conv1d(x: Float32Array, weight: Float32Array, bias: OptionalArray = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
           groups: int = 1, *, padding_mode: str = "zeros", activation: Activation = None,
           negative_slope: float = 0.01, layout: str = "NCL", algo: str = "auto",
           out: OptionalArray = None) -> Float32Array:
    """1-D convolution, as ``torch.nn.functional.conv1d``; the arguments of :func:`conv2d`
    over (N, C_in, L) (or (N, L, C_in) with ``layout="NLC"``) with weight (C_out, C_in/groups,
    k). padding: int, (left, right), "valid" or "same". Runs as conv2d with H = 1 on views
    (no copy).

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, L) float32, or (N, L, C_in) with ``layout="NLC"``.
    weight : numpy.ndarray
        (C_out, C_in/groups, k) float32.
    bias : numpy.ndarray, optional
        (C_out,) float32.
    stride, dilation : int
    padding : int, (int, int) or str
        int, (left, right), "valid" or "same".
    groups, padding_mode, activation, negative_slope, algo, out
        As :func:`conv2d`.
    layout : str
        "NCL" or "NLC".

    Returns
    -------
    numpy.ndarray
        (N, C_out, L_out) float32 (or (N, L_out, C_out) with NLC).

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`; x and weight must be 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(6, dtype=np.float32).reshape(1, 1, 6)
    >>> w = np.array([[[1, 0, -1]]], dtype=np.float32)        # a difference filter
    >>> cnnfast.conv1d(x, w)
    array([[[-2., -2., -2., -2.]]], dtype=float32)
    >>> cnnfast.conv1d(x, w, padding="same").shape
    (1, 1, 6)
    """
    op = "conv1d"
    if layout not in ("NCL", "NLC"):
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCL' or 'NLC'")
    for name, value in (("x", x), ("weight", weight)):
        _require_array(value, op, name)
        if value.ndim != 3:
            shape = "(N, C_in, L)" if name == "x" and layout == "NCL" else (
                "(N, L, C_in)" if name == "x" else "(C_out, C_in/groups, k)")
            raise ValueError(f"{op}: {name} must be 3-D {shape}, got shape {value.shape}")
    if out is not None:
        _require_array(out, op, "out")
        if out.ndim != 3:
            raise ValueError(f"{op}: out must be 3-D, got shape {out.shape}")
    (s,), (d,) = int_tuple(stride, 1, op, "stride"), int_tuple(dilation, 1, op, "dilation")
    if isinstance(padding, str):
        padding_2d = padding
    else:
        if is_int(padding):
            left, right = padding, padding
        elif isinstance(padding, (tuple, list)) and len(padding) in (1, 2):
            if not all(is_int(v) for v in padding):
                raise TypeError(f"{op}: padding must be 'same', 'valid', an int or a tuple of "
                                f"ints, got {padding!r}")
            left, right = padding[0], padding[-1]
        else:
            raise ValueError(f"{op}: padding must be 'same', 'valid', an int or (left, right), "
                             f"got {padding!r}")
        if min(left, right) < 0:
            raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
        padding_2d = (0, 0, left, right)
    nlc = layout == "NLC"
    x4 = x[:, None, :, :] if nlc else x[:, :, None, :]
    out4 = None if out is None else (out[:, None, :, :] if nlc else out[:, :, None, :])
    y = _conv2d(x4, weight[:, :, None, :], bias, (1, s), padding_2d, (1, d), groups,
                padding_mode, activation, negative_slope, "NHWC" if nlc else "NCHW", algo, out4,
                op)
    return out if out is not None else (y[:, 0] if nlc else y[:, :, 0])

