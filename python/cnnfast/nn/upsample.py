"""Upsample (torch.nn.Upsample, modes "nearest" and "bilinear"): cnnfast.upsample_nearest2d /
upsample_bilinear2d on (N, C, H, W). No parameters; the Hourglass block uses it.
"""

from typing import Optional

from ..upsample import upsample_bilinear2d, upsample_nearest2d
from .module import Module, register
from .._typing import Float32Array, OptionalIntOrTuple, ScaleFactor


@register
class Upsample(Module):
    """torch.nn.Upsample(size=None, scale_factor=None, mode="nearest", align_corners=None).

    Parameters
    ----------
    size : int or (int, int), optional
        The output size; exactly one of ``size`` and ``scale_factor``.
    scale_factor : float or (float, float), optional
        The scale per axis.
    mode : str
        "nearest" or "bilinear".
    align_corners : bool, optional
        For "bilinear" only.

    Raises
    ------
    ValueError
        Another mode, align_corners with "nearest", both or neither of size and scale_factor.

    Examples
    --------
    >>> import numpy as np
    >>> from cnnfast import nn
    >>> nn.Upsample(scale_factor=2)(np.ones((1, 3, 4, 5), np.float32)).shape
    (1, 3, 8, 10)
    """

    def __init__(self, size: OptionalIntOrTuple = None, scale_factor: ScaleFactor = None,
                 mode: str = "nearest", align_corners: Optional[bool] = None) -> None:
        super().__init__()
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"Upsample: mode must be 'nearest' or 'bilinear', got {mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("Upsample: align_corners only applies to mode='bilinear'")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"Upsample: give exactly one of size and scale_factor, got "
                             f"size={size!r}, scale_factor={scale_factor!r}")
        self.size = tuple(size) if isinstance(size, (tuple, list)) else size
        self.scale_factor = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) \
            else scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Float32Array) -> Float32Array:
        if self.mode == "nearest":
            return upsample_nearest2d(x, self.scale_factor, self.size)
        return upsample_bilinear2d(x, self.scale_factor, self.size, bool(self.align_corners))
