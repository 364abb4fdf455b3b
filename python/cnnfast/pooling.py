"""Pooling: max, average and Lp over 1, 2 or 3 spatial axes (uniform windows, overlapping or
not), their adaptive and global forms, and max_unpool. Names, argument orders and defaults
follow ``torch.nn.functional``; every function also takes ``layout`` (channels first or last)
and ``out=``.

Conventions (DESIGN.md section 11): ``padding`` is an int, one int per axis, (begin, end) per
axis, "valid" or "same" (out = ceil(in / stride), the odd pixel at the end); explicit pads must
not exceed half the (dilated) kernel, as in PyTorch. Padded positions never win a max and enter
an average only through ``count_include_pad`` (which counts explicit and "same" pads, never the
ceil-mode overhang). With ``ceil_mode`` a last window that would start at or beyond
``in + pad_begin`` is dropped. Max pooling propagates NaN (a NaN wins its window, as PyTorch).
Indices are flat positions within one channel's spatial volume (d*H*W + h*W + w), the same in
both layouts. ONNX's AveragePool defaults to count_include_pad=0; PyTorch's (and ours) to True.
"""

from typing import Optional, Sequence

import numpy as np

from . import _C
from ._args import conv_padding, int_tuple, is_int
from .functional import _float32_array, _require_array
from ._typing import (
    AdaptivePoolFunction,
    AdaptiveSize,
    AvgPoolFunction,
    Float32Array,
    Int64Array,
    IntOrTuple,
    Layout,
    LpPoolFunction,
    MaxPoolFunction,
    MaxUnpoolFunction,
    OptionalArray,
    OptionalIntOrTuple,
    OutputSize,
    Padding,
    PoolResult,
)

LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def _doc_shapes(dims):
    """The channels-first and channels-last shapes of x, for the generated docstrings."""
    axes = ", ".join(LAYOUTS[dims][0][2:])
    return f"(N, C, {axes})", f"(N, {axes}, C)"


# For the generated docstrings' examples: x = arange(4**dims) as (1, 1, 4, ..., 4), pooled by
# 2 x ... x 2 windows (the maxima, the means), worked out by hand.
_DOC_SHAPE = {1: "(1, 1, 4)", 2: "(1, 1, 4, 4)", 3: "(1, 1, 4, 4, 4)"}
_DOC_MAX = {1: "[1.0, 3.0]", 2: "[5.0, 7.0, 13.0, 15.0]",
            3: "[21.0, 23.0, 29.0, 31.0, 53.0, 55.0, 61.0, 63.0]"}
_DOC_AVG = {1: "[0.5, 2.5]", 2: "[2.5, 4.5, 10.5, 12.5]",
            3: "[10.5, 12.5, 18.5, 20.5, 42.5, 44.5, 50.5, 52.5]"}
_DOC_OUT = {1: "(1, 1, 2)", 2: "(1, 1, 2, 2)", 3: "(1, 1, 2, 2, 2)"}
_DOC_LP = {1: "1.4142", 2: "2.0", 3: "2.8284"}
_DOC_ARGS = """
    Raises
    ------
    TypeError
        x (or out) is not a float32 ndarray.
    ValueError
        x of the wrong rank, a kernel, stride or dilation < 1, padding above half the
        (dilated) kernel, a window larger than the padded input, an unknown layout or a bad
        ``out``; the message names the argument and the shapes."""


def _channels_last(layout, dims, op):
    first, last = LAYOUTS[dims]
    if layout is None or layout == first:
        return False
    if layout == last:
        return True
    raise ValueError(f"{op}: unknown layout {layout!r}; expected {first!r} or {last!r}")


def _triple(values, fill):
    """A per-axis tuple padded at the front to 3 axes (the unused outer axes)."""
    return (fill,) * (3 - len(values)) + tuple(values)


def _spatial(x, dims, channels_last):
    return x.shape[1:1 + dims] if channels_last else x.shape[2:2 + dims]


def _prepare(x, out, dims, layout, op):
    _require_array(x, op, "x")
    if out is not None:
        _require_array(out, op, "out")
    x = _float32_array(x, op, "x")
    channels_last = _channels_last(layout, dims, op)
    return x, channels_last


def _window(x, dims, channels_last, kernel_size, stride, padding, dilation, op):
    """(kernel, stride, dilation, pad pairs) per axis, checked as PyTorch checks them."""
    kernel = int_tuple(kernel_size, dims, op, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else int_tuple(stride, dims, op, "stride")
    dilation = int_tuple(dilation, dims, op, "dilation")
    if x.ndim != dims + 2:  # let the C++ validation name the expected shape
        return kernel, stride, dilation, [(0, 0)] * dims
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        return kernel, stride, dilation, [(0, 0)] * dims  # C++ names the bad argument
    pairs = conv_padding(padding, _spatial(x, dims, channels_last), kernel, stride, dilation, op)
    if not isinstance(padding, str):
        for (begin, end), k, d in zip(pairs, kernel, dilation):
            half = (d * (k - 1) + 1) // 2
            if max(begin, end) > half:
                raise ValueError(f"{op}: padding {padding!r} must be at most half the "
                                 f"(dilated) kernel on each side, got {max(begin, end)} > "
                                 f"{half} for kernel_size {kernel_size!r}")
    return kernel, stride, dilation, pairs


# The C++ window arguments of valid int-only windows (kernel_size, stride, padding and
# dilation plain ints, or stride None), which do not depend on x: normalising and checking them
# took 3-4 us of a pooling call's 6-8 (a batch-1 pooling moves 0.2-4 MB, 5-70 us of work).
_INT_WINDOWS = {}


def _window_args(x, dims, channels_last, kernel_size, stride, padding, dilation, op):
    key = None
    if type(kernel_size) is int and type(padding) is int and type(dilation) is int and \
            (stride is None or type(stride) is int):
        key = (dims, kernel_size, stride, padding, dilation)
        args = _INT_WINDOWS.get(key)
        if args is not None:
            return args
    kernel, stride, dilation, pairs = _window(x, dims, channels_last, kernel_size, stride,
                                              padding, dilation, op)
    args = (_triple(kernel, 1), _triple(stride, 1), _triple([p[0] for p in pairs], 0),
            _triple([p[1] for p in pairs], 0), _triple(dilation, 1))
    # Only windows _window checked in full (x of the right rank, every value >= 1).
    if key is not None and x.ndim == dims + 2 and min(kernel + stride + dilation) >= 1:
        if len(_INT_WINDOWS) >= 256:
            _INT_WINDOWS.clear()
        _INT_WINDOWS[key] = args
    return args


def _pool(x, dims, mode, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
          divisor_override, power, return_indices, layout, out, op):
    x, channels_last = _prepare(x, out, dims, layout, op)
    kernel, stride, pad_begin, pad_end, dilation = _window_args(
        x, dims, channels_last, kernel_size, stride, padding, dilation, op)
    if divisor_override is not None:
        if not is_int(divisor_override) or divisor_override <= 0:
            raise ValueError(f"{op}: divisor_override must be a positive int, got "
                             f"{divisor_override!r}")
    return _C.pool(x, op, dims, mode, False, kernel, stride, pad_begin, pad_end, dilation,
                   (1, 1, 1), bool(ceil_mode), bool(count_include_pad),
                   int(divisor_override or 0), float(power), channels_last,
                   bool(return_indices), out)


def _max_pool(dims: int) -> MaxPoolFunction:
    def max_pool(x: Float32Array, kernel_size: IntOrTuple, stride: OptionalIntOrTuple = None,
                 padding: Padding = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False,
                 return_indices: bool = False, *, layout: Layout = None,
                 out: OptionalArray = None) -> PoolResult:
        return _pool(x, dims, "max", kernel_size, stride, padding, dilation, ceil_mode, True,
                     None, 0.0, return_indices, layout, out, f"max_pool{dims}d")

    max_pool.__name__ = max_pool.__qualname__ = f"max_pool{dims}d"
    first, last = _doc_shapes(dims)
    max_pool.__doc__ = f"""{dims}-D max pooling, as ``torch.nn.functional.max_pool{dims}d``.

    Padded positions never win a max; a NaN wins its window (as PyTorch).

    Parameters
    ----------
    x : numpy.ndarray
        {first} float32 with layout {LAYOUTS[dims][0]!r} (the default), or {last} with
        {LAYOUTS[dims][1]!r}.
    kernel_size : int or tuple of int
        One int for every axis, or one per axis.
    stride : int or tuple of int, optional
        Default: the kernel size.
    padding : int, tuple or str
        int, one per axis, (begin, end) per axis, "valid" or "same" (the conventions of
        :mod:`cnnfast.pooling`); explicit pads at most half the (dilated) kernel.
    dilation : int or tuple of int
        Spacing of the window's taps (1-based).
    ceil_mode : bool
        Round the output size up; a last window starting at or beyond in + pad_begin is
        dropped.
    return_indices : bool
        Also return the int64 flat positions of the maxima within each channel's volume
        (the same in both layouts), for :func:`max_unpool{dims}d`.
    layout : str, optional
        {LAYOUTS[dims][0]!r} or {LAYOUTS[dims][1]!r}.
    out : numpy.ndarray, optional
        A C-contiguous float32 array of the output shape, written and returned.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        y (float32, x's layout), or (y, indices) with ``return_indices``.
{_DOC_ARGS}

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange({4 ** dims}, dtype=np.float32).reshape({_DOC_SHAPE[dims]})
    >>> y, indices = cnnfast.max_pool{dims}d(x, 2, return_indices=True)
    >>> y.shape, y.ravel().tolist()
    ({_DOC_OUT[dims]}, {_DOC_MAX[dims]})
    >>> indices.ravel().tolist() == y.ravel().tolist()   # x holds its own flat positions
    True
    >>> cnnfast.max_pool{dims}d(x, 3, stride=1, padding="same").shape
    {_DOC_SHAPE[dims]}
    """
    return max_pool


def _avg_pool(dims: int) -> AvgPoolFunction:
    def avg_pool(x: Float32Array, kernel_size: IntOrTuple, stride: OptionalIntOrTuple = None,
                 padding: Padding = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Optional[int] = None, *, dilation: IntOrTuple = 1,
                 layout: Layout = None, out: OptionalArray = None) -> Float32Array:
        return _pool(x, dims, "avg", kernel_size, stride, padding, dilation, ceil_mode,
                     count_include_pad, divisor_override, 0.0, False, layout, out,
                     f"avg_pool{dims}d")

    avg_pool.__name__ = avg_pool.__qualname__ = f"avg_pool{dims}d"
    first, last = _doc_shapes(dims)
    avg_pool.__doc__ = f"""{dims}-D average pooling, as ``torch.nn.functional.avg_pool{dims}d``
    (plus ``dilation``, as ONNX's AveragePool).

    The divisor is ``divisor_override`` when given, else the window's taps inside the image,
    plus its padded taps when ``count_include_pad`` (which counts explicit and "same" pads,
    never the ceil-mode overhang; ONNX's default is count_include_pad=0).

    Parameters
    ----------
    x : numpy.ndarray
        {first} float32 with layout {LAYOUTS[dims][0]!r} (the default), or {last} with
        {LAYOUTS[dims][1]!r}.
    kernel_size, stride, padding, ceil_mode
        As :func:`max_pool{dims}d`.
    count_include_pad : bool
        Count padded taps in the divisor.
    divisor_override : int, optional
        A positive divisor for every window.
    dilation : int or tuple of int
        Spacing of the window's taps.
    layout, out
        As :func:`max_pool{dims}d`.

    Returns
    -------
    numpy.ndarray
        float32, x's layout.
{_DOC_ARGS}

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange({4 ** dims}, dtype=np.float32).reshape({_DOC_SHAPE[dims]})
    >>> y = cnnfast.avg_pool{dims}d(x, 2)
    >>> y.shape, y.ravel().tolist()
    ({_DOC_OUT[dims]}, {_DOC_AVG[dims]})
    >>> float(cnnfast.avg_pool{dims}d(x, 2, divisor_override=1)[(0,) * {dims + 2}])  # a sum
    {2 ** dims * float(_DOC_AVG[dims][1:].split(",")[0])}
    """
    return avg_pool


def _lp_pool(dims: int) -> LpPoolFunction:
    def lp_pool(x: Float32Array, norm_type: float, kernel_size: IntOrTuple,
                stride: OptionalIntOrTuple = None, ceil_mode: bool = False, *,
                padding: Padding = 0, dilation: IntOrTuple = 1, layout: Layout = None,
                out: OptionalArray = None) -> Float32Array:
        op = f"lp_pool{dims}d"
        if not isinstance(norm_type, (int, float)) or isinstance(norm_type, bool) or \
                not norm_type > 0:
            raise ValueError(f"{op}: norm_type must be a number > 0, got {norm_type!r}")
        return _pool(x, dims, "lp", kernel_size, stride, padding, dilation, ceil_mode, True,
                     None, float(norm_type), False, layout, out, op)

    lp_pool.__name__ = lp_pool.__qualname__ = f"lp_pool{dims}d"
    first, last = _doc_shapes(dims)
    lp_pool.__doc__ = f"""{dims}-D power-average pooling: ``(sum |x|^p)^(1/p)`` over each window
    with p = ``norm_type`` (ONNX's LpPool; PyTorch's lp_pool{dims}d differs only for negative
    inputs with odd p, where it sums x^p). Padded taps add 0.

    Parameters
    ----------
    x : numpy.ndarray
        {first} float32 with layout {LAYOUTS[dims][0]!r} (the default), or {last} with
        {LAYOUTS[dims][1]!r}.
    norm_type : float
        p > 0.
    kernel_size, stride, ceil_mode, padding, dilation, layout, out
        As :func:`max_pool{dims}d`.

    Returns
    -------
    numpy.ndarray
        float32, x's layout.
{_DOC_ARGS}

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.ones({_DOC_OUT[dims]}, dtype=np.float32)
    >>> y = cnnfast.lp_pool{dims}d(x, 2, 2)          # the L2 norm of {2 ** dims} ones
    >>> y.shape, round(float(y.ravel()[0]), 4)
    (({", ".join(["1"] * (dims + 2))}), {_DOC_LP[dims]})
    """
    return lp_pool


def _adaptive(dims: int, mode: str) -> AdaptivePoolFunction:
    name = f"adaptive_{mode}_pool{dims}d"

    def adaptive(x: Float32Array, output_size: AdaptiveSize, return_indices: bool = False, *,
                 layout: Layout = None, out: OptionalArray = None) -> PoolResult:
        x, channels_last = _prepare(x, out, dims, layout, name)
        if output_size is None or (isinstance(output_size, (tuple, list)) and
                                   any(v is None for v in output_size)):
            sizes = _spatial(x, dims, channels_last) if x.ndim == dims + 2 else (1,) * dims
            given = (output_size,) * dims if output_size is None else tuple(output_size)
            output_size = tuple(s if g is None else g for g, s in zip(given, sizes))
        size = int_tuple(output_size, dims, name, "output_size")
        if return_indices and mode != "max":
            raise ValueError(f"{name}: return_indices is for max pooling only")
        return _C.pool(x, name, dims, mode, True, (1, 1, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0),
                       (1, 1, 1), _triple(size, 1), False, True, 0, 0.0, channels_last,
                       bool(return_indices), out)

    adaptive.__name__ = adaptive.__qualname__ = name
    first, last = _doc_shapes(dims)
    other = f"{'max' if mode == 'max' else 'avg'}_pool{dims}d"
    adaptive.__doc__ = f"""Adaptive {mode} pooling to ``output_size``, as
    ``torch.nn.functional.{name}``: output o of an axis pools input
    [floor(o*in/out), ceil((o+1)*in/out)), so bins may overlap or differ in size by one.

    Parameters
    ----------
    x : numpy.ndarray
        {first} float32 with layout {LAYOUTS[dims][0]!r} (the default), or {last} with
        {LAYOUTS[dims][1]!r}.
    output_size : int, tuple or None
        One int for every axis, or one per axis; None keeps that axis's size.
    return_indices : bool
        (max only) also return the int64 flat positions of the maxima.
    layout, out
        As :func:`max_pool{dims}d`.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        float32, x's layout (and the indices with ``return_indices``).

    Raises
    ------
    TypeError
        x is not a float32 ndarray.
    ValueError
        A bad output_size, layout or out; return_indices for average pooling.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange({4 ** dims}, dtype=np.float32).reshape({_DOC_SHAPE[dims]})
    >>> y = cnnfast.{name}(x, 2)                 # 4 -> 2 per axis: the 2-windows
    >>> y.shape, bool(np.array_equal(y, cnnfast.{other}(x, 2)))
    ({_DOC_OUT[dims]}, True)
    >>> cnnfast.{name}(x, 3).shape               # overlapping bins
    ({", ".join(["1", "1"] + ["3"] * dims)})
    """
    return adaptive


max_pool1d, max_pool2d, max_pool3d = (_max_pool(d) for d in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_avg_pool(d) for d in (1, 2, 3))
lp_pool1d, lp_pool2d, lp_pool3d = (_lp_pool(d) for d in (1, 2, 3))
adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = (
    _adaptive(d, "max") for d in (1, 2, 3))
adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (
    _adaptive(d, "avg") for d in (1, 2, 3))


def global_avg_pool2d(x: Float32Array, *, layout: str = "NCHW",
                      out: OptionalArray = None) -> Float32Array:
    """Mean over H and W: (N, C, 1, 1), or (N, 1, 1, C) with layout="NHWC".

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32, or (N, H, W, C) with ``layout="NHWC"``.
    layout : str
        "NCHW" or "NHWC".
    out : numpy.ndarray, optional
        A C-contiguous float32 array of the output shape, written and returned.

    Returns
    -------
    numpy.ndarray
        (N, C, 1, 1) or (N, 1, 1, C) float32, like adaptive pooling to 1x1.

    Raises
    ------
    TypeError, ValueError
        As :func:`adaptive_avg_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> cnnfast.global_avg_pool2d(x).ravel().tolist()
    [1.5, 5.5]
    >>> cnnfast.global_avg_pool2d(x.transpose(0, 2, 3, 1), layout="NHWC").shape
    (1, 1, 1, 2)
    """
    return adaptive_avg_pool2d(x, 1, layout=layout, out=out)


def global_max_pool2d(x: Float32Array, *, layout: str = "NCHW",
                      out: OptionalArray = None) -> Float32Array:
    """Max over H and W (NaN propagates): (N, C, 1, 1), or (N, 1, 1, C) with layout="NHWC".

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32, or (N, H, W, C) with ``layout="NHWC"``.
    layout : str
        "NCHW" or "NHWC".
    out : numpy.ndarray, optional
        A C-contiguous float32 array of the output shape, written and returned.

    Returns
    -------
    numpy.ndarray
        (N, C, 1, 1) or (N, 1, 1, C) float32.

    Raises
    ------
    TypeError, ValueError
        As :func:`adaptive_max_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> cnnfast.global_max_pool2d(x).ravel().tolist()
    [3.0, 7.0]
    >>> x[0, 0, 1, 1] = np.nan
    >>> cnnfast.global_max_pool2d(x).ravel().tolist()
    [nan, 7.0]
    """
    return adaptive_max_pool2d(x, 1, layout=layout, out=out)


def _max_unpool(dims: int) -> MaxUnpoolFunction:
    name = f"max_unpool{dims}d"

    def max_unpool(x: Float32Array, indices: Int64Array, kernel_size: IntOrTuple,
                   stride: OptionalIntOrTuple = None, padding: IntOrTuple = 0,
                   output_size: OutputSize = None, *, layout: Layout = None) -> Float32Array:
        x, channels_last = _prepare(x, None, dims, layout, name)
        if not isinstance(indices, np.ndarray) or indices.dtype != np.int64:
            raise TypeError(f"{name}: indices must be an int64 numpy.ndarray (as max_pool"
                            f"{dims}d returns), got {getattr(indices, 'dtype', type(indices))}")
        if x.ndim != dims + 2:
            raise ValueError(f"{name}: x must be {dims + 2}-D, got shape {x.shape}")
        kernel = int_tuple(kernel_size, dims, name, "kernel_size")
        stride = kernel if stride is None else int_tuple(stride, dims, name, "stride")
        pad = int_tuple(padding, dims, name, "padding")
        if min(kernel) < 1 or min(stride) < 1 or min(pad) < 0:
            raise ValueError(f"{name}: kernel_size and stride must be >= 1 and padding >= 0, got "
                             f"kernel_size {kernel_size!r}, stride {stride!r}, padding "
                             f"{padding!r}")
        spatial = _spatial(x, dims, channels_last)
        # PyTorch's default output size: the input of the max pooling that made x.
        default = [(i - 1) * s - 2 * p + k for i, s, p, k in zip(spatial, stride, pad, kernel)]
        if output_size is None:
            size = default
        else:
            size = list(output_size)[-dims:]
            if len(size) != dims or not all(is_int(v) for v in size):
                raise ValueError(f"{name}: output_size must give {dims} spatial sizes, got "
                                 f"{output_size!r}")
            for got, want, s in zip(size, default, stride):
                if not want - s < got < want + s:
                    raise ValueError(f"{name}: output_size {tuple(output_size)!r} is out of "
                                     f"the range ({want - s}, {want + s}) given x {x.shape}, "
                                     f"kernel_size {kernel_size!r} and stride {stride!r}")
        if min(size) < 1:
            raise ValueError(f"{name}: the output size {tuple(size)!r} must be >= 1 on each "
                             f"axis (x {x.shape}, kernel_size {kernel_size!r}, stride "
                             f"{stride!r}, padding {padding!r})")
        return _C.max_unpool(x, np.ascontiguousarray(indices), channels_last, dims,
                             [int(v) for v in size], name)

    max_unpool.__name__ = max_unpool.__qualname__ = name
    first, last = _doc_shapes(dims)
    max_unpool.__doc__ = f"""Inverse of max_pool{dims}d with indices, as
    ``torch.nn.functional.{name}``: a zero array of the pooling's input size (or
    ``output_size``) with each x value at its index.

    Parameters
    ----------
    x : numpy.ndarray
        The pooled {first} float32 (or {last} with layout {LAYOUTS[dims][1]!r}).
    indices : numpy.ndarray
        int64, x's shape, as ``max_pool{dims}d(..., return_indices=True)`` returns.
    kernel_size, stride, padding
        Those of the max pooling (int or one per axis; stride defaults to the kernel).
    output_size : tuple of int, optional
        The spatial size (or full shape) wanted, within a stride of the default
        (in - 1)*stride - 2*padding + kernel.
    layout : str, optional
        {LAYOUTS[dims][0]!r} or {LAYOUTS[dims][1]!r}.

    Returns
    -------
    numpy.ndarray
        float32, zero except at the indices.

    Raises
    ------
    TypeError
        x is not float32 or indices not int64.
    ValueError
        x of the wrong rank, an output_size out of range, or indices outside the output.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange({4 ** dims}, dtype=np.float32).reshape({_DOC_SHAPE[dims]})
    >>> y, indices = cnnfast.max_pool{dims}d(x, 2, return_indices=True)
    >>> z = cnnfast.{name}(y, indices, 2)
    >>> z.shape, int(np.count_nonzero(z)), bool(np.array_equal(z.ravel()[indices.ravel()],
    ...                                                        y.ravel()))
    ({_DOC_SHAPE[dims]}, {2 ** dims}, True)
    """
    return max_unpool


max_unpool1d, max_unpool2d, max_unpool3d = (_max_unpool(d) for d in (1, 2, 3))


def stochastic_pool2d(x: Float32Array, kernel_size: IntOrTuple,
                      stride: OptionalIntOrTuple = None, padding: Padding = 0, *,
                      training: bool = True, seed: Optional[int] = None,
                      rng: Optional[np.random.Generator] = None, return_indices: bool = False,
                      layout: str = "NCHW", out: OptionalArray = None) -> PoolResult:
    """Stochastic pooling (Zeiler & Fergus, 2013) over non-negative x (e.g. after a ReLU).

    Training: each window outputs one of its elements, element i with probability
    a_i / sum(a) (an all-zero window gives 0). Evaluation (``training=False``): the
    probability-weighted average sum(a_i * p_i) = sum(a_i^2) / sum(a).

    The draw for each output comes from a counter-based generator keyed by ``seed`` and the
    output's (n, c, h, w) position, so a seed gives the same result for any thread count,
    either layout and every ISA tier: output o (its NCHW flat position) draws
    u = (SplitMix64(SplitMix64(seed) xor o) >> 40) / 2**24 and takes the first element of its
    window, in (h, w) order, whose running float32 sum exceeds u * sum(a). Sums are float32 in
    window order (the evaluation value is within a few ulp of the exact one); windows whose
    float32 sums overflow (values above ~1.8e19) are redone in float64. Padding as the other
    poolings (padded positions weigh 0). Evaluation ignores ``seed`` and ``rng``.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32 (or NHWC), non-negative.
    kernel_size, stride, padding
        As :func:`max_pool2d`.
    training : bool
        Draw (True) or take the probability-weighted average (False).
    seed : int, optional
        A non-negative seed; None draws one from ``rng`` or, without it, from fresh entropy.
    rng : numpy.random.Generator, optional
        Where to draw the seed from when ``seed`` is None.
    return_indices : bool
        Also return the int64 flat positions of the chosen elements, as max_pool2d.
    layout : str
        "NCHW" or "NHWC".
    out : numpy.ndarray, optional
        A C-contiguous float32 array of the output shape.

    Returns
    -------
    numpy.ndarray or tuple of numpy.ndarray
        y, or (y, indices) with ``return_indices``.

    Raises
    ------
    TypeError
        x is not float32, rng is not a Generator.
    ValueError
        Negative or NaN inputs (found during the pooling pass: ``out`` may have been
        written), a negative seed, bad window arguments.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.array([[[[0, 1], [0, 3]]]], dtype=np.float32)
    >>> y, idx = cnnfast.stochastic_pool2d(x, 2, seed=7, return_indices=True)
    >>> float(y[0, 0, 0, 0]) in (1.0, 3.0), int(idx[0, 0, 0, 0]) in (1, 3)   # zeros never win
    (True, True)
    >>> bool(np.array_equal(y, cnnfast.stochastic_pool2d(x, 2, seed=7)))      # a seed repeats
    True
    >>> cnnfast.stochastic_pool2d(x, 2, training=False).ravel().tolist()     # (1 + 9) / 4
    [2.5]
    """
    op = "stochastic_pool2d"
    x, channels_last = _prepare(x, out, 2, layout, op)
    kernel, stride, _, pairs = _window(x, 2, channels_last, kernel_size, stride, padding, 1, op)
    if seed is None:
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"{op}: rng must be a numpy.random.Generator, got {rng!r}")
        # Evaluation draws nothing: no seed, and rng's state is left alone (fresh entropy
        # alone cost 17 us a call, more than the 2x2 pooling of a 64x56x56 input).
        seed = 0 if not training else int(
            (rng if rng is not None else np.random.default_rng()).integers(0, 2**63))
    elif not is_int(seed) or seed < 0:
        raise ValueError(f"{op}: seed must be a non-negative int, got {seed!r}")
    return _C.stochastic_pool(x, op, _triple(kernel, 1), _triple(stride, 1),
                              _triple([p[0] for p in pairs], 0),
                              _triple([p[1] for p in pairs], 0), channels_last, bool(training),
                              int(seed) % 2**64, bool(return_indices), out)


def spatial_pyramid_pool2d(x: Float32Array, levels: Sequence[int] = (1, 2, 4), mode: str = "max",
                           *, layout: str = "NCHW") -> Float32Array:
    """Spatial pyramid pooling (He et al., 2014): (N, C * sum(l^2 for l in levels)), each level
    an adaptive ``mode`` ("max" or "avg") pooling to l x l, flattened channel-major
    ((c, i, j) order) and concatenated level by level. Any input size at least the largest
    level works; the bins are adaptive pooling's.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32 (or NHWC).
    levels : sequence of int
        The grid sizes l, each >= 1 and at most min(H, W).
    mode : str
        "max" or "avg".
    layout : str
        "NCHW" or "NHWC".

    Returns
    -------
    numpy.ndarray
        (N, C * sum(l^2 for l in levels)) float32: a fixed length for any input size.

    Raises
    ------
    TypeError
        x is not float32.
    ValueError
        A bad mode or levels, x not 4-D, a level larger than the input.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> for size in (8, 13):                                   # any input size, same length
    ...     x = np.ones((2, 3, size, size), dtype=np.float32)
    ...     print(cnnfast.spatial_pyramid_pool2d(x, (1, 2, 4)).shape)
    (2, 63)
    (2, 63)
    """
    op = "spatial_pyramid_pool2d"
    x, channels_last = _prepare(x, None, 2, layout, op)
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', got {mode!r}")
    if (not isinstance(levels, (tuple, list)) or not levels
            or not all(is_int(v) and v >= 1 for v in levels)):
        raise ValueError(f"{op}: levels must be a non-empty sequence of ints >= 1, got "
                         f"{levels!r}")
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D, got shape {x.shape}")
    spatial = _spatial(x, 2, channels_last)
    if max(levels) > min(spatial):
        raise ValueError(f"{op}: level {max(levels)} is larger than the input's spatial size "
                         f"{tuple(spatial)}")
    return _C.spatial_pyramid_pool(x, [int(v) for v in levels], mode == "max", channels_last)


def spp_fast(x: Float32Array, kernel_size: int = 5, *, layout: str = "NCHW") -> Float32Array:
    """SPPF (YOLOv5): x and three chained kernel_size x kernel_size stride-1 max poolings of it
    ("same" size), concatenated on the channel axis: (N, 4C, H, W). Equal to concatenating x
    with single max poolings of kernels k, 2k-1 and 3k-2 (padded positions never win a max).

    Parameters
    ----------
    x : numpy.ndarray
        (N, C, H, W) float32 (or NHWC).
    kernel_size : int
        An odd window size.
    layout : str
        "NCHW" or "NHWC".

    Returns
    -------
    numpy.ndarray
        (N, 4C, H, W) float32 (or (N, H, W, 4C)).

    Raises
    ------
    TypeError
        x is not float32.
    ValueError
        kernel_size is not an odd int >= 1.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.random.default_rng(0).random((1, 2, 9, 9), dtype=np.float32)
    >>> y = cnnfast.spp_fast(x, 5)
    >>> y.shape
    (1, 8, 9, 9)
    >>> bool(np.array_equal(y[:, 4:6], cnnfast.max_pool2d(x, 9, 1, 4)))   # 2k - 1 = 9
    True
    """
    op = "spp_fast"
    x, channels_last = _prepare(x, None, 2, layout, op)
    if not is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{op}: kernel_size must be an odd int >= 1, got {kernel_size!r}")
    parts = [x]
    for _ in range(3):
        parts.append(max_pool2d(parts[-1], kernel_size, 1, kernel_size // 2, layout=layout))
    return np.concatenate(parts, axis=-1 if channels_last else 1)
