"""Convolution layers: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d over cnnfast's functional
convolutions. Constructor arguments, weight layouts (OIHW; transposed IOHW) and state_dict keys
("weight", "bias") follow torch.nn, plus ``activation=`` / ``negative_slope=`` for the fused
epilogue that fuse() fills in. A further dimensionality (Conv3d, ConvTranspose3d) is a subclass
that sets ``dims`` and ``_op``.
"""

import math

from .. import _C, functional
from .. import transposed as transposed_ops
from .._args import check_activation, conv_padding, int_tuple, is_int
from .module import Module, register
from .init import initializing, make_rng, uniform
from .._typing import Activation, Float32Array, IntOrTuple, OutputSize, Padding, Rng


def _positive(value, name, op):
    if not is_int(value) or value < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, got {value!r}")
    return int(value)


class _ConvBase(Module):
    """Shared construction: argument checks, the weight of shape
    (out_channels, in_channels/groups, *kernel) or, transposed, (in_channels,
    out_channels/groups, *kernel), and torch's default initialisation (kaiming_uniform with
    a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias)."""

    dims = 2
    transposed = False
    _not_saved = ("rng",)

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
               bias, padding_mode, activation, negative_slope, rng, output_padding=0):
        op = type(self).__name__
        super().__init__()
        self.in_channels = _positive(in_channels, "in_channels", op)
        self.out_channels = _positive(out_channels, "out_channels", op)
        self.groups = _positive(groups, "groups", op)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{op}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.kernel_size = int_tuple(kernel_size, self.dims, op, "kernel_size")
        self.stride = int_tuple(stride, self.dims, op, "stride")
        self.dilation = int_tuple(dilation, self.dims, op, "dilation")
        for name, values in (("kernel_size", self.kernel_size), ("stride", self.stride),
                             ("dilation", self.dilation)):
            if min(values) < 1:
                raise ValueError(f"{op}: {name} must be >= 1, got {values}")
        modes = ("zeros",) if self.transposed else ("zeros", "reflect", "replicate", "circular")
        if padding_mode not in modes:
            raise ValueError(f"{op}: padding_mode must be one of {modes}, got {padding_mode!r}")
        if self.transposed and isinstance(padding, str):
            raise ValueError(f"{op}: padding must be an int or a tuple (no padding strings for "
                             f"transposed convolutions), got {padding!r}")
        # Checked now with the kernel as a stand-in size; the real pads depend on the input only
        # for "same".
        conv_padding(padding, self.kernel_size, self.kernel_size, self.stride, self.dilation, op)
        self.padding = padding if isinstance(padding, str) or is_int(padding) else tuple(padding)
        self.padding_mode = padding_mode
        self.output_padding = int_tuple(output_padding, self.dims, op, "output_padding")
        if any(p >= max(s, d) for p, s, d in zip(self.output_padding, self.stride,
                                                 self.dilation)):
            raise ValueError(f"{op}: output_padding {self.output_padding} must be smaller than "
                             f"the stride {self.stride} or the dilation {self.dilation}")
        check_activation(activation, op)
        self.activation, self.negative_slope = activation, float(negative_slope)

        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        fan_in = shape[1] * math.prod(self.kernel_size)  # torch's fan_in of this weight
        bound = 1.0 / math.sqrt(fan_in)
        rng = make_rng(rng) if initializing() else None
        self.register_parameter("weight", uniform(rng, bound, shape))
        self.register_parameter("bias", uniform(rng, bound, (self.out_channels,)) if bias
                                else None)


class _Conv(_ConvBase):
    _op = staticmethod(functional.conv2d)
    # None: the op's default layout (NCHW); "NHWC" once a network runs channels-last
    # (cnnfast.models' channels_last()). Not a constructor argument: it is how the layer is run.
    layout = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 activation: Activation = None, negative_slope: float = 0.01,
                 rng: Rng = None) -> None:
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, activation, negative_slope, rng)

    def forward(self, x: Float32Array) -> Float32Array:
        kw = {} if self.layout is None else {"layout": self.layout}
        return self._op(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups, padding_mode=self.padding_mode, activation=self.activation,
                        negative_slope=self.negative_slope, **kw)

    def _packed_weight(self):
        """The weight in the order the convolution reads it, packed on first use and kept until
        a new array is assigned (assigning, load_state_dict and fuse() replace the array; the
        packed one is marked read-only so that an in-place edit raises instead of going
        stale). None when the algorithm reads the weight as it is."""
        weight = self.weight
        cached = self.__dict__.get("_packed")
        if cached is not None and cached[0] is weight:
            return cached[1]
        packed = None
        if self.dims == 2 and _C.conv2d_weight_is_tap_major(*weight.shape, self.groups, "auto"):
            packed = _C.conv2d_pack_weight(weight)
            weight.flags.writeable = False
        object.__setattr__(self, "_packed", (weight, packed))
        return packed


class _ConvTranspose(_ConvBase):
    transposed = True
    _op = staticmethod(transposed_ops.conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Padding = 0, output_padding: IntOrTuple = 0,
                 groups: int = 1, bias: bool = True, dilation: IntOrTuple = 1,
                 padding_mode: str = "zeros", *, activation: Activation = None,
                 negative_slope: float = 0.01, rng: Rng = None) -> None:
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, activation, negative_slope, rng, output_padding)

    def forward(self, x: Float32Array, output_size: OutputSize = None) -> Float32Array:
        return self._op(x, self.weight, self.bias, self.stride, self.padding,
                        self.output_padding, self.groups, self.dilation, output_size=output_size,
                        activation=self.activation, negative_slope=self.negative_slope)


@register
class Conv1d(_Conv):
    """torch.nn.Conv1d on (N, C_in, L): cnnfast.conv1d with the layer's weight and bias."""

    dims = 1
    _op = staticmethod(functional.conv1d)


@register
class Conv2d(_Conv):
    """torch.nn.Conv2d on (N, C_in, H, W): cnnfast.conv2d with the layer's weight and bias,
    packed once in the order the GEMM reads it (the functional call reorders it every time)."""

    dims = 2
    _op = staticmethod(functional.conv2d)

    def forward(self, x: Float32Array) -> Float32Array:
        packed = self._packed_weight()
        if packed is None:
            return super().forward(x)
        return functional._conv2d(x, packed, self.bias, self.stride, self.padding, self.dilation,
                                  self.groups, self.padding_mode, self.activation,
                                  self.negative_slope, self.layout or "NCHW", "auto", None,
                                  "conv2d", weight_tap_major=True)


@register
class ConvTranspose1d(_ConvTranspose):
    """torch.nn.ConvTranspose1d: cnnfast.conv_transpose1d; ``forward(x, output_size=None)``."""

    dims = 1
    _op = staticmethod(transposed_ops.conv_transpose1d)


@register
class ConvTranspose2d(_ConvTranspose):
    """torch.nn.ConvTranspose2d: cnnfast.conv_transpose2d; ``forward(x, output_size=None)``."""

    dims = 2
    _op = staticmethod(transposed_ops.conv_transpose2d)
