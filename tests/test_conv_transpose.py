"""conv_transpose2d / conv_transpose1d against the float64 scatter-definition reference: a sweep
of kernels, strides, paddings (asymmetric), output_padding, dilation and groups, both layouts,
every ISA tier; output_size; the adjoint identity with conv2d; threads; errors; torch."""

import numpy as np
import pytest

import cnnfast
import reference
from reference import gemm_tolerance

# (n, c_in, h, w, c_out, groups, k, stride, pads (t, b, l, r), output_padding, dilation)
CASES = [
    (2, 4, 5, 6, 6, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1)),
    (1, 6, 4, 4, 4, 2, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), (1, 1)),    # DCGAN-style 4x4/2
    (1, 3, 7, 5, 3, 3, (2, 3), (3, 1), (0, 0, 1, 1), (2, 0), (2, 1)),    # depthwise, dilated
    (2, 8, 3, 3, 16, 1, (5, 5), (1, 1), (2, 2, 2, 2), (0, 0), (1, 1)),
    (1, 5, 6, 7, 3, 1, (2, 2), (2, 2), (0, 0, 0, 0), (0, 0), (1, 1)),    # UNet 2x2/2
    (1, 2, 5, 4, 3, 1, (1, 1), (4, 3), (0, 1, 2, 0), (3, 2), (1, 1)),    # asymmetric everything
    (3, 4, 4, 5, 8, 4, (3, 1), (1, 2), (1, 0, 0, 0), (0, 1), (3, 1)),
    (1, 17, 3, 2, 33, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1)),  # odd channel counts
    (1, 2, 1, 1, 3, 1, (4, 4), (4, 4), (0, 0, 0, 0), (0, 0), (1, 1)),    # 1x1 input
]


def case_id(c):
    return "n{}-ci{}-{}x{}-co{}-g{}-k{}-s{}-p{}-op{}-d{}".format(*c)


def make(case, seed=0):
    n, c_in, h, w, c_out, groups, k = case[:7]
    rng = np.random.default_rng(seed + c_in * 7 + h)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = rng.standard_normal((c_in, c_out // groups) + k).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    return x, weight, bias


ALGOS = cnnfast.conv_transpose2d_algorithms()


def skip_unserved(algo, dilation):
    if algo == "phase" and dilation != (1, 1):
        pytest.skip("phase needs dilation 1 (its ValueError is tested below)")


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_reference(isa, case, layout, algo):
    _, c_in, _, _, _, groups, k, stride, pads, opad, dilation = case
    skip_unserved(algo, dilation)
    x, weight, bias = make(case)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    y = cnnfast.conv_transpose2d(xl, weight, bias, stride, pads, opad, groups, dilation,
                                 activation="leaky_relu", negative_slope=0.125, layout=layout,
                                 algo=algo)
    if layout == "NHWC":
        y = y.transpose(0, 3, 1, 2)
    expected = reference.conv_transpose2d_general(x, weight, bias, stride, pads, opad, dilation,
                                                  groups)
    expected = np.where(expected >= 0, expected, 0.125 * expected)
    atol = gemm_tolerance((c_in // groups) * k[0] * k[1] + 1, np.abs(x).max(),
                          max(np.abs(weight).max(), np.abs(bias).max()))
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CASES[:4], ids=case_id)
def test_exact_small_integers(isa, case, algo):
    _, _, _, _, _, groups, _, stride, pads, opad, dilation = case
    skip_unserved(algo, dilation)
    rng = np.random.default_rng(1)
    x, weight, bias = (rng.integers(-2, 3, a.shape).astype(np.float32) for a in make(case))
    y = cnnfast.conv_transpose2d(x, weight, bias, stride, pads, opad, groups, dilation,
                                 algo=algo)
    expected = reference.conv_transpose2d_general(x, weight, bias, stride, pads, opad, dilation,
                                                  groups)
    np.testing.assert_array_equal(y, expected.astype(np.float32))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_adjoint_of_conv2d(case):
    # <conv2d(z, w), x> == <z, conv_transpose2d(x, w)> for the same weight and parameters.
    _, _, _, _, _, groups, _, stride, pads, opad, dilation = case
    x, weight, _ = make(case)
    y = cnnfast.conv_transpose2d(x, weight, None, stride, pads, opad, groups, dilation)
    z = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    # The forward conv maps z (C_out channels) back to x's shape (C_in channels): its OIHW
    # weight (C_in, C_out/groups, kh, kw) is the transposed convolution's weight array itself.
    forward = cnnfast.conv2d(z, weight, None, stride, pads, dilation, groups)
    assert forward.shape == x.shape  # output_padding makes the sizes meet exactly
    lhs = np.vdot(forward.astype(np.float64), x.astype(np.float64))
    rhs = np.vdot(z.astype(np.float64), y.astype(np.float64))
    assert abs(lhs - rhs) <= 1e-4 * (abs(lhs) + abs(rhs) + 1)


def test_output_size_picks_the_output_padding():
    x, weight, _ = make(CASES[0])
    y = cnnfast.conv_transpose2d(x, weight, None, 2, 1, output_size=(10, 11))
    assert y.shape == (2, 6, 10, 11)
    np.testing.assert_array_equal(y, cnnfast.conv_transpose2d(x, weight, None, 2, 1, (1, 0)))
    with pytest.raises(ValueError, match=r"output_size \(12, 11\) is not reachable: each size "
                                         r"must lie between \(9, 11\) and \(10, 12\)"):
        cnnfast.conv_transpose2d(x, weight, None, 2, 1, output_size=(12, 11))


@pytest.mark.parametrize("algo", ALGOS)
def test_one_and_two_threads_are_bitwise_equal(restore_threads, algo):
    x, weight, bias = make(CASES[0])
    # Batch 2 gives "phase" 8 (image, phase) tasks to share between the threads; batch 1 only 4,
    # which run in turn with each GEMM split over the threads instead.
    for batch in (x, x[:1]):
        results = []
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            results.append(cnnfast.conv_transpose2d(batch, weight, bias, 2, 1, 1, algo=algo))
        np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_phase_row_blocks(isa, layout, restore_threads):
    """Outputs large enough that "phase" runs each phase in several blocks of rows (256 KiB of
    outputs each), with asymmetric padding: exact small integers, equal to gemm_col2im (checked
    against the reference above) and across thread counts."""
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (2, 3, 40, 48)).astype(np.float32)
    weight = rng.integers(-2, 3, (3, 128, 3, 4)).astype(np.float32)
    bias = rng.integers(-2, 3, 128).astype(np.float32)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    args = (x, weight, bias, (2, 1), (1, 0, 1, 2), (1, 0))
    expected = cnnfast.conv_transpose2d(*args, activation="relu", layout=layout,
                                        algo="gemm_col2im")
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        y = cnnfast.conv_transpose2d(*args, activation="relu", layout=layout, algo="phase")
        np.testing.assert_array_equal(y, expected)


def test_phase_needs_dilation_one_and_checks_out():
    x, weight, _ = make(CASES[0])
    with pytest.raises(ValueError, match=r"algo='phase' needs dilation 1"):
        cnnfast.conv_transpose2d(x, weight, None, 2, 1, dilation=2, algo="phase")
    with pytest.raises(ValueError, match=r"conv_transpose2d: out has shape \(2, 6, 9, 9\) but "
                                         r"the result has shape \(2, 6, 9, 11\)"):
        cnnfast.conv_transpose2d(x, weight, None, 2, 1, algo="phase",
                                 out=np.zeros((2, 6, 9, 9), np.float32))
    out = np.zeros((2, 6, 9, 11), np.float32)
    assert cnnfast.conv_transpose2d(x, weight, None, 2, 1, algo="phase", out=out) is out
    np.testing.assert_allclose(out, cnnfast.conv_transpose2d(x, weight, None, 2, 1,
                                                             algo="gemm_col2im"), atol=1e-5)


@pytest.mark.parametrize("layout", ["NCL", "NLC"])
def test_conv_transpose1d(layout):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 9)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 5)).astype(np.float32)
    expected = reference.conv_transpose2d_general(x[:, :, None], weight[:, :, None], None,
                                                  (1, 3), (0, 0, 2, 1), (0, 2), (1, 2), 1)[:, :, 0]
    xl = np.ascontiguousarray(x.transpose(0, 2, 1)) if layout == "NLC" else x
    y = cnnfast.conv_transpose1d(xl, weight, None, 3, (2, 1), 2, dilation=2, layout=layout)
    if layout == "NLC":
        y = y.transpose(0, 2, 1)
    np.testing.assert_allclose(y, expected, atol=1e-5)


@pytest.mark.parametrize("call, error, match", [
    (lambda x, w: cnnfast.conv_transpose2d(x, w, None, 2, 0, 2), ValueError,
     r"conv_transpose2d: output_padding \(2, 2\) must be >= 0 and smaller than stride \(2, 2\) "
     r"or dilation \(1, 1\)"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w[:3]), ValueError,
     r"conv_transpose2d: weight \(3, 6, 3, 3\) expects 3 input channels .* x \(2, 4, 5, 6\) has 4"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, groups=3), ValueError,
     r"conv_transpose2d: groups=3 must divide C_in=4"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, np.ones(5, np.float32)), ValueError,
     r"conv_transpose2d: bias must have shape \(6,\)"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, padding="same"), ValueError,
     r"conv_transpose2d: padding must be an int or a tuple"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, padding=9), ValueError,
     r"conv_transpose2d: the output size \(-11, -10\) of x \(2, 4, 5, 6\) .* is not positive"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, stride=0), ValueError,
     r"conv_transpose2d: stride must be >= 1"),
    (lambda x, w: cnnfast.conv_transpose2d(x.astype(np.float64), w), TypeError,
     r"conv_transpose2d: x has dtype float64"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, algo="winograd"), ValueError,
     r"conv_transpose2d: unknown algo 'winograd'"),
    (lambda x, w: cnnfast.conv_transpose2d(x, w, out=np.zeros((2, 6, 7, 9), np.float32)),
     ValueError, r"conv_transpose2d: out has shape \(2, 6, 7, 9\) but the result has shape "
                 r"\(2, 6, 7, 8\)"),
])
def test_bad_input(call, error, match):
    x, weight, _ = make(CASES[0])
    with pytest.raises(error, match=match):
        call(x, weight)


def test_cross_check_against_torch():
    torch = pytest.importorskip("torch")
    for case in CASES:
        _, _, _, _, _, groups, _, stride, pads, opad, dilation = case
        if pads[0] != pads[1] or pads[2] != pads[3]:
            continue  # torch takes symmetric padding only
        x, weight, bias = make(case)
        expected = torch.nn.functional.conv_transpose2d(
            *(torch.from_numpy(a) for a in (x, weight, bias)), stride, (pads[0], pads[2]), opad,
            groups, dilation).numpy()
        np.testing.assert_allclose(cnnfast.conv_transpose2d(x, weight, bias, stride, pads, opad,
                                                            groups, dilation),
                                   expected, rtol=1e-5, atol=1e-4)
