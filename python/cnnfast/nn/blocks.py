"""Blocks from the literature, as cnnfast.nn layers with torchvision's child names (so its
state_dict keys load): ResNet's BasicBlock and Bottleneck (v1.5: the stride on the 3x3) with
their 1x1 conv + BN downsample branch, MobileNetV2's InvertedResidual, MobileNetV1's
DepthwiseSeparable, and Newell et al.'s Hourglass (recursive pool-down / upsample-up with skip
additions). Each builds its children from its arguments; fuse() folds their Conv->BN(->ReLU)
chains and save()/load() keep them. cnnfast.models assembles networks from them.
"""

import math
from typing import Callable, Optional

import numpy as np

from .activation import ReLU, ReLU6
from .containers import Identity, Sequential
from .conv import Conv2d, ConvTranspose2d
from .init import make_rng
from .module import Module, register
from .norm import BatchNorm2d
from .pool import MaxPool2d
from .upsample import Upsample
from .._typing import Float32Array, Rng


def _positive(value, name, op):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, got {value!r}")
    return value


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                  groups: int = 1, dilation: int = 1,
                  activation: Optional[Callable[..., Module]] = ReLU6,
                  rng: Rng = None) -> Sequential:
    """torchvision's Conv2dNormActivation: Sequential(conv (no bias, "same"-style padding
    (k-1)//2*dilation), BatchNorm2d, activation) with keys 0.weight, 1.*; no activation when
    ``activation`` is None.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, groups, dilation : int
        Of the convolution.
    activation : type or None
        The activation layer class (ReLU6 by default).
    rng : int or numpy.random.Generator, optional
        Seed or generator of the convolution's initial weights.

    Returns
    -------
    Sequential

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> block = nn.conv_norm_act(3, 8, 3, stride=2, rng=0)
    >>> [type(m).__name__ for m in block], block(np.ones((1, 3, 8, 8), np.float32)).shape
    (['Conv2d', 'BatchNorm2d', 'ReLU6'], (1, 8, 4, 4))
    """
    padding = (kernel_size - 1) // 2 * dilation
    layers = [Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                     bias=False, rng=rng), BatchNorm2d(out_channels)]
    if activation is not None:
        layers.append(activation(inplace=True))
    return Sequential(*layers)


class _Block(Module):
    """A block built from its arguments (composite: its children are saved, see Module)."""

    _composite = True
    _not_saved = ("rng",)
    _fuse_chains = ()  # (conv, bn, activation) child names that fuse() folds
    layout = None  # "NHWC" in a network run channels-last: channels on the last axis

    def _channels(self, x):
        return x.shape[-1 if self.layout == "NHWC" else 1]

    def _act(self, out, conv, act):
        """``act(out)`` unless fuse() moved the activation into ``conv``'s epilogue."""
        return out if conv.activation is not None else act(out)


class _Residual(_Block):
    """ResNet's residual: relu(f(x) + shortcut(x)), the shortcut being x or downsample(x)."""

    expansion = 1

    def _add_downsample(self, inplanes, stride, rng):
        planes_out = self.planes * self.expansion
        if stride != 1 or inplanes != planes_out:
            self.downsample = Sequential(Conv2d(inplanes, planes_out, 1, stride, bias=False,
                                                rng=rng), BatchNorm2d(planes_out))

    def _check_input(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4 or self._channels(x) != self.inplanes:
            raise ValueError(f"{type(self).__name__}: expected (N, {self.inplanes}, H, W) input "
                             f"({self.layout or 'NCHW'}), got shape "
                             f"{getattr(x, 'shape', type(x).__name__)}")

    def _finish(self, out, x, conv, bn):
        """relu(bn(conv(out)) + shortcut(x)). Once fuse() has folded bn into conv, the add
        and the ReLU run in conv's epilogue (no pass over the output of their own)."""
        downsample = self._modules.get("downsample")
        identity = x if downsample is None else downsample(x)
        if isinstance(bn, Identity) and conv.activation is None and type(self.relu) is ReLU:
            return conv(out, residual=np.ascontiguousarray(identity), residual_activation="relu")
        out = bn(conv(out))
        np.add(out, identity, out=out)  # out is this block's own new array
        return self.relu(out)


@register
class BasicBlock(_Residual):
    """ResNet-18/34's block: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut
    (a 1x1 conv + BN ``downsample`` when the stride or the width changes), then ReLU. Keys as
    torchvision: conv1, bn1, conv2, bn2, downsample.0, downsample.1.

    Parameters
    ----------
    inplanes, planes : int
        Channels in and out.
    stride : int
        Of the first convolution (and the shortcut).
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> block = nn.BasicBlock(8, 16, stride=2, rng=0)
    >>> block(np.ones((1, 8, 8, 8), np.float32)).shape, "downsample.0.weight" in block.state_dict()
    ((1, 16, 4, 4), True)
    """

    expansion = 1
    _fuse_chains = (("conv1", "bn1", "relu"), ("conv2", "bn2", None))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, rng: Rng = None) -> None:
        super().__init__()
        op = "BasicBlock"
        self.inplanes = _positive(inplanes, "inplanes", op)
        self.planes = _positive(planes, "planes", op)
        self.stride = _positive(stride, "stride", op)
        rng = make_rng(rng)
        self.conv1 = Conv2d(inplanes, planes, 3, stride, 1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU(inplace=True)
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=False, rng=rng)
        self.bn2 = BatchNorm2d(planes)
        self._add_downsample(inplanes, stride, rng)

    def forward(self, x: Float32Array) -> Float32Array:
        self._check_input(x)
        out = self._act(self.bn1(self.conv1(x)), self.conv1, self.relu)
        return self._finish(out, x, self.conv2, self.bn2)


@register
class Bottleneck(_Residual):
    """ResNet-50's block (v1.5, torchvision): 1x1 reduce to width -> BN -> ReLU -> 3x3(stride,
    groups, dilation) -> BN -> ReLU -> 1x1 expand to planes*4 -> BN, plus the shortcut, then ReLU.
    width = planes * base_width / 64 * groups (ResNeXt / wide ResNet). Keys: conv1..3, bn1..3,
    downsample.0, downsample.1.

    Parameters
    ----------
    inplanes, planes : int
        Channels in, and planes (the output has planes * 4 channels).
    stride, groups, base_width, dilation : int
        Of the 3x3 convolution (torchvision's arguments).
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> block = nn.Bottleneck(16, 4, rng=0)                   # 16 -> 4 -> 4 -> 16 channels
    >>> block(np.ones((1, 16, 5, 5), np.float32)).shape
    (1, 16, 5, 5)
    """

    expansion = 4
    _fuse_chains = (("conv1", "bn1", "relu"), ("conv2", "bn2", "relu"), ("conv3", "bn3", None))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1,
                 base_width: int = 64, dilation: int = 1, rng: Rng = None) -> None:
        super().__init__()
        op = "Bottleneck"
        self.inplanes = _positive(inplanes, "inplanes", op)
        self.planes = _positive(planes, "planes", op)
        self.stride = _positive(stride, "stride", op)
        _positive(base_width, "base_width", op)
        _positive(dilation, "dilation", op)
        width = int(planes * (base_width / 64.0)) * _positive(groups, "groups", op)
        rng = make_rng(rng)
        self.conv1 = Conv2d(inplanes, width, 1, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(width)
        self.conv2 = Conv2d(width, width, 3, stride, dilation, dilation, groups, bias=False,
                            rng=rng)
        self.bn2 = BatchNorm2d(width)
        self.conv3 = Conv2d(width, planes * 4, 1, bias=False, rng=rng)
        self.bn3 = BatchNorm2d(planes * 4)
        self.relu = ReLU(inplace=True)
        self._add_downsample(inplanes, stride, rng)

    def forward(self, x: Float32Array) -> Float32Array:
        self._check_input(x)
        out = self._act(self.bn1(self.conv1(x)), self.conv1, self.relu)
        out = self._act(self.bn2(self.conv2(out)), self.conv2, self.relu)
        return self._finish(out, x, self.conv3, self.bn3)


@register
class InvertedResidual(_Block):
    """MobileNetV2's block (torchvision's layout): ``conv`` = [1x1 expand to inp*expand_ratio
    (Conv2dNormActivation, ReLU6), skipped when expand_ratio == 1] + 3x3 depthwise (stride,
    ReLU6) + 1x1 linear projection (conv, BN); x is added when stride == 1 and inp == oup.

    Parameters
    ----------
    inp, oup : int
        Channels in and out.
    stride : int
        1 or 2.
    expand_ratio : int
        The hidden width is inp * expand_ratio.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> block = nn.InvertedResidual(8, 8, 1, 6, rng=0)        # residual: stride 1, 8 -> 8
    >>> block(np.ones((1, 8, 6, 6), np.float32)).shape
    (1, 8, 6, 6)
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: float,
                 rng: Rng = None) -> None:
        super().__init__()
        op = "InvertedResidual"
        _positive(inp, "inp", op)
        _positive(oup, "oup", op)
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ValueError(f"{op}: stride must be 1 or 2, got {stride!r}")
        if not isinstance(expand_ratio, (int, float)) or isinstance(expand_ratio, bool) or \
                not 1 <= expand_ratio < math.inf:
            raise ValueError(f"{op}: expand_ratio must be a finite number >= 1, got "
                             f"{expand_ratio!r}")
        self.inp, self.stride = inp, stride
        self.out_channels = oup
        self.use_res_connect = stride == 1 and inp == oup
        hidden = int(round(inp * expand_ratio))
        rng = make_rng(rng)
        layers = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(inp, hidden, 1, rng=rng))
        layers += [conv_norm_act(hidden, hidden, 3, stride, groups=hidden, rng=rng),
                   Conv2d(hidden, oup, 1, bias=False, rng=rng), BatchNorm2d(oup)]
        self.conv = Sequential(*layers)

    def forward(self, x: Float32Array) -> Float32Array:
        if not isinstance(x, np.ndarray) or x.ndim != 4 or self._channels(x) != self.inp:
            raise ValueError(f"InvertedResidual: expected (N, {self.inp}, H, W) input, got shape "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if not self.use_res_connect:
            return self.conv(x)
        *head, project, bn = self.conv.children()
        if isinstance(bn, Identity) and isinstance(project, Conv2d) and \
                project.activation is None:
            # fuse() folded the projection's BN: x is added in the projection's epilogue.
            out = x
            for layer in head:
                out = layer(out)
            return project(out, residual=np.ascontiguousarray(x))
        out = self.conv(x)
        np.add(out, x, out=out)
        return out


@register
class DepthwiseSeparable(_Block):
    """MobileNetV1's block: ``depthwise`` = 3x3 depthwise conv (stride) + BN + ReLU, then
    ``pointwise`` = 1x1 conv to out_channels + BN + ReLU (Howard et al. 2017, figure 3).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    stride : int
        Of the depthwise convolution.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> block = nn.DepthwiseSeparable(8, 16, stride=2, rng=0)
    >>> block(np.ones((1, 8, 6, 6), np.float32)).shape
    (1, 16, 3, 3)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 rng: Rng = None) -> None:
        super().__init__()
        op = "DepthwiseSeparable"
        _positive(in_channels, "in_channels", op)
        _positive(out_channels, "out_channels", op)
        _positive(stride, "stride", op)
        rng = make_rng(rng)
        self.depthwise = conv_norm_act(in_channels, in_channels, 3, stride, groups=in_channels,
                                       activation=ReLU, rng=rng)
        self.pointwise = conv_norm_act(in_channels, out_channels, 1, activation=ReLU, rng=rng)

    def forward(self, x: Float32Array) -> Float32Array:
        return self.pointwise(self.depthwise(x))


@register
class Hourglass(_Block):
    """Newell et al. (2016)'s hourglass of ``depth`` levels on ``channels`` channels:
    out = skip(x) + up(post(inner(down(pool(x))))), where skip, down and post are residual
    blocks (BasicBlock), pool is a 2x2 max pool, inner is the hourglass of depth-1 (a residual
    block at depth 1) and up doubles the size by nearest-neighbour upsampling or, with
    ``upsample="transposed"``, a 2x2 stride-2 transposed convolution. H and W must be divisible
    by 2**depth, so depth is at most MAX_DEPTH.

    Parameters
    ----------
    depth : int
        Levels (>= 1).
    channels : int
        Channels throughout.
    upsample : str
        "nearest" or "transposed".
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> hg = nn.Hourglass(2, 4, rng=0)
    >>> hg(np.ones((1, 4, 8, 8), np.float32)).shape
    (1, 4, 8, 8)
    """

    # Each level nests one more Hourglass (Python recursion, 4 residual blocks); 2**16-pixel
    # sides are beyond any input this runs on.
    MAX_DEPTH = 16

    def __init__(self, depth: int, channels: int, upsample: str = "nearest",
                 rng: Rng = None) -> None:
        super().__init__()
        op = "Hourglass"
        self.depth = _positive(depth, "depth", op)
        if self.depth > self.MAX_DEPTH:
            raise ValueError(f"{op}: depth must be at most {self.MAX_DEPTH} (H and W divisible "
                             f"by 2**depth), got {depth!r}")
        self.channels = _positive(channels, "channels", op)
        if upsample not in ("nearest", "transposed"):
            raise ValueError(f"{op}: upsample must be 'nearest' or 'transposed', got "
                             f"{upsample!r}")
        rng = make_rng(rng)
        self.skip = BasicBlock(channels, channels, rng=rng)
        self.pool = MaxPool2d(2)
        self.down = BasicBlock(channels, channels, rng=rng)
        self.inner = Hourglass(depth - 1, channels, upsample, rng=rng) if depth > 1 else \
            BasicBlock(channels, channels, rng=rng)
        self.post = BasicBlock(channels, channels, rng=rng)
        self.up = Upsample(scale_factor=2) if upsample == "nearest" else \
            ConvTranspose2d(channels, channels, 2, stride=2, rng=rng)

    def forward(self, x: Float32Array) -> Float32Array:
        step = 2 ** self.depth
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != self.channels or \
                x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"Hourglass: expected (N, {self.channels}, H, W) input with H and W "
                             f"divisible by 2**depth = {step}, got shape "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        out = self.up(self.post(self.inner(self.down(self.pool(x)))))
        np.add(out, self.skip(x), out=out)
        return out
