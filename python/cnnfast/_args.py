"""Argument normalisation shared by the operators: int-or-tuple arguments, padding forms
("same", "valid", int, per-axis, begin/end per axis) and PyTorch's padding modes.

Padding tuples follow DESIGN.md section 11: begin/end per axis, outermost axis first.
"""

import numbers

import numpy as np

ACTIVATIONS = (None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish")
PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def is_int(value):
    # The exact-type test first: the ABC check costs about 1 us a call on small convolutions.
    return type(value) is int or (isinstance(value, numbers.Integral) and
                                  not isinstance(value, bool))


def int_tuple(value, n, op, name):
    """An int or a length-n sequence of ints -> a tuple of n ints."""
    if type(value) is int or is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        if len(value) != n:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got "
                             f"{len(value)} values: {value!r}")
        return tuple(int(v) for v in value)
    raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def same_padding(size, kernel, stride, dilation):
    """(begin, end) of "same" padding on one axis: the TensorFlow rule for every stride
    (out = ceil(size / stride), the odd pixel at the end); PyTorch's at stride 1."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(padding, sizes, kernel, stride, dilation, op):
    """Explicit (begin, end) pairs per spatial axis for any accepted padding form."""
    n = len(sizes)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * n
        if padding == "same":
            return [same_padding(*a) for a in zip(sizes, kernel, stride, dilation)]
        raise ValueError(f"{op}: unknown padding {padding!r}; expected 'same', 'valid', an int "
                         f"or a tuple")
    if is_int(padding):
        pairs = [(int(padding), int(padding))] * n
    elif isinstance(padding, (tuple, list)) and all(is_int(v) for v in padding):
        values = [int(v) for v in padding]
        if len(values) == n:
            pairs = [(v, v) for v in values]
        elif len(values) == 2 * n:
            pairs = [(values[2 * i], values[2 * i + 1]) for i in range(n)]
        else:
            raise ValueError(f"{op}: padding tuple must have {n} or {2 * n} ints (begin/end per "
                             f"axis), got {len(values)}: {padding!r}")
    else:
        raise TypeError(f"{op}: padding must be 'same', 'valid', an int or a tuple of ints, "
                        f"got {padding!r}")
    if any(v < 0 for pair in pairs for v in pair):
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    return pairs


def apply_padding_mode(x, pairs, spatial_axes, mode, op):
    """For a non-zero padding_mode, x padded explicitly (one documented copy) and zero pads."""
    if PADDING_MODES[mode] is None or not any(any(p) for p in pairs):
        return x, pairs
    for axis, (begin, end) in zip(spatial_axes, pairs):
        size = x.shape[axis]
        # PyTorch's limits: reflect needs pad < size, circular pad <= size.
        limit_ok = max(begin, end) < size if mode == "reflect" else max(begin, end) <= size
        if mode != "replicate" and not limit_ok:
            raise ValueError(f"{op}: padding_mode={mode!r} needs padding "
                             f"{'<' if mode == 'reflect' else '<='} the input size on each "
                             f"axis; got padding ({begin}, {end}) for size {size}")
    width = [(0, 0)] * x.ndim
    for axis, pair in zip(spatial_axes, pairs):
        width[axis] = pair
    return np.pad(x, width, mode=PADDING_MODES[mode]), [(0, 0)] * len(pairs)


def check_activation(activation, op):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation {activation!r}; expected one of "
                         f"{', '.join(str(a) for a in ACTIVATIONS)}")
