"""stochastic_pool2d's kernels (csrc/kernels/stoch): every ISA tier bitwise equal to the scalar
one (values and indices) over windows at the image edges, odd sizes, paddings, strides that take
the step-1, step-2 and gather loads, fixed (2x2, 3x3) and general windows, partial blocks of 16
outputs or channels, both layouts, batch 1 and 3; training against the documented draw
(reference.stochastic_pool_train) exactly; the float64 path of overflowing sums; the input check
folded into the pass (first offender, inputs no window reads, -0.0, subnormals)."""

import zlib

import numpy as np
import pytest

import cnnfast
import reference
from conftest import available_tiers

# (N, C, H, W), kernel, stride, padding (top/bottom, left/right).
CASES = [
    ((1, 3, 56, 56), (2, 2), (2, 2), (0, 0)),    # the bench case: fixed 2x2, pair loads
    ((3, 2, 11, 37), (2, 2), (2, 2), (1, 1)),    # odd sizes, padding: edge windows both sides
    ((1, 2, 9, 70), (3, 3), (2, 2), (1, 1)),     # fixed 3x3 at step 2, full and partial blocks
    ((3, 1, 8, 41), (3, 3), (1, 1), (1, 1)),     # fixed 3x3 at step 1
    ((1, 2, 7, 50), (2, 3), (3, 2), (1, 1)),     # general window at step 2
    ((3, 2, 10, 53), (1, 4), (2, 1), (0, 2)),    # general window at step 1
    ((1, 3, 12, 61), (3, 2), (1, 3), (1, 1)),    # gather loads (step 3), stride > kernel
    ((1, 1, 5, 90), (5, 5), (1, 5), (2, 2)),     # 25 taps: the uncached path
    ((3, 17, 6, 5), (2, 2), (1, 1), (1, 1)),     # NHWC: 16 + 1 channels
    ((1, 33, 5, 7), (3, 3), (2, 2), (1, 0)),     # NHWC: 32 + 1 channels, 3x3
    ((3, 4, 1, 1), (1, 1), (1, 1), (0, 0)),      # 1x1
    ((1, 5, 3, 17), (3, 1), (1, 2), (1, 0)),     # kernel taller than wide
]


def case_id(case):
    shape, kernel, stride, pad = case
    return f"x{shape}-k{kernel}-s{stride}-p{pad}"


def weights(shape, seed, zeros=0.35):
    """Non-negative data with many zeros (all-zero windows occur) and no subnormals."""
    x = np.abs(np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    x[x < zeros] = 0.0
    return x


def pool(x, case, channels_last, **kwargs):
    """stochastic_pool2d of NCHW x in the given layout; results back in NCHW."""
    _, kernel, stride, pad = case
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if channels_last else x
    y, idx = cnnfast.stochastic_pool2d(xin, kernel, stride, pad, return_indices=True,
                                       layout="NHWC" if channels_last else "NCHW", **kwargs)
    if channels_last:
        y, idx = y.transpose(0, 3, 1, 2), idx.transpose(0, 3, 1, 2)
    return y, idx


def assert_bitwise(a, b, what):
    np.testing.assert_array_equal(a[0].view(np.uint32), b[0].view(np.uint32), err_msg=what)
    np.testing.assert_array_equal(a[1], b[1], err_msg=what)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_tier_and_layout_is_bitwise_the_scalar_one(case, training):
    x = weights(case[0], zlib.crc32(case_id(case).encode()))
    with cnnfast.max_isa("scalar"):
        expected = pool(x, case, False, training=training, seed=99)
    for tier in available_tiers():
        with cnnfast.max_isa(tier):
            for last in (False, True):
                assert_bitwise(pool(x, case, last, training=training, seed=99), expected,
                               f"{tier} {'NHWC' if last else 'NCHW'}")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_training_is_the_documented_draw(isa, case):
    x = weights(case[0], 7)
    _, kernel, stride, pad = case
    pads = [(pad[0], pad[0]), (pad[1], pad[1])]
    y, idx = pool(x, case, False, seed=2**63 + 5)
    expected_y, expected_idx = reference.stochastic_pool_train(x, kernel, stride, pads,
                                                               2**63 + 5)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(idx, expected_idx)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_eval_matches_the_float64_reference(isa, case):
    x = weights(case[0], 8)
    _, kernel, stride, pad = case
    pads = [(pad[0], pad[0]), (pad[1], pad[1])]
    y, idx = pool(x, case, True, training=False)
    expected = reference.stochastic_pool_eval(x, kernel, stride, pads)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=0)
    # Evaluation's index: the window's first tap inside the image.
    _, expected_idx = reference.stochastic_pool_train(np.zeros_like(x), kernel, stride, pads, 0)
    np.testing.assert_array_equal(idx, expected_idx)


def test_all_zero_windows_give_zero_and_their_first_inside_tap(isa):
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 4, 4] = 2.0
    for training in (True, False):
        y, idx = cnnfast.stochastic_pool2d(x, 3, 2, 1, training=training, seed=3,
                                           return_indices=True)
        assert y.ravel().tolist() == [0.0] * 8 + [2.0]
        # Training draws the only element of weight; evaluation names the first tap inside.
        assert idx.ravel().tolist() == [0, 1, 3, 5, 6, 8, 15, 16, 24 if training else 18]


def test_threads_do_not_change_the_draw(restore_threads):
    x = weights((3, 40, 30, 26), 4)  # above the parallel threshold
    for last in (False, True):
        results = []
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            results.append(pool(x, CASES[1], last, seed=11))
        assert_bitwise(results[0], results[1], f"channels_last={last}")


@pytest.mark.parametrize("kernel", [(2, 2), (3, 3), (1, 5)], ids=str)
def test_frequencies_match_the_probabilities(kernel):
    # One window, weights 1..k (one zero): over 3000 outputs (different draw positions) each tap
    # is picked with probability a_i / sum(a). Chi-square at p = 0.001.
    taps = kernel[0] * kernel[1]
    window = np.arange(taps, dtype=np.float32).reshape(kernel)
    x = np.ascontiguousarray(np.broadcast_to(window, (1, 3000) + kernel))
    _, idx = cnnfast.stochastic_pool2d(x, kernel, seed=5, return_indices=True)
    counts = np.bincount(idx.ravel(), minlength=taps)
    assert counts[0] == 0
    expected = 3000 * np.arange(1, taps) / window.sum()
    chi2 = ((counts[1:] - expected) ** 2 / expected).sum()
    critical = {2: 13.82, 7: 24.32, 3: 16.27}[taps - 2]  # taps - 2 degrees of freedom
    assert chi2 < critical, counts


def test_huge_values_take_the_float64_path():
    # Squares above float32's range: evaluation must still be sum(a^2) / sum(a), and training
    # still picks an element of weight. Every tier agrees.
    x = weights((1, 2, 6, 38), 9)
    x[0, 0, :2, :4] = [[3e19, 1e20, 0, 5e19], [2e38, 2e38, 1e30, 0]]  # sums overflow too
    results = {}
    for tier in available_tiers():
        with cnnfast.max_isa(tier):
            for training in (True, False):
                results[tier, training] = pool(x, ((1, 2, 6, 38), 2, 2, 0), False,
                                               training=training, seed=1)
    for (tier, training), result in results.items():
        assert_bitwise(result, results["scalar", training], f"{tier} training={training}")
    y = results["scalar", False][0]
    expected = reference.stochastic_pool_eval(x, (2, 2), (2, 2), [(0, 0), (0, 0)])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert np.isfinite(y).all()
    y, idx = results["scalar", True]
    assert y[0, 0, 0, 0] in np.float32([3e19, 1e20, 2e38])
    assert y[0, 0, 0, 1] in np.float32([5e19, 1e30])
    plane = x.reshape(2, -1)
    np.testing.assert_array_equal(y[0], np.take_along_axis(plane, idx[0].reshape(2, -1), 1)
                                  .reshape(y[0].shape))


def test_infinity_is_accepted_and_tiers_agree():
    x = weights((1, 1, 4, 36), 10)
    x[0, 0, 0, 0] = np.inf
    for training in (True, False):
        with cnnfast.max_isa("scalar"):
            expected = pool(x, ((1, 1, 4, 36), 2, 2, 0), True, training=training, seed=4)
        for tier in available_tiers():
            with cnnfast.max_isa(tier):
                assert_bitwise(pool(x, ((1, 1, 4, 36), 2, 2, 0), False, training=training,
                                    seed=4), expected, tier)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("bad", [-1.0, np.nan, -1e-40], ids=["negative", "nan", "subnormal"])
@pytest.mark.parametrize("where, kernel, stride", [
    ((0, 1, 3, 2), 2, 2),    # read by a window
    ((1, 0, 4, 1), 2, 2),    # the last row, which no 2x2/2 window of 5 rows reads
    ((0, 2, 1, 2), 1, 2),    # between the windows of a 1x1/2 pooling
], ids=["read", "trailing-row", "gap"])
def test_first_offender_is_reported_wherever_it_is(isa, layout, bad, where, kernel, stride):
    x = np.ones((2, 3, 5, 6), np.float32)
    x[where] = bad
    x[1, 2, 4, 5] = -7.0  # a later offender: the message names the first one
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    first = int(np.flatnonzero(~(x >= 0))[0])
    with pytest.raises(ValueError, match=rf"x must be non-negative .* at flat position {first}$"):
        cnnfast.stochastic_pool2d(x, kernel, stride, layout=layout, seed=0)
    with pytest.raises(ValueError, match=r"x must be non-negative"):
        cnnfast.stochastic_pool2d(x, kernel, stride, layout=layout, training=False)


def test_negative_zero_is_accepted_as_zero(isa):
    x = weights((2, 3, 8, 36), 12)
    signed = x.copy()
    signed[x == 0] = -0.0
    for training in (True, False):
        a = pool(x, ((2, 3, 8, 36), 2, 2, 0), False, training=training, seed=6)
        b = pool(signed, ((2, 3, 8, 36), 2, 2, 0), False, training=training, seed=6)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_eval_ignores_seed_and_rng():
    x = weights((1, 2, 6, 6), 13)
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    a = cnnfast.stochastic_pool2d(x, 2, training=False, rng=rng)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(a, cnnfast.stochastic_pool2d(x, 2, training=False, seed=123))
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator"):
        cnnfast.stochastic_pool2d(x, 2, training=False, rng=3)


def test_unread_inputs_are_checked_in_parallel_chunks(restore_threads):
    # 240000 elements (four 64K chunks of the unread-input pass) at 2 threads; the offenders sit
    # between the windows of a 1x1/2 pooling, the first one in the last chunk.
    x = np.ones((2, 3, 200, 200), np.float32)
    x[1, 2, 199, 1] = np.nan
    x[1, 2, 199, 3] = -1.0
    cnnfast.set_num_threads(2)
    first = int(np.flatnonzero(~(x >= 0))[0])
    with pytest.raises(ValueError, match=rf"got nan at flat position {first}$"):
        cnnfast.stochastic_pool2d(x, 1, 2, seed=0)
    x[1, 2, 199, 1] = x[1, 2, 199, 3] = 0.0
    assert cnnfast.stochastic_pool2d(x, 1, 2, seed=0).shape == (2, 3, 100, 100)
