"""Analysis tools for convolutions, in plain NumPy (no compiled code): output sizes, the
convolution written as a matrix C (whose transpose is the transposed convolution), receptive
fields, parameter and multiply-accumulate counts. Spatial sizes are 1-D, 2-D or 3-D; padding
forms follow DESIGN.md section 11 (begin/end per axis, outermost axis first).

The convolution as a matrix, with the 4×4-input example and the output-size formulas, is
explained in :func:`conv_matrix`'s docstring.
"""

import collections
import math
from typing import Any, Sequence

import numpy as np

from ._args import conv_padding, int_tuple, is_int
from ._typing import Float32Array, IntOrTuple, Padding, Size

LayerField = collections.namedtuple("LayerField", "receptive_field jump")
LayerField.__doc__ = """Receptive field after one layer of :func:`receptive_field`.

Attributes
----------
receptive_field : int or tuple of int
    How many input pixels (per axis) one output pixel of this layer sees.
jump : int or tuple of int
    The distance in input pixels between two neighbouring outputs of this layer (the product
    of the strides so far).

Examples
--------
>>> from cnnfast.analysis import receptive_field
>>> field = receptive_field([(3, 2), 3])[-1]
>>> field.receptive_field, field.jump
(7, 2)
"""


def _spatial_dims(values, op):
    """How many spatial axes the arguments describe: the length of the first tuple among them
    (1 when all are ints). Must be 1, 2 or 3."""
    for value in values:
        if isinstance(value, (tuple, list)):
            if not 1 <= len(value) <= 3:
                raise ValueError(f"{op}: sizes must be given for 1, 2 or 3 spatial axes, got "
                                 f"{value!r}")
            return len(value)
    return 1


def _positive(values, op, name):
    if any(v < 1 for v in values):
        raise ValueError(f"{op}: {name} must be >= 1, got {values!r}")


def _result(sizes, scalar):
    return sizes[0] if scalar else tuple(sizes)


def _output_sizes(sizes, kernel, stride, pairs, dilation, ceil_mode, op):
    """floor (or ceil) of (in + pad_begin + pad_end − dilation·(k − 1) − 1) / stride + 1 per
    axis; with ceil_mode a last window starting at or beyond in + pad_begin is dropped (PyTorch's
    pooling rule)."""
    out = []
    for i, k, s, (pb, pe), d in zip(sizes, kernel, stride, pairs, dilation):
        span = i + pb + pe - d * (k - 1) - 1
        if span < 0:
            raise ValueError(f"{op}: the kernel (size {tuple(kernel)!r}, dilation "
                             f"{tuple(dilation)!r}) is larger than the padded input (size "
                             f"{tuple(sizes)!r}, padding {list(pairs)!r})")
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= i + pb:
            o -= 1
        out.append(o)
    return out


def conv_output_size(input_size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                     padding: Padding = 0, dilation: IntOrTuple = 1, *,
                     ceil_mode: bool = False) -> Size:
    """Spatial output size of a convolution (or pooling window) over 1, 2 or 3 axes.

    Per axis: floor((in + pad_begin + pad_end − dilation·(k − 1) − 1) / stride) + 1, which for a
    symmetric pad p and dilation 1 is the familiar o = (i + 2p − k)/s + 1 (floored).

    Parameters
    ----------
    input_size : int or tuple of int
        The 1-3 spatial sizes (no batch or channels).
    kernel_size, stride, dilation : int or tuple of int
        One int for every axis, or one per axis.
    padding : int, tuple or str
        int, one int per axis, (begin, end) per axis, "valid" or "same" (out = ceil(in /
        stride), the odd pixel at the end), as conv2d takes it.
    ceil_mode : bool
        Round up instead of down, dropping a last window that would start in the end padding
        (PyTorch's pooling rule).

    Returns
    -------
    int or tuple of int
        An int when every argument is an int (1-D), else a tuple of ints.

    Raises
    ------
    ValueError
        Sizes < 1, mismatched tuple lengths, a kernel larger than the padded input.

    Examples
    --------
    >>> from cnnfast.analysis import conv_output_size
    >>> conv_output_size(224, 7, stride=2, padding=3)          # ResNet's stem
    112
    >>> conv_output_size((4, 4), 3)                            # (4 + 0 - 3) / 1 + 1
    (2, 2)
    >>> conv_output_size((5, 5), 3, stride=2, padding="same")  # ceil(5 / 2)
    (3, 3)
    >>> conv_output_size(6, 3, stride=2, ceil_mode=True)       # a pooling rounding up
    3
    >>> conv_output_size(2, 5)
    Traceback (most recent call last):
        ...
    ValueError: conv_output_size: the kernel (size (5,), ...) is larger than the padded input ...
    """
    op = "conv_output_size"
    n = _spatial_dims((input_size, kernel_size, stride, dilation), op)
    sizes, kernel, stride, dilation = (int_tuple(v, n, op, name) for v, name in (
        (input_size, "input_size"), (kernel_size, "kernel_size"), (stride, "stride"),
        (dilation, "dilation")))
    for values, name in ((sizes, "input_size"), (kernel, "kernel_size"), (stride, "stride"),
                         (dilation, "dilation")):
        _positive(values, op, name)
    pairs = conv_padding(padding, sizes, kernel, stride, dilation, op)
    out = _output_sizes(sizes, kernel, stride, pairs, dilation, bool(ceil_mode), op)
    return _result(out, is_int(input_size) and n == 1)


def _explicit_pairs(padding, n, op):
    """(begin, end) per axis for a transposed convolution (no padding strings)."""
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints (transposed "
                         f"convolutions take no padding strings), got {padding!r}")
    return conv_padding(padding, [1] * n, [1] * n, [1] * n, [1] * n, op)


def conv_transpose_output_size(input_size: IntOrTuple, kernel_size: IntOrTuple,
                               stride: IntOrTuple = 1, padding: Padding = 0,
                               output_padding: IntOrTuple = 0,
                               dilation: IntOrTuple = 1) -> Size:
    """Spatial output size of a transposed convolution over 1, 2 or 3 axes (PyTorch's rule).

    Per axis: (in − 1)·stride − pad_begin − pad_end + dilation·(k − 1) + output_padding + 1,
    which without padding is o′ = s(i′ − 1) + k. ``padding`` is an int, one int per axis or
    (begin, end) per axis: the padding of the forward convolution this is the adjoint of.
    ``output_padding`` must be smaller than the stride or the dilation on each axis.

    Parameters
    ----------
    input_size : int or tuple of int
        The 1-3 spatial sizes of the transposed convolution's input.
    kernel_size, stride, dilation, output_padding : int or tuple of int
        One int for every axis, or one per axis.
    padding : int or tuple
        An int, one int per axis, or (begin, end) per axis (no strings).

    Returns
    -------
    int or tuple of int
        An int when every argument is an int (1-D), else a tuple of ints.

    Raises
    ------
    ValueError
        Sizes < 1, output_padding out of range, padding that crops the whole output.

    Examples
    --------
    >>> from cnnfast.analysis import conv_transpose_output_size
    >>> conv_transpose_output_size((2, 2), 3)        # 1 * (2 - 1) + 3: C transposed maps 2x2 to 4x4
    (4, 4)
    >>> conv_transpose_output_size(7, 4, stride=2, padding=1)      # DCGAN's 2x upsampling
    14
    >>> conv_transpose_output_size(7, 3, stride=2, padding=1, output_padding=1)
    14
    """
    op = "conv_transpose_output_size"
    n = _spatial_dims((input_size, kernel_size, stride, dilation, output_padding), op)
    sizes, kernel, stride, dilation, opad = (int_tuple(v, n, op, name) for v, name in (
        (input_size, "input_size"), (kernel_size, "kernel_size"), (stride, "stride"),
        (dilation, "dilation"), (output_padding, "output_padding")))
    for values, name in ((sizes, "input_size"), (kernel, "kernel_size"), (stride, "stride"),
                         (dilation, "dilation")):
        _positive(values, op, name)
    if any(p < 0 or (p >= s and p >= d) for p, s, d in zip(opad, stride, dilation)):
        raise ValueError(f"{op}: output_padding {opad!r} must be >= 0 and smaller than the "
                         f"stride {stride!r} or the dilation {dilation!r} on each axis")
    pairs = _explicit_pairs(padding, n, op)
    out = [(i - 1) * s - pb - pe + d * (k - 1) + p + 1
           for i, k, s, (pb, pe), d, p in zip(sizes, kernel, stride, pairs, dilation, opad)]
    if min(out) < 1:
        raise ValueError(f"{op}: the padding {list(pairs)!r} crops the whole output (size "
                         f"{tuple(out)!r} before clipping) for input size {tuple(sizes)!r}")
    return _result(out, is_int(input_size) and n == 1)


def _scipy_sparse():
    """scipy.sparse, or None when SciPy is not installed (conv_matrix then returns dense)."""
    try:
        import scipy.sparse
    except ImportError:
        return None
    return scipy.sparse


def conv_matrix(weight: Float32Array, input_size: IntOrTuple, stride: IntOrTuple = 1,
                padding: Padding = 0, dilation: IntOrTuple = 1, groups: int = 1, *,
                dense: bool = False) -> Any:
    """The convolution of one image as a matrix C: ``conv2d(x, weight, ...)`` equals
    ``C @ x.ravel()`` and ``conv_transpose2d(y, weight, ...)`` (same weight, same parameters,
    and ``output_size=input_size`` where the stride's floor left input pixels unread) equals
    ``C.T @ y.ravel()``.

    A convolution is a linear map, so for one image it is a matrix acting on the flattened input.
    Take a 4×4 input x (16 values, flattened row by row), a 3×3 kernel w, stride 1, no padding:
    the output is 2×2, because o = (i + 2p − k)/s + 1 = (4 + 0 − 3)/1 + 1 = 2. Flatten the output
    too and the convolution is y = C x with C of shape 4×16. Row r of C is output pixel (r // 2,
    r % 2); it holds the 9 kernel weights at the columns of the 9 input pixels that pixel's window
    covers, and zeros elsewhere::

            x00 x01 x02 x03 x10 x11 x12 x13 x20 x21 x22 x23 x30 x31 x32 x33
        y00 w00 w01 w02  0  w10 w11 w12  0  w20 w21 w22  0   0   0   0   0
        y01  0  w00 w01 w02  0  w10 w11 w12  0  w20 w21 w22  0   0   0   0
        y10  0   0   0   0  w00 w01 w02  0  w10 w11 w12  0  w20 w21 w22  0
        y11  0   0   0   0   0  w00 w01 w02  0  w10 w11 w12  0  w20 w21 w22

    Cᵀ (16×4) maps a 2×2 image back to 4×4: that is the transposed convolution with the same
    weight (each input pixel scatters the kernel, scaled, into the output), with output size
    o′ = s(i′ − 1) + k = 1·(2 − 1) + 3 = 4. It is also the gradient of the convolution with respect
    to its input, hence ⟨C x, y⟩ = ⟨x, Cᵀ y⟩.

    Parameters
    ----------
    weight : numpy.ndarray
        float32 ``(C_out, C_in/groups, *kernel)`` with 1, 2 or 3 kernel axes (conv1d, conv2d or
        3-D convolution weights, PyTorch's layout).
    input_size : int or tuple of int
        The spatial size of the input: int or one int per axis (channels come from the weight:
        C_in = weight.shape[1] * groups).
    stride, dilation : int or tuple of int
        One int for every axis, or one per axis.
    padding : int, tuple or str
        As :func:`conv_output_size`.
    groups : int
        Divides C_out; input channel block g feeds output channel block g only.
    dense : bool
        Return a dense NumPy array even when SciPy is installed.

    Returns
    -------
    scipy.sparse.csr_array or numpy.ndarray
        C of shape (C_out·prod(out), C_in·prod(in)), float32: rows are the output flattened
        channel-major (as ``y.ravel()`` of a ``(C_out, *out)`` array), columns the input flattened
        the same way. A ``scipy.sparse.csr_array`` when SciPy is installed (and ``dense`` is
        false), holding one entry per (output pixel, tap) whose input position lies inside the
        input — about C_out·prod(out)·C_in/groups·prod(kernel) entries, even where a weight is
        zero, so the sparsity pattern shows the connectivity; else a dense ``numpy.ndarray``.
        Padding taps read zeros, so they have no column.

    Raises
    ------
    TypeError
        weight is not a float32 ndarray.
    ValueError
        weight not 3-5-D or with an empty axis, groups that do not divide C_out, sizes < 1, a
        kernel larger than the padded input.

    Examples
    --------
    The 4×16 matrix above, with w = 1..9:

    >>> import numpy as np
    >>> import cnnfast
    >>> from cnnfast.analysis import conv_matrix
    >>> w = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    >>> C = conv_matrix(w, (4, 4), dense=True)
    >>> C.astype(int)
    array([[1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0],
           [0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0],
           [0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0],
           [0, 0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9]])
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> bool(np.array_equal(C @ x.ravel(), cnnfast.conv2d(x, w).ravel()))
    True
    >>> y = np.array([1, 0, 0, 2], dtype=np.float32).reshape(1, 1, 2, 2)
    >>> bool(np.allclose(C.T @ y.ravel(), cnnfast.conv_transpose2d(y, w).ravel()))
    True
    """
    op = "conv_matrix"
    if not isinstance(weight, np.ndarray):
        raise TypeError(f"{op}: weight must be a numpy.ndarray of float32, got "
                        f"{type(weight).__name__}")
    if weight.dtype != np.float32:
        raise TypeError(f"{op}: weight has dtype {weight.dtype}; cnnfast computes in float32 "
                        f"only (no silent conversion): pass weight.astype(numpy.float32)")
    if not 3 <= weight.ndim <= 5:
        raise ValueError(f"{op}: weight must be (C_out, C_in/groups, *kernel) with 1-3 kernel "
                         f"axes, got shape {weight.shape}")
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be an int >= 1, got {groups!r}")
    n = weight.ndim - 2
    c_out, cg = weight.shape[:2]
    kernel = weight.shape[2:]
    if c_out % groups:
        raise ValueError(f"{op}: groups={groups} must divide C_out = weight.shape[0] = {c_out} "
                         f"(weight shape {weight.shape})")
    if min(weight.shape) < 1:
        raise ValueError(f"{op}: weight has an empty axis: shape {weight.shape}")
    sizes, stride, dilation = (int_tuple(v, n, op, name) for v, name in (
        (input_size, "input_size"), (stride, "stride"), (dilation, "dilation")))
    for values, name in ((sizes, "input_size"), (stride, "stride"), (dilation, "dilation")):
        _positive(values, op, name)
    pairs = conv_padding(padding, sizes, kernel, stride, dilation, op)
    # Positions are formed in int64 (o*stride + t*dilation): factors below 2**31 cannot
    # overflow it, and no matrix with a larger axis fits in memory anyway.
    for values, name in ((sizes, "input_size"), (stride, "stride"), (dilation, "dilation"),
                         ([p for pair in pairs for p in pair], "padding")):
        if max(values) >= 2**31:
            raise ValueError(f"{op}: {name} {tuple(values)!r} is too large for a matrix index "
                             f"(each value must be < 2**31)")
    out = _output_sizes(sizes, kernel, stride, pairs, dilation, False, op)
    rows_total, cols_total = c_out * math.prod(out), cg * groups * math.prod(sizes)

    # One broadcast axis each: (output channel, *output pixel, input channel in group, *tap).
    full = 2 + 2 * n

    def along(values, axis):
        shape = [1] * full
        shape[axis] = len(values)
        return np.asarray(values, dtype=np.int64).reshape(shape)

    valid = np.ones([1] * full, dtype=bool)
    in_flat = np.zeros([1] * full, dtype=np.int64)
    out_flat = np.zeros([1] * full, dtype=np.int64)
    for a in range(n):
        # Input position read by output o through tap t: o*stride - pad_begin + t*dilation.
        pos = along(range(out[a]), 1 + a) * stride[a] - pairs[a][0] + \
            along(range(kernel[a]), 2 + n + a) * dilation[a]
        valid = valid & (pos >= 0) & (pos < sizes[a])
        in_flat = in_flat * sizes[a] + pos
        out_flat = out_flat * out[a] + along(range(out[a]), 1 + a)
    channel = along(range(c_out), 0)
    in_channel = (channel // (c_out // groups)) * cg + along(range(cg), 1 + n)
    rows = channel * math.prod(out) + out_flat
    cols = in_channel * math.prod(sizes) + in_flat
    values = weight.reshape((c_out,) + (1,) * n + (cg,) + tuple(kernel))
    shape = np.broadcast_shapes(valid.shape, rows.shape, cols.shape, values.shape)
    valid = np.broadcast_to(valid, shape)
    rows = np.broadcast_to(rows, shape)[valid]
    cols = np.broadcast_to(cols, shape)[valid]
    values = np.broadcast_to(values, shape)[valid]

    sparse = None if dense else _scipy_sparse()
    if sparse is None:
        matrix = np.zeros((rows_total, cols_total), dtype=np.float32)
        matrix[rows, cols] = values  # (row, col) pairs are distinct: one per (pixel, tap)
        return matrix
    # The entries come row-major already; csr sorts them within a row by column.
    return sparse.csr_array((values, (rows, cols)), shape=(rows_total, cols_total))


def _layer(spec, n, op, index):
    if is_int(spec):
        spec = (spec,)
    if not isinstance(spec, (tuple, list)) or not 1 <= len(spec) <= 3:
        raise ValueError(f"{op}: layer {index} must be kernel, (kernel, stride) or (kernel, "
                         f"stride, dilation), got {spec!r}")
    kernel, stride, dilation = (list(spec) + [1, 1])[:3]
    values = [int_tuple(v, n, op, f"layer {index} {name}") for v, name in (
        (kernel, "kernel"), (stride, "stride"), (dilation, "dilation"))]
    for v, name in zip(values, ("kernel", "stride", "dilation")):
        _positive(v, op, f"layer {index} {name}")
    return values


def receptive_field(layers: Sequence[Any]) -> list[LayerField]:
    """Receptive field and jump after each layer of a stack of convolutions (or poolings).

    A dilated kernel spans k_eff = k + (k − 1)(d − 1) inputs. Layer l grows the field by
    (k_eff − 1) times the jump of the layers before it, and multiplies the jump by its stride:
    r_l = r_{l−1} + (k_eff − 1)·j_{l−1}, j_l = j_{l−1}·s_l, starting from r_0 = j_0 = 1. So two
    stacked 3×3 stride-1 convolutions see 5×5, three see 7×7, and one 3×3 with dilation 2
    sees 5×5.

    Parameters
    ----------
    layers : list
        One entry per layer: kernel, (kernel, stride) or (kernel, stride, dilation), each an
        int or a pair (h, w) (or a triple for 3-D).

    Returns
    -------
    list of LayerField
        (receptive_field, jump), one per layer; ints when every value is an int, else tuples
        per axis.

    Raises
    ------
    ValueError
        An empty list, or a layer that is not kernel / (kernel, stride) / (kernel, stride,
        dilation) with values >= 1.

    Examples
    --------
    >>> from cnnfast.analysis import receptive_field
    >>> [f.receptive_field for f in receptive_field([3, 3, 3])]
    [3, 5, 7]
    >>> receptive_field([(3, 1, 2)])[-1].receptive_field        # one dilated 3x3
    5
    >>> receptive_field([(7, 2), (3, 2), 3, 3])[-1]              # ResNet stem, max pool, 2 convs
    LayerField(receptive_field=27, jump=4)
    """
    op = "receptive_field"
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"{op}: layers must be a non-empty list of (kernel, stride, "
                         f"dilation), got {layers!r}")
    n = 1
    for spec in layers:
        for v in (spec if isinstance(spec, (tuple, list)) else (spec,)):
            if isinstance(v, (tuple, list)):
                n = max(n, len(v))
    field, jump = [1] * n, [1] * n
    result = []
    scalar = all(is_int(v) for spec in layers
                 for v in (spec if isinstance(spec, (tuple, list)) else (spec,)))
    for index, spec in enumerate(layers):
        kernel, stride, dilation = _layer(spec, n, op, index)
        field = [r + d * (k - 1) * j for r, k, d, j in zip(field, kernel, dilation, jump)]
        jump = [j * s for j, s in zip(jump, stride)]
        result.append(LayerField(_result(field, scalar), _result(jump, scalar)))
    return result


def _weight_shape(weight_shape, op):
    shape = tuple(weight_shape)
    if not 3 <= len(shape) <= 5 or not all(is_int(v) and v >= 1 for v in shape):
        raise ValueError(f"{op}: weight_shape must be 3-5 positive ints (2 channel axes and 1-3 "
                         f"kernel axes), got {weight_shape!r}")
    return shape


def conv_parameters(weight_shape: Sequence[int], bias: bool = True, groups: int = 1, *,
                    transposed: bool = False) -> int:
    """Number of learnable parameters of a convolution: the weight's entries plus C_out biases.

    weight_shape is the weight's shape as stored: ``(C_out, C_in/groups, *kernel)``, or with
    ``transposed=True`` a transposed convolution's ``(C_in, C_out/groups, *kernel)``, for which
    ``groups`` is needed to count C_out biases.

    Parameters
    ----------
    weight_shape : tuple of int
        3-5 positive ints: 2 channel axes and 1-3 kernel axes.
    bias : bool
        Count C_out biases.
    groups : int
        The groups of a transposed convolution (C_out = shape[1] * groups).
    transposed : bool
        weight_shape is a transposed convolution's.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        A bad weight_shape or groups.

    Examples
    --------
    >>> from cnnfast.analysis import conv_parameters
    >>> conv_parameters((64, 3, 7, 7), bias=False)        # ResNet's stem: 64 * 3 * 49
    9408
    >>> conv_parameters((32, 1, 3, 3))                    # depthwise 3x3, 32 channels, + biases
    320
    """
    op = "conv_parameters"
    shape = _weight_shape(weight_shape, op)
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be an int >= 1, got {groups!r}")
    c_out = shape[1] * groups if transposed else shape[0]
    return math.prod(shape) + (c_out if bias else 0)


def conv_macs(weight_shape: Sequence[int], spatial_size: IntOrTuple, batch: int = 1) -> int:
    """Multiply-accumulates of a convolution (FLOPs ≈ 2 × MACs; bias and activation not
    counted).

    A convolution does prod(weight_shape) MACs per output pixel (C_out · C_in/groups · taps):
    ``spatial_size`` is its output size. A transposed convolution does prod(weight_shape) MACs
    per input pixel (each scatters C_out/groups · taps per input channel): for it, pass its
    weight shape ``(C_in, C_out/groups, *kernel)`` and its input size. Ints or tuples per axis.

    Parameters
    ----------
    weight_shape : tuple of int
        3-5 positive ints: 2 channel axes and 1-3 kernel axes.
    spatial_size : int or tuple of int
        The output size of a convolution (the input size of a transposed one), per axis.
    batch : int
        Images per call.

    Returns
    -------
    int
        Multiply-accumulates (FLOPs are about twice that).

    Raises
    ------
    ValueError
        A bad weight_shape, negative sizes or batch.

    Examples
    --------
    >>> from cnnfast.analysis import conv_macs
    >>> conv_macs((64, 3, 7, 7), (112, 112))              # ResNet's stem: 118 M MACs
    118013952
    >>> 2 * conv_macs((64, 64, 3, 3), 56, batch=8) / 1e9  # GFLOP of a 3x3 layer, batch 8
    1.849688064
    """
    op = "conv_macs"
    shape = _weight_shape(weight_shape, op)
    sizes = int_tuple(spatial_size, len(shape) - 2, op, "spatial_size")
    if min(sizes) < 0 or not is_int(batch) or batch < 0:
        raise ValueError(f"{op}: spatial_size and batch must be >= 0, got {spatial_size!r} and "
                         f"{batch!r}")
    return int(batch) * math.prod(sizes) * math.prod(shape)


def summary(model: Any, input_shape: Sequence[int], *, quiet: bool = False) -> Any:
    """The per-layer table of a ``cnnfast.nn`` model: output shape, parameters, multiply-adds,
    receptive field and jump, and totals (``cnnfast.nn.summary``, re-exported here beside the
    single-layer tools).

    Parameters
    ----------
    model : cnnfast.nn.Module
        The model; it runs once on a zero input, in eval mode (its modes are restored).
    input_shape : tuple of int
        The full input shape, batch first.
    quiet : bool
        Do not print the table.

    Returns
    -------
    cnnfast.nn.Summary
        ``rows``, ``total_params``, ``total_macs``; ``str()`` is the table.

    Raises
    ------
    ValueError
        A bad input_shape, or one the model rejects.

    Examples
    --------
    >>> import cnnfast
    >>> from cnnfast import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> s = cnnfast.analysis.summary(model, (1, 1, 8, 8), quiet=True)
    >>> s.total_params, s.total_macs, s.rows[-1]["output_shape"]
    (40, 2304, (1, 4, 4, 4))
    """
    from .nn.summary import summary as nn_summary  # nn builds on the ops; import it on use

    return nn_summary(model, input_shape, quiet=quiet)
