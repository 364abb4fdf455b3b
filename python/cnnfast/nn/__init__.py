"""cnnfast.nn: layers that hold their weights and run cnnfast's operators, with torch.nn's
constructor arguments and state_dict keys; fuse(), safe save/load and summary().

Layers hold contiguous float32 weights in PyTorch's layouts; Conv2d also keeps a copy packed in
its GEMM's panels (_C.conv2d_prepack_weight), made on the first call, the original read-only after.
"""

from .blocks import (
    BasicBlock,
    Bottleneck,
    DepthwiseSeparable,
    Hourglass,
    InvertedResidual,
    conv_norm_act,
)
from .activation import Dropout, Hardswish, LeakyReLU, ReLU, ReLU6, SiLU, Sigmoid, Tanh
from .convert import from_torch
from .containers import Add, Concat, Flatten, Identity, Sequential
from .conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from .deform import DeformConv2d, ModulatedDeformConv2d
from .fuse import fuse
from .linear import Linear
from .module import REGISTRY, Module, register
from .norm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from .serialize import load
from .summary import Summary, summary
from .upsample import Upsample
from .pool import (
    SPP,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    StochasticPool2d,
)

__all__ = [
    "REGISTRY", "Module", "register", "fuse", "from_torch", "load", "summary", "Summary",
    "Add", "Concat", "Flatten", "Identity", "Sequential",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "DeformConv2d",
    "ModulatedDeformConv2d",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Linear",
    "Dropout", "Hardswish", "LeakyReLU", "ReLU", "ReLU6", "SiLU", "Sigmoid", "Tanh",
    "SPP", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "StochasticPool2d", "Upsample",
    "BasicBlock", "Bottleneck", "DepthwiseSeparable", "Hourglass", "InvertedResidual",
    "conv_norm_act",
]
