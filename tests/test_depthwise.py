"""conv2d's depthwise algorithm (groups == C_in, any channel multiplier) over the channel counts,
sizes, strides, dilations and multipliers issue 4 lists, both layouts, every ISA tier, against
the float64 reference; NHWC bitwise equal to NCHW."""

import numpy as np
import pytest

import cnnfast
import reference
from reference import gemm_tolerance

CHANNELS = [1, 3, 7, 8, 15, 16, 17, 33, 144, 960]


def cases():
    rng = np.random.default_rng(44)
    out = []
    for c in CHANNELS:
        for _ in range(2):
            size = int(rng.choice([1, 5, 7, 14, 17, 31]))
            k = int(rng.choice([3, 5])) if size >= 5 else 1
            stride, dilation = int(rng.integers(1, 4)), int(rng.integers(1, 3))
            pad = int(rng.integers(0, k // 2 + dilation))
            if size + 2 * pad < dilation * (k - 1) + 1:
                pad = dilation * (k - 1)
            mult = int(rng.choice([1, 2])) if c <= 144 else 1
            out.append((c, size, k, stride, dilation, pad, mult))
    out.append((32, 112, 3, 1, 1, 1, 1))   # MobileNetV2's first depthwise layer
    out.append((96, 112, 3, 2, 1, 1, 1))   # and a stride-2 one
    out.append((24, 9, 5, 2, 2, 4, 2))     # 5x5, dilated, multiplier 2
    out.append((5, 40, 3, 1, 1, 0, 2))     # 3x3 s1 without padding: 8-row blocks reusing rows
    out.append((1024, 13, 3, 1, 2, 2, 1))  # 14-column NCHW rows: direct
    out.append((16, 11, 3, 1, 1, 1, 1))    # 11-column NCHW rows: through NHWC
    return out


def case_id(case):
    return "c{}-hw{}-k{}-s{}-d{}-p{}-m{}".format(*case)


# Non-square kernels next to the 3x3 blocks that reuse input rows (stride_h 1 and 2, tall
# enough for whole 8-row blocks inside the image).
@pytest.mark.parametrize("kernel", [(3, 5), (5, 3), (3, 1), (3, 3)], ids=str)
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_non_square_kernels(isa, kernel, stride):
    rng = np.random.default_rng(kernel[0] * 10 + kernel[1] + stride)
    x = rng.standard_normal((1, 4, 40, 37), dtype=np.float32)
    w = rng.standard_normal((4, 1) + kernel, dtype=np.float32)
    pads = (kernel[0] // 2, kernel[1] // 2)
    y = cnnfast.conv2d(x, w, None, stride, pads, groups=4, algo="depthwise")
    expected = reference.conv2d(x, w, None, (stride, stride), (pads[0],) * 2 + (pads[1],) * 2,
                                (1, 1), 4)
    atol = gemm_tolerance(kernel[0] * kernel[1], np.abs(x).max(), np.abs(w).max())
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    y_nhwc = cnnfast.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, None, stride, pads,
                            groups=4, layout="NHWC", algo="depthwise")
    np.testing.assert_array_equal(y_nhwc.transpose(0, 3, 1, 2), y)


# The plane kernel's border rows read a row of zeros only when every weight is finite; an
# infinite weight takes the masked path, so a tap in the padding is skipped, not inf * 0 = NaN.
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_depthwise_infinite_weight_skips_padding(isa, layout):
    x = np.ones((1, 2, 20, 20), dtype=np.float32)
    w = np.zeros((2, 1, 3, 3), dtype=np.float32)
    w[:, 0, 0, 0] = np.inf  # the top-left tap: in the padding for output row 0 and column 0
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = cnnfast.conv2d(x, w, None, 1, 1, groups=2, layout=layout, algo="depthwise")
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    assert np.all(y[:, :, 0, :] == 0) and np.all(y[:, :, :, 0] == 0)
    assert np.all(np.isposinf(y[:, :, 1:, 1:]))


@pytest.mark.parametrize("case", cases(), ids=case_id)
def test_depthwise_matches_reference_in_both_layouts(isa, case):
    c, size, k, stride, dilation, pad, mult = case
    rng = np.random.default_rng(c * 1000 + size)
    n = 2 if size <= 31 else 1
    x = rng.standard_normal((n, c, size, size + 1), dtype=np.float32)
    w = rng.standard_normal((c * mult, 1, k, k), dtype=np.float32)
    b = rng.standard_normal(c * mult, dtype=np.float32)
    y = cnnfast.conv2d(x, w, b, stride, pad, dilation, groups=c, activation="relu6",
                       algo="depthwise")
    expected = reference.activation(
        "relu6", reference.conv2d(x, w, b, (stride, stride), (pad,) * 4, (dilation, dilation), c))
    atol = gemm_tolerance(k * k + 1, np.abs(x).max(), max(np.abs(w).max(), np.abs(b).max()))
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    y_nhwc = cnnfast.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, stride, pad,
                            dilation, groups=c, activation="relu6", layout="NHWC",
                            algo="depthwise")
    np.testing.assert_array_equal(y_nhwc.transpose(0, 3, 1, 2), y)


# Every block of the AVX-512 plane kernel that reuses input rows (3x3 and 5x5; stride 1 and 2;
# dilation 2 at stride 1): interior blocks, blocks reaching into the top or bottom padding, and
# the 4-, 2- and 1-row tails, with outputs 16 wide or wider so NCHW runs the plane kernel
# directly. NHWC (the pixel kernel) must agree bit for bit; both within tolerance of the
# reference.
@pytest.mark.parametrize("k,stride,dilation", [(3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 1),
                                               (5, 2, 1), (5, 1, 2)], ids=str)
@pytest.mark.parametrize("height", [1, 2, 3, 6, 9, 15, 22, 31])
def test_depthwise_row_blocks(isa, k, stride, dilation, height):
    rng = np.random.default_rng(height * 100 + k * 10 + stride + dilation)
    pad = dilation * (k // 2)
    x = rng.standard_normal((1, 3, height, 16 * stride + 7), dtype=np.float32)
    w = rng.standard_normal((3, 1, k, k), dtype=np.float32)
    y = cnnfast.conv2d(x, w, None, stride, pad, dilation, groups=3, algo="depthwise")
    expected = reference.conv2d(x, w, None, (stride, stride), (pad,) * 4, (dilation, dilation), 3)
    atol = gemm_tolerance(k * k, np.abs(x).max(), np.abs(w).max())
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    y_nhwc = cnnfast.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, None, stride, pad,
                            dilation, groups=3, layout="NHWC", algo="depthwise")
    np.testing.assert_array_equal(y_nhwc.transpose(0, 3, 1, 2), y)


# Small "same"-padded stride-1 planes, which the AVX-512 tier computes as flat vectors (border
# masks per tap, vectors spanning rows): plane sizes from one pixel to 256, non-square and
# dilated kernels, a channel multiplier, and more channels than one run of planes (32).
@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (7, 7), (14, 14), (16, 16), (13, 19)], ids=str)
@pytest.mark.parametrize("k,dilation", [((1, 1), 1), ((3, 3), 1), ((3, 3), 2), ((5, 5), 1),
                                        ((3, 5), 1), ((5, 3), 2)], ids=str)
def test_depthwise_flat_planes(isa, hw, k, dilation):
    rng = np.random.default_rng(hw[0] * 31 + hw[1] + k[0] * 7 + k[1] + dilation)
    c, mult = 35, 2
    x = rng.standard_normal((2, c) + hw, dtype=np.float32)
    w = rng.standard_normal((c * mult, 1) + k, dtype=np.float32)
    b = rng.standard_normal(c * mult, dtype=np.float32)
    pads = (dilation * (k[0] // 2), dilation * (k[1] // 2))
    y = cnnfast.conv2d(x, w, b, 1, pads, dilation, groups=c, activation="relu",
                       algo="depthwise")
    expected = reference.activation("relu", reference.conv2d(
        x, w, b, (1, 1), (pads[0],) * 2 + (pads[1],) * 2, (dilation, dilation), c))
    atol = gemm_tolerance(k[0] * k[1] + 1, np.abs(x).max(), max(np.abs(w).max(), 1.0))
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)
    y_nhwc = cnnfast.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, 1, pads,
                            dilation, groups=c, activation="relu", layout="NHWC",
                            algo="depthwise")
    np.testing.assert_array_equal(y_nhwc.transpose(0, 3, 1, 2), y)


# The epilogue (bias, then each activation) on the plane kernels that fuse it into their stores
# (flat 14x14 planes, row-reuse 20x21 planes at strides 1 and 2) and where it stays a pass
# (exp-based activations, a 7x7 kernel): NCHW bitwise equal to NHWC, which always applies it
# as a pass, and within tolerance of the reference. The input has zeros, so the relu family
# meets -0 and +0 sums.
@pytest.mark.parametrize("act", [None, "relu", "relu6", "leaky_relu", "hardswish", "sigmoid",
                                 "tanh", "silu"])
@pytest.mark.parametrize("shape", [((14, 14), 3, 1), ((20, 21), 3, 1), ((20, 21), 5, 2),
                                   ((20, 21), 7, 1)], ids=str)
def test_depthwise_fused_epilogue(isa, act, shape):
    hw, k, stride = shape
    rng = np.random.default_rng(k * 10 + stride + hw[0])
    x = rng.standard_normal((2, 33) + hw, dtype=np.float32)
    x[:, :, ::3] = 0.0
    w = rng.standard_normal((33, 1, k, k), dtype=np.float32)
    b = rng.standard_normal(33, dtype=np.float32)
    pad = k // 2
    y = cnnfast.conv2d(x, w, b, stride, pad, groups=33, activation=act, negative_slope=0.2,
                       algo="depthwise")
    expected = reference.activation(
        act, reference.conv2d(x, w, b, (stride, stride), (pad,) * 4, (1, 1), 33), 0.2)
    atol = gemm_tolerance(k * k + 1, np.abs(x).max(), max(np.abs(w).max(), np.abs(b).max()))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=atol)
    y_nhwc = cnnfast.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, b, stride, pad,
                            groups=33, activation=act, negative_slope=0.2, layout="NHWC",
                            algo="depthwise")
    np.testing.assert_array_equal(y_nhwc.transpose(0, 3, 1, 2), y)
