"""Transposed convolution: ``conv_transpose2d`` / ``conv_transpose1d`` with PyTorch's semantics,
the adjoint of conv2d (if conv2d is the matrix C acting on the flattened input, the transposed
convolution with the same weight is Cᵀ)."""

from . import _C
from ._args import int_tuple, is_int
from .functional import _conv_inputs, _require_array
from ._typing import Activation, Float32Array, IntOrTuple, OptionalArray, OutputSize, Padding

ALGORITHMS = tuple(_C.conv_transpose2d_algorithms())


def conv_transpose2d_algorithms() -> list[str]:
    """Names accepted by ``conv_transpose2d(..., algo=...)``.

    "gemm_col2im": one GEMM per image and group makes every input pixel's columns (Wᵀx), then
    each output row gathers the columns landing on it (no write races between threads).
    "phase" (dilation 1): the stride_h x stride_w sub-pixel phases, each a dense stride-1
    convolution of x with the taps that land on that phase (its sub-kernel, packed once per
    call; conv2d's implicit GEMM, no inserted zeros, bias and activation in the GEMM epilogue),
    stored into every stride-th output. "auto" picks "phase" where taps overlap (kernel >
    stride) on inputs of 256+ pixels or with few input channels, and "gemm_col2im" otherwise
    (UNet's kernel == stride, the few-pixel DCGAN layers, dilation, < 16 output channels per
    group): the rule and the benchmark that chose it are in csrc/ops/conv_transpose2d.cpp.

    Returns
    -------
    list of str
        "auto" and each algorithm.

    Examples
    --------
    >>> import cnnfast
    >>> sorted(cnnfast.conv_transpose2d_algorithms())
    ['auto', 'gemm_col2im', 'phase']
    """
    return list(ALGORITHMS)


def _pairs(padding, op):
    """(top, bottom, left, right) from an int, (ph, pw) or a 4-tuple."""
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints (PyTorch's transposed "
                         f"convolutions take no padding strings), got {padding!r}")
    if is_int(padding):
        values = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and all(is_int(v) for v in padding) and \
            len(padding) in (2, 4):
        values = tuple(int(v) for v in padding)
        if len(values) == 2:
            values = (values[0], values[0], values[1], values[1])
    else:
        raise ValueError(f"{op}: padding must be an int, (ph, pw) or (top, bottom, left, right), "
                         f"got {padding!r}")
    if min(values) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    return values


def _resolve(x, weight, stride, padding, output_padding, dilation, output_size, layout, op):
    """(stride, pads, output_padding, dilation) with output_size turned into output_padding the
    way PyTorch does (it must lie in [smallest, smallest + stride - 1] per axis)."""
    stride = int_tuple(stride, 2, op, "stride")
    dilation = int_tuple(dilation, 2, op, "dilation")
    pads = _pairs(padding, op)
    output_padding = int_tuple(output_padding, 2, op, "output_padding")
    if output_size is not None and x.ndim == 4 and weight.ndim == 4:
        size = list(output_size)
        if len(size) > 2:  # (N, C, H, W) or (C, H, W) as PyTorch accepts: the spatial sizes
            size = size[-2:]
        if len(size) != 2 or not all(is_int(v) for v in size):
            raise ValueError(f"{op}: output_size must give the 2 spatial sizes, got "
                             f"{output_size!r}")
        spatial = x.shape[1:3] if layout == "NHWC" else x.shape[2:4]
        smallest = [(i - 1) * s - pb - pe + d * (k - 1) + 1 for i, s, pb, pe, d, k in zip(
            spatial, stride, pads[0::2], pads[1::2], dilation, weight.shape[2:4])]
        for got, low, s in zip(size, smallest, stride):
            if not low <= got <= low + s - 1:
                raise ValueError(f"{op}: output_size {tuple(output_size)!r} is not reachable: "
                                 f"each size must lie between {tuple(smallest)!r} and "
                                 f"{tuple(v + s - 1 for v, s in zip(smallest, stride))!r}")
        output_padding = tuple(got - low for got, low in zip(size, smallest))
    return stride, pads, output_padding, dilation


def conv_transpose2d(x: Float32Array, weight: Float32Array, bias: OptionalArray = None,
                     stride: IntOrTuple = 1, padding: Padding = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1, *, output_size: OutputSize = None,
                     activation: Activation = None, negative_slope: float = 0.01,
                     layout: str = "NCHW", algo: str = "auto",
                     out: OptionalArray = None) -> Float32Array:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``, with a fused
    bias and activation.

    The adjoint of :func:`conv2d` with the same weight: if conv2d is the matrix C acting on the
    flattened input (:func:`cnnfast.analysis.conv_matrix`), this is Cᵀ. Each input pixel
    scatters the kernel, scaled by its value, into the output.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, H, W) float32, or (N, H, W, C_in) with ``layout="NHWC"``.
    weight : numpy.ndarray
        (C_in, C_out/groups, kh, kw) float32 (PyTorch's layout) in both layouts.
    bias : numpy.ndarray, optional
        (C_out,) float32.
    stride, dilation : int or (int, int)
    padding : int or tuple
        An int, (ph, pw) or (top, bottom, left, right): the padding of the forward convolution
        this is the adjoint of (cropped from the output's start and end). No padding strings.
    output_padding : int or (int, int)
        Extra rows/columns at the end; must be smaller than the stride or the dilation.
    groups : int
        Divides C_in and C_out.
    output_size : tuple of int, optional
        The spatial sizes (or the full shape) wanted; picks ``output_padding`` as PyTorch does
        (each size must be reachable, else ValueError naming the range).
    activation, negative_slope, layout, out
        As :func:`conv2d`.
    algo : str
        "auto" or a name from :func:`conv_transpose2d_algorithms`.

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) float32 (or NHWC), with per axis H_out = (H - 1)*stride -
        pad_top - pad_bottom + dilation*(kh - 1) + output_padding + 1
        (:func:`cnnfast.analysis.conv_transpose_output_size`).

    Raises
    ------
    TypeError
        An array is not float32, or an argument has the wrong type.
    ValueError
        Mismatched shapes, a bad padding, output_padding, output_size, layout or algo.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.ones((1, 1, 2, 2), dtype=np.float32)
    >>> w = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> cnnfast.conv_transpose2d(x, w)[0, 0]       # overlapping scattered kernels add up
    array([[1., 2., 2., 1.],
           [2., 4., 4., 2.],
           [2., 4., 4., 2.],
           [1., 2., 2., 1.]], dtype=float32)
    >>> cnnfast.conv_transpose2d(x, w, stride=2).shape          # (2 - 1) * 2 + 3 = 5
    (1, 1, 5, 5)
    >>> cnnfast.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1).shape
    (1, 1, 4, 4)
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                           output_size, activation, negative_slope, layout, algo, out,
                           "conv_transpose2d")


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                    output_size, activation, negative_slope, layout, algo, out, op):
    if algo not in ALGORITHMS:
        raise ValueError(f"{op}: unknown algo {algo!r}; expected one of {', '.join(ALGORITHMS)}")
    x, weight, bias = _conv_inputs(x, weight, bias, out, layout, activation, groups, op)
    stride, pads, output_padding, dilation = _resolve(x, weight, stride, padding, output_padding,
                                                      dilation, output_size, layout, op)
    return _C.conv_transpose2d(x, weight, bias, stride, pads, output_padding, int(groups),
                               dilation, activation, float(negative_slope), layout == "NHWC",
                               out, op == "conv_transpose1d", algo)


def conv_transpose1d(x: Float32Array, weight: Float32Array, bias: OptionalArray = None,
                     stride: IntOrTuple = 1, padding: Padding = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1, *, output_size: OutputSize = None,
                     activation: Activation = None, negative_slope: float = 0.01,
                     layout: str = "NCL", algo: str = "auto",
                     out: OptionalArray = None) -> Float32Array:
    """1-D transposed convolution, as ``torch.nn.functional.conv_transpose1d``: the arguments of
    :func:`conv_transpose2d` over (N, C_in, L) (or (N, L, C_in) with ``layout="NLC"``), weight
    (C_in, C_out/groups, k), padding an int or (left, right). Runs as the 2-D one with H = 1.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, L) float32, or (N, L, C_in) with ``layout="NLC"``.
    weight : numpy.ndarray
        (C_in, C_out/groups, k) float32.
    bias, stride, output_padding, groups, dilation, output_size
        As :func:`conv_transpose2d`, for one axis.
    activation, negative_slope, algo, out
        As :func:`conv_transpose2d`.
    padding : int or (int, int)
        An int or (left, right).
    layout : str
        "NCL" or "NLC".

    Returns
    -------
    numpy.ndarray
        (N, C_out, L_out) float32, L_out = (L - 1)*stride - left - right + dilation*(k - 1) +
        output_padding + 1.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv_transpose2d`; x and weight must be 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.array([[[1, 2]]], dtype=np.float32)
    >>> w = np.ones((1, 1, 3), dtype=np.float32)
    >>> cnnfast.conv_transpose1d(x, w)
    array([[[1., 3., 3., 2.]]], dtype=float32)
    >>> cnnfast.conv_transpose1d(x, w, stride=2)
    array([[[1., 1., 3., 2., 2.]]], dtype=float32)
    """
    op = "conv_transpose1d"
    if layout not in ("NCL", "NLC"):
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCL' or 'NLC'")
    for name, value in (("x", x), ("weight", weight)):
        _require_array(value, op, name)
        if value.ndim != 3:
            raise ValueError(f"{op}: {name} must be 3-D, got shape {value.shape}")
    if out is not None:
        _require_array(out, op, "out")
        if out.ndim != 3:
            raise ValueError(f"{op}: out must be 3-D, got shape {out.shape}")
    (s,), (d,), (opad,) = (int_tuple(v, 1, op, n) for v, n in (
        (stride, "stride"), (dilation, "dilation"), (output_padding, "output_padding")))
    if is_int(padding):
        left = right = int(padding)
    elif isinstance(padding, (tuple, list)) and len(padding) in (1, 2) and \
            all(is_int(v) for v in padding):
        left, right = int(padding[0]), int(padding[-1])
    else:
        raise ValueError(f"{op}: padding must be an int or (left, right), got {padding!r}")
    nlc = layout == "NLC"
    x4 = x[:, None] if nlc else x[:, :, None]
    size = None
    if output_size is not None:
        # The length alone, or a shape ending with it (PyTorch accepts (N, C, L) too).
        if is_int(output_size):
            size = (1, int(output_size))
        elif isinstance(output_size, (tuple, list)) and len(output_size) >= 1:
            size = (1, output_size[-1])
        else:
            raise ValueError(f"{op}: output_size must be the output length or a shape ending "
                             f"with it, got {output_size!r}")
    out4 = None if out is None else (out[:, None] if nlc else out[:, :, None])
    y = _conv_transpose(x4, weight[:, :, None], bias, (1, s), (0, 0, left, right), (0, opad),
                        groups, (1, d), size, activation, negative_slope,
                        "NHWC" if nlc else "NCHW", algo, out4, op)
    return out if out is not None else (y[:, 0] if nlc else y[:, :, 0])
