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
from .functional import conv1d, conv2d, conv2d_algorithms, matmul
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

__all__ = [
    "__version__",
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
    "conv1d",
    "conv2d",
    "conv2d_algorithms",
    "get_num_threads",
    "isa",
    "matmul",
    "max_isa",
    "runtime_info",
    "set_num_threads",
    "show_runtime",
]
