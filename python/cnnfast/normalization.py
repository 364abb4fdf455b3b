"""Batch normalization, its folding into convolution weights, and the standalone activations.

``batch_norm`` follows ``torch.nn.functional.batch_norm`` (plus ``activation=``, layouts and the
cumulative-average momentum of ``torch.nn.BatchNorm*``); ``fold_batch_norm`` and
``conv_bn_act`` fold an inference-mode batch norm into the convolution before it.
"""

from typing import Optional

import numpy as np

from . import _C
from ._args import check_activation, is_int
from .functional import _conv2d, _float32_array, _require_array
from ._typing import (
    Activation,
    ArrayPair,
    Float32Array,
    Int64Array,
    IntOrTuple,
    OptionalArray,
    Padding,
)

CHANNELS_FIRST = ("NCHW", "NC", "NCL", "NCDHW")
CHANNELS_LAST = ("NLC", "NHWC", "NDHWC")


def _channels_last(layout, x, op):
    if layout in CHANNELS_FIRST:
        return False
    if layout in CHANNELS_LAST:
        if x.ndim != len(layout):
            raise ValueError(f"{op}: layout {layout!r} is for {len(layout)}-D x, got shape "
                             f"{x.shape}")
        return True
    raise ValueError(f"{op}: unknown layout {layout!r}; expected one of "
                     f"{', '.join(CHANNELS_FIRST + CHANNELS_LAST)}")


def batch_norm(x: Float32Array, running_mean: OptionalArray, running_var: OptionalArray,
               weight: OptionalArray = None, bias: OptionalArray = None, training: bool = False,
               momentum: Optional[float] = 0.1, eps: float = 1e-5, *,
               activation: Activation = None, negative_slope: float = 0.01, layout: str = "NCHW",
               num_batches_tracked: Optional[Int64Array] = None,
               out: OptionalArray = None) -> Float32Array:
    """Batch normalization over the channel axis, as ``torch.nn.functional.batch_norm``, with a
    fused activation.

    y = act((x - mean) / sqrt(var + eps) * weight + bias), per channel, where (mean, var) are
    ``running_mean``/``running_var`` when ``training=False``, and the batch's mean and biased
    variance (over N and every spatial position) when ``training=True``.

    In training mode the running statistics, when given, are updated in place as PyTorch does:
    ``running = (1 - f) * running + f * batch_stat``, with the *unbiased* batch variance for
    ``running_var`` and f = ``momentum``; ``momentum=None`` means the cumulative average,
    f = 1 / num_batches_tracked, which needs ``num_batches_tracked`` (a one-element int64
    array, incremented in place before use, also when momentum is a number, as
    ``torch.nn.BatchNorm2d`` does). ONNX's BatchNormalization momentum m is PyTorch's 1 - m
    (ONNX: running = m * running + (1 - m) * batch).

    Batch statistics are computed per channel in float64 from blocks that are each reduced in
    two passes about a shift, then combined (Chan et al.): data with a large mean and a small
    variance keep their variance (no E[x^2] - E[x]^2 cancellation).

    Args:
        x: (N, C, *) float32 (1-D, 2-D or 3-D batch norm: (N, C), (N, C, L), (N, C, H, W),
            (N, C, D, H, W)), or channels-last (N, L, C), (N, H, W, C), (N, D, H, W, C) with
            ``layout`` "NLC", "NHWC", "NDHWC". The channels-first names ("NCHW" the default,
            "NC", "NCL", "NCDHW") all mean "channels on axis 1", whatever the rank.
        running_mean, running_var: (C,) float32, or None (training only).
        weight, bias: optional (C,) float32 (None: 1 and 0).
        activation: None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu",
            "hardswish", applied in the same pass.
        out: optional C-contiguous float32 array of x's shape (x itself for in place).

    Raises ValueError for wrong-length vectors, negative running_var (inference), eps <= 0,
    and training with one value per channel (as PyTorch).
    """
    op = "batch_norm"
    x = _elementwise_input(x, out, op)
    channels_last = _channels_last(layout, x, op)
    check_activation(activation, op)
    vectors = {}
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _require_array(value, op, name)
            if value.dtype != np.float32:
                raise TypeError(f"{op}: {name} has dtype {value.dtype}; pass "
                                f"{name}.astype(numpy.float32)")
        vectors[name] = value
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        raise TypeError(f"{op}: eps must be a number, got {eps!r}")
    factor = 0.0
    if training:
        if num_batches_tracked is not None:
            if (not isinstance(num_batches_tracked, np.ndarray)
                    or num_batches_tracked.dtype != np.int64 or num_batches_tracked.size != 1):
                raise TypeError(f"{op}: num_batches_tracked must be a one-element int64 array, "
                                f"got {num_batches_tracked!r}")
        if momentum is None:
            if num_batches_tracked is None:
                raise ValueError(f"{op}: momentum=None (cumulative average) needs "
                                 f"num_batches_tracked")
        elif not isinstance(momentum, (int, float)) or isinstance(momentum, bool):
            raise TypeError(f"{op}: momentum must be a number or None, got {momentum!r}")
        tracked = None if num_batches_tracked is None else int(num_batches_tracked.flat[0]) + 1
        factor = 1.0 / tracked if momentum is None else float(momentum)
    result = _C.batch_norm(x, vectors["running_mean"], vectors["running_var"],
                           vectors["weight"], vectors["bias"], bool(training), factor,
                           float(eps), activation, float(negative_slope), channels_last, out)
    if training and num_batches_tracked is not None:
        # Counted once the call has succeeded (PyTorch counts before; the factor is the same).
        num_batches_tracked.flat[0] = tracked
    return result


def fold_batch_norm(weight: Float32Array, bias: OptionalArray, running_mean: Float32Array,
                    running_var: Float32Array, bn_weight: OptionalArray = None,
                    bn_bias: OptionalArray = None, eps: float = 1e-5, *, transposed: bool = False,
                    groups: int = 1) -> ArrayPair:
    """Folds an inference-mode batch norm into the convolution before it: returns
    (new_weight, new_bias) such that conv(x, new_weight, new_bias) equals
    batch_norm(conv(x, weight, bias), running_mean, running_var, bn_weight, bn_bias, eps).

    scale = bn_weight / sqrt(running_var + eps) multiplies each output channel's weights;
    new_bias = (bias - running_mean) * scale + bn_bias. Output channels lie on axis 0 of a
    convolution weight (C_out, C_in/groups, ...), and on axis 1 of a transposed one
    (C_in, C_out/groups, ...) with ``transposed=True``, where output channel g*(C_out/groups)+j
    is column j of group g's rows. The arithmetic is float64, the results float32.
    """
    op = "fold_batch_norm"
    weight = _float32_array(weight, op, "weight")
    if weight.ndim < 3:
        raise ValueError(f"{op}: weight must be a convolution weight (at least 3-D), got shape "
                         f"{weight.shape}")
    if not is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be an int >= 1, got {groups!r}")
    if transposed and weight.shape[0] % groups:
        raise ValueError(f"{op}: groups={groups} must divide C_in={weight.shape[0]} of the "
                         f"transposed weight {weight.shape}")
    c_out = weight.shape[1] * groups if transposed else weight.shape[0]

    scale, new_bias = _folded_scale_and_bias(c_out, bias, running_mean, running_var, bn_weight,
                                             bn_bias, eps, op, weight.shape)
    if transposed:
        c_in = weight.shape[0]
        w = weight.astype(np.float64).reshape(groups, c_in // groups, c_out // groups, -1)
        w = w * scale.reshape(groups, 1, c_out // groups, 1)
        new_weight = w.reshape(weight.shape)
    else:
        new_weight = weight * scale.reshape((c_out,) + (1,) * (weight.ndim - 1))
    return new_weight.astype(np.float32), new_bias.astype(np.float32)


def _folded_scale_and_bias(c_out, bias, running_mean, running_var, bn_weight, bn_bias, eps, op,
                           weight_shape):
    """(scale, bias) of a batch norm folded into a convolution with c_out outputs, float64."""
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"{op}: eps must be a number > 0, got {eps!r}")

    def vector(value, name, default):
        if value is None:
            if default is None:
                raise ValueError(f"{op}: {name} is required")
            return np.full(c_out, default, np.float64)
        value = _float32_array(value, op, name)
        if value.shape != (c_out,):
            raise ValueError(f"{op}: {name} must have shape ({c_out},) for the {c_out} output "
                             f"channels of weight {weight_shape}, got {value.shape}")
        return value.astype(np.float64)

    mean, var = vector(running_mean, "running_mean", None), vector(running_var, "running_var", None)
    if (var < 0).any():
        raise ValueError(f"{op}: running_var must be >= 0, got {var.min()}")
    scale = vector(bn_weight, "bn_weight", 1.0) / np.sqrt(var + eps)
    new_bias = (vector(bias, "bias", 0.0) - mean) * scale + vector(bn_bias, "bn_bias", 0.0)
    return scale, new_bias


def conv_bn_act(x: Float32Array, weight: Float32Array, bias: OptionalArray,
                running_mean: Float32Array, running_var: Float32Array,
                bn_weight: OptionalArray = None, bn_bias: OptionalArray = None,
                stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
                groups: int = 1, *, eps: float = 1e-5, activation: Activation = "relu",
                negative_slope: float = 0.01, layout: str = "NCHW", algo: str = "auto",
                out: OptionalArray = None) -> Float32Array:
    """act(batch_norm(conv2d(x, weight, bias, ...))) in inference mode, as one convolution.

    The batch norm is folded in: each output channel is multiplied by
    bn_weight / sqrt(running_var + eps) and offset by the folded bias in the convolution's
    epilogue, together with the activation, while each output tile is still in registers. So
    the call costs one convolution: no pass over the weights (as :func:`fold_batch_norm` makes)
    and none over the output. Arguments as :func:`conv2d` and :func:`batch_norm`.
    """
    op = "conv_bn_act"
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("bn_weight", bn_weight), ("bn_bias", bn_bias)):
        if value is not None:
            _require_array(value, op, name)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        raise TypeError(f"{op}: eps must be a number, got {eps!r}")
    return _conv2d(x, weight, bias, stride, padding, dilation, groups, "zeros", activation,
                   negative_slope, layout, algo, out, "conv2d",
                   (running_mean, running_var, bn_weight, bn_bias, float(eps)))


def _elementwise_input(x, out, op):
    """x as C-contiguous float32 for an elementwise op whose out= may be x itself: in place
    needs x to be used as is (a contiguous copy would leave out unwritten by the op's result)."""
    _require_array(x, op, "x")
    if out is not None:
        _require_array(out, op, "out")
    x_arg = x
    x = _float32_array(x, op, "x")
    if out is not None and x is not x_arg and np.may_share_memory(out, x_arg):
        raise ValueError(f"{op}: in place (out=x) needs a C-contiguous x")
    return x


def _activation(name, x, negative_slope=0.01, out=None):
    x = _elementwise_input(x, out, name)
    return _C.activation(x, name, float(negative_slope), out)


def relu(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """max(x, 0) elementwise (NaN stays NaN). ``out=x`` works in place."""
    return _activation("relu", x, out=out)


def relu6(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """min(max(x, 0), 6) elementwise. ``out=x`` works in place."""
    return _activation("relu6", x, out=out)


def leaky_relu(x: Float32Array, negative_slope: float = 0.01, *,
               out: OptionalArray = None) -> Float32Array:
    """x if x >= 0 else negative_slope * x. ``out=x`` works in place."""
    return _activation("leaky_relu", x, negative_slope, out=out)


def sigmoid(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """1 / (1 + exp(-x)) (a vectorised exp, within a few ulp). ``out=x`` works in place."""
    return _activation("sigmoid", x, out=out)


def tanh(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """tanh(x) (vectorised, absolute error within a few 1e-7). ``out=x`` works in place."""
    return _activation("tanh", x, out=out)


def silu(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """x * sigmoid(x). ``out=x`` works in place."""
    return _activation("silu", x, out=out)


def hardswish(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """x * relu6(x + 3) / 6. ``out=x`` works in place."""
    return _activation("hardswish", x, out=out)
