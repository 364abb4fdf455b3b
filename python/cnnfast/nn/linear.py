"""Linear (torch.nn.Linear): y = x @ weight.T + bias on cnnfast.matmul, over the last axis of
x of any rank. weight is (out_features, in_features) as in torch; the product reads its
transposed view in place (the GEMM packs B panels from any strides), so nothing is re-laid out.
"""

import math

import numpy as np

from ..functional import matmul
from .init import initializing, make_rng, uniform
from .module import Module, register
from .._typing import Float32Array, Rng


@register
class Linear(Module):
    """torch.nn.Linear(in_features, out_features, bias=True), initialised as torch's
    (U(-1/sqrt(in_features), 1/sqrt(in_features)) for weight and bias)."""

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
        y = matmul(x.reshape(-1, self.in_features), self.weight.T)
        if self.bias is not None:
            y += self.bias
        return y.reshape(x.shape[:-1] + (self.out_features,))
