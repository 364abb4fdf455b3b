"""Poolings against the float64 references in reference.py: max / avg / Lp in 1-D, 2-D and
3-D over a sweep of kernels, strides, paddings, dilations and ceil modes, adaptive and global
pooling, max_unpool, both layouts, every ISA tier; NaN propagation, thread-count determinism,
every error path, and a PyTorch cross-check when it is installed."""

import zlib

import numpy as np
import pytest

import cnnfast
import reference

EPS32 = np.finfo(np.float32).eps
LAYOUTS = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def to_layout(x, channels_last):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x


def from_layout(y, channels_last):
    return np.moveaxis(y, -1, 1) if channels_last else y


# (shape NC..., kernel, stride, pads ((b, e) per axis), dilation, ceil_mode): hand-picked edges.
CASES = [
    ((3, 4, 11, 13), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), False),  # ResNet stem pool
    ((1, 3, 13, 13), (3, 3), (2, 2), ((0, 0), (0, 0)), (1, 1), False),  # AlexNet overlapping
    ((2, 3, 12, 12), (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1), False),  # VGG 2x2/2
    ((1, 5, 9, 10), (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), False),   # Inception 3x3/1
    ((2, 3, 10, 11), (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), True),   # ceil, last in pad
    ((1, 2, 6, 6), (3, 3), (3, 3), ((1, 1), (1, 1)), (1, 1), True),     # ceil: window dropped
    ((1, 2, 7, 9), (2, 5), (1, 3), ((1, 0), (2, 2)), (1, 1), True),     # non-square, asym.
    ((2, 3, 9, 9), (3, 2), (2, 1), ((1, 1), (0, 1)), (2, 3), False),    # dilation
    ((1, 17, 1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), False),   # 1x1 input
    ((1, 3, 7, 7), (7, 7), (1, 1), ((3, 3), (3, 3)), (1, 1), False),    # kernel 7, pad 3
    ((2, 33, 5, 6), (2, 3), (3, 2), ((1, 1), (1, 1)), (1, 1), True),    # C > 32 lanes
    ((3, 2, 15), (3,), (2,), ((1, 1),), (1,), False),                    # 1-D
    ((1, 3, 16), (4,), (3,), ((2, 1),), (2,), True),                     # 1-D dilated, asym.
    ((2, 2, 5, 6, 7), (2, 2, 2), (2, 2, 2), ((0, 0),) * 3, (1, 1, 1), False),  # 3-D
    ((1, 3, 6, 7, 5), (3, 2, 3), (2, 1, 2), ((1, 1), (1, 0), (1, 1)), (1, 2, 1), True),
]


def random_cases(count, seed):
    """A deterministic sweep: kernel 1..7, stride 1..3, pads up to half the dilated kernel."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        dims = int(rng.integers(1, 4))
        kernel = tuple(int(v) for v in rng.integers(1, 8 if dims < 3 else 4, dims))
        stride = tuple(int(v) for v in rng.integers(1, 4, dims))
        dilation = tuple(int(v) for v in rng.integers(1, 3, dims))
        pads = tuple((int(rng.integers(0, (d * (k - 1) + 1) // 2 + 1)),
                      int(rng.integers(0, (d * (k - 1) + 1) // 2 + 1)))
                     for k, d in zip(kernel, dilation))
        sizes = tuple(int(rng.integers(max(1, d * (k - 1) + 1 - sum(p)), 14 if dims < 3 else 8))
                      for k, d, p in zip(kernel, dilation, pads))
        shape = (int(rng.choice([1, 3])), int(rng.integers(1, 20))) + sizes
        cases.append((shape, kernel, stride, pads, dilation, bool(rng.integers(0, 2))))
    return cases


ALL_CASES = CASES + random_cases(24, 5)


def case_id(case):
    shape, kernel, stride, pads, dilation, ceil = case
    return f"x{shape}-k{kernel}-s{stride}-p{pads}-d{dilation}-{'ceil' if ceil else 'floor'}"


def data(shape, seed_text):
    rng = np.random.default_rng(zlib.crc32(seed_text.encode()))
    return rng.standard_normal(shape).astype(np.float32)


def run(fn_name, dims, x, channels_last, *args, **kwargs):
    fn = getattr(cnnfast, f"{fn_name}{dims}d")
    result = fn(to_layout(x, channels_last), *args, layout=LAYOUTS[dims][channels_last], **kwargs)
    if isinstance(result, tuple):
        return tuple(from_layout(r, channels_last) for r in result)
    return from_layout(result, channels_last)


def explicit_padding(pads):
    return tuple(v for pair in pads for v in pair)


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_max_pool_matches_reference(isa, case, channels_last):
    shape, kernel, stride, pads, dilation, ceil = case
    dims = len(kernel)
    x = data(shape, case_id(case))
    y, idx = run("max_pool", dims, x, channels_last, kernel, stride, explicit_padding(pads),
                 dilation, ceil, return_indices=True)
    expected, expected_idx = reference.pool(x, "max", kernel, stride, pads, dilation, ceil)
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    np.testing.assert_array_equal(idx, expected_idx)
    assert idx.dtype == np.int64
    # Without indices the call takes another path (rows first): the same values.
    y_values = run("max_pool", dims, x, channels_last, kernel, stride, explicit_padding(pads),
                   dilation, ceil)
    np.testing.assert_array_equal(y_values, y)


# Calls without indices take the rows-first path (a window's rows reduced first, then its w
# taps in registers: blocks of 64 and 16 outputs and a masked tail at steps 1 and 2, a generic
# loop at other steps); these widths hit every block edge.
@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("out_w", [1, 15, 16, 17, 63, 64, 65, 66, 81, 130])
def test_wide_rows_without_indices(isa, out_w, stride, channels_last):
    kernel, dilation, pads = (2, 3), (1, 2), ((1, 0), (1, 2))
    in_w = (out_w - 1) * stride + dilation[1] * (kernel[1] - 1) + 1 - sum(pads[1])
    x = data((2, 3, 5, in_w), f"wide{out_w}-{stride}")
    x[0, 1, 2, in_w // 2] = np.nan  # NaN wins a max, as in torch
    args = (kernel, (1, stride), explicit_padding(pads), dilation)
    y = run("max_pool", 2, x, channels_last, *args)
    y_indexed, _ = run("max_pool", 2, x, channels_last, *args, return_indices=True)
    expected, _ = reference.pool(x, "max", kernel, (1, stride), pads, dilation)
    assert y.shape[-1] == out_w
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    np.testing.assert_array_equal(y, y_indexed)
    x[0, 1, 2, in_w // 2] = 1.0
    for include in (True, False):
        y = run("avg_pool", 2, x, channels_last, kernel, (1, stride), explicit_padding(pads),
                False, include, dilation=dilation)
        expected = reference.pool(x, "avg", kernel, (1, stride), pads, dilation, False, include)
        np.testing.assert_allclose(y, expected, rtol=8 * EPS32, atol=1e-6)


# Channels-first windows at w step 1 or 2, dilation 1 and up to 7 w taps run through the tier's
# plane kernel where it has one (AVX-512): 16 outputs per block, the vectors past 16 * step
# positions reused by the next block, masked loads at both edges. These widths put the row's
# end at every offset of a block and of the reused vectors; NaNs sit on the first and last
# columns and on a block boundary.
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kw", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("out_w", [1, 15, 16, 17, 31, 32, 33, 48, 50])
def test_plane_kernel_rows(isa, out_w, kw, stride):
    pads = ((1, 1), (kw // 2, (kw - 1) // 2))
    in_w = (out_w - 1) * stride + kw - sum(pads[1])
    x = data((2, 3, 6, in_w), f"plane{out_w}-{kw}-{stride}")
    args = ((3, kw), (2, stride), explicit_padding(pads))
    expected, _ = reference.pool(x, "max", *args[:2], pads, (1, 1))
    y = run("max_pool", 2, x, False, *args)
    assert y.shape == expected.shape and y.shape[-1] == out_w
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    np.testing.assert_array_equal(y, run("max_pool", 2, x, True, *args))  # the other path
    for include in (True, False):
        y = run("avg_pool", 2, x, False, *args, False, include)
        expected = reference.pool(x, "avg", *args[:2], pads, (1, 1), False, include)
        np.testing.assert_allclose(y, expected, rtol=8 * EPS32, atol=1e-6)
    y = run("avg_pool", 2, x, False, *args, divisor_override=5)
    expected = reference.pool(x, "avg", *args[:2], pads, (1, 1), divisor_override=5)
    np.testing.assert_allclose(y, expected, rtol=8 * EPS32, atol=1e-6)
    for col in {0, in_w - 1, min(16 * stride, in_w - 1)}:
        x_nan = x.copy()
        x_nan[1, 2, 3, col] = np.nan
        expected, _ = reference.pool(x_nan, "max", *args[:2], pads, (1, 1))
        y = run("max_pool", 2, x_nan, False, *args)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_array_equal(y[~np.isnan(y)], expected[~np.isnan(expected)])


# Channels-last windows at a w step of 2 or more, dilation 1, take every pixel's taps straight
# from the input (the tier's row kernel where it has one: 64 channels per block, then 16, then
# a masked tail); these channel counts hit each of those edges.
@pytest.mark.parametrize("channels", [1, 15, 16, 17, 63, 64, 65, 80, 130])
@pytest.mark.parametrize("kw, stride, pad", [(1, 2, 0), (2, 2, 0), (3, 2, 1), (4, 3, 2), (3, 3, 1)])
def test_row_last_kernel(isa, channels, kw, stride, pad):
    x = data((2, channels, 5, 11), f"last{channels}-{kw}-{stride}")
    x[1, channels // 2, 2, 10] = np.nan  # the last column: NaN wins its windows
    args = ((2, kw), (1, stride), (0, 0, pad, pad))
    pads = ((0, 0), (pad, pad))
    y = run("max_pool", 2, x, True, *args)
    expected, _ = reference.pool(x, "max", args[0], args[1], pads, (1, 1))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(y[~np.isnan(y)], expected[~np.isnan(expected)])
    x[1, channels // 2, 2, 10] = 0.5
    for include in (True, False):
        y = run("avg_pool", 2, x, True, *args, False, include)
        expected = reference.pool(x, "avg", args[0], args[1], pads, (1, 1), False, include)
        np.testing.assert_allclose(y, expected, rtol=8 * EPS32, atol=1e-6)
        # The same sums in the same order as the channels-first path.
        np.testing.assert_array_equal(y, run("avg_pool", 2, x, False, *args, False, include))


# Rows of more than 1024 outputs run through the plane kernel 1024 outputs at a time.
@pytest.mark.parametrize("stride", [1, 2])
def test_plane_kernel_long_rows(isa, stride):
    x = data((1, 2, 4, 2 * 1024 * stride + 37), f"plane-long{stride}")
    x[0, 1, 2, 1024 * stride - 1] = np.nan  # the last input of the first chunk
    args = ((2, 3), (1, stride), (0, 0, 1, 1))
    y = run("max_pool", 2, x, False, *args)
    expected, _ = reference.pool(x, "max", args[0], args[1], ((0, 0), (1, 1)), (1, 1))
    assert y.shape[-1] > 2048
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(y[~np.isnan(y)], expected[~np.isnan(expected)])
    x[0, 1, 2, 1024 * stride - 1] = 0.5
    y = run("avg_pool", 2, x, False, *args, False, False)
    expected = reference.pool(x, "avg", args[0], args[1], ((0, 0), (1, 1)), (1, 1), False, False)
    np.testing.assert_allclose(y, expected, rtol=8 * EPS32, atol=1e-6)


# The plane kernel's rows can come from two axes (a 3-D window's d and h taps) and a ceil-mode
# window may end in the padding.
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_plane_kernel_volume(isa, mode):
    x = data((2, 2, 5, 7, 37), "plane3d")
    args = ((2, 3, 5), (2, 2, 2), (1, 1, 1, 1, 2, 2))
    pads = ((1, 1), (1, 1), (2, 2))
    y = run(f"{mode}_pool", 3, x, False, *args, ceil_mode=True)
    expected = reference.pool(x, mode, args[0], args[1], pads, (1, 1, 1), True)
    expected = expected[0] if mode == "max" else expected
    np.testing.assert_allclose(y, expected, rtol=16 * EPS32, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("count_include_pad", [True, False], ids=["incl", "excl"])
@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_avg_pool_matches_reference(isa, case, channels_last, count_include_pad):
    shape, kernel, stride, pads, dilation, ceil = case
    dims = len(kernel)
    x = data(shape, case_id(case))
    y = run("avg_pool", dims, x, channels_last, kernel, stride, explicit_padding(pads), ceil,
            count_include_pad, dilation=dilation)
    expected = reference.pool(x, "avg", kernel, stride, pads, dilation, ceil, count_include_pad)
    np.testing.assert_allclose(y, expected, rtol=4 * EPS32 * np.prod(kernel), atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_avg_pool_divisor_override_and_exact_integers(isa, case):
    shape, kernel, stride, pads, dilation, ceil = case
    dims = len(kernel)
    rng = np.random.default_rng(1)
    x = rng.integers(-8, 9, shape).astype(np.float32)  # sums exact; divisor 4: exact results
    y = run("avg_pool", dims, x, False, kernel, stride, explicit_padding(pads), ceil,
            divisor_override=4, dilation=dilation)
    expected = reference.pool(x, "avg", kernel, stride, pads, dilation, ceil,
                              divisor_override=4)
    np.testing.assert_array_equal(y, expected.astype(np.float32))


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("norm_type", [1, 2, 3.5])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_lp_pool_matches_reference(isa, case, norm_type, channels_last):
    shape, kernel, stride, pads, dilation, ceil = case
    dims = len(kernel)
    x = data(shape, case_id(case))
    y = run("lp_pool", dims, x, channels_last, norm_type, kernel, stride, ceil,
            padding=explicit_padding(pads), dilation=dilation)
    expected = reference.pool(x, "lp", kernel, stride, pads, dilation, ceil, power=norm_type)
    np.testing.assert_allclose(y, expected, rtol=64 * EPS32, atol=1e-6)


ADAPTIVE = [
    ((2, 3, 13, 13), (6, 6)),
    ((1, 4, 11, 13), (5, 7)),    # bins of uneven, overlapping sizes
    ((1, 2, 5, 5), (7, 9)),      # output larger than input
    ((3, 5, 9, 8), (1, 1)),      # global
    ((2, 33, 4, 6), (4, 6)),     # identity
    ((2, 3, 10), (4,)),
    ((1, 2, 5, 6, 7), (2, 3, 4)),
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("shape, output", ADAPTIVE)
def test_adaptive_pools_match_reference(isa, shape, output, channels_last):
    dims = len(output)
    x = data(shape, f"adaptive{shape}")
    y, idx = run("adaptive_max_pool", dims, x, channels_last, output, True)
    expected, expected_idx = reference.adaptive_pool(x, "max", output)
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    np.testing.assert_array_equal(idx, expected_idx)
    # Without indices the call takes another path (rows first): the same values.
    np.testing.assert_array_equal(run("adaptive_max_pool", dims, x, channels_last, output), y)
    avg = run("adaptive_avg_pool", dims, x, channels_last, output)
    np.testing.assert_allclose(avg, reference.adaptive_pool(x, "avg", output), rtol=1e-5,
                               atol=1e-6)


# Channels-first rows of at most 16 values into at most 16 bins take a kernel of their own
# (avx512): an odd plane count, bins of two widths, a NaN that must win its bins.
@pytest.mark.parametrize("shape, output", [((1, 5, 13, 13), (6, 6)), ((2, 3, 7, 16), (3, 16)),
                                           ((1, 3, 9, 1), (4, 1)), ((3, 1, 16), (5,))])
def test_adaptive_narrow_rows_with_nan(isa, shape, output):
    dims = len(output)
    x = data(shape, f"adaptive-narrow{shape}")
    x[(0, 0) + (shape[2] // 2,) * (dims - 1) + (0,)] = np.nan
    y = run("adaptive_max_pool", dims, x, False, output)
    np.testing.assert_array_equal(y, reference.adaptive_pool(x, "max", output)[0])
    avg = run("adaptive_avg_pool", dims, x, False, output)
    np.testing.assert_allclose(avg, reference.adaptive_pool(x, "avg", output), rtol=1e-5,
                               atol=1e-6)
    assert np.isnan(y).any() and np.isnan(avg).any()


def test_adaptive_output_size_none_keeps_the_axis():
    x = data((1, 2, 6, 9), "none")
    assert cnnfast.adaptive_avg_pool2d(x, (3, None)).shape == (1, 2, 3, 9)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_global_pools(layout):
    x = data((2, 5, 7, 6), "global")
    xl = to_layout(x, layout == "NHWC")
    mean = cnnfast.global_avg_pool2d(xl, layout=layout)
    peak = cnnfast.global_max_pool2d(xl, layout=layout)
    shape = (2, 5, 1, 1) if layout == "NCHW" else (2, 1, 1, 5)
    assert mean.shape == peak.shape == shape
    np.testing.assert_allclose(from_layout(mean, layout == "NHWC")[:, :, 0, 0],
                               x.astype(np.float64).mean(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_array_equal(from_layout(peak, layout == "NHWC")[:, :, 0, 0],
                                  x.max(axis=(2, 3)))


# Stride-1 pools to the input's own size (odd k, k // 2 padding) on planes narrower than 64 run
# as one flat row per plane (avx512): widths below, at and past a vector, rows that end inside
# a vector, every k up to 7, a NaN, and the divisor forms.
@pytest.mark.parametrize("h, w", [(1, 1), (1, 17), (5, 1), (2, 3), (7, 15), (9, 16),
                                  (6, 17), (35, 35), (4, 63)])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_same_size_stride1_pools_as_flat_planes(isa, h, w, k):
    pad = k // 2
    x = data((2, 3, h, w), f"flat{h}x{w}k{k}")
    x[1, 2, h // 2, w - 1] = np.nan
    pads = ((pad, pad), (pad, pad))
    y = cnnfast.max_pool2d(x, k, 1, pad)
    np.testing.assert_array_equal(y, reference.pool(x, "max", (k, k), (1, 1), pads, (1, 1))[0])
    for include in (True, False):
        y = cnnfast.avg_pool2d(x, k, 1, pad, count_include_pad=include)
        expected = reference.pool(x, "avg", (k, k), (1, 1), pads, (1, 1),
                                  count_include_pad=include)
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(
            from_layout(cnnfast.avg_pool2d(to_layout(x, True), k, 1, pad,
                                           count_include_pad=include, layout="NHWC"), True), y)
    y = cnnfast.avg_pool2d(x, k, 1, pad, divisor_override=2)
    expected = reference.pool(x, "avg", (k, k), (1, 1), pads, (1, 1), divisor_override=2)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


# Channels-first global pooling reduces 16 planes at a time (avx512): plane counts around the
# block, plane sizes below, at and past a vector, and past the 4096 values of a block's float sum.
@pytest.mark.parametrize("channels, size", [(1, (7, 7)), (15, (1, 1)), (16, (4, 4)),
                                            (17, (3, 5)), (40, (7, 7)), (33, (64, 64)),
                                            (18, (64, 65))])
def test_global_pools_in_plane_blocks(isa, channels, size, restore_threads):
    x = data((2, channels) + size, f"global-blocks{channels}{size}")
    x[0, -1, 0, -1] = np.nan  # a NaN wins its plane's max and averages to NaN
    mean = cnnfast.global_avg_pool2d(x)
    peak = cnnfast.global_max_pool2d(x)
    expected = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(peak, x.max(axis=(2, 3), keepdims=True))
    assert np.isnan(mean[0, -1, 0, 0]) and np.isnan(peak[0, -1, 0, 0])
    # The same values through adaptive pooling to 1x1, and at another thread count.
    np.testing.assert_array_equal(cnnfast.adaptive_avg_pool2d(x, 1), mean)
    cnnfast.set_num_threads(3 - cnnfast.get_num_threads() if cnnfast.get_num_threads() < 3 else 1)
    np.testing.assert_array_equal(cnnfast.global_avg_pool2d(x), mean)
    np.testing.assert_array_equal(cnnfast.global_max_pool2d(x), peak)


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_round_trip(dims, channels_last):
    shape = {1: (2, 3, 12), 2: (2, 3, 8, 10), 3: (1, 2, 4, 6, 4)}[dims]
    x = data(shape, f"unpool{dims}")
    y, idx = run("max_pool", dims, x, channels_last, 2, 2, return_indices=True)
    fn = getattr(cnnfast, f"max_unpool{dims}d")
    layout = LAYOUTS[dims][channels_last]
    restored = from_layout(fn(to_layout(y, channels_last), to_layout(idx, channels_last), 2,
                              layout=layout), channels_last)
    assert restored.shape == x.shape
    # Every max is back at its position, everything else is zero.
    mask = restored != 0
    np.testing.assert_array_equal(restored[mask], x[mask])
    assert mask.sum() == y.size
    np.testing.assert_array_equal(np.sort(restored[mask]), np.sort(y.ravel()))


def test_max_unpool_output_size_and_bad_indices():
    x = data((1, 1, 5, 5), "unpool-size")
    y, idx = cnnfast.max_pool2d(x, 2, 2, return_indices=True)
    assert cnnfast.max_unpool2d(y, idx, 2, 2, output_size=(5, 5)).shape == (1, 1, 5, 5)
    with pytest.raises(ValueError, match=r"max_unpool2d: output_size \(7, 5\) is out of the "
                                         r"range \(2, 6\)"):
        cnnfast.max_unpool2d(y, idx, 2, 2, output_size=(7, 5))
    bad = idx.copy()
    bad[0, 0, 0, 0] = 99
    with pytest.raises(ValueError, match=r"max_unpool2d: index 99 .* outside the output's 16"):
        cnnfast.max_unpool2d(y, bad, 2, 2)
    with pytest.raises(TypeError, match=r"max_unpool2d: indices must be an int64"):
        cnnfast.max_unpool2d(y, idx.astype(np.int32), 2, 2)


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
def test_nan_propagates_through_max(channels_last):
    x = data((1, 2, 6, 6), "nan")
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 0, 0] = np.nan
    x[0, 1, 0, 1] = np.nan  # a later NaN in the same window takes the index
    y, idx = run("max_pool", 2, x, channels_last, 2, 2, return_indices=True)
    expected, expected_idx = reference.pool(x, "max", (2, 2), (2, 2), ((0, 0), (0, 0)),
                                            (1, 1))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(idx, expected_idx)
    assert idx[0, 1, 0, 0] == 1
    peak = run("adaptive_max_pool", 2, x, channels_last, 1)
    assert np.isnan(peak).all()


def test_same_and_valid_padding():
    x = data((1, 2, 7, 8), "same")
    y = cnnfast.max_pool2d(x, 3, 2, "same")
    assert y.shape == (1, 2, 4, 4)  # ceil(7 / 2), ceil(8 / 2)
    # "same" at stride 2: total pad 2 on H (1, 1), 1 on W (0, 1: the odd pixel at the end).
    expected, _ = reference.pool(x, "max", (3, 3), (2, 2), ((1, 1), (0, 1)), (1, 1))
    np.testing.assert_array_equal(y, expected.astype(np.float32))
    assert cnnfast.avg_pool2d(x, 3, 2, "valid").shape == (1, 2, 3, 3)


@pytest.mark.parametrize("fn, args", [
    ("max_pool2d", (3, 2, 1)), ("avg_pool2d", (3, 2, 1)), ("lp_pool2d", (2, 3, 2)),
    ("adaptive_avg_pool2d", ((5, 4),)), ("adaptive_max_pool2d", ((5, 4),)),
])
@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
def test_one_and_two_threads_are_bitwise_equal(restore_threads, fn, args, channels_last):
    x = data((3, 40, 17, 19), fn)
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(run(fn[:-2], 2, x, channels_last, *args))
    np.testing.assert_array_equal(results[0], results[1])


def test_out_is_written_and_returned():
    x = data((2, 3, 8, 8), "out")
    out = np.empty((2, 3, 4, 4), np.float32)
    assert cnnfast.max_pool2d(x, 2, out=out) is out
    np.testing.assert_array_equal(out, cnnfast.max_pool2d(x, 2))


def test_non_contiguous_input_is_read_correctly():
    x = data((2, 3, 10, 12), "strided")
    view = x[:, :, 1::2, ::2]
    expected = reference.pool(view, "avg", (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_allclose(cnnfast.avg_pool2d(view, 2, 1), expected, rtol=1e-6, atol=1e-7)


# -- errors ------------------------------------------------------------------------------------

X = np.zeros((1, 2, 6, 6), np.float32)


@pytest.mark.parametrize("call, error, match", [
    (lambda: cnnfast.max_pool2d(X, 3, 1, 2), ValueError,
     r"max_pool2d: padding 2 must be at most half the \(dilated\) kernel .* 2 > 1"),
    (lambda: cnnfast.max_pool2d(X, 9), ValueError,
     r"max_pool2d: kernel_size \(9, 9\) with dilation \(1, 1\) spans \(9, 9\), larger than the "
     r"padded input \(6, 6\) of x \(1, 2, 6, 6\)"),
    (lambda: cnnfast.max_pool2d(X[0], 2), ValueError,
     r"max_pool2d: x must be 4-D \(N, C, H, W\), got shape \(2, 6, 6\)"),
    (lambda: cnnfast.max_pool1d(X, 2), ValueError, r"max_pool1d: x must be 3-D \(N, C, L\)"),
    (lambda: cnnfast.max_pool2d(X, 0), ValueError, r"max_pool2d: kernel_size must be >= 1"),
    (lambda: cnnfast.max_pool2d(X, 2, 0), ValueError, r"max_pool2d: stride must be >= 1"),
    (lambda: cnnfast.max_pool2d(X, 2, 2, 0, 0), ValueError, r"max_pool2d: dilation must be >= 1"),
    (lambda: cnnfast.max_pool2d(X, 2, 2, -1), ValueError, r"max_pool2d: padding must be >= 0"),
    (lambda: cnnfast.avg_pool2d(X, 2, divisor_override=0), ValueError,
     r"avg_pool2d: divisor_override must be a positive int"),
    (lambda: cnnfast.lp_pool2d(X, 0, 2), ValueError, r"lp_pool2d: norm_type must be a number > 0"),
    (lambda: cnnfast.max_pool2d(X.astype(np.float64), 2), TypeError,
     r"max_pool2d: x has dtype float64"),
    (lambda: cnnfast.max_pool2d(X, 2, layout="NCDHW"), ValueError,
     r"max_pool2d: unknown layout 'NCDHW'; expected 'NCHW' or 'NHWC'"),
    (lambda: cnnfast.max_pool2d(X, (2, 2, 2)), ValueError,
     r"max_pool2d: kernel_size must be an int or a tuple of 2 ints"),
    (lambda: cnnfast.max_pool2d(X, 2, out=np.zeros((1, 2, 4, 4), np.float32)), ValueError,
     r"max_pool2d: out has shape \(1, 2, 4, 4\) but the result has shape \(1, 2, 3, 3\)"),
    (lambda: cnnfast.adaptive_avg_pool2d(X, (0, 2)), ValueError,
     r"adaptive_avg_pool2d: output_size must be >= 1"),
    (lambda: cnnfast.adaptive_avg_pool2d(X, 2, True), ValueError,
     r"return_indices is for max pooling only"),
    (lambda: cnnfast.max_pool2d([[1.0]], 2), TypeError, r"max_pool2d: x must be a numpy"),
])
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_cached_int_windows_still_check_every_call():
    # Plain-int windows are normalised once and reused (pooling._INT_WINDOWS): the errors that
    # depend on x, and on values the cache never holds, must still come on every call.
    y = cnnfast.max_pool2d(X, 3, 2, 1)
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(cnnfast.max_pool2d(X, 3, 2, 1), y)
    with pytest.raises(ValueError, match=r"max_pool2d: x must be 4-D"):
        cnnfast.max_pool2d(X[0], 3, 2, 1)
    assert cnnfast.max_pool2d(X, 4, 2, 1).shape == (1, 2, 3, 3)
    with pytest.raises(ValueError, match=r"larger than the padded input \(3, 3\)"):
        cnnfast.max_pool2d(X[:, :, :1, :1], 4, 2, 1)
    with pytest.raises(ValueError, match=r"max_pool2d: padding 2 must be at most half"):
        cnnfast.max_pool2d(X, 3, 2, 2)
    with pytest.raises(TypeError, match=r"kernel_size must be an int"):
        cnnfast.max_pool2d(X, True, 2, 1)
    # A bad call first does not leave a window behind for the good one.
    with pytest.raises(ValueError, match=r"max_pool2d: x must be 4-D"):
        cnnfast.max_pool2d(X[0], 5, 1, 2)
    np.testing.assert_array_equal(cnnfast.max_pool2d(X, 5, 1, 2), np.zeros((1, 2, 6, 6)))


def test_cross_check_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = data((2, 3, 17, 15), "torch")
    tx = torch.from_numpy(x)
    for args in [(3, 2, 1, 1, True), (2, 2, 0, 1, False), ((3, 2), (2, 1), (1, 1), 2, False)]:
        y, idx = cnnfast.max_pool2d(x, *args, return_indices=True)
        ty, tidx = F.max_pool2d(tx, *args, return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
    for args in [(3, 2, 1, True, False), (3, 2, 1, False, True, 5)]:
        np.testing.assert_allclose(cnnfast.avg_pool2d(x, *args), F.avg_pool2d(tx, *args).numpy(),
                                   rtol=1e-6, atol=1e-7)
    y, idx = cnnfast.adaptive_max_pool2d(x, (5, 4), True)
    ty, tidx = F.adaptive_max_pool2d(tx, (5, 4), True)
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(cnnfast.lp_pool2d(x, 2, 3, 2), F.lp_pool2d(tx, 2, 3, 2).numpy(),
                               rtol=1e-5)


# -- stochastic pooling, SPP, SPPF ---------------------------------------------------------------


def window_values(x, kernel, stride, pads):
    """Per output (n, c, oh, ow): the list of (flat position, value) inside its window."""
    n, c, h, w = x.shape
    oh = reference.pooled_size(h, kernel, stride, 1, pads, pads, False)
    ow = reference.pooled_size(w, kernel, stride, 1, pads, pads, False)
    out = {}
    for i in range(oh):
        for j in range(ow):
            taps = [(r, q) for r in range(i * stride - pads, i * stride - pads + kernel)
                    for q in range(j * stride - pads, j * stride - pads + kernel)
                    if 0 <= r < h and 0 <= q < w]
            for b in range(n):
                for ch in range(c):
                    out[b, ch, i, j] = [(r * w + q, float(x[b, ch, r, q])) for r, q in taps]
    return out


def nonnegative(shape, seed):
    x = np.abs(np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    x[x < 0.3] = 0.0  # zeros (and all-zero windows) appear
    return x


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
def test_stochastic_eval_is_the_probability_weighted_average(isa, channels_last):
    x = nonnegative((2, 5, 9, 7), 1)
    x[0, 0, :3, :3] = 0.0  # an all-zero window
    y = run("stochastic_pool", 2, x, channels_last, 3, 2, 1, training=False)
    windows = window_values(x, 3, 2, 1)
    expected = np.zeros(y.shape)
    for key, taps in windows.items():
        values = np.array([v for _, v in taps], np.float64)
        expected[key] = (values ** 2).sum() / values.sum() if values.sum() > 0 else 0.0
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)
    assert y[0, 0, 0, 0] == 0.0


@pytest.mark.parametrize("channels_last", [False, True], ids=["first", "last"])
def test_stochastic_training_picks_window_elements(isa, channels_last):
    x = nonnegative((2, 4, 8, 8), 2)
    y, idx = run("stochastic_pool", 2, x, channels_last, 2, 2, seed=11, return_indices=True)
    windows = window_values(x, 2, 2, 0)
    for key, taps in windows.items():
        positions = dict(taps)
        assert int(idx[key]) in positions
        assert y[key] == np.float32(positions[int(idx[key])])
        if any(v > 0 for v in positions.values()):
            assert y[key] > 0  # a zero is never picked while the window has weight


def test_stochastic_frequencies_match_the_probabilities():
    # One 2x2 window with weights 1, 2, 3, 4: over 4000 seeds each element is picked with
    # probability a_i / 10. A chi-square test with 3 degrees of freedom at p = 0.001 (16.27).
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    counts = np.zeros(4)
    for seed in range(4000):
        _, idx = cnnfast.stochastic_pool2d(x, 2, seed=seed, return_indices=True)
        counts[idx[0, 0, 0, 0]] += 1
    expected = 4000 * np.array([0.1, 0.2, 0.3, 0.4])
    assert ((counts - expected) ** 2 / expected).sum() < 16.27, counts


def test_stochastic_is_reproducible_across_threads_and_layouts(restore_threads):
    x = nonnegative((3, 40, 24, 20), 3)  # above the 32K-element parallel threshold
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(cnnfast.stochastic_pool2d(x, 2, seed=7, return_indices=True))
    nhwc = cnnfast.stochastic_pool2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 2, seed=7,
                                     layout="NHWC", return_indices=True)
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[0], nhwc):
        np.testing.assert_array_equal(a, b.transpose(0, 3, 1, 2))
    other = cnnfast.stochastic_pool2d(x, 2, seed=8)
    assert not np.array_equal(other, results[0][0])
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(cnnfast.stochastic_pool2d(x, 2, rng=rng_a),
                                  cnnfast.stochastic_pool2d(x, 2, rng=rng_b))


@pytest.mark.parametrize("bad, match", [
    (-1.0, r"stochastic_pool2d: x must be non-negative .* got -1"),
    (np.nan, r"stochastic_pool2d: x must be non-negative .* got nan"),
])
def test_stochastic_rejects_negative_and_nan(bad, match):
    x = np.ones((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 2] = bad
    with pytest.raises(ValueError, match=match):
        cnnfast.stochastic_pool2d(x, 2, seed=0)
    with pytest.raises(ValueError, match=r"seed must be a non-negative int"):
        cnnfast.stochastic_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, seed=-3)
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator"):
        cnnfast.stochastic_pool2d(np.ones((1, 1, 4, 4), np.float32), 2, rng=3)


# One C++ call pools every level of an image: channels-first images are transposed once (17
# and 40 channels: vector tails of the transposes and the pooling kernels); an image above 4M
# floats pools channels-first, level by level.
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("shape, levels", [((2, 3, 13, 11), (1, 2, 4)),
                                           ((3, 17, 9, 16), (3, 1, 2)),
                                           ((1, 40, 6, 6), (6, 4)),
                                           ((2, 2, 1100, 1900), (1, 2, 4))], ids=str)
def test_spatial_pyramid_pool_order_and_values(isa, mode, layout, shape, levels):
    x = data(shape, f"spp{shape}")
    if shape[2] > 100 and (isa.name != "scalar" or mode == "max"):
        pytest.skip("the large image runs once (the max reference takes 40 s on it)")
    y = cnnfast.spatial_pyramid_pool2d(to_layout(x, layout == "NHWC"), levels, mode,
                                       layout=layout)
    assert y.shape == (shape[0], shape[1] * sum(v * v for v in levels))
    parts = []
    for level in levels:
        pooled = reference.adaptive_pool(x, mode, (level, level))
        pooled = pooled[0] if mode == "max" else pooled
        parts.append(pooled.reshape(shape[0], -1))  # channel-major (c, i, j)
    expected = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(y, expected, rtol=1e-5 if shape[2] > 100 else 1e-6, atol=1e-7)


def test_spatial_pyramid_pool_errors():
    x = data((1, 2, 3, 5), "spp-bad")
    with pytest.raises(ValueError, match=r"level 4 is larger than the input's spatial size"):
        cnnfast.spatial_pyramid_pool2d(x, (1, 2, 4))
    with pytest.raises(ValueError, match=r"mode must be 'max' or 'avg'"):
        cnnfast.spatial_pyramid_pool2d(x, (1,), "lp")
    with pytest.raises(ValueError, match=r"levels must be a non-empty sequence"):
        cnnfast.spatial_pyramid_pool2d(x, ())


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("k", [3, 5])
def test_spp_fast_equals_spp_with_growing_kernels(layout, k):
    x = data((2, 4, 12, 9), f"sppf{k}")
    xl = to_layout(x, layout == "NHWC")
    y = from_layout(cnnfast.spp_fast(xl, k, layout=layout), layout == "NHWC")
    parts = [x] + [cnnfast.max_pool2d(x, size, 1, size // 2) for size in (k, 2 * k - 1,
                                                                          3 * k - 2)]
    np.testing.assert_array_equal(y, np.concatenate(parts, axis=1))
    with pytest.raises(ValueError, match=r"spp_fast: kernel_size must be an odd int"):
        cnnfast.spp_fast(x, 4)
