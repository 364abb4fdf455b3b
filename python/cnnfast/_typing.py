"""Type aliases for the annotations of the public API (read by mypy and IDEs; see py.typed).

Arrays are float32 NumPy arrays: a float64 array is a TypeError at run time, and mypy flags it
too when the dtype is known statically. Aliases are evaluated at import time, so they use
typing's Optional/Union (the package supports Python 3.9).
"""

import os
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # only for the bound of ModuleT: nn imports this module
    from .nn.module import Module

# A float32 array (inputs, weights, outputs) and an int64 one (pooling indices).
Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]
OptionalArray = Optional[npt.NDArray[np.float32]]
# An array of any dtype (a layer's buffers: float32 statistics, the int64 batch counter).
AnyArray = npt.NDArray[Any]
# Anything numpy.asarray accepts (the analysis tools read plain lists too).
ArrayLike = npt.ArrayLike
# A pair of arrays: fold_batch_norm's (weight, bias), separable_factors' (col, row).
ArrayPair = Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]

# An int, or one int per spatial axis (a tuple or a list); None where the default is derived
# (a pooling's stride defaults to its kernel).
IntOrTuple = Union[int, Sequence[int]]
OptionalIntOrTuple = Optional[Union[int, Sequence[int]]]
# An int, one per axis, (begin, end) per axis, "same" or "valid" (DESIGN.md section 11).
Padding = Union[int, str, Sequence[int]]
# The output's spatial size of a transposed convolution (one int per axis), or None.
OutputSize = Optional[Sequence[int]]
# Adaptive pooling's output size: an int, one per axis (None keeps that axis), or None.
AdaptiveSize = Union[int, None, Sequence[Optional[int]]]
# Upsampling's scale: one float, one per axis, or None (then ``size`` is given).
ScaleFactor = Optional[Union[float, Sequence[float]]]
# None or an activation name ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu",
# "hardswish"); plain str rather than a Literal so that names held in variables type-check.
Activation = Optional[str]
# A pooling layout name, or None for the channels-first default of the rank.
Layout = Optional[str]

# A pooling result: the float32 array, or (array, int64 indices) with return_indices=True.
# Any rather than a Union, so that the common call without indices needs no cast.
PoolResult = Any
# The analysis tools' sizes: an int for an int input (1-D), else a tuple of ints per axis.
# Any for the same reason as PoolResult.
Size = Any

# A random seed or a NumPy Generator (weight initialisation, stochastic pooling).
Rng = Optional[Union[int, np.random.Generator]]
# A state dict: parameter and buffer names (torch's keys) -> arrays.
StateDict = Mapping[str, Any]
# Model weights: a name -> array mapping (torchvision keys) or the path of an .npz file.
Weights = Optional[Union[Mapping[str, Any], str, os.PathLike[str]]]
# A file path (model files).
PathLike = Union[str, os.PathLike[str]]
# A cnnfast.nn.Module subclass: methods that return self (train, eval, fuse) keep its type.
ModuleT = TypeVar("ModuleT", bound="Module")


# The signatures of the pooling functions that pooling.py makes once per rank (max_pool1d/2d/3d
# and so on). mypy checks each factory's inner function against its protocol, so the two cannot
# drift apart; return_indices=True (a literal) gives (values, int64 indices).
class MaxPoolFunction(Protocol):
    @overload
    def __call__(self, x: Float32Array, kernel_size: IntOrTuple,
                 stride: OptionalIntOrTuple = None, padding: Padding = 0,
                 dilation: IntOrTuple = 1, ceil_mode: bool = False,
                 return_indices: Literal[False] = False, *, layout: Layout = None,
                 out: OptionalArray = None) -> Float32Array: ...
    @overload
    def __call__(self, x: Float32Array, kernel_size: IntOrTuple,
                 stride: OptionalIntOrTuple = None, padding: Padding = 0,
                 dilation: IntOrTuple = 1, ceil_mode: bool = False, *,
                 return_indices: Literal[True], layout: Layout = None,
                 out: OptionalArray = None) -> Tuple[Float32Array, Int64Array]: ...
    @overload
    def __call__(self, x: Float32Array, kernel_size: IntOrTuple,
                 stride: OptionalIntOrTuple = None, padding: Padding = 0,
                 dilation: IntOrTuple = 1, ceil_mode: bool = False,
                 return_indices: bool = False, *, layout: Layout = None,
                 out: OptionalArray = None) -> PoolResult: ...


class AvgPoolFunction(Protocol):
    def __call__(self, x: Float32Array, kernel_size: IntOrTuple,
                 stride: OptionalIntOrTuple = None, padding: Padding = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Optional[int] = None, *, dilation: IntOrTuple = 1,
                 layout: Layout = None, out: OptionalArray = None) -> Float32Array: ...


class LpPoolFunction(Protocol):
    def __call__(self, x: Float32Array, norm_type: float, kernel_size: IntOrTuple,
                 stride: OptionalIntOrTuple = None, ceil_mode: bool = False, *,
                 padding: Padding = 0, dilation: IntOrTuple = 1, layout: Layout = None,
                 out: OptionalArray = None) -> Float32Array: ...


class AdaptivePoolFunction(Protocol):
    @overload
    def __call__(self, x: Float32Array, output_size: AdaptiveSize,
                 return_indices: Literal[False] = False, *, layout: Layout = None,
                 out: OptionalArray = None) -> Float32Array: ...
    @overload
    def __call__(self, x: Float32Array, output_size: AdaptiveSize, *,
                 return_indices: Literal[True], layout: Layout = None,
                 out: OptionalArray = None) -> Tuple[Float32Array, Int64Array]: ...
    @overload
    def __call__(self, x: Float32Array, output_size: AdaptiveSize, return_indices: bool = False,
                 *, layout: Layout = None, out: OptionalArray = None) -> PoolResult: ...


class MaxUnpoolFunction(Protocol):
    def __call__(self, x: Float32Array, indices: Int64Array, kernel_size: IntOrTuple,
                 stride: OptionalIntOrTuple = None, padding: IntOrTuple = 0,
                 output_size: OutputSize = None, *, layout: Layout = None) -> Float32Array: ...
