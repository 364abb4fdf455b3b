"""NaN and +-Inf propagate as in PyTorch through every op, on every ISA tier: the same outputs are
NaN, the same are +-Inf (with the same sign), and the finite rest agrees. Compared with
torch.nn.functional when it is installed, otherwise with the float64 references of reference.py
(which follow IEEE arithmetic, as torch does) and with explicit values for the activations."""

import os
import subprocess

import numpy as np
import pytest
from conftest import python_command

import cnnfast
import reference

SPECIALS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def poisoned(shape, kind, seed=0, count=3):
    """Random normals (small, so no finite sum overflows) with `count` entries set to `kind`
    ("nan", "inf", "-inf" or "mixed": one of each) at seeded positions."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    where = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    values = ([np.nan, np.inf, -np.inf] * count)[:len(where)] if kind == "mixed" else \
        [SPECIALS[kind]] * len(where)
    flat[where] = values
    return x


def assert_same_specials(got, want, rtol=1e-4, atol=1e-4):
    """Same NaN positions, same infinities (with sign), and the finite values close."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg="+inf differ")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg="-inf differ")
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=atol)


def weights(shape, seed=1):
    # Nonzero weights: a zero weight times an infinite input is NaN in IEEE arithmetic, and
    # whether an algorithm forms that product is not a property this test is about.
    w = np.random.default_rng(seed).uniform(0.25, 1.0, shape).astype(np.float32)
    return w * np.where(np.random.default_rng(seed + 1).random(shape) < 0.5, -1, 1).astype(
        np.float32)


KINDS = ["nan", "inf", "-inf", "mixed"]
ACTIVATIONS = ["relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish"]


# -- activations: explicit values (no torch needed) ---------------------------------------------

# f(nan), f(+inf), f(-inf) as PyTorch 2.x returns them (torch.nn.functional on float32 CPU
# tensors). silu(-inf) and hardswish(-inf) are NaN there: -inf * 0.
EXPECTED = {
    "relu": (np.nan, np.inf, 0.0),
    "relu6": (np.nan, 6.0, 0.0),
    "leaky_relu": (np.nan, np.inf, -np.inf),
    "sigmoid": (np.nan, 1.0, 0.0),
    "tanh": (np.nan, 1.0, -1.0),
    "silu": (np.nan, np.inf, np.nan),
    "hardswish": (np.nan, np.inf, np.nan),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_specials_explicit(isa, name):
    # 37 elements: a full SIMD body and a masked tail on every tier, specials in both.
    x = np.linspace(-4, 4, 37).astype(np.float32)
    x[[0, 1, 2, 34, 35, 36]] = [np.nan, np.inf, -np.inf, np.nan, np.inf, -np.inf]
    y = getattr(cnnfast, name)(x)
    want = np.array(EXPECTED[name] * 2, np.float64)
    got = y[[0, 1, 2, 34, 35, 36]]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)], err_msg=name)
    # Large finite inputs saturate like the limits (no overflow to NaN inside exp).
    big = np.array([88.0, 89.0, 100.0, 1e30, -88.0, -89.0, -100.0, -1e30], np.float32)
    # (atol: results below ~1e-36 may be flushed to zero: exp saturates to +inf above
    # ln(FLT_MAX), so silu(-89) is -0, as in PyTorch, where the float64 value is -2e-37.)
    with np.errstate(over="ignore", invalid="ignore"):
        want_big = reference.activation(name, big)
        np.testing.assert_allclose(getattr(cnnfast, name)(big), want_big, rtol=1e-5, atol=1e-36)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_specials_torch(isa, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = poisoned((5, 7, 11), "mixed", count=30)
    want = getattr(F, name)(torch.from_numpy(x)).numpy()
    assert_same_specials(getattr(cnnfast, name)(x), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_fused_activation_specials_torch(isa, name):
    """The GEMM epilogue's activations treat NaN/Inf like the standalone ones (1x1 conv)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = poisoned((1, 3, 5, 7), "mixed", count=12)
    w = weights((17, 3, 1, 1))
    y = cnnfast.conv2d(x, w, activation=name)
    want = getattr(F, name)(F.conv2d(torch.from_numpy(x), torch.from_numpy(w))).numpy()
    assert_same_specials(y, want)


# -- convolutions against torch ----------------------------------------------------------------

def torch_or_skip():
    return pytest.importorskip("torch")


DENSE_ALGOS = [a for a in cnnfast.conv2d_algorithms() if a not in ("gemm1x1", "depthwise")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("algo", DENSE_ALGOS)
def test_conv2d_specials(isa, kind, algo):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = poisoned((2, 4, 9, 10), kind)
    w = weights((6, 4, 3, 3))
    b = weights((6,), seed=5)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
                    padding=1).numpy()
    assert_same_specials(cnnfast.conv2d(x, w, b, padding=1, algo=algo), want)
    w1 = weights((6, 4, 1, 1))
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w1)).numpy()
    assert_same_specials(cnnfast.conv2d(x, w1, algo="gemm1x1" if algo == "auto" else algo),
                         want)


@pytest.mark.parametrize("kind", KINDS)
def test_depthwise_and_grouped_specials(isa, kind):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = poisoned((1, 8, 9, 10), kind)
    for w, groups, algos in ((weights((8, 1, 3, 3)), 8, ("depthwise", "auto")),
                             (weights((8, 2, 3, 3)), 4, ("direct", "auto"))):
        want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1,
                        groups=groups).numpy()
        for algo in algos:
            assert_same_specials(cnnfast.conv2d(x, w, padding=1, groups=groups, algo=algo), want)


@pytest.mark.parametrize("kind", KINDS)
def test_conv1d_conv3d_specials(isa, kind):
    torch = torch_or_skip()
    F = torch.nn.functional
    x1 = poisoned((2, 3, 17), kind)
    w1 = weights((5, 3, 3))
    want = F.conv1d(torch.from_numpy(x1), torch.from_numpy(w1), padding=1).numpy()
    assert_same_specials(cnnfast.conv1d(x1, w1, padding=1), want)
    x3 = poisoned((1, 3, 5, 6, 7), kind)
    w3 = weights((4, 3, 3, 3, 3))
    for algo in cnnfast.conv3d_algorithms():
        w, groups = (weights((3, 1, 3, 3, 3)), 3) if algo == "depthwise" else (w3, 1)
        want = F.conv3d(torch.from_numpy(x3), torch.from_numpy(w), padding=1,
                        groups=groups).numpy()
        assert_same_specials(cnnfast.conv3d(x3, w, padding=1, groups=groups, algo=algo), want)


@pytest.mark.parametrize("kind", KINDS)
def test_conv_transpose_specials(isa, kind):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = poisoned((1, 4, 5, 6), kind)
    w = weights((4, 3, 3, 3))
    want = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2,
                              padding=1).numpy()
    for algo in cnnfast.conv_transpose2d_algorithms():
        assert_same_specials(cnnfast.conv_transpose2d(x, w, stride=2, padding=1, algo=algo), want)
    x1 = poisoned((1, 4, 9), kind)
    w1 = weights((4, 2, 4))
    want = F.conv_transpose1d(torch.from_numpy(x1), torch.from_numpy(w1), stride=3).numpy()
    assert_same_specials(cnnfast.conv_transpose1d(x1, w1, stride=3), want)
    x3 = poisoned((1, 2, 3, 4, 5), kind)
    w3 = weights((2, 3, 2, 3, 2))
    want = F.conv_transpose3d(torch.from_numpy(x3), torch.from_numpy(w3), stride=2).numpy()
    for algo in cnnfast.conv_transpose3d_algorithms():
        assert_same_specials(cnnfast.conv_transpose3d(x3, w3, stride=2, algo=algo), want)


@pytest.mark.parametrize("kind", KINDS)
def test_separable_specials(isa, kind):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = poisoned((1, 5, 9, 8), kind)
    dw = weights((5, 1, 3, 3))
    pw = weights((7, 5, 1, 1), seed=3)
    mid = F.conv2d(torch.from_numpy(x), torch.from_numpy(dw), padding=1, groups=5)
    want = F.conv2d(F.relu(mid), torch.from_numpy(pw)).numpy()
    assert_same_specials(
        cnnfast.separable_conv2d(x, dw, pw, padding=1, mid_activation="relu"), want)


@pytest.mark.parametrize("kind", KINDS)
def test_deform_conv2d_specials_in_x(isa, kind):
    """Integer offsets sample whole pixels, so deform_conv2d is conv2d over the same input, with
    the same infinities (the zero bilinear weights of an integer sample never meet x)."""
    x = poisoned((1, 3, 7, 8), kind)
    w = weights((4, 3, 3, 3))
    offset = np.zeros((1, 18, 7, 8), np.float32)
    mask = np.ones((1, 9, 7, 8), np.float32)
    want = reference.deform_conv2d(x, offset, w, None, (1, 1), (1, 1, 1, 1), (1, 1), mask)
    assert_same_specials(cnnfast.deform_conv2d(x, offset, w, padding=1, mask=mask), want)


# -- pooling ------------------------------------------------------------------------------------

POOLS = [  # (cnnfast name, torch name, args)
    ("max_pool1d", "max_pool1d", (3, 2, 1)),
    ("max_pool2d", "max_pool2d", (3, 2, 1)),
    ("max_pool3d", "max_pool3d", (2, 2, 1)),
    ("avg_pool1d", "avg_pool1d", (3, 2, 1)),
    ("avg_pool2d", "avg_pool2d", (3, 2, 1)),
    ("avg_pool3d", "avg_pool3d", (2, 2, 1)),
    ("lp_pool1d", "lp_pool1d", (2.0, 3, 2)),
    ("lp_pool2d", "lp_pool2d", (2.0, 3, 2)),
    ("lp_pool3d", "lp_pool3d", (2.0, 2, 2)),
    ("adaptive_avg_pool1d", "adaptive_avg_pool1d", (4,)),
    ("adaptive_avg_pool2d", "adaptive_avg_pool2d", ((3, 4),)),
    ("adaptive_avg_pool3d", "adaptive_avg_pool3d", ((2, 3, 2),)),
    ("adaptive_max_pool1d", "adaptive_max_pool1d", (4,)),
    ("adaptive_max_pool2d", "adaptive_max_pool2d", ((3, 4),)),
    ("adaptive_max_pool3d", "adaptive_max_pool3d", ((2, 3, 2),)),
]
POOL_SHAPES = {1: (2, 3, 11), 2: (2, 3, 9, 10), 3: (1, 3, 5, 6, 7)}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ours,theirs,args", POOLS, ids=[p[0] for p in POOLS])
def test_pool_specials(isa, ours, theirs, args, kind):
    torch = torch_or_skip()
    dims = int(ours[-2])
    x = poisoned(POOL_SHAPES[dims], kind, count=4)
    want = getattr(torch.nn.functional, theirs)(torch.from_numpy(x), *args).numpy()
    assert_same_specials(getattr(cnnfast, ours)(x, *args), want)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_indices_with_specials(isa, kind, channels_last):
    """The index of a NaN (or of the first maximum) is torch's."""
    torch = torch_or_skip()
    x = poisoned((2, 33, 9, 10), kind, count=40)
    want, want_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1,
                                                    return_indices=True)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if channels_last else x
    y, idx = cnnfast.max_pool2d(xl, 3, 2, 1, return_indices=True,
                                layout="NHWC" if channels_last else "NCHW")
    if channels_last:
        y, idx = y.transpose(0, 3, 1, 2), idx.transpose(0, 3, 1, 2)
    assert_same_specials(y, want.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())


@pytest.mark.parametrize("kind", KINDS)
def test_global_and_pyramid_pool_specials(isa, kind):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = poisoned((2, 5, 8, 8), kind)
    t = torch.from_numpy(x)
    assert_same_specials(cnnfast.global_avg_pool2d(x), F.adaptive_avg_pool2d(t, 1).numpy())
    assert_same_specials(cnnfast.global_max_pool2d(x), F.adaptive_max_pool2d(t, 1).numpy())
    want = np.concatenate([F.adaptive_max_pool2d(t, k).numpy().reshape(2, -1)
                           for k in (1, 2, 4)], axis=1)
    assert_same_specials(cnnfast.spatial_pyramid_pool2d(x, (1, 2, 4)), want)
    m = F.max_pool2d(t, 5, 1, 2)
    m2 = F.max_pool2d(m, 5, 1, 2)
    want = torch.cat([t, m, m2, F.max_pool2d(m2, 5, 1, 2)], 1).numpy()
    got = cnnfast.spp_fast(x, 5)
    assert_same_specials(got, want)


def test_max_pool_specials_without_torch(isa):
    """NaN wins its window; +inf wins; a window of -inf (and padding) gives -inf."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 0, 3] = np.inf
    x[0, 0, 3, :] = -np.inf
    y = cnnfast.max_pool2d(x, 2, 2)
    np.testing.assert_array_equal(y[0, 0], [[np.nan, np.inf], [0.0, 0.0]])
    y = cnnfast.max_pool2d(x[:, :, 3:, :], (1, 2), (1, 2))
    np.testing.assert_array_equal(y[0, 0], [[-np.inf, -np.inf]])
    assert np.isnan(cnnfast.global_max_pool2d(x)).all()
    assert np.isnan(cnnfast.adaptive_max_pool2d(x, 1)).all()
    assert np.isnan(cnnfast.avg_pool2d(x, 4)).all()


# -- batch norm ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_specials(isa, kind, training):
    torch = torch_or_skip()
    F = torch.nn.functional
    x = poisoned((3, 6, 5, 7), kind)
    rng = np.random.default_rng(4)
    mean = rng.standard_normal(6).astype(np.float32)
    var = rng.uniform(0.5, 2, 6).astype(np.float32)
    gamma, beta = weights((6,)), weights((6,), seed=7)
    tm, tv = torch.from_numpy(mean.copy()), torch.from_numpy(var.copy())
    want = F.batch_norm(torch.from_numpy(x), tm, tv, torch.from_numpy(gamma),
                        torch.from_numpy(beta), training=training, momentum=0.1).numpy()
    m, v = mean.copy(), var.copy()
    got = cnnfast.batch_norm(x, m, v, gamma, beta, training=training, momentum=0.1)
    assert_same_specials(got, want)
    assert_same_specials(m, tm.numpy())
    assert_same_specials(v, tv.numpy())


def test_batch_norm_nan_statistics(isa):
    """A NaN in the running statistics or the affine parameters poisons only its channel."""
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    mean, var = np.zeros(4, np.float32), np.ones(4, np.float32)
    mean[1] = np.nan
    gamma = np.ones(4, np.float32)
    gamma[2] = np.nan
    y = cnnfast.batch_norm(x, mean, var, gamma)
    assert np.isnan(y[:, 1:3]).all()
    assert np.isfinite(y[:, [0, 3]]).all()
    var[3] = np.inf  # 1/sqrt(inf) = 0: the channel becomes beta (0)
    y = cnnfast.batch_norm(x, np.zeros(4, np.float32), var)
    np.testing.assert_array_equal(y[:, 3], 0.0)


# -- matmul, upsampling, a layer ---------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_matmul_and_upsample_specials(isa, kind):
    torch = torch_or_skip()
    F = torch.nn.functional
    a = poisoned((37, 29), kind)
    b = weights((29, 41))
    want = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    assert_same_specials(cnnfast.matmul(a, b), want)
    x = poisoned((1, 3, 5, 6), kind)
    t = torch.from_numpy(x)
    assert_same_specials(cnnfast.upsample_nearest2d(x, scale_factor=2),
                         F.interpolate(t, scale_factor=2, mode="nearest").numpy())
    for align in (False, True):
        assert_same_specials(
            cnnfast.upsample_bilinear2d(x, size=(11, 13), align_corners=align),
            F.interpolate(t, size=(11, 13), mode="bilinear", align_corners=align).numpy())


def test_nn_layer_specials():
    torch = torch_or_skip()
    import cnnfast.nn as nn
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2)).eval()
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.MaxPool2d(2)).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    x = poisoned((2, 3, 8, 8), "mixed")
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    assert_same_specials(model(x), want)
    assert_same_specials(model.fuse()(x), want)


# -- long averages ------------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True])
def test_long_average_does_not_stall(isa, channels_last):
    """A float running sum stops growing once it passes 2^24 times its addends: one 2^24 and 2^20
    ones averaged by a single float sum lose ~1% (a global average over 2^31 ones returned
    0.25). Adaptive and global averages sum in float chunks combined in double."""
    c = 4 if channels_last else 1
    x = np.ones((1, c, 1024, 1024 // c), np.float32)
    x[0, :, 0, 0] = 2.0 ** 24
    want = x.astype(np.float64).mean(axis=(2, 3))
    halves = np.stack([x[:, :, :512].astype(np.float64).mean(axis=(2, 3)),
                       x[:, :, 512:].astype(np.float64).mean(axis=(2, 3))], axis=2)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        g = cnnfast.global_avg_pool2d(x, layout="NHWC")[:, 0, 0, :]
        a = cnnfast.adaptive_avg_pool2d(x, (2, 1), layout="NHWC")[:, :, 0, :].transpose(0, 2, 1)
    else:
        g = cnnfast.global_avg_pool2d(x)[:, :, 0, 0]
        a = cnnfast.adaptive_avg_pool2d(x, (2, 1))[:, :, :, 0]
    np.testing.assert_allclose(g, want, rtol=1e-3)
    np.testing.assert_allclose(a, halves, rtol=1e-3)


# -- subnormals -----------------------------------------------------------------------------------

TINY = np.finfo(np.float32).tiny  # 1.18e-38, the smallest normal float32


def test_subnormals_flush_to_zero_inside_ops_only(isa):
    """Ops run with FTZ/DAZ (core/denormals.h): subnormal inputs read as 0 and subnormal
    results are 0, where IEEE (and PyTorch by default) would keep them; a subnormal input cost
    100-200x the time of a normal one otherwise (bench/denormal.py). The caller's
    floating-point mode is untouched: NumPy still computes subnormals after the calls."""
    x = np.full((1, 4, 6, 7), 3e-39, np.float32)
    w = np.ones((2, 4, 3, 3), np.float32)
    assert np.count_nonzero(cnnfast.conv2d(x, w, padding=1)) == 0  # IEEE: 1.08e-37 in the middle
    assert np.count_nonzero(cnnfast.matmul(x.reshape(4, 42).T.copy(), w.reshape(2, 36)[:, :4].T
                                           .copy())) == 0
    y = cnnfast.conv2d(np.ones((1, 4, 6, 7), np.float32), w * np.float32(1e-39), padding=1)
    assert np.count_nonzero(y) == 0  # subnormal weights read as 0 too
    z = cnnfast.avg_pool2d(np.full((1, 1, 4, 4), 1e-30, np.float32) * np.float32(1e-9), 2)
    assert np.count_nonzero(z) == 0
    assert cnnfast.batch_norm(x, np.zeros(4, np.float32), np.ones(4, np.float32)).max() == 0
    # Normal values just above the boundary are unaffected.
    np.testing.assert_allclose(cnnfast.conv2d(x * np.float32(1e3), w, padding=1)[0, 0, 2, 2],
                               36 * 3e-36, rtol=1e-6)
    # The calling thread's mode is restored: NumPy (same thread) still produces subnormals.
    assert np.float32(3e-39) * np.float32(0.5) != 0
    assert (np.full(64, 3e-39, np.float32) * np.float32(0.5) != 0).all()
    assert TINY * np.float32(0.5) > 0


def test_ieee_subnormals_on_request():
    """CNNFAST_FLUSH_DENORMALS=0 (read once per process) keeps IEEE subnormals."""
    code = ("import numpy as np, cnnfast\n"
            "x = np.full((1, 4, 6, 7), 3e-39, np.float32)\n"
            "y = cnnfast.conv2d(x, np.ones((2, 4, 3, 3), np.float32), padding=1)\n"
            "assert abs(y[0, 0, 2, 2] / np.float32(36 * 3e-39) - 1) < 1e-5, y[0, 0, 2, 2]\n"
            "assert cnnfast.matmul(x.reshape(4, 42).T.copy(), np.ones((4, 2), np.float32))"
            ".min() > 0\n")
    env = dict(os.environ, CNNFAST_FLUSH_DENORMALS="0")
    result = subprocess.run(python_command(code), env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
