"""Linear (torch.nn.Linear): y = x @ weight.T + bias on the GEMM engine, over the last axis of
x of any rank. weight is (out_features, in_features) as in torch. The layer packs it once into
the GEMM's panels (_C.linear_prepack_weight; weights up to PACK_MAX_BYTES, a copy of that size
is kept beside the original) and adds the bias in the GEMM's epilogue.
"""

import math

import numpy as np

from .. import _C
from ..functional import matmul
from .init import initializing, make_rng, uniform
from .module import Module, register
from .._typing import Float32Array, Rng


# Larger weights (VGG's 400 MB fc6) are not duplicated: their products pack W on every call.
PACK_MAX_BYTES = 64 << 20


@register
class Linear(Module):
    """torch.nn.Linear(in_features, out_features, bias=True), initialised as torch's
    (U(-1/sqrt(in_features), 1/sqrt(in_features)) for weight and bias).

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis in and out.
    bias : bool
        Learn a bias.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the initial weights.

    Attributes
    ----------
    weight : numpy.ndarray
        (out_features, in_features) float32.
    bias : numpy.ndarray or None
        (out_features,) float32.

    Raises
    ------
    ValueError
        Sizes < 1; at run time, an input whose last axis is not in_features.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> fc = nn.Linear(3, 2, rng=0)
    >>> fc.weight[:] = [[1, 0, 0], [1, 1, 1]]
    >>> fc.bias[:] = 0
    >>> fc(np.array([[1, 2, 3]], np.float32))
    array([[1., 6.]], dtype=float32)
    """

    _not_saved = ("rng",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: Rng = None) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Linear: {name} must be an int >= 1, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        rng = make_rng(rng) if initializing() else None
        self.register_parameter("weight", uniform(rng, bound, (out_features, in_features)))
        self.register_parameter("bias", uniform(rng, bound, (out_features,)) if bias else None)

    def forward(self, x: Float32Array) -> Float32Array:
        if not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input (..., {self.in_features}), got shape "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        rows = x.reshape(-1, self.in_features)  # a view when x's strides allow
        if rows.dtype == np.float32:
            y = _C.linear(rows, self.weight, self.bias, self._packed_weight())
        else:  # matmul names the dtype in its TypeError
            y = matmul(rows, self.weight.T)
        return y.reshape(x.shape[:-1] + (self.out_features,))

    def _packed_weight(self):
        """The weight packed for the active GEMM kernel, made on first use and kept until a new
        array is assigned or a max_isa cap changes the kernel; the original is then read-only
        (an in-place edit raises instead of leaving the packed copy stale). None above
        PACK_MAX_BYTES."""
        return self._pack_once(self.weight, _C.gemm_kernel(),
                               lambda w: _C.linear_prepack_weight(w)
                               if w.nbytes <= PACK_MAX_BYTES else None)
