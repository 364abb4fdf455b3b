"""cnnfast.deform_conv2d against the float64 reference on every SIMD tier: DCN v1 and v2, kernels
1x1/3x3/5x5/3x1, stride, dilation, padding forms, groups and offset groups, channel counts that
cross the sampler's 64-channel runs and the GEMM's K blocks, both layouts; the identities with
conv2d (zero and integer offsets), the border rule, NaN/Inf offsets, thread determinism,
torchvision when installed, and every user error.
"""

import numpy as np
import pytest

import cnnfast
import reference
from reference import gemm_tolerance


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size, k, stride, pads, dilation):
    return (size + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1


def make_case(rng, n, c_in, c_out, hw, k, groups=1, offset_groups=1, stride=1, padding=0,
              dilation=1, use_mask=False, regime="normal", offset_scale=2.0):
    """Arrays of one call: x, offset, weight, bias, mask and the resolved (t, b, l, r) padding."""
    kh, kw = pair(k)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    pads = (padding,) * 4 if isinstance(padding, int) else (
        (padding[0], padding[0], padding[1], padding[1]) if len(padding) == 2 else padding)
    oh = out_size(hw[0], kh, sh, pads[:2], dh)
    ow = out_size(hw[1], kw, sw, pads[2:], dw)
    taps = kh * kw
    if regime == "int":
        # Integer inputs and integer offsets: every sample is one input value (or 0), every
        # product and partial sum an exact small integer.
        x = rng.integers(-3, 4, (n, c_in) + tuple(hw)).astype(np.float32)
        w = rng.integers(-2, 3, (c_out, c_in // groups, kh, kw)).astype(np.float32)
        offset = rng.integers(-2, 3, (n, 2 * offset_groups * taps, oh, ow)).astype(np.float32)
        mask = rng.integers(0, 3, (n, offset_groups * taps, oh, ow)).astype(np.float32)
        bias = rng.integers(-4, 5, c_out).astype(np.float32)
    else:
        x = rng.standard_normal((n, c_in) + tuple(hw)).astype(np.float32)
        w = rng.standard_normal((c_out, c_in // groups, kh, kw)).astype(np.float32)
        offset = (offset_scale * rng.standard_normal((n, 2 * offset_groups * taps, oh, ow))
                  ).astype(np.float32)
        mask = rng.random((n, offset_groups * taps, oh, ow)).astype(np.float32)
        bias = rng.standard_normal(c_out).astype(np.float32)
    return x, offset, w, bias, (mask if use_mask else None), pads


def to_nhwc(a):
    return None if a is None else np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def run(x, offset, w, bias, mask, layout="NCHW", **kwargs):
    """cnnfast.deform_conv2d in `layout`, returned NCHW."""
    if layout == "NCHW":
        return cnnfast.deform_conv2d(x, offset, w, bias, mask=mask, **kwargs)
    y = cnnfast.deform_conv2d(to_nhwc(x), to_nhwc(offset), w, bias, mask=to_nhwc(mask),
                              layout="NHWC", **kwargs)
    return y.transpose(0, 3, 1, 2)


def check(y, expected, x, w, mask):
    k = w.shape[1] * w.shape[2] * w.shape[3]
    amax = float(np.abs(x).max()) * (1.0 if mask is None else max(1.0, float(np.abs(mask).max())))
    tol = gemm_tolerance(k + 4, amax, float(np.abs(w).max())) + 1e-6
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol)


# (n, c_in, c_out, (h, w), kernel, groups, offset_groups, stride, padding, dilation)
CASES = [
    (1, 3, 5, (6, 7), 3, 1, 1, 1, 1, 1),
    (3, 4, 6, (7, 5), 3, 2, 2, 1, 0, 1),
    (2, 8, 8, (9, 9), 3, 1, 4, 2, 1, 1),
    (1, 6, 4, (8, 8), 1, 1, 2, 1, 0, 1),
    (1, 4, 3, (9, 10), 5, 1, 1, 1, 2, 1),
    (2, 4, 6, (8, 7), (3, 1), 2, 1, 1, (1, 0), 1),
    (1, 4, 5, (11, 9), 3, 1, 2, 1, 2, 2),
    (1, 5, 7, (7, 8), 3, 1, 1, (2, 1), (0, 1, 2, 0), (1, 2)),
    # 70 channels: runs of 64 + 6; 35 per offset group: a run stops at the group boundary;
    # K = 630 > the GEMM's kc = 256, so K blocks start inside a tap.
    (1, 70, 17, (6, 6), 3, 1, 2, 1, 1, 1),
    # More pixels than one micro-panel on every tier (nr = 32, mr = 14): 33 x 2 = 66.
    (1, 3, 33, (33, 2), (3, 1), 1, 1, 1, (1, 0), 1),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_matches_reference(isa, case, use_mask, layout):
    n, c_in, c_out, hw, k, groups, og, stride, padding, dilation = case
    rng = np.random.default_rng(hash((case, use_mask)) % 2**32)
    x, offset, w, bias, mask, pads = make_case(rng, n, c_in, c_out, hw, k, groups, og, stride,
                                               padding, dilation, use_mask)
    y = run(x, offset, w, bias, mask, layout, stride=stride, padding=padding, dilation=dilation)
    expected = reference.deform_conv2d(x, offset, w, bias, pair(stride), pads, pair(dilation),
                                       mask)
    assert y.dtype == np.float32 and y.shape == expected.shape
    check(y, expected, x, w, mask)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", CASES[:9], ids=lambda c: "-".join(map(str, c)))
def test_exact_integer_regime(isa, case, layout):
    n, c_in, c_out, hw, k, groups, og, stride, padding, dilation = case
    rng = np.random.default_rng(7)
    x, offset, w, bias, mask, pads = make_case(rng, n, c_in, c_out, hw, k, groups, og, stride,
                                               padding, dilation, True, regime="int")
    y = run(x, offset, w, bias, mask, layout, stride=stride, padding=padding, dilation=dilation)
    expected = reference.deform_conv2d(x, offset, w, bias, pair(stride), pads, pair(dilation),
                                       mask)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups,og", [(1, 1), (2, 2), (1, 4)])
def test_zero_offsets_equal_conv2d(isa, layout, groups, og):
    rng = np.random.default_rng(3)
    x, offset, w, bias, _, _ = make_case(rng, 2, 8, 6, (7, 9), 3, groups, og, 1, 1, 1,
                                         regime="int")
    zero = np.zeros_like(offset)
    y = run(x, zero, w, bias, None, layout, padding=1)
    np.testing.assert_array_equal(y, cnnfast.conv2d(x, w, bias, padding=1, groups=groups))
    # A mask of ones is DCNv1.
    ones = np.ones((2, og * 9) + zero.shape[2:], np.float32)
    np.testing.assert_array_equal(run(x, zero, w, bias, ones, layout, padding=1), y)


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (-1, 3), (2, 2)])
def test_integer_offsets_equal_shifted_conv2d(isa, dy, dx):
    rng = np.random.default_rng(4)
    x, offset, w, bias, _, _ = make_case(rng, 1, 5, 4, (8, 9), 3, padding=1, regime="int")
    # Tap (i, j) of output (p, q) reads x at (p - 1 + i + dy, q - 1 + j + dx): a valid conv2d
    # over the window of x, zero-padded by 4, that starts at (3 + dy, 3 + dx).
    h, wd = x.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    shifted = np.ascontiguousarray(padded[:, :, 3 + dy:5 + dy + h, 3 + dx:5 + dx + wd])
    offset = np.zeros_like(offset)
    offset[:, 0::2] = dy
    offset[:, 1::2] = dx
    y = cnnfast.deform_conv2d(x, offset, w, bias, padding=1)
    np.testing.assert_array_equal(y, cnnfast.conv2d(shifted, w, bias))


def test_border_points(isa):
    """Samples placed exactly on and around every border of a 5 x 6 image: at -1 and H or W
    (zero), just inside them (one corner weighted), exactly on the first and last row or column,
    half-way out. A 1x1 kernel gives 30 output pixels; each one's offset moves its sample to
    one (y, x) of the grid of points, 30 points a call."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 5, 6)).astype(np.float32)
    w = rng.standard_normal((2, 3, 1, 1)).astype(np.float32)
    points = [-1.0, -0.999, -0.5, 0.0, 0.25, 3.5, 4.0, 4.5, 4.999, 5.0, 5.5, 6.0, 7.0]
    ys, xs = (a.ravel() for a in np.meshgrid(points, points, indexing="ij"))
    grid_y, grid_x = np.meshgrid(np.arange(5.0), np.arange(6.0), indexing="ij")
    for start in range(0, ys.size, 30):
        point_y, point_x = np.zeros(30), np.zeros(30)
        point_y[:ys.size - start] = ys[start:start + 30]
        point_x[:xs.size - start] = xs[start:start + 30]
        offset = np.stack([point_y.reshape(5, 6) - grid_y,
                           point_x.reshape(5, 6) - grid_x])[None].astype(np.float32)
        y = cnnfast.deform_conv2d(x, offset, w)
        expected = reference.deform_conv2d(x, offset, w, None, (1, 1), (0, 0, 0, 0), (1, 1))
        check(y, expected, x, w, None)
        if start == 0:
            assert np.all(y[0, :, 0, 0] == 0)  # the point (-1, -1) samples zero


def test_mask_zero_gives_bias(isa):
    rng = np.random.default_rng(6)
    x, offset, w, bias, _, _ = make_case(rng, 2, 4, 3, (6, 6), 3, offset_groups=2, padding=1)
    mask = np.zeros((2, 18, 6, 6), np.float32)
    y = cnnfast.deform_conv2d(x, offset, w, bias, padding=1, mask=mask)
    np.testing.assert_array_equal(y, np.broadcast_to(bias[None, :, None, None], y.shape))


def test_nan_and_inf_offsets(isa):
    """A NaN offset makes the outputs at that pixel NaN (and nothing else); an infinite one
    samples zero, like any point outside the image."""
    rng = np.random.default_rng(8)
    x, offset, w, bias, _, _ = make_case(rng, 1, 4, 3, (6, 6), 3, padding=1)
    bad = offset.copy()
    bad[0, 4, 2, 3] = np.nan
    y = cnnfast.deform_conv2d(x, bad, w, bias, padding=1)
    assert np.isnan(y[0, :, 2, 3]).all()
    finite = np.ones(y.shape, bool)
    finite[0, :, 2, 3] = False
    good = cnnfast.deform_conv2d(x, offset, w, bias, padding=1)
    np.testing.assert_array_equal(y[finite], good[finite])
    for value in (np.inf, -np.inf):
        inf = offset.copy()
        inf[0, 4, 2, 3] = value  # tap 2's dy at pixel (2, 3) -> sample 0
        expected_offset = offset.copy()
        expected_offset[0, 4, 2, 3] = 1e6  # far outside: also 0
        np.testing.assert_array_equal(cnnfast.deform_conv2d(x, inf, w, bias, padding=1),
                                      cnnfast.deform_conv2d(x, expected_offset, w, bias,
                                                            padding=1))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "silu"])
def test_fused_activation(activation):
    rng = np.random.default_rng(9)
    x, offset, w, bias, mask, _ = make_case(rng, 1, 6, 5, (7, 7), 3, padding=1, use_mask=True)
    plain = cnnfast.deform_conv2d(x, offset, w, bias, padding=1, mask=mask)
    fused = cnnfast.deform_conv2d(x, offset, w, bias, padding=1, mask=mask, activation=activation,
                                  negative_slope=0.2)
    expected = reference.activation(activation, plain.astype(np.float64), 0.2)
    np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-5)


def test_same_padding_and_out(isa):
    rng = np.random.default_rng(10)
    x, _, w, bias, _, _ = make_case(rng, 2, 4, 4, (7, 8), 3)
    offset = rng.standard_normal((2, 18, 4, 4)).astype(np.float32)
    y = cnnfast.deform_conv2d(x, offset, w, bias, stride=2, padding="same")
    expected = reference.deform_conv2d(x, offset, w, bias, (2, 2), (1, 1, 0, 1), (1, 1))
    check(y, expected, x, w, None)
    out = np.full(y.shape, 7.0, np.float32)
    assert cnnfast.deform_conv2d(x, offset, w, bias, stride=2, padding="same", out=out) is out
    np.testing.assert_array_equal(out, y)


def test_threads_bitwise(restore_threads):
    rng = np.random.default_rng(11)
    x, offset, w, bias, mask, _ = make_case(rng, 2, 70, 40, (13, 11), 3, offset_groups=2,
                                            padding=1, use_mask=True)
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(cnnfast.deform_conv2d(x, offset, w, bias, padding=1, mask=mask))
        results.append(run(x, offset, w, bias, mask, "NHWC", padding=1))
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[1], results[3])


def test_strided_inputs_are_copied():
    rng = np.random.default_rng(12)
    x, offset, w, bias, mask, _ = make_case(rng, 1, 4, 3, (6, 6), 3, padding=1, use_mask=True)
    big_offset = np.zeros((1, 36, 6, 6), np.float32)
    big_offset[:, ::2] = offset
    y = cnnfast.deform_conv2d(x, big_offset[:, ::2], w, bias, padding=1, mask=mask)
    np.testing.assert_array_equal(y, cnnfast.deform_conv2d(x, offset, w, bias, padding=1,
                                                           mask=mask))


def test_matches_torchvision():
    torch = pytest.importorskip("torch")
    tv_ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(13)
    for groups, og, stride, padding, dilation, use_mask in [
            (1, 1, 1, 1, 1, False), (2, 2, 2, 1, 1, True), (1, 4, 1, 2, 2, True)]:
        x, offset, w, bias, mask, _ = make_case(rng, 2, 8, 6, (9, 10), 3, groups, og, stride,
                                                padding, dilation, use_mask)
        y = cnnfast.deform_conv2d(x, offset, w, bias, stride, padding, dilation, mask)
        t = tv_ops.deform_conv2d(
            torch.from_numpy(x), torch.from_numpy(offset), torch.from_numpy(w),
            torch.from_numpy(bias), stride, padding, dilation,
            None if mask is None else torch.from_numpy(mask)).numpy()
        np.testing.assert_allclose(y, t, rtol=1e-4, atol=1e-4)


# -- user errors ---------------------------------------------------------------------------------


def valid_args():
    rng = np.random.default_rng(14)
    x, offset, w, bias, mask, _ = make_case(rng, 2, 4, 6, (5, 5), 3, offset_groups=2,
                                            use_mask=True)
    return x, offset, w, bias, mask


def test_valid_args_run():
    x, offset, w, bias, mask = valid_args()
    assert cnnfast.deform_conv2d(x, offset, w, bias, mask=mask).shape == (2, 6, 3, 3)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(offset=a["offset"][:, :35]), "offset must be 4-D with 2\\*offset_groups"),
    (lambda a: a.update(offset=a["offset"][:, :, :2]), "offset must have shape"),
    (lambda a: a.update(offset=a["offset"][:1]), "offset must have shape"),
    (lambda a: a.update(offset=a["offset"][0]), "offset must be 4-D"),
    (lambda a: a.update(offset=np.zeros((2, 54, 3, 3), np.float32), mask=None),
     "offset_groups=3 .* must divide C_in=4"),
    (lambda a: a.update(mask=a["mask"][:, :9]), "mask must have shape"),
    (lambda a: a.update(mask=a["mask"][:, :, :, :1]), "mask must have shape"),
    (lambda a: a.update(weight=np.zeros((6, 3, 3, 3), np.float32)), "weight .* has C_in/groups=3"),
    (lambda a: a.update(weight=np.zeros((5, 2, 3, 3), np.float32), bias=None),
     "C_out=5 .* divisible by groups=2"),
    (lambda a: a.update(bias=np.zeros(5, np.float32)), "bias must have shape \\(6,\\)"),
    (lambda a: a.update(x=a["x"][0]), "x must be 4-D"),
    (lambda a: a.update(weight=np.zeros((6, 4, 3), np.float32)), "weight must be 4-D"),
    (lambda a: a.update(weight=np.zeros((6, 4, 7, 3), np.float32)), "kernel \\(7, 3\\)"),
    (lambda a: a.update(stride=0), "stride must be >= 1"),
    (lambda a: a.update(dilation=(1, 0)), "dilation must be >= 1"),
    (lambda a: a.update(padding=-1), "padding must be >= 0"),
    (lambda a: a.update(layout="NCWH"), "unknown layout"),
    (lambda a: a.update(activation="gelu"), "unknown activation"),
    (lambda a: a.update(out=np.zeros((2, 6, 3, 4), np.float32)), "out has shape"),
])
def test_value_errors(change, message):
    x, offset, w, bias, mask = valid_args()
    args = dict(x=x, offset=offset, weight=w, bias=bias, mask=mask)
    change(args)
    with pytest.raises(ValueError, match="deform_conv2d: " + message):
        cnnfast.deform_conv2d(**args)


def test_out_overlapping_an_input():
    x, offset, w, bias, mask = valid_args()
    big = np.zeros((2 * 6 * 3 * 3 + offset.size,), np.float32)
    out = big[:2 * 6 * 3 * 3].reshape(2, 6, 3, 3)
    with pytest.raises(ValueError, match="out overlaps an input"):
        cnnfast.deform_conv2d(x, out.reshape(-1)[None, :, None, None], w, out=out)
    with pytest.raises(ValueError, match="out overlaps an input"):
        cnnfast.deform_conv2d(x, offset, w, bias, mask=mask[:, :, :, :], out=mask[:, :6, :, :])


@pytest.mark.parametrize("name", ["x", "offset", "weight", "bias", "mask"])
def test_type_errors(name):
    x, offset, w, bias, mask = valid_args()
    args = dict(x=x, offset=offset, weight=w, bias=bias, mask=mask)
    args[name] = args[name].astype(np.float64)
    with pytest.raises(TypeError, match=f"deform_conv2d: {name} has dtype float64"):
        cnnfast.deform_conv2d(**args)
    args[name] = args[name].tolist()
    with pytest.raises(TypeError, match=f"deform_conv2d: {name} must be a numpy.ndarray"):
        cnnfast.deform_conv2d(**args)
