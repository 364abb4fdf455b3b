"""Batch normalization layers, BatchNorm1d / BatchNorm2d / BatchNorm3d, over cnnfast.batch_norm
(channels on axis 1). Parameters weight/bias and buffers running_mean / running_var /
num_batches_tracked have torch.nn's names, shapes and initial values. In eval mode the running
statistics are only read; in training mode they are updated in place, as in torch (not
thread-safe: one trainer).
"""

from typing import Optional

import numpy as np

from ..normalization import batch_norm
from .module import Module, register
from .._typing import Float32Array


class _BatchNorm(Module):
    ranks = (4,)  # accepted input ranks
    layout = None  # "NHWC": channels on the last axis (a network run channels-last)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        op = type(self).__name__
        if not isinstance(num_features, int) or isinstance(num_features, bool) or \
                num_features < 1:
            raise ValueError(f"{op}: num_features must be an int >= 1, got {num_features!r}")
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
            raise ValueError(f"{op}: eps must be a number > 0, got {eps!r}")
        if momentum is not None and (not isinstance(momentum, (int, float)) or
                                     isinstance(momentum, bool)):
            raise TypeError(f"{op}: momentum must be a number or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = num_features
        self.register_parameter("weight", np.ones(c, np.float32) if affine else None)
        self.register_parameter("bias", np.zeros(c, np.float32) if affine else None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, np.float32))
            self.register_buffer("running_var", np.ones(c, np.float32))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def forward(self, x: Float32Array) -> Float32Array:
        op = type(self).__name__
        axis = -1 if self.layout == "NHWC" else 1
        if not isinstance(x, np.ndarray) or x.ndim not in self.ranks or \
                x.shape[axis] != self.num_features:
            ranks = " or ".join(f"{r}-D" for r in self.ranks)
            raise ValueError(f"{op}: expected {ranks} input with {self.num_features} channels on "
                             f"axis {axis}, got shape {getattr(x, 'shape', type(x).__name__)}")
        # Batch statistics in training mode, and always without running statistics (torch).
        use_batch = self.training
        kw = {} if self.layout is None else {"layout": self.layout}
        if not self.track_running_stats:
            return batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps, **kw)
        tracked = self.num_batches_tracked if self.training else None
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          use_batch, self.momentum, self.eps, num_batches_tracked=tracked, **kw)


@register
class BatchNorm1d(_BatchNorm):
    """torch.nn.BatchNorm1d on (N, C) or (N, C, L).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance, > 0.
    momentum : float or None
        Running-statistics factor; None: the cumulative average.
    affine : bool
        Learn ``weight`` and ``bias`` (initialised to 1 and 0).
    track_running_stats : bool
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` (without them the
        batch statistics are used in eval mode too).

    Raises
    ------
    ValueError, TypeError
        A bad num_features, eps or momentum; at run time, an input of another rank or channel
        count.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> bn = nn.BatchNorm1d(2)
    >>> x = np.array([[0, 10], [2, 30]], np.float32)
    >>> bn(x).round(4)                            # training: the batch statistics
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> bn.running_mean, int(bn.num_batches_tracked)
    (array([0.1, 2. ], dtype=float32), 1)
    """

    ranks = (2, 3)


@register
class BatchNorm2d(_BatchNorm):
    """torch.nn.BatchNorm2d on (N, C, H, W).

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats
        As :class:`BatchNorm1d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> bn = nn.BatchNorm2d(3).eval()              # eval: running statistics (0 and 1)
    >>> x = np.full((1, 3, 2, 2), 2.0, np.float32)
    >>> bool(np.allclose(bn(x), x / np.sqrt(1 + 1e-5)))
    True
    """

    ranks = (4,)


@register
class BatchNorm3d(_BatchNorm):
    """torch.nn.BatchNorm3d on (N, C, D, H, W).

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats
        As :class:`BatchNorm1d`.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.BatchNorm3d(2)(np.ones((2, 2, 3, 3, 3), np.float32)).shape
    (2, 2, 3, 3, 3)
    """

    ranks = (5,)
