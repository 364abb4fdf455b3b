"""conv2d's fused residual (``residual=``): act(conv + bias + residual) computed in the output
tile, against the float64 reference plus the residual, on every tier, both layouts and every
algorithm (the GEMM ones add it in the micro-kernel epilogue, "direct" and "depthwise" in a
pass of their own); and its argument errors."""

import numpy as np
import pytest

import cnnfast
import reference
from reference import gemm_tolerance

CASES = [  # (c_in, c_out, k, groups, algo)
    (16, 40, 3, 1, "implicit_gemm"),  # 40 = 2 tiles of 14 + 12 rows (NCHW)
    (300, 20, 1, 1, "gemm1x1"),       # K = 300: two k blocks, the residual added once
    (12, 18, 3, 1, "im2col"),
    (8, 8, 3, 8, "depthwise"),
    (16, 16, 3, 4, "direct"),
]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("c_in, c_out, k, groups, algo", CASES)
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid"])
def test_residual_matches_reference(isa, layout, c_in, c_out, k, groups, algo, activation):
    rng = np.random.default_rng(c_in * 31 + c_out)
    x = rng.standard_normal((2, c_in, 9, 7)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    pad = k // 2
    expected = reference.conv2d(x, w, b, (1, 1), (pad,) * 4, (1, 1), groups)
    r = rng.standard_normal(expected.shape).astype(np.float32)
    expected = reference.activation(activation, expected + r)
    if layout == "NHWC":
        x, r, expected = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, r, expected))
    y = cnnfast.conv2d(x, w, b, 1, pad, groups=groups, activation=activation, layout=layout,
                       algo=algo, residual=r)
    tol = gemm_tolerance(c_in // groups * k * k, np.abs(x).max(), np.abs(w).max()) + 1e-6
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def to_nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("shape", [(3, 64, 8, 8), (1, 32, 28, 28)])
@pytest.mark.parametrize("activation", [None, "relu", "silu"])
def test_residual_of_nchw_computed_as_nhwc_is_bitwise_the_nhwc_result(isa, shape, activation):
    # NCHW calls that compute as NHWC: 64 channels on 8x8 images run on NHWC copies (576 flops
    # per float), 32 channels on 28x28 read a padded NHWC copy in place (28 = 2x14, 5x6 (+2),
    # 7x4 pixels per tile row); both add the residual after transposing back, the same float
    # operations as the fused epilogue of the NHWC call.
    rng = np.random.default_rng(11)
    c = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    r = rng.standard_normal(shape).astype(np.float32)
    assert cnnfast._C.conv2d_runs_via_nhwc(x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    y = cnnfast.conv2d(x, w, b, 1, 1, activation=activation, residual=r)
    y_nhwc = cnnfast.conv2d(to_nhwc(x), w, b, 1, 1, activation=activation, layout="NHWC",
                            residual=to_nhwc(r))
    np.testing.assert_array_equal(to_nhwc(y), y_nhwc)
    expected = reference.activation(activation, reference.conv2d(
        x, w, b, (1, 1), (1,) * 4, (1, 1), 1) + r)
    tol = gemm_tolerance(c * 9, np.abs(x).max(), np.abs(w).max()) + 1e-6
    np.testing.assert_allclose(y, expected, rtol=tol, atol=tol)


def test_residual_equals_add_then_activation_bitwise():
    # The epilogue adds the residual to the finished convolution + bias, as a separate
    # np.add would: the same float32 numbers.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 32, 10, 10)).astype(np.float32)
    w = rng.standard_normal((48, 32, 3, 3)).astype(np.float32)
    r = rng.standard_normal((1, 48, 10, 10)).astype(np.float32)
    plain = cnnfast.conv2d(x, w, None, 1, 1)
    out = np.empty_like(plain)
    y = cnnfast.conv2d(x, w, None, 1, 1, activation="relu", residual=r, out=out)
    assert y is out
    np.testing.assert_array_equal(y, np.maximum(plain + r, 0))


def test_residual_errors():
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((6, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"residual must be .* output's shape \(1, 6, 5, 5\), "
                                         r"got shape \(1, 6, 4, 5\)"):
        cnnfast.conv2d(x, w, padding=1, residual=np.zeros((1, 6, 4, 5), np.float32))
    with pytest.raises(ValueError, match="residual must be a C-contiguous"):
        cnnfast.conv2d(x, w, padding=1,
                       residual=np.zeros((1, 6, 5, 10), np.float32)[..., ::2])
    with pytest.raises(TypeError, match="residual has dtype float64"):
        cnnfast.conv2d(x, w, padding=1, residual=np.zeros((1, 6, 5, 5)))
    with pytest.raises(TypeError, match="residual"):
        cnnfast.conv2d(x, w, padding=1, residual=[0.0])
    out = np.zeros((1, 6, 5, 5), np.float32)
    with pytest.raises(ValueError, match="residual overlaps out"):
        cnnfast.conv2d(x, w, padding=1, out=out, residual=out)

