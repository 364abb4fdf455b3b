"""Deformable convolution (DCN v1, and v2 with a modulation mask), as
``torchvision.ops.deform_conv2d``, with a fused bias and activation."""

import numpy as np

from . import _C
from ._args import conv_padding, int_tuple
from .functional import _conv_inputs, _float32_array, _require_array
from ._typing import Activation, Float32Array, IntOrTuple, OptionalArray, Padding


def deform_conv2d(x: Float32Array, offset: Float32Array, weight: Float32Array,
                  bias: OptionalArray = None, stride: IntOrTuple = 1, padding: Padding = 0,
                  dilation: IntOrTuple = 1, mask: OptionalArray = None, *,
                  activation: Activation = None, negative_slope: float = 0.01,
                  layout: str = "NCHW", out: OptionalArray = None,
                  _weight_tap_major: bool = False) -> Float32Array:
    """Deformable 2-D convolution: ``torchvision.ops.deform_conv2d`` on NumPy float32 arrays.

    Each kernel tap (i, j) of output pixel (oh, ow) reads the input at the fractional point
    ``(oh*stride_h - pad_top + i*dilation_h + dy, ow*stride_w - pad_left + j*dilation_w + dx)``
    by bilinear interpolation, times the mask value when one is given (DCNv2), and the taps are
    then weighted and summed like a convolution.

    Parameters
    ----------
    x : numpy.ndarray
        (N, C_in, H, W) float32, or (N, H, W, C_in) with ``layout="NHWC"``.
    offset : numpy.ndarray
        (N, 2*offset_groups*kh*kw, H_out, W_out) float32 (or channels last with
        ``layout="NHWC"``): for offset group g and tap t = i*kw + j, channel
        ``2*(g*kh*kw + t)`` holds dy and the next one dx (torchvision's order).
        offset_groups is inferred from the channel count and must divide C_in; channel c
        uses offset group ``c // (C_in / offset_groups)``.
    weight : numpy.ndarray
        (C_out, C_in/groups, kh, kw) float32 (OIHW in both layouts); groups is inferred as
        ``C_in // weight.shape[1]`` (as torchvision) and must divide C_out.
    bias : numpy.ndarray, optional
        (C_out,) float32.
    stride, dilation : int or (int, int)
    padding : int, tuple or str
        int, (ph, pw), (top, bottom, left, right), "valid" or "same" (as conv2d).
    mask : numpy.ndarray, optional
        (N, offset_groups*kh*kw, H_out, W_out) float32 modulation (DCNv2), channel
        ``g*kh*kw + t``; None is DCNv1 (a mask of ones).
    activation : str, optional
        None, "relu", "relu6", "leaky_relu" (slope ``negative_slope``), "sigmoid", "tanh",
        "silu" or "hardswish", fused after the bias.
    negative_slope : float
        The slope of "leaky_relu".
    layout : str
        "NCHW" or "NHWC" (x, offset, mask and the output share it).
    out : numpy.ndarray, optional
        C-contiguous float32 array of the output shape, written and returned.

    Returns
    -------
    numpy.ndarray
        (N, C_out, H_out, W_out) float32 (or NHWC); H_out = floor((H + pad_top + pad_bottom -
        dilation*(kh-1) - 1) / stride) + 1 (conv2d's).

    Raises
    ------
    TypeError
        An array is not float32.
    ValueError
        Offset or mask shapes that do not match the output and the kernel, channel counts that
        the inferred groups or offset groups do not divide, a bad padding, layout or ``out``.

    Notes
    -----
    Borders, as torchvision: a point at or beyond one pixel outside the image (y <= -1,
    y >= H, x <= -1 or x >= W) samples 0; otherwise each of the four neighbours that lies
    inside the image contributes with its bilinear weight and those outside contribute 0.
    Infinite offsets therefore sample 0. A NaN offset or mask value makes its sample NaN, so
    every output at that pixel that reads it is NaN (torchvision leaves this undefined); no
    index is ever formed from a NaN.

    Non-contiguous inputs are copied once. (``_weight_tap_major``: private, for
    nn.DeformConv2d, whose weight holds _C.conv2d_pack_weight's values.)

    Examples
    --------
    Zero offsets give the ordinary convolution; an offset of dx = 1 on every tap moves each
    window one pixel right (the column past the edge samples 0):

    >>> import numpy as np
    >>> import cnnfast
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> offset = np.zeros((1, 2 * 9, 2, 2), dtype=np.float32)
    >>> cnnfast.deform_conv2d(x, offset, w)
    array([[[[45., 54.],
             [81., 90.]]]], dtype=float32)
    >>> offset[:, 1::2] = 1.0                       # dx of every tap
    >>> cnnfast.deform_conv2d(x, offset, w)[0, 0]
    array([[54., 39.],
           [90., 63.]], dtype=float32)
    >>> offset[:, 1::2] = 0.5                       # half a pixel: bilinear interpolation
    >>> cnnfast.deform_conv2d(x, offset, w)[0, 0]
    array([[49.5, 46.5],
           [85.5, 76.5]], dtype=float32)
    >>> mask = np.full((1, 9, 2, 2), 0.5, dtype=np.float32)   # DCNv2 modulation
    >>> cnnfast.deform_conv2d(x, offset * 0, w, mask=mask)[0, 0]
    array([[22.5, 27. ],
           [40.5, 45. ]], dtype=float32)
    """
    op = "deform_conv2d"
    _require_array(offset, op, "offset")
    if mask is not None:
        _require_array(mask, op, "mask")
    if out is not None:
        _require_array(out, op, "out")
        # Checked on the caller's arrays, before any contiguous copy hides the overlap.
        if any(a is not None and np.may_share_memory(out, a) for a in (offset, mask)):
            raise ValueError(f"{op}: out overlaps an input; pass a separate array")
    x, weight, bias = _conv_inputs(x, weight, bias, out, layout, activation, 1, op)
    offset = _float32_array(offset, op, "offset")
    if mask is not None:
        mask = _float32_array(mask, op, "mask")
    stride = int_tuple(stride, 2, op, "stride")
    dilation = int_tuple(dilation, 2, op, "dilation")
    pairs = [(0, 0), (0, 0)]  # with a wrong ndim the C++ validation reports the shapes
    if x.ndim == 4 and weight.ndim == 4:
        spatial = x.shape[1:3] if layout == "NHWC" else x.shape[2:4]
        pairs = conv_padding(padding, spatial, weight.shape[2:4], stride, dilation, op)
    flat_padding = (pairs[0][0], pairs[0][1], pairs[1][0], pairs[1][1])
    return _C.deform_conv2d(x, offset, weight, bias, mask, stride, flat_padding, dilation,
                            activation, float(negative_slope), layout == "NHWC", out,
                            bool(_weight_tap_major))
