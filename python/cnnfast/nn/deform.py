"""Deformable convolution layers: DeformConv2d (torchvision.ops.DeformConv2d: offsets and mask
passed in) and ModulatedDeformConv2d (the DCNv2 block: offsets and mask from a regular
convolution over the same input, as mmcv's ModulatedDeformConv2dPack), both on
cnnfast.deform_conv2d.
"""

import numpy as np

from .. import _C
from ..deform import deform_conv2d
from ..normalization import sigmoid
from .conv import Conv2d, _ConvBase
from .module import register
from .._typing import Activation, Float32Array, IntOrTuple, OptionalArray, Padding, Rng


class _Deform(_ConvBase):
    """The weight packed once in the tap-major order deform_conv2d's GEMM reads, as
    nn.Conv2d does (read-only afterwards; assign a new array to change it)."""

    def _deform(self, x, offset, mask):
        packed = self._pack_once(self.weight, None, _C.conv2d_pack_weight)
        return deform_conv2d(x, offset, packed, self.bias, self.stride, self.padding,
                             self.dilation, mask, activation=self.activation,
                             negative_slope=self.negative_slope, _weight_tap_major=True)


@register
class DeformConv2d(_Deform):
    """torchvision.ops.DeformConv2d: ``forward(x, offset, mask=None)`` runs
    cnnfast.deform_conv2d with the layer's weight (C_out, C_in/groups, kh, kw) and bias; the
    offset groups come from the offset's channel count. ``activation=`` fuses an activation.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        As :class:`Conv2d`.
    activation, negative_slope, rng
        As :class:`Conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> layer = nn.DeformConv2d(4, 8, 3, padding=1, rng=0)
    >>> x = np.ones((1, 4, 6, 6), np.float32)
    >>> offset = np.zeros((1, 2 * 9, 6, 6), np.float32)          # one offset group
    >>> layer(x, offset).shape
    (1, 8, 6, 6)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
                 groups: int = 1, bias: bool = True, *, activation: Activation = None,
                 negative_slope: float = 0.01, rng: Rng = None) -> None:
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, "zeros", activation, negative_slope, rng)

    def forward(self, x: Float32Array, offset: Float32Array,  # type: ignore[override]
                mask: OptionalArray = None) -> Float32Array:
        return self._deform(x, offset, mask)


@register
class ModulatedDeformConv2d(_Deform):
    """The DCNv2 block (mmcv's ModulatedDeformConv2dPack): ``conv_offset``, a regular
    convolution with the same kernel, stride, padding and dilation, maps x to
    3*deform_groups*kh*kw channels (o1, o2, m); the offset is concat(o1, o2) in
    torchvision's (dy, dx) order and the mask sigmoid(m); then cnnfast.deform_conv2d. Like
    mmcv, conv_offset starts at zero (every offset 0, every mask 0.5). state_dict keys:
    weight, bias, conv_offset.weight, conv_offset.bias.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias
        As :class:`Conv2d`.
    deform_groups : int
        Offset groups (divides in_channels).
    activation, negative_slope, rng
        As :class:`Conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> block = nn.ModulatedDeformConv2d(4, 8, 3, padding=1, rng=0)
    >>> block.conv_offset.weight.shape                   # 3 * 9 channels: dy, dx and the mask
    (27, 4, 3, 3)
    >>> block(np.ones((1, 4, 6, 6), np.float32)).shape
    (1, 8, 6, 6)
    """

    _builds_children = True  # conv_offset comes from the constructor's arguments

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Padding = 0, dilation: IntOrTuple = 1,
                 groups: int = 1, deform_groups: int = 1, bias: bool = True, *,
                 activation: Activation = None, negative_slope: float = 0.01,
                 rng: Rng = None) -> None:
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, "zeros", activation, negative_slope, rng)
        if not isinstance(deform_groups, int) or deform_groups < 1 or \
                in_channels % deform_groups:
            raise ValueError(f"ModulatedDeformConv2d: deform_groups={deform_groups!r} must be an "
                             f"int >= 1 dividing in_channels={in_channels}")
        self.deform_groups = deform_groups
        taps = self.kernel_size[0] * self.kernel_size[1]
        offset = Conv2d(in_channels, 3 * deform_groups * taps, self.kernel_size, self.stride,
                        self.padding, self.dilation)
        offset.weight[...] = 0
        offset.bias[...] = 0
        self.conv_offset = offset

    def forward(self, x: Float32Array) -> Float32Array:
        out = self.conv_offset(x)
        split = 2 * self.deform_groups * self.kernel_size[0] * self.kernel_size[1]
        offset = np.ascontiguousarray(out[:, :split])
        mask = sigmoid(np.ascontiguousarray(out[:, split:]))
        return self._deform(x, offset, mask)
