"""cnnfast: fast CPU operators for convolutional networks on NumPy float32 arrays.

The core is C++17 with per-ISA SIMD kernels (scalar, AVX2, AVX-512) chosen at run time, and
OpenMP threads. Public names and defaults follow ``torch.nn.functional``.
"""

from ._runtime import (
    __version__,
    get_num_threads,
    isa,
    max_isa,
    runtime_info,
    set_num_threads,
    show_runtime,
)
from . import analysis
from .functional import conv1d, conv2d, conv2d_algorithms, matmul
from .transposed import conv_transpose1d, conv_transpose2d, conv_transpose2d_algorithms
from .deform import deform_conv2d
from .conv3d import conv3d, conv3d_algorithms, conv_transpose3d, conv_transpose3d_algorithms
from .separable import conv2d_separable, separable_conv2d, separable_factors
from .pooling import (
    stochastic_pool2d,
    spp_fast,
    spatial_pyramid_pool2d,
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    global_avg_pool2d,
    global_max_pool2d,
    lp_pool1d,
    lp_pool2d,
    lp_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
)
from .normalization import (
    batch_norm,
    conv_bn_act,
    fold_batch_norm,
    hardswish,
    leaky_relu,
    relu,
    relu6,
    sigmoid,
    silu,
    tanh,
)
from .upsample import upsample_bilinear2d, upsample_nearest2d
from . import nn
from . import models

__all__ = [
    "__version__",
    "analysis",
    "conv_transpose1d",
    "deform_conv2d",
    "conv_transpose2d",
    "conv_transpose2d_algorithms",
    "conv3d",
    "conv3d_algorithms",
    "conv_transpose3d",
    "conv_transpose3d_algorithms",
    "conv2d_separable",
    "separable_conv2d",
    "separable_factors",
    "stochastic_pool2d",
    "spp_fast",
    "spatial_pyramid_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "global_avg_pool2d",
    "global_max_pool2d",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "batch_norm",
    "conv_bn_act",
    "fold_batch_norm",
    "hardswish",
    "leaky_relu",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "tanh",
    "upsample_bilinear2d",
    "upsample_nearest2d",
    "conv1d",
    "conv2d",
    "conv2d_algorithms",
    "get_num_threads",
    "isa",
    "matmul",
    "max_isa",
    "models",
    "nn",
    "runtime_info",
    "set_num_threads",
    "show_runtime",
]
