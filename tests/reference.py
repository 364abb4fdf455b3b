"""Independent float64 NumPy oracles for the cnnfast tests, one short function per op.

Written from the definitions, never from cnnfast's algorithms, and never importing cnnfast, so a
bug in the library cannot hide in its own reference.
"""

import itertools

import numpy as np

EPS_FLOAT32 = float(np.finfo(np.float32).eps)

# Safety factor of gemm_tolerance. The rigorous worst case for a float32 dot product of length k
# is about eps/2 * k * (k * amax * bmax): k roundings, each of a partial sum as large as it can
# be. Real partial sums are far smaller; on the GEMM sweep of test_gemm.py (random normals, all
# tiers) the worst error is 0.49 * eps * k * amax * bmax at k = 1 (one rounded product), 0.13 at
# k = 255 and 0.04 at k = 520. A factor of 2 leaves headroom and still catches real bugs: a
# wrong or missing term is off by a typical |a * b| ~ 1, the tolerance at k = 257 is ~1e-3.
GEMM_TOLERANCE_FACTOR = 2.0


def matmul(a, b):
    """a @ b in float64: c[i, j] = sum_p a[i, p] * b[p, j]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.einsum("ip,pj->ij", a, b)


def gemm_tolerance(k, amax, bmax):
    """Absolute error allowed in one float32 dot product of length k with |a| <= amax, |b| <= bmax.

    The one tolerance helper of the suite (see GEMM_TOLERANCE_FACTOR for how it was chosen);
    convolutions use it with k = C * R * S.
    """
    return GEMM_TOLERANCE_FACTOR * EPS_FLOAT32 * max(k, 1) * float(amax) * float(bmax)


# -- convolution -------------------------------------------------------------------------------

# padding_mode -> numpy.pad mode: torch.nn.Conv2d pads the input this way, then convolves validly.
NUMPY_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                   "circular": "wrap"}


def same_padding(in_size, k, stride, dilation):
    """(pad_begin, pad_end) of padding="same" on one axis: the TensorFlow rule for every stride.

    out = ceil(in / stride); total = max((out - 1) * stride + dilation * (k - 1) + 1 - in, 0);
    the odd extra pixel goes to the end. At stride 1 this is PyTorch's "same".
    """
    out = -(-in_size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - in_size, 0)
    return total // 2, total - total // 2


def conv2d(x, w, bias, stride, padding4, dilation, groups, padding_mode="zeros"):
    """Cross-correlation of NCHW x with OIHW w in float64, as torch.nn.Conv2d.

    y[n, o, i, j] = bias[o] + sum_{c,r,s} xp[n, g*Cg + c, i*sh + r*dh, j*sw + s*dw] * w[o, c, r, s]
    where g = o // (C_out / groups), Cg = C_in / groups, and xp is x padded by
    padding4 = (top, bottom, left, right) with numpy.pad's mode for padding_mode.
    stride and dilation are (h, w) pairs.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    (sh, sw), (dh, dw) = stride, dilation
    top, bottom, left, right = padding4
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)),
                mode=NUMPY_PAD_MODES[padding_mode])
    n, c_in, hp, wp = xp.shape
    c_out, cg, kh, kw = w.shape
    assert c_in == cg * groups and c_out % groups == 0
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    assert oh > 0 and ow > 0
    xg = xp.reshape(n, groups, cg, hp, wp)
    wg = w.reshape(groups, c_out // groups, cg, kh, kw)
    y = np.zeros((n, groups, c_out // groups, oh, ow))
    for r in range(kh):
        for s in range(kw):
            # The input pixels that tap (r, s) meets, for every output pixel: (n, g, c, oh, ow).
            taps = xg[:, :, :, r * dh: r * dh + (oh - 1) * sh + 1: sh,
                      s * dw: s * dw + (ow - 1) * sw + 1: sw]
            y += np.einsum("ngchw,goc->ngohw", taps, wg[:, :, :, r, s])
    y = y.reshape(n, c_out, oh, ow)
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y


def conv1d(x, w, bias, stride, padding2, dilation, groups, padding_mode="zeros"):
    """conv2d on (N, C, L) with H = 1; padding2 = (left, right); stride, dilation ints."""
    y = conv2d(np.asarray(x)[:, :, None, :], np.asarray(w)[:, :, None, :], bias, (1, stride),
               (0, 0) + tuple(padding2), (1, dilation), groups, padding_mode)
    return y[:, :, 0, :]


def activation(name, x, slope=0.01):
    """The activations of DESIGN.md section 11 in float64; name None is the identity."""
    x = np.asarray(x, dtype=np.float64)
    if name is None:
        return x

    def sigmoid():
        return 1.0 / (1.0 + np.exp(-x))

    return {
        "relu": lambda: np.maximum(x, 0.0),
        "relu6": lambda: np.clip(x, 0.0, 6.0),
        "leaky_relu": lambda: np.where(x >= 0.0, x, slope * x),
        "sigmoid": sigmoid,
        "tanh": lambda: np.tanh(x),
        "silu": lambda: x * sigmoid(),
        "hardswish": lambda: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    }[name]()


def batch_stats(x, channel_axis):
    """Per-channel mean and biased variance of x over every other axis, in float64 (two-pass)."""
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(a for a in range(x.ndim) if a != channel_axis % x.ndim)
    mean = x.mean(axis=axes)
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    return mean, var


def batch_norm(x, mean, var, weight, bias, eps, channel_axis):
    """(x - mean) / sqrt(var + eps) * weight + bias per channel, float64; None weight/bias are
    1 and 0."""
    x = np.asarray(x, dtype=np.float64)
    c = x.shape[channel_axis]
    shape = [1] * x.ndim
    shape[channel_axis] = c

    def vec(v, default):
        return np.full(c, default) if v is None else np.asarray(v, dtype=np.float64)

    y = (x - vec(mean, 0.0).reshape(shape)) / np.sqrt(vec(var, 1.0).reshape(shape) + eps)
    return y * vec(weight, 1.0).reshape(shape) + vec(bias, 0.0).reshape(shape)


def conv_transpose2d(x, w, stride, padding, groups):
    """Transposed convolution by its definition (each input pixel scatters weight * value),
    NCHW, weight (C_in, C_out/groups, kh, kw), symmetric padding (ph, pw), float64."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    n, c_in, h, wd = x.shape
    _, ocg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    full = np.zeros((n, ocg * groups, (h - 1) * sh + kh, (wd - 1) * sw + kw))
    icg = c_in // groups
    for g in range(groups):
        xs = x[:, g * icg:(g + 1) * icg]
        for i in range(h):
            for j in range(wd):
                contrib = np.einsum("nc,cokl->nokl", xs[:, :, i, j], w[g * icg:(g + 1) * icg])
                full[:, g * ocg:(g + 1) * ocg, i * sh:i * sh + kh, j * sw:j * sw + kw] += contrib
    return full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]


def pooled_size(size, k, s, d, pb, pe, ceil_mode):
    """Output length of one pooled axis (PyTorch's rule, with begin/end pads): with ceil_mode
    the last window must still start inside the input or its begin padding."""
    span = size + pb + pe - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + pb:
        out -= 1
    return out


def pool(x, mode, kernel, stride, pads, dilation, ceil_mode=False, count_include_pad=True,
         divisor_override=None, power=2.0):
    """Max / avg / Lp pooling of channels-first x (N, C, *spatial) from the definition, float64.
    pads: (begin, end) per axis. Returns (y, indices) for max (indices: flat position within
    one channel's volume; NaN wins a window and a later NaN takes the index), else y."""
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[2:]
    dims = len(spatial)
    outs = [pooled_size(spatial[a], kernel[a], stride[a], dilation[a], pads[a][0], pads[a][1],
                        ceil_mode) for a in range(dims)]
    y = np.zeros(x.shape[:2] + tuple(outs))
    idx = np.zeros(y.shape, dtype=np.int64)
    strides_flat = [int(np.prod(spatial[a + 1:])) for a in range(dims)]
    for o in np.ndindex(*outs):
        taps = []  # per axis: the positions inside the image, and the count for the divisor
        counts = []
        for a in range(dims):
            start = o[a] * stride[a] - pads[a][0]
            pos = [start + t * dilation[a] for t in range(kernel[a])]
            inside = [p for p in pos if 0 <= p < spatial[a]]
            taps.append(inside)
            counts.append(sum(p < spatial[a] + pads[a][1] for p in pos) if count_include_pad
                          else len(inside))
        grid = list(itertools.product(*taps))
        # A window may lie wholly in the padding (dilation): max -inf, sums 0.
        values = np.stack([x[(slice(None), slice(None)) + g] for g in grid], axis=-1) if grid \
            else np.zeros(x.shape[:2] + (0,))
        if mode == "max":
            best = np.full(x.shape[:2], -np.inf)
            first = [next((start for start in range(o[a] * stride[a] - pads[a][0],
                                                      10**9, dilation[a]) if start >= 0))
                     for a in range(dims)]
            arg = np.full(x.shape[:2], sum(f * m for f, m in zip(first, strides_flat)))
            for t, g in enumerate(grid):
                v = values[..., t]
                take = (v > best) | np.isnan(v)
                best = np.where(take, v, best)
                arg = np.where(take, sum(p * m for p, m in zip(g, strides_flat)), arg)
            y[(slice(None), slice(None)) + o] = best
            idx[(slice(None), slice(None)) + o] = arg
        elif mode == "avg":
            divisor = divisor_override or int(np.prod(counts))
            with np.errstate(invalid="ignore"):  # a window wholly in the padding: 0 / 0
                y[(slice(None), slice(None)) + o] = values.sum(axis=-1) / divisor
        else:
            y[(slice(None), slice(None)) + o] = (np.abs(values) ** power).sum(axis=-1) ** (
                1.0 / power)
    return (y, idx) if mode == "max" else y


def adaptive_pool(x, mode, output):
    """Adaptive max/avg pooling of channels-first x, bins [floor(o*in/out), ceil((o+1)*in/out))
    per axis, float64; max returns (y, indices)."""
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[2:]
    y = np.zeros(x.shape[:2] + tuple(output))
    idx = np.zeros(y.shape, dtype=np.int64)
    for o in np.ndindex(*output):
        bins = [range(o[a] * spatial[a] // output[a], -(-(o[a] + 1) * spatial[a] // output[a]))
                for a in range(len(spatial))]
        window = x[(slice(None), slice(None)) + tuple(slice(b.start, b.stop) for b in bins)]
        flat = window.reshape(x.shape[:2] + (-1,))
        if mode == "avg":
            y[(slice(None), slice(None)) + o] = flat.mean(axis=-1)
            continue
        positions = [np.ravel_multi_index(g, spatial) for g in itertools.product(*bins)]
        best = np.full(x.shape[:2], -np.inf)
        arg = np.full(x.shape[:2], positions[0])
        for t, p in enumerate(positions):
            v = flat[..., t]
            take = (v > best) | np.isnan(v)
            best, arg = np.where(take, v, best), np.where(take, p, arg)
        y[(slice(None), slice(None)) + o], idx[(slice(None), slice(None)) + o] = best, arg
    return (y, idx) if mode == "max" else y


def conv_transpose2d_general(x, w, bias, stride, pads, output_padding, dilation, groups):
    """Transposed convolution from the scatter definition, float64, NCHW: every input pixel
    adds x * w[tap] at (ih*stride - pad_begin + i*dilation, ...) of an output of size
    (in - 1)*stride - pad_begin - pad_end + dilation*(k - 1) + output_padding + 1; weight
    (C_in, C_out/groups, kh, kw); pads (top, bottom, left, right)."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    n, c_in, h, wd = x.shape
    _, ocg, kh, kw = w.shape
    (sh, sw), (dh, dw), (oph, opw) = stride, dilation, output_padding
    top, bottom, left, right = pads
    oh = (h - 1) * sh - top - bottom + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - left - right + dw * (kw - 1) + opw + 1
    y = np.zeros((n, ocg * groups, oh, ow))
    icg = c_in // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                # contribution[n, o, ih, iw] lands at (ih*sh - top + i*dh, iw*sw - left + j*dw)
                part = np.einsum("nchw,co->nohw", x[:, g * icg:(g + 1) * icg],
                                 w[g * icg:(g + 1) * icg, :, i, j])
                for ih in range(h):
                    r = ih * sh - top + i * dh
                    if not 0 <= r < oh:
                        continue
                    for iw in range(wd):
                        q = iw * sw - left + j * dw
                        if 0 <= q < ow:
                            y[:, g * ocg:(g + 1) * ocg, r, q] += part[:, :, ih, iw]
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1)
    return y


def bilinear(plane, y, x):
    """Bilinear interpolation of a 2-D plane at the real point (y, x), torchvision's border rule
    written out: 0 at or beyond one pixel outside; inside that, each of the four neighbours
    contributes its weight times its value if it lies in the plane, else nothing."""
    h, w = plane.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    total = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * plane[yy, xx]
    return total


def deform_conv2d(x, offset, w, bias, stride, padding4, dilation, mask=None):
    """DCN v1/v2 from the definition, NCHW, float64: y[n, o, oh, ow] = bias[o] + sum over the
    group's channels c and taps (i, j) of w[o, c, i, j] * m * bilinear(x[n, c], p + offset),
    p the regular grid point of tap (i, j). Groups and offset groups come from the shapes.
    Sample positions are formed in float32 (as torchvision and any float32 implementation do),
    everything after in float64."""
    x = np.asarray(x, dtype=np.float64)
    wd = np.asarray(w, dtype=np.float64)
    n, c_in, h, width = x.shape
    c_out, icg, kh, kw = wd.shape
    groups, ocg, taps = c_in // icg, c_out // (c_in // icg), kh * kw
    sh, sw = stride
    top, bottom, left, right = padding4
    dh, dw = dilation
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    offset_groups = offset.shape[1] // (2 * taps)
    per_og = c_in // offset_groups
    # Sampled columns: cols[n, c, i, j, oh, ow].
    cols = np.zeros((n, c_in, kh, kw, oh, ow))
    for b, c, i, j, p, q in itertools.product(range(n), range(c_in), range(kh), range(kw),
                                              range(oh), range(ow)):
        g, t = c // per_og, i * kw + j
        dy = offset[b, 2 * (g * taps + t), p, q]
        dx = offset[b, 2 * (g * taps + t) + 1, p, q]
        yy = float(np.float32(p * sh - top + i * dh) + np.float32(dy))
        xx = float(np.float32(q * sw - left + j * dw) + np.float32(dx))
        m = 1.0 if mask is None else float(mask[b, g * taps + t, p, q])
        cols[b, c, i, j, p, q] = m * bilinear(x[b, c], yy, xx)
    y = np.zeros((n, c_out, oh, ow))
    for g in range(groups):
        wg = wd[g * ocg:(g + 1) * ocg]
        cg = cols[:, g * icg:(g + 1) * icg]
        y[:, g * ocg:(g + 1) * ocg] = np.einsum("ocij,ncijpq->nopq", wg, cg)
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)[None, :, None, None]
    return y


def conv3d(x, w, bias, stride, pads, dilation, groups, padding_mode="zeros"):
    """Cross-correlation of NCDHW x with OIDHW w in float64, as torch.nn.Conv3d:
    y[n, o, d, h, w] = bias[o] + sum_{c,a,r,s} xp[n, g*Cg + c, d*sd + a*dd, h*sh + r*dh,
    w*sw + s*dw] * w[o, c, a, r, s], g = o // (C_out / groups), xp = x padded by
    pads = (front, back, top, bottom, left, right) with numpy.pad's mode for padding_mode.
    stride and dilation are (d, h, w) triples."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    xp = np.pad(x, ((0, 0), (0, 0), pads[0:2], pads[2:4], pads[4:6]),
                mode=NUMPY_PAD_MODES[padding_mode])
    n, c_in = xp.shape[:2]
    c_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    assert c_in == cg * groups and c_out % groups == 0
    out = [(size - d * (k - 1) - 1) // s + 1
           for size, k, s, d in zip(xp.shape[2:], kernel, stride, dilation)]
    assert min(out) > 0
    xg = xp.reshape((n, groups, cg) + xp.shape[2:])
    wg = w.reshape((groups, c_out // groups, cg) + kernel)
    y = np.zeros((n, groups, c_out // groups) + tuple(out))
    for tap in itertools.product(*(range(k) for k in kernel)):
        # The input elements tap meets, for every output element: (n, g, c, od, oh, ow).
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                       for t, d, o, s in zip(tap, dilation, out, stride))
        y += np.einsum("ngcdhw,goc->ngodhw", xg[(slice(None),) * 3 + window],
                       wg[(slice(None),) * 3 + tap])
    y = y.reshape((n, c_out) + tuple(out))
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1, 1)
    return y


def conv_transpose3d(x, w, bias, stride, pads, output_padding, dilation, groups):
    """Transposed 3-D convolution from the scatter definition, float64, NCDHW: every input
    element x[n, c, i0, i1, i2] adds x * w[c, o, t0, t1, t2] at output position
    i_a*stride_a - pad_begin_a + t_a*dilation_a on each axis a (dropped outside the output), of
    size (in - 1)*stride - pad_begin - pad_end + dilation*(k - 1) + output_padding + 1; weight
    (C_in, C_out/groups, kd, kh, kw); pads (front, back, top, bottom, left, right)."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    n, c_in = x.shape[:2]
    ocg = w.shape[1]
    kernel = w.shape[2:]
    out = [(i - 1) * s - pads[2 * a] - pads[2 * a + 1] + d * (k - 1) + op + 1
           for a, (i, s, d, k, op) in enumerate(zip(x.shape[2:], stride, dilation, kernel,
                                                    output_padding))]
    y = np.zeros((n, ocg * groups) + tuple(out))
    icg = c_in // groups
    for g in range(groups):
        xs, ws = x[:, g * icg:(g + 1) * icg], w[g * icg:(g + 1) * icg]
        for tap in itertools.product(*(range(k) for k in kernel)):
            part = np.einsum("ncdhw,co->nodhw", xs, ws[(slice(None), slice(None)) + tap])
            for pos in itertools.product(*(range(i) for i in x.shape[2:])):
                dst = [p * s - pads[2 * a] + t * d
                       for a, (p, s, t, d) in enumerate(zip(pos, stride, tap, dilation))]
                if all(0 <= q < o for q, o in zip(dst, out)):
                    y[(slice(None), slice(g * ocg, (g + 1) * ocg)) + tuple(dst)] += \
                        part[(slice(None), slice(None)) + pos]
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1, 1)
    return y


def upsample_nearest2d(x, out_h, out_w, ratio_h, ratio_w):
    """Nearest-neighbour resize of NCHW x to (out_h, out_w), float64, from the definition:
    output pixel (i, j) copies input (floor(i * ratio_h), floor(j * ratio_w)), clamped to the
    last pixel; ratio = input pixels per output pixel (1/scale_factor, or in/out)."""
    x = np.asarray(x, dtype=np.float64)
    rows = [min(int(np.floor(i * ratio_h)), x.shape[2] - 1) for i in range(out_h)]
    cols = [min(int(np.floor(j * ratio_w)), x.shape[3] - 1) for j in range(out_w)]
    return x[:, :, rows][:, :, :, cols]


def upsample_bilinear2d(x, out_h, out_w, ratio_h, ratio_w, align_corners):
    """Bilinear resize of NCHW x, float64, pixel by pixel. align_corners: output i samples
    input position i * (in - 1) / (out - 1); else (i + 0.5) * ratio - 0.5, negative positions
    read as 0. The sample mixes the two neighbours floor(p) and floor(p) + 1 (clamped to the
    last pixel) by their distance to p."""
    x = np.asarray(x, dtype=np.float64)
    in_h, in_w = x.shape[2:]

    def position(i, size_in, size_out, ratio):
        if align_corners:
            return i * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        return max((i + 0.5) * ratio - 0.5, 0.0)

    y = np.zeros(x.shape[:2] + (out_h, out_w))
    for i in range(out_h):
        p = position(i, in_h, out_h, ratio_h)
        r0 = int(np.floor(p))
        r1, fr = min(r0 + 1, in_h - 1), p - r0
        for j in range(out_w):
            q = position(j, in_w, out_w, ratio_w)
            c0 = int(np.floor(q))
            c1, fc = min(c0 + 1, in_w - 1), q - c0
            y[:, :, i, j] = ((1 - fr) * ((1 - fc) * x[:, :, r0, c0] + fc * x[:, :, r0, c1]) +
                             fr * ((1 - fc) * x[:, :, r1, c0] + fc * x[:, :, r1, c1]))
    return y


def max_unpool(x, indices, output_size):
    """Inverse of max pooling with indices, float64 scatter: a zero array (N, C, *output_size)
    with x[n, c, i] written at flat position indices[n, c, i] of its channel's volume."""
    x = np.asarray(x, dtype=np.float64)
    n, c = x.shape[:2]
    y = np.zeros((n, c, int(np.prod(output_size))))
    for b, ch in itertools.product(range(n), range(c)):
        y[b, ch, np.asarray(indices[b, ch]).ravel()] = x[b, ch].ravel()
    return y.reshape((n, c) + tuple(output_size))


def stochastic_pool_eval(x, kernel, stride, pads):
    """Stochastic pooling at evaluation: each window's probability-weighted average
    sum(a_i * p_i) with p_i = a_i / sum(a) = sum(a_i^2) / sum(a) (0 for an all-zero window),
    NCHW, padded positions weigh 0, float64. pads: (begin, end) per axis."""
    x = np.asarray(x, dtype=np.float64)
    (kh, kw), (sh, sw) = kernel, stride
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (xp.shape[2] - kh) // sh + 1
    ow = (xp.shape[3] - kw) // sw + 1
    y = np.zeros(x.shape[:2] + (oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        window = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
        total = window.sum(axis=(2, 3))
        squares = (window ** 2).sum(axis=(2, 3))
        y[:, :, i, j] = np.divide(squares, total, out=np.zeros_like(total), where=total > 0)
    return y


def _splitmix64(z):
    """SplitMix64's output function on a Python int (mod 2**64)."""
    mask = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def stochastic_pool_train(x, kernel, stride, pads, seed):
    """Stochastic pooling's draw as stochastic_pool2d documents it, NCHW, in float32 scalars
    (the documented arithmetic, for exact comparison): output o (its NCHW flat position) draws
    u = (SplitMix64(SplitMix64(seed) ^ o) >> 40) / 2**24 and takes the first tap inside the
    image, in (h, w) order, whose running float32 sum exceeds float32(u * sum); an all-zero
    window gives 0 and its first tap. pads: (begin, end) per axis. Returns (values, indices)."""
    x = np.asarray(x, dtype=np.float32)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    (top, bottom), (left, right) = pads
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    y = np.zeros((n, c, oh, ow), np.float32)
    idx = np.zeros((n, c, oh, ow), np.int64)
    key = _splitmix64(seed)
    for b, ch, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        taps = [(r * w + q, x[b, ch, r, q])
                for r in range(max(i * sh - top, 0), min(i * sh - top + kh, h))
                for q in range(max(j * sw - left, 0), min(j * sw - left + kw, w))]
        total = np.float32(0)
        for k, (_, v) in enumerate(taps):
            total = v if k == 0 else np.float32(total + v)
        idx[b, ch, i, j] = taps[0][0]
        if not total > 0:
            continue
        o = ((b * c + ch) * oh + i) * ow + j
        u = np.float32((_splitmix64(key ^ o) >> 40) / 2.0**24)
        target = np.float32(u * total)
        running = np.float32(0)
        for k, (position, v) in enumerate(taps):
            running = v if k == 0 else np.float32(running + v)
            if running > target:
                y[b, ch, i, j], idx[b, ch, i, j] = v, position
                break
    return y, idx
