"""separable_factors (rank-1 kernels by SVD) and conv2d_separable (k x 1 then 1 x k per channel)
against conv2d with the outer-product kernel and the float64 reference."""

import numpy as np
import pytest

import cnnfast
import reference

SOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
BINOMIAL = np.array([1, 4, 6, 4, 1], np.float32)
GAUSSIAN = np.outer(BINOMIAL, BINOMIAL) / 256
BOX = np.ones((3, 5), np.float32) / 15


@pytest.mark.parametrize("kernel", [SOBEL, GAUSSIAN, BOX, SOBEL.T], ids=["sobel", "gauss", "box",
                                                                         "sobel-t"])
def test_factors_of_rank_one_kernels(kernel):
    col, row = cnnfast.separable_factors(kernel)
    assert col.dtype == row.dtype == np.float32
    np.testing.assert_allclose(np.outer(col, row), kernel, atol=1e-6)
    assert col[np.flatnonzero(col)[0]] > 0


def test_a_random_kernel_does_not_factor_and_zero_does():
    rng = np.random.default_rng(0)
    assert cnnfast.separable_factors(rng.standard_normal((3, 3))) is None
    col, row = cnnfast.separable_factors(np.zeros((2, 3)))
    assert not col.any() and not row.any()
    with pytest.raises(ValueError, match=r"separable_factors: kernel_2d must be a non-empty 2-D"):
        cnnfast.separable_factors(np.ones(3))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("stride, padding, dilation", [
    (1, "same", 1), (2, 1, 1), ((1, 2), (1, 0, 2, 2), (2, 1)), (1, "valid", 2)])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-channel"])
def test_separable_equals_full_convolution(isa, layout, stride, padding, dilation, shared):
    rng = np.random.default_rng(3)
    c = 5
    x = rng.standard_normal((2, c, 13, 12)).astype(np.float32)
    col = rng.standard_normal(3 if shared else (c, 3)).astype(np.float32)
    row = rng.standard_normal(5 if shared else (c, 5)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    cols, rows = np.broadcast_to(col, (c, 3)), np.broadcast_to(row, (c, 5))
    w = np.einsum("ci,cj->cij", cols, rows)[:, None].astype(np.float32)
    expected = cnnfast.conv2d(x, w, bias, stride, padding, dilation, groups=c,
                              activation="relu")
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    y = cnnfast.conv2d_separable(xl, col, row, bias, stride, padding, dilation,
                                 activation="relu", layout=layout)
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    if padding == 2 or not isinstance(padding, int):
        return
    pad = (padding,) * 4
    ref = reference.conv2d(x, w, bias, (stride,) * 2 if isinstance(stride, int) else stride,
                           pad, (dilation,) * 2, c)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=1e-5, atol=1e-5)


def test_separable_bad_input():
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_separable: col must be \(k,\) or \(C, k\)"):
        cnnfast.conv2d_separable(x, np.ones((2, 3), np.float32), np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"conv2d_separable: row has dtype float64"):
        cnnfast.conv2d_separable(x, np.ones(3, np.float32), np.ones(3))
    with pytest.raises(ValueError, match=r"conv2d_separable: x must be 4-D"):
        cnnfast.conv2d_separable(x[0], np.ones(3, np.float32), np.ones(3, np.float32))


# -- the fused depthwise-separable block ---------------------------------------------------------


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("c, size, mult, c_out, stride, padding, dilation", [
    (32, 112, 1, 64, 1, 1, 1),       # several bands (MobileNetV1's first block)
    (16, 9, 2, 8, 2, 1, 1),          # channel multiplier, stride 2
    (8, 7, 1, 12, 1, "same", 2),     # dilated, "same"
    (3, 5, 1, 4, (2, 1), (0, 1, 2, 0), 1),  # asymmetric padding and stride
])
def test_separable_conv2d_equals_depthwise_then_pointwise(isa, layout, c, size, mult, c_out,
                                                          stride, padding, dilation):
    rng = np.random.default_rng(c + size)
    x = rng.standard_normal((2, c, size, size + 1)).astype(np.float32)
    dw = rng.standard_normal((c * mult, 1, 3, 3)).astype(np.float32)
    db = rng.standard_normal(c * mult).astype(np.float32)
    pw = rng.standard_normal((c_out, c * mult, 1, 1)).astype(np.float32)
    pb = rng.standard_normal(c_out).astype(np.float32)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    y = cnnfast.separable_conv2d(xl, dw, pw, db, pb, stride, padding, dilation,
                                 activation="relu", mid_activation="relu6", layout=layout)
    mid = cnnfast.conv2d(xl, dw, db, stride, padding, dilation, groups=c, activation="relu6",
                         layout=layout)
    two_calls = cnnfast.conv2d(mid, pw, pb, activation="relu", layout=layout)
    np.testing.assert_array_equal(y, two_calls)  # the same sums in the same order
    if isinstance(padding, int):
        pads = (padding,) * 4
        strides = (stride,) * 2 if isinstance(stride, int) else stride
        ref_mid = np.clip(reference.conv2d(x, dw, db, strides, pads, (dilation,) * 2, c), 0, 6)
        ref = np.maximum(reference.conv2d(ref_mid, pw, pb, (1, 1), (0,) * 4, (1, 1), 1), 0)
        yn = y.transpose(0, 3, 1, 2) if layout == "NHWC" else y
        np.testing.assert_allclose(yn, ref, rtol=1e-4, atol=1e-3)


def test_separable_conv2d_out_and_errors():
    x = np.ones((1, 4, 6, 6), np.float32)
    dw, pw = np.ones((4, 1, 3, 3), np.float32), np.ones((5, 4, 1, 1), np.float32)
    out = np.empty((1, 5, 6, 6), np.float32)
    assert cnnfast.separable_conv2d(x, dw, pw, padding=1, out=out) is out
    np.testing.assert_array_equal(out, cnnfast.separable_conv2d(x, dw, pw, padding=1))
    with pytest.raises(ValueError, match=r"separable_conv2d: pointwise_weight must be \(C_out, 4, "
                                         r"1, 1\)"):
        cnnfast.separable_conv2d(x, dw, np.ones((5, 3, 1, 1), np.float32))
    with pytest.raises(ValueError,
                       match=r"separable_conv2d: pointwise_bias must have shape \(5,\)"):
        cnnfast.separable_conv2d(x, dw, pw, pointwise_bias=np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"separable_conv2d: out has shape \(1, 5, 6, 6\) but the "
                                         r"result has shape \(1, 5, 4, 4\)"):
        cnnfast.separable_conv2d(x, dw, pw, out=out)
    with pytest.raises(ValueError, match=r"weight \(4, 2, 3, 3\) with groups=4 expects 8 input "
                                         r"channels"):
        cnnfast.separable_conv2d(x, np.ones((4, 2, 3, 3), np.float32), pw)
    with pytest.raises(ValueError, match=r"separable_conv2d: unknown activation 'gelu'"):
        cnnfast.separable_conv2d(x, dw, pw, activation="gelu")
