# Type stub of the extension module cnnfast._C (csrc/python/*.cpp), for mypy and IDEs. First
# generated with pybind11-stubgen, then written by hand: float32 arrays typed as such, pybind11's
# fixed-size std::array arguments as tuples. Private API: the Python package validates and
# normalises every argument before calling these. tests/test_packaging.py checks that this file
# names exactly the extension's functions with pybind11's parameter names, and scripts/ci_wheel.sh
# runs mypy.stubtest on it: a binding added, removed or renamed without updating it fails CI.
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import NDArray

_F32 = NDArray[np.float32]
_I64 = NDArray[np.int64]
# Arrays arrive unconverted (pybind11 noconvert): any dtype reaches the C++ check, which raises
# TypeError naming it, so parameters take any ndarray.
_Array = np.ndarray[Any, Any]
_OptArray = Optional[np.ndarray[Any, Any]]
_Pair = Tuple[int, int]
_Triple = Tuple[int, int, int]
_Quad = Tuple[int, int, int, int]
_Six = Tuple[int, int, int, int, int, int]
# The float32 result, or (result, int64 indices) when return_indices is true.
_PoolResult = Union[_F32, Tuple[_F32, _I64]]

# Runtime controls and build facts.
def detected_isa() -> str: ...
def isa() -> str: ...
def get_max_isa() -> str: ...
def set_max_isa(arg0: str) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(arg0: int) -> None: ...
def build_info() -> dict[str, str]: ...
def gemm_kernel() -> str: ...

# Operators.
def matmul(a: _Array, b: _Array, out: _OptArray = None) -> _F32: ...

class LinearPackedWeight:
    @property
    def kernel(self) -> str: ...
    @property
    def nbytes(self) -> int: ...

def linear_prepack_weight(weight: _Array) -> LinearPackedWeight: ...
def linear(
    x: _Array, weight: _Array, bias: _OptArray, packed: Optional[LinearPackedWeight] = None
) -> _F32: ...
def conv2d_algorithms() -> list[str]: ...
def conv2d(
    x: _Array,
    weight: _Array,
    bias: _OptArray,
    stride: _Pair,
    padding: _Quad,
    dilation: _Pair,
    groups: int,
    activation: Optional[str],
    negative_slope: float,
    nhwc: bool,
    algo: str,
    out: _OptArray,
    conv1d: bool = False,
    bn: Optional[Tuple[Any, Any, Any, Any, float]] = None,
    packed: Optional[Conv2dPackedWeight] = None,
    residual: _OptArray = None,
) -> _F32: ...

class Conv2dPackedWeight:
    @property
    def kernel(self) -> str: ...
    @property
    def nhwc(self) -> bool: ...
    @property
    def nbytes(self) -> int: ...

def conv2d_prepack_weight(
    weight: _Array, groups: int, nhwc: bool
) -> Optional[Conv2dPackedWeight]: ...
def conv2d_runs_via_nhwc(
    x: _Array,
    weight: _Array,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> bool: ...
def conv2d_pack_weight(weight: _Array) -> _F32: ...
def separable_conv2d(
    x: _Array,
    dw_weight: _Array,
    dw_bias: _OptArray,
    pw_weight: _Array,
    pw_bias: _OptArray,
    stride: _Pair,
    padding: _Quad,
    dilation: _Pair,
    activation: Optional[str],
    mid_activation: Optional[str],
    negative_slope: float,
    nhwc: bool,
    out: _OptArray,
) -> _F32: ...
def conv_transpose2d_algorithms() -> list[str]: ...
def conv_transpose2d(
    x: _Array,
    weight: _Array,
    bias: _OptArray,
    stride: _Pair,
    padding: _Quad,
    output_padding: _Pair,
    groups: int,
    dilation: _Pair,
    activation: Optional[str],
    negative_slope: float,
    nhwc: bool,
    out: _OptArray,
    conv1d: bool = False,
    algo: str = "auto",
) -> _F32: ...
def conv3d_algorithms() -> list[str]: ...
def conv3d(
    x: _Array,
    weight: _Array,
    bias: _OptArray,
    stride: _Triple,
    padding: _Six,
    dilation: _Triple,
    groups: int,
    activation: Optional[str],
    negative_slope: float,
    ndhwc: bool,
    algo: str,
    out: _OptArray,
) -> _F32: ...
def conv_transpose3d(
    x: _Array,
    weight: _Array,
    bias: _OptArray,
    stride: _Triple,
    padding: _Six,
    output_padding: _Triple,
    groups: int,
    dilation: _Triple,
    activation: Optional[str],
    negative_slope: float,
    ndhwc: bool,
    out: _OptArray,
) -> _F32: ...
def deform_conv2d(
    x: _Array,
    offset: _Array,
    weight: _Array,
    bias: _OptArray,
    mask: _OptArray,
    stride: _Pair,
    padding: _Quad,
    dilation: _Pair,
    activation: Optional[str],
    negative_slope: float,
    nhwc: bool,
    out: _OptArray,
    weight_tap_major: bool = False,
) -> _F32: ...
def batch_norm(
    x: _Array,
    running_mean: _OptArray,
    running_var: _OptArray,
    weight: _OptArray,
    bias: _OptArray,
    training: bool,
    factor: float,
    eps: float,
    activation: Optional[str],
    negative_slope: float,
    channels_last: bool,
    out: _OptArray,
) -> _F32: ...
def activation(x: _Array, name: str, negative_slope: float, out: _OptArray) -> _F32: ...
def pool(
    x: _Array,
    op: str,
    dims: int,
    mode: str,
    adaptive: bool,
    kernel: _Triple,
    stride: _Triple,
    pad_begin: _Triple,
    pad_end: _Triple,
    dilation: _Triple,
    output: _Triple,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int,
    power: float,
    channels_last: bool,
    return_indices: bool,
    out: _OptArray,
) -> _PoolResult: ...
def spatial_pyramid_pool(
    x: _Array, levels: list[int], is_max: bool, channels_last: bool
) -> _Array: ...
def stochastic_pool(
    x: _Array,
    op: str,
    kernel: _Triple,
    stride: _Triple,
    pad_begin: _Triple,
    pad_end: _Triple,
    channels_last: bool,
    training: bool,
    seed: int,
    return_indices: bool,
    out: _OptArray,
) -> _PoolResult: ...
def max_unpool(
    x: _Array,
    indices: _I64,
    channels_last: bool,
    dims: int,
    out_spatial: Sequence[int],
    op: str,
) -> _F32: ...
