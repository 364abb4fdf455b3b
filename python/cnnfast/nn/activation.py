"""Activation layers (ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, SiLU, Hardswish) over cnnfast's
elementwise activations, and Dropout (the identity in eval mode; in training mode a mask drawn
from the layer's numpy Generator). ``inplace=True`` writes into a C-contiguous float32 input, as
torch's does. Each activation layer names its ``activation=`` string, which fuse() moves into
the convolution before it.
"""

import numpy as np

from .. import normalization
from .init import make_rng
from .module import Module, register
from .._typing import Float32Array, Rng


class _Activation(Module):
    activation = None  # the name in DESIGN.md section 11's list

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = bool(inplace)

    @property
    def negative_slope(self) -> float:
        return 0.01

    def forward(self, x: Float32Array) -> Float32Array:
        out = x if self.inplace and isinstance(x, np.ndarray) and x.dtype == np.float32 and \
            x.flags.c_contiguous and x.flags.writeable else None
        if self.activation == "leaky_relu":
            return normalization.leaky_relu(x, self.negative_slope, out=out)
        return getattr(normalization, self.activation)(x, out=out)


@register
class ReLU(_Activation):
    """max(x, 0).

    Parameters
    ----------
    inplace : bool
        Write into the input when it is a C-contiguous writable float32 array.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.ReLU()(np.array([-1, 2], np.float32))
    array([0., 2.], dtype=float32)
    """

    activation = "relu"


@register
class ReLU6(_Activation):
    """min(max(x, 0), 6).

    Parameters
    ----------
    inplace : bool
        Write into the input when it is a C-contiguous writable float32 array.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.ReLU6()(np.array([-1, 2, 9], np.float32))
    array([0., 2., 6.], dtype=float32)
    """

    activation = "relu6"


@register
class LeakyReLU(_Activation):
    """x if x >= 0 else negative_slope * x.

    Parameters
    ----------
    negative_slope : float
        The factor for negative inputs.
    inplace : bool
        Write into the input when it is a C-contiguous writable float32 array.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.LeakyReLU(0.5)(np.array([-2, 2], np.float32))
    array([-1.,  2.], dtype=float32)
    """

    activation = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self._slope = float(negative_slope)

    @property
    def negative_slope(self) -> float:
        return self._slope


@register
class Sigmoid(_Activation):
    """1 / (1 + exp(-x)).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.Sigmoid()(np.zeros(2, np.float32))
    array([0.5, 0.5], dtype=float32)
    """

    activation = "sigmoid"

    def __init__(self) -> None:
        super().__init__()


@register
class Tanh(_Activation):
    """tanh(x).

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.Tanh()(np.zeros(2, np.float32))
    array([0., 0.], dtype=float32)
    """

    activation = "tanh"

    def __init__(self) -> None:
        super().__init__()


@register
class SiLU(_Activation):
    """x * sigmoid(x).

    Parameters
    ----------
    inplace : bool
        Write into the input when it is a C-contiguous writable float32 array.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.SiLU()(np.zeros(2, np.float32))
    array([0., 0.], dtype=float32)
    """

    activation = "silu"


@register
class Hardswish(_Activation):
    """x * relu6(x + 3) / 6.

    Parameters
    ----------
    inplace : bool
        Write into the input when it is a C-contiguous writable float32 array.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.Hardswish()(np.array([-3, 3], np.float32))
    array([-0.,  3.], dtype=float32)
    """

    activation = "hardswish"


@register
class Dropout(Module):
    """torch.nn.Dropout: the identity in eval mode; in training mode each element is zeroed
    with probability p and the others scaled by 1 / (1 - p), the mask drawn from ``rng`` (a
    numpy Generator or int seed; its lock serialises concurrent draws).

    Parameters
    ----------
    p : float
        The probability of zeroing, 0 <= p <= 1.
    inplace : bool
        Write into the input.
    rng : int or numpy.random.Generator, optional
        Seed or generator of the masks.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> drop = nn.Dropout(0.5, rng=0)
    >>> sorted(set(drop(np.ones(100, np.float32)).tolist()))    # zeroed or scaled by 2
    [0.0, 2.0]
    >>> drop.eval()(np.ones(3, np.float32))                      # eval: the identity
    array([1., 1., 1.], dtype=float32)
    """

    _not_saved = ("rng",)

    def __init__(self, p: float = 0.5, inplace: bool = False, rng: Rng = None) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p, self.inplace = float(p), bool(inplace)
        self.rng = make_rng(rng)

    def forward(self, x: Float32Array) -> Float32Array:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return np.zeros_like(x)
        keep = self.rng.random(x.shape) >= self.p
        scale = np.float32(1.0 / (1.0 - self.p))
        if self.inplace:
            np.multiply(x, keep * scale, out=x)
            return x
        return x * (keep * scale)
