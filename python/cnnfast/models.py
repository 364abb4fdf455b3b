"""cnnfast.models: ResNet-18/50, MobileNetV2 and VGG-16 built from cnnfast.nn layers and blocks
with torchvision's module names, so ``load_state_dict`` takes torchvision's state_dict keys and
shapes (a dict of NumPy arrays or CPU tensors, or an .npz path). Input NCHW float32 images,
output (N, num_classes) logits. Randomly initialised unless ``weights`` is given; neither torch
nor torchvision is needed (PyTorch users export with ``numpy.savez(path, **{k: v.numpy() ...})``).
"""

import contextlib
import math
import os
from typing import Sequence

import numpy as np

from .nn.activation import Dropout, ReLU, ReLU6
from .nn.blocks import BasicBlock, Bottleneck, InvertedResidual, _Block, conv_norm_act
from .nn.containers import Identity, Sequential
from .nn.conv import Conv2d
from .nn.init import initializing, make_rng, skip_init
from .nn.linear import Linear
from .nn.module import register
from .nn.norm import BatchNorm2d
from .nn.pool import AdaptiveAvgPool2d, MaxPool2d
from .pooling import global_avg_pool2d
from ._typing import Rng, Weights

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}
# VGG configurations (Simonyan & Zisserman's table 1): channel counts, "M" a 2x2 max pool.
VGG_CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
          512, 512, "M"],
}


def _classes(num_classes, op):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"{op}: num_classes must be an int >= 1, got {num_classes!r}")
    return num_classes


def _check_image(x, channels, op):
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{op}: expected images (N, {channels}, H, W), got shape "
                         f"{getattr(x, 'shape', type(x).__name__)}")


class _Network(_Block):
    """A whole network: torchvision's initialisation of the convolutions and a load_state_dict
    that also reads .npz files."""

    def _init_weights(self, rng, linear_std=None):
        """Convolutions kaiming-normal with fan_out (torchvision's ResNet/MobileNet/VGG); batch
        norms keep 1 and 0; Linear layers N(0, linear_std) with zero bias when given, else
        torch.nn.Linear's default. Nothing is drawn inside skip_init (weights to be loaded)."""
        if not initializing():
            return
        for m in self.modules():
            if isinstance(m, Conv2d):
                fan_out = m.out_channels // m.groups * math.prod(m.kernel_size)
                m.weight = (rng.standard_normal(m.weight.shape, np.float32) *
                            np.float32(math.sqrt(2.0 / fan_out)))
                if m.bias is not None:
                    m.bias = np.zeros_like(m.bias)
            elif isinstance(m, Linear) and linear_std is not None:
                m.weight = rng.standard_normal(m.weight.shape, np.float32) * np.float32(
                    linear_std)
                m.bias = np.zeros_like(m.bias)

    def channels_last(self) -> "_Network":
        """Runs the network in NHWC from now on (in place; returns self): the input is still
        NCHW, transposed once on entry, and every convolution, batch norm and pooling inside
        then skips its own NCHW <-> NHWC reorders (cnnfast's kernels work in NHWC). The logits
        are the same up to rounding. fuse() keeps it; save()/load() do not (a loaded network
        runs NCHW until this is called again).

        Returns
        -------
        ResNet, MobileNetV2 or VGG
            The network itself.

        Raises
        ------
        TypeError
            A layer inside has no NHWC path.

        Examples
        --------
        >>> import numpy as np
        >>> import cnnfast
        >>> model = cnnfast.models.mobilenet_v2(num_classes=10, width_mult=0.25, rng=0).eval()
        >>> x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        >>> nchw = model(x)
        >>> bool(np.allclose(model.channels_last()(x), nchw, atol=1e-4))
        True
        """
        plain = (ReLU, ReLU6, Dropout, Linear, Sequential, Identity)
        for name, m in self.named_modules():
            if isinstance(m, (Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d, _Block)):
                m.layout = "NHWC"
            elif not isinstance(m, plain):
                raise TypeError(f"channels_last: {name} ({type(m).__name__}) has no NHWC path")
        return self

    def _enter(self, x, op):
        """The checked NCHW input, transposed to NHWC when the network runs channels-last."""
        _check_image(x, 3, op)
        if self.layout == "NHWC":
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x

    def load_state_dict(self, state_dict, strict=True):
        """Module.load_state_dict, also from an .npz path (read with allow_pickle=False).

        Parameters
        ----------
        state_dict : mapping or str or os.PathLike
            torchvision's keys -> arrays, or the path of an .npz holding them.
        strict : bool
            Require exactly the network's keys.

        Returns
        -------
        IncompatibleKeys
            (missing_keys, unexpected_keys).

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import cnnfast
        >>> model = cnnfast.models.resnet18(num_classes=10, rng=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "resnet18.npz")
        >>> np.savez(path, **model.state_dict())
        >>> cnnfast.models.resnet18(num_classes=10, rng=1).load_state_dict(path)
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        """
        if isinstance(state_dict, (str, os.PathLike)):
            with np.load(state_dict, allow_pickle=False) as data:
                state_dict = {key: data[key] for key in data.files}
        return super().load_state_dict(state_dict, strict)


@register
class ResNet(_Network):
    """torchvision's ResNet (v1.5): conv1 7x7/2 + bn1 + relu, maxpool 3x3/2, layer1..4 of
    ``layers`` blocks (64, 128, 256, 512 planes; stride 2 from layer2), global average pool, fc.
    ``block``: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152).

    Parameters
    ----------
    block : str
        "basic" or "bottleneck".
    layers : tuple of int
        Blocks per stage.
    num_classes : int
        Outputs of ``fc``.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights (torchvision's initialisation).

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> model = cnnfast.models.ResNet("basic", (1, 1, 1, 1), num_classes=10, rng=0).eval()
    >>> model(np.zeros((2, 3, 32, 32), np.float32)).shape
    (2, 10)
    """

    _fuse_chains = (("conv1", "bn1", "relu"),)

    def __init__(self, block: str = "basic", layers: Sequence[int] = (2, 2, 2, 2),
                 num_classes: int = 1000, rng: Rng = None) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"ResNet: block must be one of {sorted(BLOCKS)}, got {block!r}")
        if not isinstance(layers, (tuple, list)) or len(layers) != 4 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers):
            raise ValueError(f"ResNet: layers must be 4 block counts >= 1, got {layers!r}")
        _classes(num_classes, "ResNet")
        cls, rng = BLOCKS[block], make_rng(rng)
        self.conv1 = Conv2d(3, 64, 7, 2, 3, bias=False, rng=rng)
        self.bn1 = BatchNorm2d(64)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for b in range(count):
                blocks.append(cls(inplanes, planes, 2 if i and not b else 1, rng=rng))
                inplanes = planes * cls.expansion
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(inplanes, num_classes, rng=rng)
        self._init_weights(rng)

    def forward(self, x):
        x = self._enter(x, "ResNet")
        x = self._act(self.bn1(self.conv1(x)), self.conv1, self.relu)
        x = self.maxpool(x)
        for i in range(1, 5):
            x = self._modules[f"layer{i}"](x)
        return self.fc(self.avgpool(x).reshape(x.shape[0], -1))  # (N, C, 1, 1) or (N, 1, 1, C)


def _make_divisible(value, divisor=8):
    """torchvision's _make_divisible: round to a multiple of divisor, never below 90 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@register
class MobileNetV2(_Network):
    """torchvision's MobileNetV2: ``features`` = conv 3x3/2 (32 ch) + 17 InvertedResidual blocks
    + 1x1 conv to 1280, each Conv-BN-ReLU6; global average pool; ``classifier`` = Dropout +
    Linear. ``width_mult`` scales the channels (rounded to multiples of 8).

    Parameters
    ----------
    num_classes : int
        Outputs of the classifier.
    width_mult : float
        Channel multiplier.
    dropout : float
        The classifier's dropout probability.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> model = cnnfast.models.MobileNetV2(num_classes=10, width_mult=0.25, rng=0).eval()
    >>> model(np.zeros((1, 3, 32, 32), np.float32)).shape
    (1, 10)
    """

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))  # expansion t, channels c, repeats n, stride s

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 rng: Rng = None) -> None:
        super().__init__()
        _classes(num_classes, "MobileNetV2")
        if not isinstance(width_mult, (int, float)) or isinstance(width_mult, bool) or \
                not 0 < width_mult < math.inf:
            raise ValueError(f"MobileNetV2: width_mult must be a finite number > 0, got "
                             f"{width_mult!r}")
        rng = make_rng(rng)
        channels = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        layers = [conv_norm_act(3, channels, 3, 2, rng=rng)]
        for t, c, n, s in self.SETTINGS:
            out = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t, rng=rng))
                channels = out
        layers.append(conv_norm_act(channels, last, 1, rng=rng))
        self.features = Sequential(*layers)
        self.classifier = Sequential(Dropout(dropout), Linear(last, num_classes, rng=rng))
        self._init_weights(rng, linear_std=0.01)

    def forward(self, x):
        x = self._enter(x, "MobileNetV2")
        x = global_avg_pool2d(self.features(x), layout=self.layout or "NCHW")
        return self.classifier(x.reshape(x.shape[0], -1))


@register
class VGG(_Network):
    """torchvision's VGG: ``features`` = 3x3 convs (padding 1, bias) each + ReLU (+ BatchNorm2d
    between with ``batch_norm``) and 2x2 max pools per ``config`` ("A", "B", "D" = VGG-16, "E");
    ``avgpool`` = AdaptiveAvgPool2d(7); ``classifier`` = Linear 25088->4096, ReLU, Dropout,
    Linear 4096->4096, ReLU, Dropout, Linear 4096->num_classes.

    Parameters
    ----------
    config : str
        "A", "B", "D" or "E" (VGG-11, 13, 16, 19).
    num_classes : int
        Outputs of the classifier.
    batch_norm : bool
        A BatchNorm2d after every convolution (the "_bn" variants).
    dropout : float
        The classifier's dropout probability.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Examples
    --------
    Building draws 133 M random weights; under ``skip_init`` (as when weights are loaded) the
    arrays are zeros:

    >>> import cnnfast
    >>> from cnnfast.nn.init import skip_init
    >>> with skip_init():
    ...     model = cnnfast.models.VGG("A", num_classes=10)
    >>> sum(p.size for p in model.parameters())
    128807306
    """

    def __init__(self, config: str = "D", num_classes: int = 1000, batch_norm: bool = False,
                 dropout: float = 0.5, rng: Rng = None) -> None:
        super().__init__()
        if config not in VGG_CONFIGS:
            raise ValueError(f"VGG: config must be one of {sorted(VGG_CONFIGS)}, got {config!r}")
        _classes(num_classes, "VGG")
        rng, layers, channels = make_rng(rng), [], 3
        for v in VGG_CONFIGS[config]:
            if v == "M":
                layers.append(MaxPool2d(2, 2))
                continue
            layers.append(Conv2d(channels, v, 3, padding=1, rng=rng))
            if batch_norm:
                layers.append(BatchNorm2d(v))
            layers.append(ReLU(inplace=True))
            channels = v
        self.features = Sequential(*layers)
        self.avgpool = AdaptiveAvgPool2d((7, 7))
        self.classifier = Sequential(
            Linear(512 * 7 * 7, 4096, rng=rng), ReLU(inplace=True), Dropout(dropout),
            Linear(4096, 4096, rng=rng), ReLU(inplace=True), Dropout(dropout),
            Linear(4096, num_classes, rng=rng))
        self._init_weights(rng)

    def forward(self, x):
        x = self.avgpool(self.features(self._enter(x, "VGG")))
        if self.layout == "NHWC":  # the classifier reads the features in NCHW order
            x = x.transpose(0, 3, 1, 2)
        return self.classifier(x.reshape(x.shape[0], -1))


def _build(cls, weights, **kwargs):
    """The model, random (drawn from ``rng``) or, with ``weights``, built without drawing and
    loaded from them (strict: every torchvision key, nothing else)."""
    with skip_init() if weights is not None else contextlib.nullcontext():
        model = cls(**kwargs)
    if weights is not None:
        model.load_state_dict(weights)
    return model


def resnet18(num_classes: int = 1000, weights: Weights = None, rng: Rng = None) -> ResNet:
    """ResNet-18 (11.69 M parameters at 1000 classes): BasicBlocks (2, 2, 2, 2). ``weights``: a
    torchvision-keyed state dict or .npz path; ``rng``: seed or Generator of the random init.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc``.
    weights : dict or str or os.PathLike, optional
        torchvision's state_dict (arrays or CPU tensors) or an .npz path: the model is then built
        without random draws and loaded strictly (every key, nothing else).
    rng : int or numpy.random.Generator, optional
        Seed or generator of the random initialisation.

    Returns
    -------
    ResNet

    Raises
    ------
    ValueError, TypeError
        Weights with missing, unexpected, mis-shaped or non-float32 entries (naming the key).

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> sum(p.size for p in cnnfast.models.resnet18(rng=0).parameters())
    11689512
    >>> model = cnnfast.models.resnet18(num_classes=10, rng=0).eval()
    >>> again = cnnfast.models.resnet18(num_classes=10, weights=model.state_dict()).eval()
    >>> x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    >>> bool(np.array_equal(again(x), model(x))), model.fuse()(x).shape
    (True, (1, 10))
    """
    return _build(ResNet, weights, block="basic", layers=(2, 2, 2, 2), num_classes=num_classes,
                  rng=rng)


def resnet50(num_classes: int = 1000, weights: Weights = None, rng: Rng = None) -> ResNet:
    """ResNet-50 v1.5 (25.56 M parameters): Bottlenecks (3, 4, 6, 3); arguments as resnet18.

    Parameters
    ----------
    num_classes, weights, rng
        As :func:`resnet18`.

    Returns
    -------
    ResNet

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> model = cnnfast.models.resnet50(num_classes=10, rng=0).eval()
    >>> type(model.layer1[0]).__name__, model(np.zeros((1, 3, 32, 32), np.float32)).shape
    ('Bottleneck', (1, 10))
    """
    return _build(ResNet, weights, block="bottleneck", layers=(3, 4, 6, 3),
                  num_classes=num_classes, rng=rng)


def mobilenet_v2(num_classes: int = 1000, weights: Weights = None, rng: Rng = None,
                 width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2 (3.50 M parameters at width 1.0); arguments as resnet18.

    Parameters
    ----------
    num_classes, weights, rng
        As :func:`resnet18`.
    width_mult : float
        Channel multiplier.
    dropout : float
        The classifier's dropout probability.

    Returns
    -------
    MobileNetV2

    Examples
    --------
    >>> import numpy as np
    >>> import cnnfast
    >>> model = cnnfast.models.mobilenet_v2(num_classes=10, rng=0).eval()
    >>> model.channels_last()(np.zeros((1, 3, 64, 64), np.float32)).shape    # NHWC inside
    (1, 10)
    """
    return _build(MobileNetV2, weights, num_classes=num_classes, width_mult=width_mult,
                  dropout=dropout, rng=rng)


def vgg16(num_classes: int = 1000, weights: Weights = None, rng: Rng = None,
          batch_norm: bool = False, dropout: float = 0.5) -> VGG:
    """VGG-16 (configuration D, 138.36 M parameters); ``batch_norm=True`` is vgg16_bn.

    Parameters
    ----------
    num_classes, weights, rng
        As :func:`resnet18`.
    batch_norm : bool
        vgg16_bn.
    dropout : float
        The classifier's dropout probability.

    Returns
    -------
    VGG

    Examples
    --------
    >>> import cnnfast
    >>> from cnnfast.nn.init import skip_init
    >>> with skip_init():                  # zeros instead of 138 M random draws
    ...     model = cnnfast.models.vgg16()
    >>> sum(p.size for p in model.parameters())
    138357544
    """
    return _build(VGG, weights, config="D", num_classes=num_classes, batch_norm=batch_norm,
                  dropout=dropout, rng=rng)
