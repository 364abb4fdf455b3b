"""cnnfast.batch_norm, fold_batch_norm, conv_bn_act and the standalone activations against the
float64 references in reference.py, on every ISA tier; running-statistic updates against
PyTorch's rule; determinism across thread counts; every error path."""

import numpy as np
import pytest

import cnnfast
import reference

EPS32 = np.finfo(np.float32).eps
ACTIVATIONS = (None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish")

# (shape, layout): 1-D (N, C) and (N, C, L), 2-D, 3-D; channels first and last; odd channel
# counts and sizes around the kernels' 32-lane blocks and 4096-value moment blocks.
SHAPES = [
    ((5, 3), "NC"),
    ((2, 7, 33), "NCL"),
    ((3, 5, 7, 9), "NCHW"),
    ((1, 17, 1, 3), "NCHW"),  # batch 1
    ((2, 4, 3, 5, 6), "NCDHW"),
    ((1, 3, 65, 65), "NCHW"),  # planes of 4225 > one 4096 moment block
    ((2, 9, 5), "NLC"),
    ((3, 5, 7, 9), "NHWC"),
    ((2, 300, 7, 67), "NHWC"),  # rows > one 256-row moment block, C > one 64-channel task
    ((2, 3, 4, 5, 6), "NDHWC"),
]


def channel_axis(layout):
    return -1 if layout.endswith("C") and layout != "NC" else 1


def make(shape, layout, rng, mean=0.0, scale=1.0):
    x = (rng.standard_normal(shape) * scale + mean).astype(np.float32)
    c = shape[channel_axis(layout)]
    vec = lambda lo, hi: rng.uniform(lo, hi, c).astype(np.float32)  # noqa: E731
    return x, vec(-1, 1), vec(0.5, 2), vec(0.5, 1.5), vec(-1, 1)


def assert_close(y, expected, scale=1.0, rtol=16 * EPS32):
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape, layout", SHAPES)
def test_inference_matches_reference(isa, shape, layout, activation):
    rng = np.random.default_rng(len(shape) * 100 + shape[1])
    x, rm, rv, w, b = make(shape, layout, rng)
    y = cnnfast.batch_norm(x, rm, rv, w, b, eps=1e-3, activation=activation, layout=layout)
    expected = reference.activation(
        activation, reference.batch_norm(x, rm, rv, w, b, 1e-3, channel_axis(layout)))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert_close(y, expected, scale=np.abs(expected).max() + 1, rtol=64 * EPS32)


@pytest.mark.parametrize("shape, layout", SHAPES)
def test_training_normalises_with_batch_statistics_and_updates_running_ones(isa, shape, layout):
    rng = np.random.default_rng(7)
    x, rm, rv, w, b = make(shape, layout, rng, mean=3.0, scale=2.0)
    rm0, rv0 = rm.copy(), rv.copy()
    axis = channel_axis(layout)
    y = cnnfast.batch_norm(x, rm, rv, w, b, training=True, momentum=0.25, layout=layout)
    mean, var = reference.batch_stats(x, axis)
    assert_close(y, reference.batch_norm(x, mean, var, w, b, 1e-5, axis), scale=4,
                 rtol=256 * EPS32)
    count = x.size // x.shape[axis]
    np.testing.assert_allclose(rm, 0.75 * rm0 + 0.25 * mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rv, 0.75 * rv0 + 0.25 * var * count / (count - 1), rtol=1e-5)


def test_training_without_running_statistics():
    rng = np.random.default_rng(1)
    x, *_ = make((4, 3, 5, 5), "NCHW", rng)
    y = cnnfast.batch_norm(x, None, None, training=True)
    mean, var = reference.batch_stats(x, 1)
    assert_close(y, reference.batch_norm(x, mean, var, None, None, 1e-5, 1), scale=4,
                 rtol=256 * EPS32)


def test_large_mean_small_variance_keeps_the_variance(isa):
    # 1e4 + N(0, 1e-2): E[x^2] - E[x]^2 in float32 would lose every digit of the variance.
    rng = np.random.default_rng(3)
    for shape, layout in (((8, 3, 32, 32), "NCHW"), ((8, 32, 32, 3), "NHWC"), ((9000, 2), "NC")):
        x = (1e4 + rng.standard_normal(shape) * 1e-2).astype(np.float32)
        axis = channel_axis(layout)
        c = x.shape[axis]
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        y = cnnfast.batch_norm(x, rm, rv, training=True, momentum=1.0, eps=1e-10, layout=layout)
        mean, var = reference.batch_stats(x, axis)
        count = x.size // c
        np.testing.assert_allclose(rv, var * count / (count - 1), rtol=1e-4)
        np.testing.assert_allclose(rm, mean, rtol=1e-7)
        # Normalised output has unit variance per channel (eps far below the variance 1e-4).
        np.testing.assert_allclose(reference.batch_stats(y, axis)[1], 1.0, rtol=1e-3)


def test_cumulative_average_with_num_batches_tracked():
    rng = np.random.default_rng(5)
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    tracked = np.zeros(1, np.int64)
    means, variances = [], []
    for step in range(3):
        x = rng.standard_normal((6, 4, 3, 3)).astype(np.float32) + step
        cnnfast.batch_norm(x, rm, rv, training=True, momentum=None,
                           num_batches_tracked=tracked)
        mean, var = reference.batch_stats(x, 1)
        means.append(mean)
        variances.append(var * 54 / 53)
        assert tracked[0] == step + 1
    # momentum=None with factor 1/t from running_mean 0 / var 1: the plain average of batches.
    np.testing.assert_allclose(rm, np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, np.mean(variances, axis=0), rtol=1e-5)


def test_running_statistics_follow_pytorch_for_several_steps():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    bn = torch.nn.BatchNorm2d(5, momentum=0.3)
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    for _ in range(4):
        x = (rng.standard_normal((3, 5, 4, 6)) * 2 + 1).astype(np.float32)
        expected = bn(torch.from_numpy(x)).detach().numpy()
        y = cnnfast.batch_norm(x, rm, rv, bn.weight.detach().numpy(), bn.bias.detach().numpy(),
                               training=True, momentum=0.3)
        assert_close(y, expected, scale=4, rtol=256 * EPS32)
    np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-5)


@pytest.mark.parametrize("training", [False, True])
# Sizes above the parallel threshold (kMinParallelElements = 32K elements, core/parallel.h), so
# that 2 threads really split the work.
@pytest.mark.parametrize("shape, layout", [((3, 70, 17, 11), "NCHW"), ((3, 9, 11, 400), "NHWC")])
def test_one_and_two_threads_are_bitwise_equal(restore_threads, shape, layout, training):
    rng = np.random.default_rng(2)
    x, rm, rv, w, b = make(shape, layout, rng)
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        stats = rm.copy(), rv.copy()
        y = cnnfast.batch_norm(x, *stats, w, b, training=training, layout=layout)
        results.append((y, *stats))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_out_and_in_place():
    rng = np.random.default_rng(4)
    x, rm, rv, w, b = make((2, 3, 4, 5), "NCHW", rng)
    expected = cnnfast.batch_norm(x, rm, rv, w, b)
    out = np.empty_like(x)
    assert cnnfast.batch_norm(x, rm, rv, w, b, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert cnnfast.batch_norm(x, rm, rv, w, b, out=x) is x
    np.testing.assert_array_equal(x, expected)


def test_non_contiguous_input_is_read_correctly():
    rng = np.random.default_rng(6)
    x, rm, rv, w, b = make((3, 4, 6, 8), "NCHW", rng)
    view = x[:, :, ::2, 1::2]
    y = cnnfast.batch_norm(view, rm, rv, w, b)
    assert_close(y, reference.batch_norm(view, rm, rv, w, b, 1e-5, 1), scale=8,
                 rtol=64 * EPS32)


def test_empty_batch_gives_empty_output():
    x = np.zeros((0, 3, 4, 4), np.float32)
    y = cnnfast.batch_norm(x, np.zeros(3, np.float32), np.ones(3, np.float32))
    assert y.shape == x.shape


# -- errors ------------------------------------------------------------------------------------


def vectors(c=3):
    return np.zeros(c, np.float32), np.ones(c, np.float32)


@pytest.mark.parametrize("call, error, match", [
    (lambda: cnnfast.batch_norm(np.zeros(3, np.float32), *vectors()), ValueError,
     r"batch_norm: x must have at least 2 dimensions.*\(3,\)"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4)), *vectors()), TypeError,
     r"batch_norm: x has dtype float64"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(4)), ValueError,
     r"batch_norm: running_mean must have shape \(3,\).*\(2, 3, 4\).*\(4,\)"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(),
                                weight=np.ones(2, np.float32)), ValueError,
     r"batch_norm: weight must have shape \(3,\)"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(),
                                bias=np.ones((3, 1), np.float32)), ValueError,
     r"batch_norm: bias must have shape \(3,\)"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), np.zeros(3, np.float32),
                                -np.ones(3, np.float32)), ValueError,
     r"batch_norm: running_var must be >= 0"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(), eps=0.0),
     ValueError, r"batch_norm: eps must be > 0"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), None, None), ValueError,
     r"running_mean and running_var are required when training=False"),
    (lambda: cnnfast.batch_norm(np.zeros((1, 3, 1, 1), np.float32), *vectors(),
                                training=True), ValueError,
     r"expected more than 1 value per channel when training, got x \(1, 3, 1, 1\)"),
    (lambda: cnnfast.batch_norm(np.zeros((1, 3), np.float32), *vectors(), training=True),
     ValueError, r"more than 1 value per channel"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(), layout="NHWC"),
     ValueError, r"layout 'NHWC' is for 4-D x, got shape \(2, 3, 4\)"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(), layout="CHW"),
     ValueError, r"unknown layout 'CHW'"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(),
                                activation="gelu"), ValueError, r"unknown activation 'gelu'"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(), training=True,
                                momentum=None), ValueError, r"needs num_batches_tracked"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(), training=True,
                                momentum=None, num_batches_tracked=np.zeros(1, np.int32)),
     TypeError, r"num_batches_tracked must be a one-element int64 array"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(),
                                out=np.zeros((2, 3, 5), np.float32)), ValueError,
     r"batch_norm: out has shape \(2, 3, 5\) but x has shape \(2, 3, 4\)"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), np.zeros(3),
                                np.ones(3, np.float32)), TypeError,
     r"running_mean has dtype float64"),
    (lambda: cnnfast.batch_norm(np.zeros((2, 3, 4), np.float32), *vectors(), eps="1"),
     TypeError, r"eps must be a number"),
])
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_overlapping_x_partially_is_rejected():
    buf = np.zeros(2 * 3 * 4 + 1, np.float32)
    x = buf[:-1].reshape(2, 3, 4)
    with pytest.raises(ValueError, match=r"out overlaps x without being x"):
        cnnfast.batch_norm(x, *vectors(), out=buf[1:].reshape(2, 3, 4))


def test_read_only_running_statistics_are_rejected_in_training():
    rm, rv = vectors()
    rm.flags.writeable = False
    with pytest.raises(ValueError, match=r"running_mean is read-only"):
        cnnfast.batch_norm(np.ones((2, 3, 4), np.float32), rm, rv, training=True)


def test_running_statistics_overlapping_x_are_rejected():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"must not overlap x"):
        cnnfast.batch_norm(x, x[0, 0, :3], np.ones(3, np.float32), training=True)


# -- folding -----------------------------------------------------------------------------------


def bn_params(c, rng):
    return (rng.uniform(-1, 1, c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32),
            rng.uniform(0.5, 1.5, c).astype(np.float32), rng.uniform(-1, 1, c).astype(np.float32))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("groups, c_in, c_out", [(1, 4, 6), (2, 4, 6), (4, 4, 8), (5, 5, 5),
                                                 (1, 3, 40)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_folded_conv_equals_conv_then_batch_norm(isa, groups, c_in, c_out, with_bias, layout):
    rng = np.random.default_rng(groups * 10 + c_out)
    x = rng.standard_normal((2, c_in, 9, 8)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) if with_bias else None
    rm, rv, g, beta = bn_params(c_out, rng)
    expected = reference.batch_norm(
        reference.conv2d(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), groups), rm, rv, g, beta, 1e-5, 1)
    fw, fb = cnnfast.fold_batch_norm(w, b, rm, rv, g, beta)
    assert fw.dtype == np.float32 and fw.shape == w.shape and fb.shape == (c_out,)
    y = cnnfast.conv2d(x, fw, fb, 1, 1, groups=groups)
    assert_close(y, expected, scale=np.abs(expected).max(), rtol=1e-5)
    # conv_bn_act: the scale in the epilogue (depthwise when groups == c_in, GEMM otherwise).
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    fused = cnnfast.conv_bn_act(xl, w, b, rm, rv, g, beta, 1, 1, groups=groups,
                                activation="relu", layout=layout)
    if layout == "NHWC":
        fused = fused.transpose(0, 3, 1, 2)
    assert_close(fused, np.maximum(expected, 0), scale=np.abs(expected).max(), rtol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_folding_a_transposed_conv_scales_axis_1(groups):
    rng = np.random.default_rng(groups)
    c_in, ocg = 6, 2
    x = rng.standard_normal((2, c_in, 5, 4))
    w = rng.standard_normal((c_in, ocg, 3, 3)).astype(np.float32)
    b = rng.standard_normal(ocg * groups).astype(np.float32)
    rm, rv, g, beta = bn_params(ocg * groups, rng)
    conv = reference.conv_transpose2d(x, w, (2, 2), (1, 1), groups)
    expected = reference.batch_norm(conv + b.reshape(1, -1, 1, 1), rm, rv, g, beta, 1e-5, 1)
    fw, fb = cnnfast.fold_batch_norm(w, b, rm, rv, g, beta, transposed=True, groups=groups)
    folded = reference.conv_transpose2d(x, fw, (2, 2), (1, 1), groups) + fb.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(folded, expected, rtol=1e-5, atol=1e-5)


def test_conv_bn_act_nhwc_matches_nchw():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    rm, rv, g, beta = bn_params(4, rng)
    y = cnnfast.conv_bn_act(x, w, None, rm, rv, g, beta, padding=1, activation="silu")
    y_nhwc = cnnfast.conv_bn_act(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, None, rm, rv,
                                 g, beta, padding=1, activation="silu", layout="NHWC")
    np.testing.assert_allclose(y_nhwc.transpose(0, 3, 1, 2), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: cnnfast.fold_batch_norm(np.ones((4, 2, 3, 3), np.float32), None,
                                     *vectors(3)), r"running_mean must have shape \(4,\)"),
    (lambda: cnnfast.fold_batch_norm(np.ones((4, 2, 3, 3), np.float32), None,
                                     np.zeros(4, np.float32), -np.ones(4, np.float32)),
     r"running_var must be >= 0"),
    (lambda: cnnfast.fold_batch_norm(np.ones((4, 2, 3, 3), np.float32), None, *vectors(4),
                                     eps=0), r"eps must be a number > 0"),
    (lambda: cnnfast.fold_batch_norm(np.ones((4, 2), np.float32), None, *vectors(4)),
     r"at least 3-D"),
    (lambda: cnnfast.fold_batch_norm(np.ones((5, 2, 3, 3), np.float32), None, *vectors(4),
                                     transposed=True, groups=2), r"groups=2 must divide C_in=5"),
    (lambda: cnnfast.fold_batch_norm(np.ones((4, 2, 3, 3), np.float32), None, *vectors(4),
                                     groups=0), r"groups must be an int >= 1"),
])
def test_fold_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, match", [
    (lambda: cnnfast.conv_bn_act(np.ones((1, 2, 5, 5), np.float32),
                                 np.ones((4, 2, 3), np.float32), None, *vectors(4)),
     r"conv2d: weight must be 4-D"),
    (lambda: cnnfast.conv_bn_act(np.ones((1, 2, 5, 5), np.float32),
                                 np.ones((4, 2, 3, 3), np.float32), None, *vectors(3)),
     r"conv_bn_act: running_mean must have shape \(4,\)"),
    (lambda: cnnfast.conv_bn_act(np.ones((1, 3, 5, 5), np.float32),
                                 np.ones((4, 2, 3, 3), np.float32), None, *vectors(4)),
     r"conv2d: weight \(4, 2, 3, 3\) with groups=1 expects 2 input channels"),
    (lambda: cnnfast.conv_bn_act(np.ones((1, 2, 5, 5), np.float32),
                                 np.ones((4, 2, 3, 3), np.float32), None,
                                 np.zeros(4, np.float32), -np.ones(4, np.float32)),
     r"conv_bn_act: running_var must be >= 0"),
    (lambda: cnnfast.conv_bn_act(np.ones((1, 2, 5, 5), np.float32),
                                 np.ones((4, 2, 3, 3), np.float32), None, *vectors(4), eps=0.0),
     r"conv_bn_act: eps must be a number > 0"),
    (lambda: cnnfast.conv_bn_act(np.ones((1, 2, 5, 5), np.float32),
                                 np.ones((4, 2, 3, 3), np.float32), None, None,
                                 np.ones(4, np.float32)),
     r"conv_bn_act: running_mean is required"),
])
def test_conv_bn_act_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- standalone activations --------------------------------------------------------------------


def activation_call(name, x, **kw):
    if name == "leaky_relu":
        return cnnfast.leaky_relu(x, 0.2, **kw)
    return getattr(cnnfast, name)(x, **kw)


@pytest.mark.parametrize("name", ACTIVATIONS[1:])
@pytest.mark.parametrize("size", [1, 15, 16, 17, 33, 1000, 70000])
def test_activation_matches_reference(isa, name, size):
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 8).astype(np.float32)
    x[:3] = [0.0, 100.0, -100.0][: min(3, size)]
    y = activation_call(name, x)
    expected = reference.activation(name, x, 0.2)
    # exp-based ones: a vectorised exp within a few ulp; tanh near 0 within an absolute 1e-7.
    np.testing.assert_allclose(y, expected, rtol=8 * EPS32, atol=2e-7)


@pytest.mark.parametrize("name", ACTIVATIONS[1:])
def test_activation_in_place_out_and_nan(name):
    x = np.array([[-2.0, np.nan], [0.5, 7.0]], np.float32)
    expected = activation_call(name, x)
    assert np.isnan(expected[0, 1])
    assert activation_call(name, x, out=x) is x
    np.testing.assert_array_equal(x, expected)


def test_activation_bad_input():
    with pytest.raises(TypeError, match=r"relu: x has dtype float64"):
        cnnfast.relu(np.zeros(3))
    with pytest.raises(ValueError, match=r"sigmoid: out has shape \(4,\) but x has shape \(3,\)"):
        cnnfast.sigmoid(np.zeros(3, np.float32), out=np.zeros(4, np.float32))
    with pytest.raises(TypeError, match=r"tanh: x must be a numpy.ndarray"):
        cnnfast.tanh([1.0, 2.0])


def test_cross_check_against_torch_inference_and_activations():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x, rm, rv, w, b = make((2, 6, 5, 7), "NCHW", rng)
    expected = torch.nn.functional.batch_norm(*(torch.from_numpy(a) for a in (x, rm, rv, w, b)))
    assert_close(cnnfast.batch_norm(x, rm, rv, w, b), expected.numpy(), scale=4, rtol=64 * EPS32)
    for name in ("sigmoid", "tanh", "silu", "hardswish", "relu6"):
        ref = getattr(torch.nn.functional, name)(torch.from_numpy(x * 4)).numpy()
        np.testing.assert_allclose(getattr(cnnfast, name)(x * 4), ref, rtol=8 * EPS32, atol=2e-7)
