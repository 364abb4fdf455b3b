"""NHWC implicit GEMM packs a kernel row's adjacent taps as one run per pixel when it can
(one group, no horizontal dilation, pixels inside the image or wholly in the vertical padding):
bitwise equal to the NCHW path, which packs per tap from the planes, and to the reference."""

import numpy as np
import pytest

import cnnfast
import reference
from reference import gemm_tolerance


@pytest.mark.parametrize("c, k, stride, padding, dilation, groups", [
    (3, (7, 7), 2, (3, 3), 1, 1),            # an RGB stem: runs of 7 taps x 3 channels
    (16, (5, 5), 1, (2, 2), 1, 1),           # K = 400: the k block ends inside a merged run
    (5, (3, 4), 1, (1, 2, 0, 3), (2, 1), 1),  # non-square, asymmetric pads, vertical dilation
    (8, (3, 3), 1, (1, 1), 1, 2),            # groups: taps are not merged
    (4, (1, 9), 3, (0, 4), 1, 1),
])
def test_nhwc_merged_tap_runs_equal_nchw(isa, c, k, stride, padding, dilation, groups):
    # The NHWC im2col packs a kernel row's taps as one run per pixel when it can; NCHW packs
    # per tap from the planes; both sum K in the same order: bitwise the same output.
    rng = np.random.default_rng(c * 7 + k[1])
    x = rng.standard_normal((2, c, 23, 19)).astype(np.float32)
    w = rng.standard_normal((12, c // groups) + k).astype(np.float32)
    args = (stride, padding, dilation, groups)
    nchw = cnnfast.conv2d(x, w, None, *args, algo="implicit_gemm")
    nhwc = cnnfast.conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, None, *args,
                          layout="NHWC", algo="implicit_gemm")
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))
    pads = padding if len(padding) == 4 else (padding[0],) * 2 + (padding[1],) * 2
    d = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    expected = reference.conv2d(x, w, None, (stride, stride), pads, d, groups)
    tol = gemm_tolerance(c // groups * k[0] * k[1], np.abs(x).max(), np.abs(w).max())
    np.testing.assert_allclose(nchw, expected, rtol=tol, atol=tol)
