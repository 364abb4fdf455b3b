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

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, C, *)`` float32 (1-D, 2-D or 3-D batch norm: (N, C), (N, C, L), (N, C, H, W),
        (N, C, D, H, W)), or channels-last (N, L, C), (N, H, W, C), (N, D, H, W, C) with
        ``layout`` "NLC", "NHWC", "NDHWC".
    running_mean, running_var : numpy.ndarray or None
        (C,) float32, or None (training only). Updated in place in training mode.
    weight, bias : numpy.ndarray, optional
        (C,) float32 (None: 1 and 0).
    training : bool
        Normalise with the batch's statistics (and update the running ones) instead of the
        running ones.
    momentum : float or None
        The factor f of the running update; None: cumulative average.
    eps : float
        Added to the variance; must be > 0.
    activation : str, optional
        None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish", applied
        in the same pass.
    negative_slope : float
        The slope of "leaky_relu".
    layout : str
        The channels-first names ("NCHW" the default, "NC", "NCL", "NCDHW") all mean "channels
        on axis 1", whatever the rank; "NLC", "NHWC", "NDHWC" put the channels last.
    num_batches_tracked : numpy.ndarray, optional
        One-element int64 array, incremented in place in training mode.
    out : numpy.ndarray, optional
        C-contiguous float32 array of x's shape (x itself for in place).

    Returns
    -------
    numpy.ndarray
        y, float32, x's shape (``out`` when given).

    Raises
    ------
    TypeError
        A non-float32 array, a non-numeric eps or momentum, a bad num_batches_tracked.
    ValueError
        Wrong-length vectors, negative running_var (inference), eps <= 0, training with one
        value per channel (as PyTorch), momentum=None without num_batches_tracked.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(8, dtype=np.float32).reshape(2, 2, 2)     # (N=2, C=2, L=2)
    >>> mean = np.array([1, 5], np.float32)
    >>> var = np.array([4, 1], np.float32)
    >>> cnnfast.batch_norm(x, mean, var, eps=1e-12)             # inference: (x - mean) / std
    array([[[-0.5,  0. ],
            [-3. , -2. ]],
    <BLANKLINE>
           [[ 1.5,  2. ],
            [ 1. ,  2. ]]], dtype=float32)

    Training normalises with the batch's statistics (channel 0 holds 0, 1, 4, 5: mean 2.5)
    and moves the running ones towards them (unbiased variance, momentum 0.1):

    >>> y = cnnfast.batch_norm(x, mean, var, training=True)
    >>> y.mean(axis=(0, 2)).round(4) + 0.0, y.std(axis=(0, 2)).round(3)
    (array([0., 0.], dtype=float32), array([1., 1.], dtype=float32))
    >>> mean.round(4), var.round(4)
    (array([1.15, 4.95], dtype=float32), array([4.1667, 1.4667], dtype=float32))
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

    Parameters
    ----------
    weight : numpy.ndarray
        The convolution's float32 weight (at least 3-D).
    bias : numpy.ndarray or None
        The convolution's (C_out,) bias, or None (0).
    running_mean, running_var : numpy.ndarray
        (C_out,) float32 statistics of the batch norm.
    bn_weight, bn_bias : numpy.ndarray, optional
        (C_out,) float32 (None: 1 and 0).
    eps : float
        The batch norm's eps, > 0.
    transposed : bool
        ``weight`` is a transposed convolution's (C_in, C_out/groups, ...).
    groups : int
        The transposed convolution's groups (needed to find C_out).

    Returns
    -------
    tuple of numpy.ndarray
        (new_weight, new_bias), float32.

    Raises
    ------
    TypeError
        A non-float32 array.
    ValueError
        A weight below 3-D, vectors of the wrong length, negative running_var, eps <= 0, groups
        that do not divide C_in.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> w = np.ones((2, 1, 1, 1), dtype=np.float32)
    >>> mean, var = np.array([1, 2], np.float32), np.array([4, 16], np.float32)
    >>> new_w, new_b = cnnfast.fold_batch_norm(w, None, mean, var, eps=1e-12)
    >>> new_w.ravel(), new_b
    (array([0.5 , 0.25], dtype=float32), array([-0.5, -0.5], dtype=float32))
    >>> x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    >>> folded = cnnfast.conv2d(x, new_w, new_b)
    >>> np.allclose(folded, cnnfast.batch_norm(cnnfast.conv2d(x, w), mean, var, eps=1e-12))
    True
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
    and none over the output.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, layout, algo, out
        As :func:`conv2d` (bias may be None).
    running_mean, running_var, bn_weight, bn_bias, eps
        The inference-mode batch norm, as :func:`batch_norm` (bn_weight, bn_bias: its weight and
        bias).
    activation : str or None
        Applied last; ``"relu"`` by default.
    negative_slope : float
        The slope of "leaky_relu".

    Returns
    -------
    numpy.ndarray
        As :func:`conv2d`.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d` and :func:`fold_batch_norm`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> mean, var = np.array([60], np.float32), np.array([100], np.float32)
    >>> cnnfast.conv_bn_act(x, w, None, mean, var, eps=1e-12).round(4)   # relu((conv - 60) / 10)
    array([[[[0. , 0. ],
             [2.1, 3. ]]]], dtype=float32)
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
    """max(x, 0) elementwise (NaN stays NaN). ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError
        x or out is not a float32 ndarray.
    ValueError
        out has another shape, or in place on a non-contiguous x.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.array([-2, -0.5, 0, 3], dtype=np.float32)
    >>> cnnfast.relu(x)
    array([0., 0., 0., 3.], dtype=float32)
    >>> _ = cnnfast.relu(x, out=x); x
    array([0., 0., 0., 3.], dtype=float32)
    """
    return _activation("relu", x, out=out)


def relu6(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """min(max(x, 0), 6) elementwise. ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> cnnfast.relu6(np.array([-1, 3, 8], dtype=np.float32))
    array([0., 3., 6.], dtype=float32)
    """
    return _activation("relu6", x, out=out)


def leaky_relu(x: Float32Array, negative_slope: float = 0.01, *,
               out: OptionalArray = None) -> Float32Array:
    """x if x >= 0 else negative_slope * x. ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    negative_slope : float
        The factor for negative inputs.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> cnnfast.leaky_relu(np.array([-2, 4], dtype=np.float32), 0.25)
    array([-0.5,  4. ], dtype=float32)
    """
    return _activation("leaky_relu", x, negative_slope, out=out)


def sigmoid(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """1 / (1 + exp(-x)) (a vectorised exp, within a few ulp). ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> cnnfast.sigmoid(np.array([-20, 0, 2], dtype=np.float32)).round(4)
    array([0.    , 0.5   , 0.8808], dtype=float32)
    """
    return _activation("sigmoid", x, out=out)


def tanh(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """tanh(x) (vectorised, absolute error within a few 1e-7). ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> cnnfast.tanh(np.array([-1, 0, 0.5], dtype=np.float32)).round(4)
    array([-0.7616,  0.    ,  0.4621], dtype=float32)
    """
    return _activation("tanh", x, out=out)


def silu(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """x * sigmoid(x). ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> cnnfast.silu(np.array([-1, 0, 2], dtype=np.float32)).round(4)
    array([-0.2689,  0.    ,  1.7616], dtype=float32)
    """
    return _activation("silu", x, out=out)


def hardswish(x: Float32Array, *, out: OptionalArray = None) -> Float32Array:
    """x * relu6(x + 3) / 6. ``out=x`` works in place.

    Parameters
    ----------
    x : numpy.ndarray
        float32, any shape.
    out : numpy.ndarray, optional
        float32 array of x's shape (``out=x``: in place).

    Returns
    -------
    numpy.ndarray
        float32, x's shape.

    Raises
    ------
    TypeError, ValueError
        As :func:`relu`.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> cnnfast.hardswish(np.array([-4, -1, 0, 1, 4], dtype=np.float32)).round(4)
    array([-0.    , -0.3333,  0.    ,  0.6667,  4.    ], dtype=float32)
    """
    return _activation("hardswish", x, out=out)
