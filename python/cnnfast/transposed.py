"""Transposed convolution: ``conv_transpose2d`` / ``conv_transpose1d`` with PyTorch's semantics,
the adjoint of conv2d (if conv2d is the matrix C acting on the flattened input, the transposed
convolution with the same weight is Cᵀ)."""

import numpy as np

from . import _C
from ._args import int_tuple, is_int
from .functional import _conv_inputs, _require_array

ALGORITHMS = ("auto", "gemm_col2im", "phase")


def conv_transpose2d_algorithms():
    """Names accepted by ``conv_transpose2d(..., algo=...)``.

    "gemm_col2im": one GEMM per image and group makes every input pixel's columns (Wᵀx), then
    each output row gathers the columns landing on it (no write races between threads).
    "phase" (dilation 1): the stride_h x stride_w sub-pixel phases, each a dense stride-1
    convolution of x with the taps that land on that phase (conv2d's implicit GEMM; no inserted
    zeros), written into every stride-th output; built in Python on conv2d for now. "auto" is
    "gemm_col2im": measured against torch (1 thread, bench/shapes/conv_transpose2d.txt, one
    process), "phase" ran 0.09-3.8x where "gemm_col2im" ran 0.72-3.9x (its per-phase weight
    gathers and strided copies dominate the small DCGAN layers).
    """
    return list(ALGORITHMS)


def _phase_axis(size, out, k, s, pad_begin, r):
    """For output positions o = q*s + r (q = 0..), the taps i = i0 + t*s (t < taps) that land
    there read x[q + c0 - t]: as a correlation, the reversed taps over x padded by
    (taps - 1 - c0) at the start. Returns (taps list in correlation order, pad_begin, pad_end,
    count of outputs q) with pads possibly negative (crop x)."""
    i0 = (r + pad_begin) % s
    taps = list(range(i0, k, s))[::-1]
    count = len(range(r, out, s))
    if not taps or count == 0:
        return taps, 0, 0, count
    c0 = (r + pad_begin - i0) // s
    begin = len(taps) - 1 - c0
    end = count - 1 + len(taps) - size - begin  # conv2d's output length = count exactly
    return taps, begin, end, count


def _phase(x, weight, bias, stride, pads, output_padding, groups, activation, negative_slope,
           layout, out):
    """conv_transpose2d by stride phases (dilation 1), built on conv2d's implicit GEMM."""
    from .functional import conv2d

    nhwc = layout == "NHWC"
    n = x.shape[0]
    c_in, ocg, kh, kw = weight.shape
    h, w = (x.shape[1], x.shape[2]) if nhwc else (x.shape[2], x.shape[3])
    oh = (h - 1) * stride[0] - pads[0] - pads[1] + kh + output_padding[0]
    ow = (w - 1) * stride[1] - pads[2] - pads[3] + kw + output_padding[1]
    c_out = ocg * groups
    shape = (n, oh, ow, c_out) if nhwc else (n, c_out, oh, ow)
    y = out if out is not None else np.empty(shape, np.float32)
    icg = c_in // groups
    # (C_in, ocg, kh, kw) -> the forward conv's (C_out, icg, kh, kw), per group.
    w_fwd = weight.reshape(groups, icg, ocg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(
        c_out, icg, kh, kw)
    zero_bias = bias if bias is not None else np.zeros(c_out, np.float32)
    for rh in range(stride[0]):
        taps_h, top, bottom, qh = _phase_axis(h, oh, kh, stride[0], pads[0], rh)
        for rw in range(stride[1]):
            taps_w, left, right, qw = _phase_axis(w, ow, kw, stride[1], pads[2], rw)
            if qh == 0 or qw == 0:
                continue
            phase = (slice(rh, None, stride[0]), slice(rw, None, stride[1]))
            target = y[(slice(None),) + phase] if nhwc else y[(slice(None), slice(None)) + phase]
            if not taps_h or not taps_w:  # no tap lands here: the bias alone
                target[...] = zero_bias if nhwc else zero_bias[:, None, None]
                if activation is not None:
                    target[...] = _C.activation(np.ascontiguousarray(target), activation,
                                                float(negative_slope), None)
                continue
            sub = np.ascontiguousarray(w_fwd[:, :, taps_h][:, :, :, taps_w])
            xs = x
            # Negative pads crop x instead (conv2d takes pads >= 0).
            hs = slice(max(0, -top), h - max(0, -bottom))
            ws = slice(max(0, -left), w - max(0, -right))
            xs = xs[:, hs, ws, :] if nhwc else xs[:, :, hs, ws]
            part = conv2d(xs, sub, bias, 1, (max(top, 0), max(bottom, 0), max(left, 0),
                                             max(right, 0)), 1, groups, activation=activation,
                          negative_slope=negative_slope, layout=layout)
            target[...] = part
    return y


def _pairs(padding, op):
    """(top, bottom, left, right) from an int, (ph, pw) or a 4-tuple."""
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints (PyTorch's transposed "
                         f"convolutions take no padding strings), got {padding!r}")
    if is_int(padding):
        values = (int(padding),) * 4
    elif isinstance(padding, (tuple, list)) and all(is_int(v) for v in padding) and \
            len(padding) in (2, 4):
        values = tuple(int(v) for v in padding)
        if len(values) == 2:
            values = (values[0], values[0], values[1], values[1])
    else:
        raise ValueError(f"{op}: padding must be an int, (ph, pw) or (top, bottom, left, right), "
                         f"got {padding!r}")
    if min(values) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding!r}")
    return values


def _resolve(x, weight, stride, padding, output_padding, dilation, output_size, layout, op):
    """(stride, pads, output_padding, dilation) with output_size turned into output_padding the
    way PyTorch does (it must lie in [smallest, smallest + stride - 1] per axis)."""
    stride = int_tuple(stride, 2, op, "stride")
    dilation = int_tuple(dilation, 2, op, "dilation")
    pads = _pairs(padding, op)
    output_padding = int_tuple(output_padding, 2, op, "output_padding")
    if output_size is not None and x.ndim == 4 and weight.ndim == 4:
        size = list(output_size)
        if len(size) > 2:  # (N, C, H, W) or (C, H, W) as PyTorch accepts: the spatial sizes
            size = size[-2:]
        if len(size) != 2 or not all(is_int(v) for v in size):
            raise ValueError(f"{op}: output_size must give the 2 spatial sizes, got "
                             f"{output_size!r}")
        spatial = x.shape[1:3] if layout == "NHWC" else x.shape[2:4]
        smallest = [(i - 1) * s - pb - pe + d * (k - 1) + 1 for i, s, pb, pe, d, k in zip(
            spatial, stride, pads[0::2], pads[1::2], dilation, weight.shape[2:4])]
        for got, low, s in zip(size, smallest, stride):
            if not low <= got <= low + s - 1:
                raise ValueError(f"{op}: output_size {tuple(output_size)!r} is not reachable: "
                                 f"each size must lie between {tuple(smallest)!r} and "
                                 f"{tuple(v + s - 1 for v, s in zip(smallest, stride))!r}")
        output_padding = tuple(got - low for got, low in zip(size, smallest))
    return stride, pads, output_padding, dilation


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, output_size=None, activation=None, negative_slope=0.01,
                     layout="NCHW", algo="auto", out=None):
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``, with a fused
    bias and activation.

    x: (N, C_in, H, W) float32, or (N, H, W, C_in) with ``layout="NHWC"``; weight:
    (C_in, C_out/groups, kh, kw) (PyTorch's layout) in both layouts. Output size per axis:
    (H - 1)*stride - pad_top - pad_bottom + dilation*(kh - 1) + output_padding + 1. ``padding``
    is an int, (ph, pw) or (top, bottom, left, right): the padding of the forward convolution
    this is the adjoint of (cropped from the output's start and end). ``output_padding`` must be
    smaller than the stride or the dilation; ``output_size`` (the spatial sizes) picks it as
    PyTorch does. ``algo``: "auto" or a name from ``conv_transpose2d_algorithms()``.
    """
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                           output_size, activation, negative_slope, layout, algo, out,
                           "conv_transpose2d")


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                    output_size, activation, negative_slope, layout, algo, out, op):
    if algo not in ALGORITHMS:
        raise ValueError(f"{op}: unknown algo {algo!r}; expected one of {', '.join(ALGORITHMS)}")
    x, weight, bias = _conv_inputs(x, weight, bias, out, layout, activation, groups, op)
    stride, pads, output_padding, dilation = _resolve(x, weight, stride, padding, output_padding,
                                                      dilation, output_size, layout, op)
    if algo == "phase" and dilation != (1, 1):
        raise ValueError(f"{op}: algo='phase' needs dilation 1, got {dilation}")
    if algo == "auto":
        algo = "gemm_col2im"
    if algo == "phase":
        # The C++ validation first (shapes, output_padding, channels), on a dry run's shape.
        _C.conv_transpose2d(x[:0], weight, bias, stride, pads, output_padding, int(groups),
                            dilation, activation, float(negative_slope), layout == "NHWC",
                            None, op == "conv_transpose1d")
        if out is not None:
            expected = _C.conv_transpose2d(x[:1], weight, bias, stride, pads, output_padding,
                                           int(groups), dilation, None, 0.0, layout == "NHWC",
                                           None, False).shape
            expected = (x.shape[0],) + tuple(expected[1:])
            if out.shape != expected or out.dtype != np.float32 or \
                    not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError(f"{op}: out has shape {out.shape} but the result has shape "
                                 f"{expected} (and must be a writable C-contiguous float32 "
                                 f"array)")
        return _phase(x, weight, bias, stride, pads, output_padding, int(groups), activation,
                      negative_slope, layout, out)
    return _C.conv_transpose2d(x, weight, bias, stride, pads, output_padding, int(groups),
                               dilation, activation, float(negative_slope), layout == "NHWC",
                               out, op == "conv_transpose1d")


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, output_size=None, activation=None, negative_slope=0.01,
                     layout="NCL", algo="auto", out=None):
    """1-D transposed convolution, as ``torch.nn.functional.conv_transpose1d``: the arguments of
    :func:`conv_transpose2d` over (N, C_in, L) (or (N, L, C_in) with ``layout="NLC"``), weight
    (C_in, C_out/groups, k), padding an int or (left, right). Runs as the 2-D one with H = 1."""
    op = "conv_transpose1d"
    if layout not in ("NCL", "NLC"):
        raise ValueError(f"{op}: unknown layout {layout!r}; expected 'NCL' or 'NLC'")
    for name, value in (("x", x), ("weight", weight)):
        _require_array(value, op, name)
        if value.ndim != 3:
            raise ValueError(f"{op}: {name} must be 3-D, got shape {value.shape}")
    (s,), (d,), (opad,) = (int_tuple(v, 1, op, n) for v, n in (
        (stride, "stride"), (dilation, "dilation"), (output_padding, "output_padding")))
    if is_int(padding):
        left = right = int(padding)
    elif isinstance(padding, (tuple, list)) and len(padding) in (1, 2) and \
            all(is_int(v) for v in padding):
        left, right = int(padding[0]), int(padding[-1])
    else:
        raise ValueError(f"{op}: padding must be an int or (left, right), got {padding!r}")
    nlc = layout == "NLC"
    x4 = x[:, None] if nlc else x[:, :, None]
    size = None if output_size is None else (1, list(output_size)[-1])
    out4 = None if out is None else (out[:, None] if nlc else out[:, :, None])
    y = _conv_transpose(x4, weight[:, :, None], bias, (1, s), (0, 0, left, right), (0, opad),
                        groups, (1, d), size, activation, negative_slope,
                        "NHWC" if nlc else "NCHW", algo, out4, op)
    return out if out is not None else (y[:, 0] if nlc else y[:, :, 0])
