"""3-D convolutions: ``conv3d`` and ``conv_transpose3d`` with torch.nn.functional's semantics on
(N, C, D, H, W) volumes (or NDHWC), plus fused bias and activation. Argument normalisation and
docstrings here; the work in csrc/ops/conv3d.cpp, conv3d_depthwise.cpp, conv_transpose3d.cpp."""

from . import _C
from ._args import PADDING_MODES, apply_padding_mode, conv_padding, int_tuple, is_int
from .functional import _conv_inputs
from ._typing import Activation, Float32Array, IntOrTuple, OptionalArray, OutputSize, Padding

LAYOUTS_3D = ("NCDHW", "NDHWC")
TRANSPOSE_ALGORITHMS = ("auto", "gemm_col2im")


def conv3d_algorithms() -> list[str]:
    """Names accepted by ``conv3d(..., algo=...)``: "auto" and each algorithm.

    "implicit_gemm" (the default) gathers the GEMM's panels straight from x (no column matrix:
    a 3x3x3 one would be 27x the input); "vol2col" builds the column matrix a block of pixels
    at a time and runs the GEMM engine (the simple reference path); "depthwise" (one input
    channel per group, any channel multiplier; "auto" picks it then) is a direct window: each
    output plane sums its 3-D taps in registers (memory-bound, no GEMM).

    Returns
    -------
    list of str
        "auto" first, then each algorithm.

    Examples
    --------
    >>> import cnnfast
    >>> cnnfast.conv3d_algorithms()
    ['auto', 'implicit_gemm', 'vol2col', 'depthwise']
    """
    return list(_C.conv3d_algorithms())


def conv_transpose3d_algorithms() -> list[str]:
    """Names accepted by ``conv_transpose3d(..., algo=...)``: "auto" is "gemm_col2im" (one GEMM
    per image, group and block of input slices makes the columns Wᵀx; each output row gathers
    the columns landing on it, so threads never write the same output).

    Returns
    -------
    list of str
        ``["auto", "gemm_col2im"]``.

    Examples
    --------
    >>> import cnnfast
    >>> cnnfast.conv_transpose3d_algorithms()
    ['auto', 'gemm_col2im']
    """
    return list(TRANSPOSE_ALGORITHMS)


def _inputs(x, weight, bias, out, layout, activation, groups, op):
    if layout not in LAYOUTS_3D:
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCDHW' or 'NDHWC'")
    # The shared checks (dtype, the one copy, out overlap, activation, groups) with the 2-D
    # layout of the same channel position.
    return _conv_inputs(x, weight, bias, out, "NHWC" if layout == "NDHWC" else "NCHW",
                        activation, groups, op)


def conv3d(x: Float32Array, weight: Float32Array, bias: OptionalArray = None,
           stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
           groups: int = 1, *, padding_mode: str = "zeros", activation: Activation = None,
           negative_slope: float = 0.01, layout: str = "NCDHW", algo: str = "auto",
           out: OptionalArray = None) -> Float32Array:
    """3-D convolution (cross-correlation), as ``torch.nn.functional.conv3d``, with a fused
    bias and activation.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, D, H, W) float32, or (N, D, H, W, C_in) with ``layout="NDHWC"``.
    weight : numpy.ndarray
        (C_out, C_in/groups, kd, kh, kw) float32 (PyTorch's layout) in both layouts.
    bias : numpy.ndarray, optional
        (C_out,) float32.
    stride, dilation : int or (int, int, int)
        Per axis (d, h, w).
    padding : int, tuple or str
        int, (pd, ph, pw), (front, back, top, bottom, left, right), "valid", or "same" (out =
        ceil(in / stride), the odd element at the end of each axis: PyTorch's rule at stride 1,
        TensorFlow's at any stride; PyTorch rejects "same" with stride > 1).
    groups : int
        Divides C_in and C_out; groups == C_in is depthwise (any channel multiplier).
    padding_mode : str
        "zeros", "reflect", "replicate" or "circular" (as torch.nn.Conv3d; a non-zero mode pads
        a copy of x).
    activation : str, optional
        None, "relu", "relu6", "leaky_relu" (slope ``negative_slope``), "sigmoid", "tanh",
        "silu" or "hardswish", fused after the bias.
    negative_slope : float
        The slope of "leaky_relu".
    layout : str
        "NCDHW" or "NDHWC" (the output has the same layout). NDHWC runs the implicit GEMM
        natively; its "vol2col" and "depthwise" go through NCDHW (each image transposed in and
        its result back: one copy each way).
    algo : str
        "auto" or a name from :func:`conv3d_algorithms`.
    out : numpy.ndarray, optional
        C-contiguous float32 array of the output shape, written and returned.

    Returns
    -------
    numpy.ndarray
        (N, C_out, D_out, H_out, W_out) float32 (or NDHWC); per axis
        out = floor((D + pad_front + pad_back - dilation*(kd-1) - 1) / stride) + 1.

    Raises
    ------
    TypeError
        An array is not float32, or an argument has the wrong type.
    ValueError
        Mismatched shapes, groups that do not divide the channels, a bad padding, layout, algo
        or ``out``.

    Notes
    -----
    Non-contiguous inputs are copied once. Results are bitwise the same in both layouts and for
    any thread count.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.ones((1, 2, 4, 4, 4), dtype=np.float32)
    >>> w = np.ones((3, 2, 3, 3, 3), dtype=np.float32)
    >>> y = cnnfast.conv3d(x, w)
    >>> y.shape, float(y[0, 0, 0, 0, 0])          # 2 channels x 27 taps
    ((1, 3, 2, 2, 2), 54.0)
    >>> cnnfast.conv3d(x, w, stride=2, padding="same").shape
    (1, 3, 2, 2, 2)
    >>> cnnfast.conv3d(x.transpose(0, 2, 3, 4, 1), w, padding=1, layout="NDHWC").shape
    (1, 4, 4, 4, 3)
    """
    op = "conv3d"
    if not isinstance(algo, str):
        raise TypeError(f"{op}: algo must be a string, got {algo!r}")
    x, weight, bias = _inputs(x, weight, bias, out, layout, activation, groups, op)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: unknown padding_mode {padding_mode!r}; expected one of "
                         f"{', '.join(PADDING_MODES)}")
    stride = int_tuple(stride, 3, op, "stride")
    dilation = int_tuple(dilation, 3, op, "dilation")
    pairs = [(0, 0)] * 3  # with a wrong ndim the C++ validation reports the shapes
    if x.ndim == 5 and weight.ndim == 5:
        axes = (1, 2, 3) if layout == "NDHWC" else (2, 3, 4)
        spatial = [x.shape[a] for a in axes]
        pairs = conv_padding(padding, spatial, weight.shape[2:5], stride, dilation, op)
        x, pairs = apply_padding_mode(x, pairs, axes, padding_mode, op)
    flat = tuple(v for pair in pairs for v in pair)
    return _C.conv3d(x, weight, bias, stride, flat, dilation, int(groups), activation,
                     float(negative_slope), layout == "NDHWC", algo, out)


def _transpose_pads(padding, op):
    """(front, back, top, bottom, left, right) from an int, (pd, ph, pw) or a 6-tuple."""
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints (PyTorch's transposed "
                         f"convolutions take no padding strings), got {padding!r}")
    if is_int(padding):
        values = (int(padding),) * 6
    elif isinstance(padding, (tuple, list)) and all(is_int(v) for v in padding) and \
            len(padding) in (3, 6):
        values = tuple(int(v) for v in padding)
        if len(values) == 3:
            values = (values[0], values[0], values[1], values[1], values[2], values[2])
    else:
        raise ValueError(f"{op}: padding must be an int, (pd, ph, pw) or (front, back, top, "
                         f"bottom, left, right), got {padding!r}")
    if min(values) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    return values


def _output_padding(x, weight, stride, pads, output_padding, dilation, output_size, layout, op):
    """output_padding, or the one that gives output_size (PyTorch's rule: each size must lie in
    [smallest, smallest + stride - 1])."""
    output_padding = int_tuple(output_padding, 3, op, "output_padding")
    if output_size is None or x.ndim != 5 or weight.ndim != 5:
        return output_padding
    size = list(output_size)
    if len(size) > 3:  # (N, C, D, H, W) or (C, D, H, W) as PyTorch accepts: the spatial sizes
        size = size[-3:]
    if len(size) != 3 or not all(is_int(v) for v in size):
        raise ValueError(f"{op}: output_size must give the 3 spatial sizes, got {output_size!r}")
    spatial = x.shape[1:4] if layout == "NDHWC" else x.shape[2:5]
    smallest = [(i - 1) * s - pb - pe + d * (k - 1) + 1 for i, s, pb, pe, d, k in zip(
        spatial, stride, pads[0::2], pads[1::2], dilation, weight.shape[2:5])]
    largest = [low + s - 1 for low, s in zip(smallest, stride)]
    if not all(low <= got <= high for got, low, high in zip(size, smallest, largest)):
        raise ValueError(f"{op}: output_size {tuple(output_size)!r} is not reachable: each size "
                         f"must lie between {tuple(smallest)!r} and {tuple(largest)!r}")
    return tuple(got - low for got, low in zip(size, smallest))


def conv_transpose3d(x: Float32Array, weight: Float32Array, bias: OptionalArray = None,
                     stride: IntOrTuple = 1, padding: Padding = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1, *, output_size: OutputSize = None,
                     activation: Activation = None, negative_slope: float = 0.01,
                     layout: str = "NCDHW", algo: str = "auto",
                     out: OptionalArray = None) -> Float32Array:
    """3-D transposed convolution, as ``torch.nn.functional.conv_transpose3d``, with a fused
    bias and activation: the adjoint of :func:`conv3d` with the same weight.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, D, H, W) float32, or (N, D, H, W, C_in) with ``layout="NDHWC"`` (computed
        through NCDHW: one transposed copy per image).
    weight : numpy.ndarray
        (C_in, C_out/groups, kd, kh, kw) (PyTorch's layout) in both layouts.
    bias : numpy.ndarray, optional
        (C_out,) float32.
    stride, dilation : int or (int, int, int)
    padding : int or tuple
        An int, (pd, ph, pw) or (front, back, top, bottom, left, right): the padding of the
        forward convolution this is the adjoint of (cropped from the output's start and end).
    output_padding : int or tuple
        Must be smaller than the stride or the dilation on each axis.
    groups : int
        Divides C_in and C_out.
    output_size : tuple of int, optional
        The spatial sizes, or the full shape; picks ``output_padding`` as PyTorch does.
    activation, negative_slope, out
        As :func:`conv3d`.
    layout : str
        "NCDHW" or "NDHWC".
    algo : str
        "auto" or a name from :func:`conv_transpose3d_algorithms`.

    Returns
    -------
    numpy.ndarray
        (N, C_out, D_out, H_out, W_out) float32 (or NDHWC); per axis D_out = (D - 1)*stride -
        pad_front - pad_back + dilation*(kd - 1) + output_padding + 1.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_transpose2d`, for three axes.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.ones((1, 4, 2, 3, 3), dtype=np.float32)
    >>> w = np.ones((4, 2, 2, 2, 2), dtype=np.float32)
    >>> y = cnnfast.conv_transpose3d(x, w, stride=2)    # kernel == stride: no overlap
    >>> y.shape, float(y.min()), float(y.max())
    ((1, 2, 4, 6, 6), 4.0, 4.0)
    >>> cnnfast.conv_transpose3d(x, w, stride=2, output_size=(5, 7, 7)).shape
    (1, 2, 5, 7, 7)
    """
    op = "conv_transpose3d"
    if algo not in TRANSPOSE_ALGORITHMS:
        raise ValueError(f"{op}: unknown algo {algo!r}; expected one of "
                         f"{', '.join(TRANSPOSE_ALGORITHMS)}")
    x, weight, bias = _inputs(x, weight, bias, out, layout, activation, groups, op)
    stride = int_tuple(stride, 3, op, "stride")
    dilation = int_tuple(dilation, 3, op, "dilation")
    pads = _transpose_pads(padding, op)
    output_padding = _output_padding(x, weight, stride, pads, output_padding, dilation,
                                     output_size, layout, op)
    return _C.conv_transpose3d(x, weight, bias, stride, pads, output_padding, int(groups),
                               dilation, activation, float(negative_slope), layout == "NDHWC",
                               out)
