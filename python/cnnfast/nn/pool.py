"""Pooling layers over cnnfast's functional pooling: MaxPool1d/2d/3d, AvgPool1d/2d/3d,
AdaptiveAvgPool2d/3d, AdaptiveMaxPool2d/3d (torch.nn's constructor arguments), StochasticPool2d
(random draws in training mode, the probability-weighted average in eval mode) and SPP
(spatial pyramid pooling, He et al. 2014, flattened to (N, C * sum(l^2))). NCHW-style layouts.
"""

from typing import Optional, Sequence

from .. import pooling
from .._args import int_tuple, is_int
from .init import make_rng
from .module import Module, register
from .._typing import (
    AdaptiveSize,
    Float32Array,
    IntOrTuple,
    OptionalIntOrTuple,
    Padding,
    PoolResult,
    Rng,
)


def _window_args(op, dims, kernel_size, stride, dilation=1):
    kernel = int_tuple(kernel_size, dims, op, "kernel_size")
    stride = kernel if stride is None else int_tuple(stride, dims, op, "stride")
    dilation = int_tuple(dilation, dims, op, "dilation")
    for name, values in (("kernel_size", kernel), ("stride", stride), ("dilation", dilation)):
        if min(values) < 1:
            raise ValueError(f"{op}: {name} must be >= 1, got {values}")
    return kernel, stride, dilation


class _MaxPool(Module):
    dims = 2

    def __init__(self, kernel_size: IntOrTuple, stride: OptionalIntOrTuple = None,
                 padding: Padding = 0, dilation: IntOrTuple = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = _window_args(
            type(self).__name__, self.dims, kernel_size, stride, dilation)
        self.padding = padding if isinstance(padding, str) or is_int(padding) else tuple(padding)
        self.return_indices, self.ceil_mode = bool(return_indices), bool(ceil_mode)
        self._op = getattr(pooling, f"max_pool{self.dims}d")

    layout = None  # "NHWC" in a network run channels-last

    def forward(self, x: Float32Array) -> PoolResult:
        return self._op(x, self.kernel_size, self.stride, self.padding, self.dilation,
                        self.ceil_mode, self.return_indices, layout=self.layout)


class _AvgPool(Module):
    dims = 2

    def __init__(self, kernel_size: IntOrTuple, stride: OptionalIntOrTuple = None,
                 padding: Padding = 0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Optional[int] = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.dilation = _window_args(
            type(self).__name__, self.dims, kernel_size, stride)
        self.padding = padding if isinstance(padding, str) or is_int(padding) else tuple(padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        if divisor_override is not None and (not is_int(divisor_override) or
                                             divisor_override <= 0):
            raise ValueError(f"{type(self).__name__}: divisor_override must be a positive int, "
                             f"got {divisor_override!r}")
        self.divisor_override = divisor_override
        self._op = getattr(pooling, f"avg_pool{self.dims}d")

    def forward(self, x: Float32Array) -> PoolResult:
        return self._op(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                        self.count_include_pad, self.divisor_override)


class _Adaptive(Module):
    dims = 2
    mode = "avg"

    def __init__(self, output_size: AdaptiveSize, return_indices: bool = False) -> None:
        super().__init__()
        op = type(self).__name__
        if isinstance(output_size, (tuple, list)):
            if len(output_size) != self.dims or not all(
                    v is None or (is_int(v) and v >= 1) for v in output_size):
                raise ValueError(f"{op}: output_size must be an int or {self.dims} ints >= 1 "
                                 f"(or None), got {output_size!r}")
            output_size = tuple(output_size)
        elif not is_int(output_size) or output_size < 1:
            raise ValueError(f"{op}: output_size must be an int >= 1, got {output_size!r}")
        if return_indices and self.mode != "max":
            raise ValueError(f"{op}: return_indices is for max pooling only")
        self.output_size, self.return_indices = output_size, bool(return_indices)
        self._op = getattr(pooling, f"adaptive_{self.mode}_pool{self.dims}d")

    layout = None  # "NHWC" in a network run channels-last

    def forward(self, x: Float32Array) -> PoolResult:
        if self.mode == "max":
            return self._op(x, self.output_size, self.return_indices, layout=self.layout)
        return self._op(x, self.output_size, layout=self.layout)


@register
class MaxPool1d(_MaxPool):
    """torch.nn.MaxPool1d on (N, C, L).

    Parameters
    ----------
    kernel_size, stride, padding, dilation, return_indices, ceil_mode
        As :func:`cnnfast.max_pool1d` (stride defaults to the kernel).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.MaxPool1d(2)(np.array([[[1, 5, 2, 3]]], np.float32))
    array([[[5., 3.]]], dtype=float32)
    """

    dims = 1


@register
class MaxPool2d(_MaxPool):
    """torch.nn.MaxPool2d on (N, C, H, W).

    Parameters
    ----------
    kernel_size, stride, padding, dilation, return_indices, ceil_mode
        As :func:`cnnfast.max_pool2d` (stride defaults to the kernel).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.MaxPool2d(3, stride=2, padding=1)(np.ones((1, 4, 56, 56), np.float32)).shape
    (1, 4, 28, 28)
    """

    dims = 2


@register
class MaxPool3d(_MaxPool):
    """torch.nn.MaxPool3d on (N, C, D, H, W).

    Parameters
    ----------
    kernel_size, stride, padding, dilation, return_indices, ceil_mode
        As :func:`cnnfast.max_pool3d` (stride defaults to the kernel).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.MaxPool3d(2)(np.ones((1, 2, 4, 4, 4), np.float32)).shape
    (1, 2, 2, 2, 2)
    """

    dims = 3


@register
class AvgPool1d(_AvgPool):
    """torch.nn.AvgPool1d on (N, C, L) (plus divisor_override, as the 2-D and 3-D ones).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As :func:`cnnfast.avg_pool1d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AvgPool1d(2)(np.array([[[1, 5, 2, 3]]], np.float32))
    array([[[3. , 2.5]]], dtype=float32)
    """

    dims = 1


@register
class AvgPool2d(_AvgPool):
    """torch.nn.AvgPool2d on (N, C, H, W).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As :func:`cnnfast.avg_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AvgPool2d(2)(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]], dtype=float32)
    """

    dims = 2


@register
class AvgPool3d(_AvgPool):
    """torch.nn.AvgPool3d on (N, C, D, H, W).

    Parameters
    ----------
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As :func:`cnnfast.avg_pool3d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AvgPool3d(2)(np.ones((1, 2, 4, 4, 4), np.float32)).shape
    (1, 2, 2, 2, 2)
    """

    dims = 3


@register
class AdaptiveAvgPool2d(_Adaptive):
    """torch.nn.AdaptiveAvgPool2d; AdaptiveAvgPool2d(1) is global average pooling.

    Parameters
    ----------
    output_size : int or tuple
        One int, or (h, w) with None keeping that axis.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AdaptiveAvgPool2d(1)(np.ones((2, 8, 7, 7), np.float32)).shape
    (2, 8, 1, 1)
    """

    dims, mode = 2, "avg"

    def __init__(self, output_size: AdaptiveSize) -> None:
        super().__init__(output_size)


@register
class AdaptiveAvgPool3d(_Adaptive):
    """torch.nn.AdaptiveAvgPool3d.

    Parameters
    ----------
    output_size : int or tuple
        One int, or (d, h, w) with None keeping that axis.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AdaptiveAvgPool3d((1, 2, 2))(np.ones((1, 3, 4, 6, 6), np.float32)).shape
    (1, 3, 1, 2, 2)
    """

    dims, mode = 3, "avg"

    def __init__(self, output_size: AdaptiveSize) -> None:
        super().__init__(output_size)


@register
class AdaptiveMaxPool2d(_Adaptive):
    """torch.nn.AdaptiveMaxPool2d.

    Parameters
    ----------
    output_size : int or tuple
        One int, or (h, w) with None keeping that axis.
    return_indices : bool
        Also return the indices of the maxima.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AdaptiveMaxPool2d((2, None))(np.ones((1, 3, 6, 5), np.float32)).shape
    (1, 3, 2, 5)
    """

    dims, mode = 2, "max"


@register
class AdaptiveMaxPool3d(_Adaptive):
    """torch.nn.AdaptiveMaxPool3d.

    Parameters
    ----------
    output_size : int or tuple
        One int, or (d, h, w) with None keeping that axis.
    return_indices : bool
        Also return the indices of the maxima.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.AdaptiveMaxPool3d(1)(np.ones((1, 3, 4, 6, 6), np.float32)).shape
    (1, 3, 1, 1, 1)
    """

    dims, mode = 3, "max"


@register
class StochasticPool2d(Module):
    """Stochastic pooling (Zeiler & Fergus, 2013) of non-negative input: in training mode each
    window outputs one element drawn with probability proportional to its value, the draw
    seeded from ``rng`` (a numpy Generator or int seed; numpy's Generator serialises
    concurrent draws with its lock); in eval mode the probability-weighted average.

    Parameters
    ----------
    kernel_size, stride, padding
        As :func:`cnnfast.stochastic_pool2d`.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the draws.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> pool = nn.StochasticPool2d(2, rng=0)
    >>> x = np.array([[[[0, 1], [0, 3]]]], np.float32)
    >>> float(pool(x)[0, 0, 0, 0]) in (1.0, 3.0)
    True
    >>> pool.eval()(x).ravel().tolist()                      # (1 + 9) / (1 + 3)
    [2.5]
    """

    _not_saved = ("rng",)

    def __init__(self, kernel_size: IntOrTuple, stride: OptionalIntOrTuple = None,
                 padding: Padding = 0, rng: Rng = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, _ = _window_args("StochasticPool2d", 2, kernel_size,
                                                        stride)
        self.padding = padding if isinstance(padding, str) or is_int(padding) else tuple(padding)
        self.rng = make_rng(rng)

    def forward(self, x: Float32Array) -> PoolResult:
        if not self.training:
            return pooling.stochastic_pool2d(x, self.kernel_size, self.stride, self.padding,
                                             training=False, seed=0)
        return pooling.stochastic_pool2d(x, self.kernel_size, self.stride, self.padding,
                                         training=True, rng=self.rng)


@register
class SPP(Module):
    """Spatial pyramid pooling: cnnfast.spatial_pyramid_pool2d with these levels and mode;
    (N, C, H, W) -> (N, C * sum(l^2 for l in levels)) for any H, W >= max(levels).

    Parameters
    ----------
    levels : sequence of int
        The grid sizes.
    mode : str
        "max" or "avg".

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.SPP((1, 2))(np.ones((2, 4, 9, 7), np.float32)).shape         # 4 * (1 + 4)
    (2, 20)
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 4), mode: str = "max") -> None:
        super().__init__()
        if (not isinstance(levels, (tuple, list)) or not levels
                or not all(is_int(v) and v >= 1 for v in levels)):
            raise ValueError(f"SPP: levels must be a non-empty sequence of ints >= 1, got "
                             f"{levels!r}")
        if mode not in ("max", "avg"):
            raise ValueError(f"SPP: mode must be 'max' or 'avg', got {mode!r}")
        self.levels, self.mode = tuple(int(v) for v in levels), mode

    def forward(self, x: Float32Array) -> PoolResult:
        return pooling.spatial_pyramid_pool2d(x, self.levels, self.mode)
