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
