"""Memory: resident memory does not grow over 10^4 calls of each op (workspaces are reused and
nothing leaks), element offsets beyond 2^31 index correctly (cheaply, through strided views of
a sparse 8 GiB mapping; and, marked slow, on real inputs of more than 2^31 elements), and a
request whose memory cannot be allocated raises MemoryError instead of crashing.

The slow tests need about 9 GiB of free memory and a few minutes: run them with
`pytest --run-slow tests/test_memory.py` (or CNNFAST_RUN_SLOW=1).

The growth test runs on the active (best) tier only: allocation happens in the ops' drivers,
bindings and workspace cache, which are the same code on every tier (kernels never allocate,
DESIGN.md section 3), and one pass over every op takes ~15 s. Under AddressSanitizer it is
meaningless (freed memory sits in ASan's quarantine) and scripts/ci_sanitize.sh leaves it out.
"""

import gc
import mmap
import os
import subprocess

import numpy as np
import pytest
from conftest import python_command

import cnnfast
import cnnfast.nn as nn

# -- no growth over 10^4 calls ------------------------------------------------------------

CALLS = 10_000
WARMUP = 500
# Fixed slack after warm-up: the allocator's own bookkeeping may still move by a few pages. A
# leak of 200 bytes per call (one small array, one std::vector) would exceed it 10^4 calls on.
SLACK_BYTES = 2 << 20


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _ops():
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    x1, x2, x3 = r(2, 4, 17), r(2, 4, 9, 10), r(1, 3, 4, 5, 6)
    x2_nhwc = np.ascontiguousarray(x2.transpose(0, 2, 3, 1))
    w1, w2, w3 = r(6, 4, 3), r(6, 4, 3, 3), r(4, 3, 3, 3, 3)
    mean, var = r(4), np.abs(r(4)) + 0.5
    y, idx = cnnfast.max_pool2d(x2, 2, return_indices=True)
    offset, mask = r(2, 18, 9, 10) * 0.5, np.abs(r(2, 9, 9, 10))
    conv_layer = nn.Conv2d(4, 6, 3, padding=1)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 5, 10)).eval()
    a, b = r(33, 17), r(17, 29)
    wt1, wt2, wt3 = (np.ascontiguousarray(np.swapaxes(w, 0, 1)) for w in (w1, w2, w3))
    w_dw, w_pw, w_g2 = w2[:4, :1].copy(), w2[:, :, :1, :1].copy(), w2[:, :2].copy()
    col, row = r(3), r(3)
    out = np.empty((33, 29), np.float32)
    return {
        "conv1d": lambda: cnnfast.conv1d(x1, w1, padding=1),
        "conv2d_implicit_gemm": lambda: cnnfast.conv2d(x2, w2, padding=1, algo="implicit_gemm"),
        "conv2d_im2col": lambda: cnnfast.conv2d(x2, w2, padding=1, algo="im2col"),
        "conv2d_gemm1x1": lambda: cnnfast.conv2d(x2, w_pw),
        "conv2d_nhwc": lambda: cnnfast.conv2d(x2_nhwc, w2, padding=1, layout="NHWC"),
        "conv2d_direct": lambda: cnnfast.conv2d(x2, w_g2, padding=1, groups=2, algo="direct"),
        "conv2d_depthwise": lambda: cnnfast.conv2d(x2, w_dw, padding=1, groups=4),
        "conv3d": lambda: cnnfast.conv3d(x3, w3, padding=1),
        "conv3d_vol2col": lambda: cnnfast.conv3d(x3, w3, padding=1, algo="vol2col"),
        "conv_transpose1d": lambda: cnnfast.conv_transpose1d(x1, wt1[:4], stride=2),
        "conv_transpose2d_phase": lambda: cnnfast.conv_transpose2d(x2, wt2, stride=2,
                                                                   algo="phase"),
        "conv_transpose2d_col2im": lambda: cnnfast.conv_transpose2d(x2, wt2, stride=2,
                                                                    algo="gemm_col2im"),
        "conv_transpose3d": lambda: cnnfast.conv_transpose3d(x3, wt3, stride=2),
        "deform_conv2d": lambda: cnnfast.deform_conv2d(x2, offset, w2, padding=1, mask=mask),
        "separable_conv2d": lambda: cnnfast.separable_conv2d(x2, w_dw, w_pw, padding=1),
        "conv2d_separable": lambda: cnnfast.conv2d_separable(x2, col, row, padding=1),
        "conv_bn_act": lambda: cnnfast.conv_bn_act(x2, w2, None, mean[:1].repeat(6),
                                                   var[:1].repeat(6), padding=1),
        "max_pool1d": lambda: cnnfast.max_pool1d(x1, 3, 2, 1),
        "max_pool2d_indices": lambda: cnnfast.max_pool2d(x2, 3, 2, 1, return_indices=True),
        "max_pool2d_nhwc": lambda: cnnfast.max_pool2d(x2_nhwc, 3, 2, 1, layout="NHWC"),
        "max_pool3d": lambda: cnnfast.max_pool3d(x3, 2),
        "avg_pool2d": lambda: cnnfast.avg_pool2d(x2, 3, 2, 1),
        "lp_pool2d": lambda: cnnfast.lp_pool2d(x2, 2.0, 3, 2),
        "adaptive_avg_pool2d": lambda: cnnfast.adaptive_avg_pool2d(x2, (3, 4)),
        "adaptive_max_pool2d": lambda: cnnfast.adaptive_max_pool2d(x2, (3, 4),
                                                                   return_indices=True),
        "global_avg_pool2d": lambda: cnnfast.global_avg_pool2d(x2),
        "max_unpool2d": lambda: cnnfast.max_unpool2d(y, idx, 2),
        "stochastic_pool2d": lambda: cnnfast.stochastic_pool2d(np.abs(x2), 2, seed=0),
        "spatial_pyramid_pool2d": lambda: cnnfast.spatial_pyramid_pool2d(x2, (1, 2, 4)),
        "spp_fast": lambda: cnnfast.spp_fast(x2),
        "batch_norm_inference": lambda: cnnfast.batch_norm(x2, mean, var),
        "batch_norm_training": lambda: cnnfast.batch_norm(x2, mean.copy(), var.copy(),
                                                          training=True, activation="relu"),
        "relu": lambda: cnnfast.relu(x2),
        "sigmoid": lambda: cnnfast.sigmoid(x2),
        "silu_out": lambda: cnnfast.silu(x2, out=np.empty_like(x2)),
        "matmul": lambda: cnnfast.matmul(a, b),
        "matmul_out_strided": lambda: cnnfast.matmul(a[:, ::2], b[::2], out=out),
        "upsample_nearest2d": lambda: cnnfast.upsample_nearest2d(x2, scale_factor=2),
        "upsample_bilinear2d": lambda: cnnfast.upsample_bilinear2d(x2, scale_factor=2),
        "nn_conv2d_layer": lambda: conv_layer(x2),
        "nn_sequential": lambda: model(x2[:, :, :8]),
    }


OPS = _ops()


SANITIZED = "-fsanitize=address" in cnnfast._C.build_info()["cxx_flags"]


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer keeps freed memory in quarantine")
@pytest.mark.parametrize("name", sorted(OPS))
def test_resident_memory_does_not_grow(name, restore_threads):
    fn = OPS[name]
    for _ in range(5):  # every worker thread's workspaces exist from here on
        fn()
    # The counted calls run on one thread: a fork/join per call costs more than these small
    # ops, and on a loaded machine a descheduled worker stalls each join (10^4 calls of every op
    # took 190 s at 2 threads, 15 s at 1). Workers run the same per-call code as the caller.
    cnnfast.set_num_threads(1)
    for _ in range(WARMUP):
        fn()
    gc.collect()
    before = rss_bytes()
    for _ in range(CALLS):
        fn()
    gc.collect()
    grown = rss_bytes() - before
    assert grown <= SLACK_BYTES, f"{name}: resident memory grew {grown} bytes over {CALLS} calls"


def test_every_public_op_is_in_the_growth_test():
    """A new op must join OPS (analysis helpers and runtime controls are not ops)."""
    covered = {name.split("_nhwc")[0] for name in OPS}
    skip = {"analysis", "models", "nn", "conv2d_algorithms", "conv_transpose2d_algorithms",
            "conv3d_algorithms", "conv_transpose3d_algorithms", "get_num_threads", "isa",
            "max_isa", "runtime_info", "set_num_threads", "show_runtime", "__version__",
            "separable_factors", "fold_batch_norm"}
    # Families covered through one member (same binding and driver as the others).
    family = {"avg_pool1d": "avg_pool2d", "avg_pool3d": "avg_pool2d", "lp_pool1d": "lp_pool2d",
              "lp_pool3d": "lp_pool2d", "adaptive_avg_pool1d": "adaptive_avg_pool2d",
              "adaptive_avg_pool3d": "adaptive_avg_pool2d",
              "adaptive_max_pool1d": "adaptive_max_pool2d",
              "adaptive_max_pool3d": "adaptive_max_pool2d",
              "global_max_pool2d": "global_avg_pool2d", "max_unpool1d": "max_unpool2d",
              "max_unpool3d": "max_unpool2d", "leaky_relu": "relu", "relu6": "relu",
              "hardswish": "relu", "tanh": "sigmoid", "silu": "silu_out",
              "batch_norm": "batch_norm_inference"}
    for name in cnnfast.__all__:
        if name in skip:
            continue
        name = family.get(name, name)
        assert any(c == name or c.startswith(name + "_") for c in covered), name


# -- offsets beyond 2^31 without 8 GiB of memory ---------------------------------------------

def sparse_floats(count):
    """A writable float32 array of `count` elements over an anonymous private mapping that
    reserves no memory (MAP_NORESERVE): only the pages touched become resident."""
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20) | \
        getattr(mmap, "MAP_NORESERVE", 0x4000)
    try:
        buf = mmap.mmap(-1, count * 4, flags=flags)
    except (OSError, OverflowError, ValueError) as e:
        pytest.skip(f"cannot map {count * 4 >> 30} GiB of address space: {e}")
    return np.frombuffer(buf, np.float32)


BEYOND = (1 << 31) + 4099  # element offsets up to here: past 2^31, not aligned to anything


def strided_matrix(rows, cols, row_stride, col_stride, seed):
    """A (rows, cols) view of a sparse mapping with element strides (row_stride, col_stride),
    filled with small integers (exact products), and a plain copy of it."""
    extent = (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    base = sparse_floats(extent)
    view = np.lib.stride_tricks.as_strided(base, (rows, cols), (row_stride * 4, col_stride * 4))
    view[...] = np.random.default_rng(seed).integers(-3, 4, (rows, cols))
    return view, np.array(view)


def test_matmul_offsets_beyond_2_31(isa):
    """Row and column strides whose products pass 2^31 elements, in a, b and out."""
    m, n, k = 19, 37, 23
    rs = BEYOND // (m - 1) + 1  # the last row starts past 2^31
    a, a_copy = strided_matrix(m, k, rs, 1, 0)
    b, b_copy = strided_matrix(k, n, 1, BEYOND // (n - 1) + 1, 1)  # column-strided (b.T-like)
    out, _ = strided_matrix(m, n, rs, 1, 2)
    assert a.strides[0] * (m - 1) // 4 > 1 << 31 and b.strides[1] * (n - 1) // 4 > 1 << 31
    want = a_copy.astype(np.float64) @ b_copy.astype(np.float64)
    np.testing.assert_array_equal(cnnfast.matmul(a, b), want)
    assert cnnfast.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_batch_norm_statistics_strides_beyond_2_31(isa):
    """running_mean / running_var with an element stride that puts channel 2 past 2^31."""
    c = 3
    stride = BEYOND // (c - 1) + 1
    mean, _ = strided_matrix(c, 1, stride, 1, 3)
    var, _ = strided_matrix(c, 1, stride, 1, 4)
    mean, var = mean[:, 0], var[:, 0]
    mean[...] = [1.0, -2.0, 3.0]
    var[...] = [4.0, 1.0, 0.25]
    x = np.arange(2 * c * 5, dtype=np.float32).reshape(2, c, 5)
    want = (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5)
    np.testing.assert_allclose(cnnfast.batch_norm(x, mean, var), want, rtol=1e-6)
    cnnfast.batch_norm(x, mean, var, training=True, momentum=1.0)  # updates through the stride
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(var, x.var(axis=(0, 2), ddof=1), rtol=1e-6)


STEP = 1 << 28  # 8 steps reach 2^31: a SIMD gather with 32-bit lane offsets would wrap


@pytest.fixture(scope="module")
def sparse_row():
    """A (1, 1, 1, W) image, W > 2^31 + 2^28, over a sparse mapping (only ~10 pages touched):
    pixel j * STEP holds j + 1, every other pixel 0. Contiguous, so ops read it in place."""
    width = (1 << 31) + STEP + 5
    base = sparse_floats(width)
    positions = np.arange(0, width, STEP)
    base[positions] = np.arange(1, len(positions) + 1)
    return base.reshape(1, 1, 1, width), np.arange(1, len(positions) + 1, dtype=np.float32)


@pytest.mark.parametrize("algo", [a for a in cnnfast.conv2d_algorithms() if a != "gemm1x1"])
def test_strided_conv_reads_past_2_31(isa, sparse_row, algo):
    """Stride 2^28 along a row longer than 2^31: the implicit GEMM's packer gathered with lane
    offsets lane * stride in 32 bits and the AVX-512 tier read 2^31 elements before the row
    (segfault). Every algorithm must read pixels 0, 2^28, ..., past 2^31."""
    x, want = sparse_row
    w = np.ones((1, 1, 1, 1), np.float32)
    np.testing.assert_array_equal(cnnfast.conv2d(x, w, stride=(1, STEP), algo=algo).ravel(),
                                  want)


def test_strided_row_ops_read_past_2_31(isa, sparse_row):
    x, want = sparse_row
    np.testing.assert_array_equal(cnnfast.conv1d(x[0], np.full((1, 1, 1), 2, np.float32),
                                                 stride=STEP).ravel(), 2 * want)
    for pool in (cnnfast.max_pool2d, cnnfast.avg_pool2d):
        np.testing.assert_array_equal(pool(x, 1, (1, STEP)).ravel(), want)
    np.testing.assert_array_equal(cnnfast.max_pool1d(x[0], 1, STEP).ravel(), want)
    # Channels-last: the same row as (1, 1, W, 1) NHWC.
    np.testing.assert_array_equal(
        cnnfast.conv2d(x.reshape(1, 1, -1, 1), np.full((1, 1, 1, 1), 3, np.float32),
                       stride=(1, STEP), layout="NHWC").ravel(), 3 * want)
    np.testing.assert_array_equal(
        cnnfast.max_pool2d(x.reshape(1, 1, -1, 1), 1, (1, STEP), layout="NHWC").ravel(), want)


# -- more than 2^31 elements (slow: ~9 GiB) ---------------------------------------------------

HUGE_H, HUGE_W = 1 << 15, (1 << 16) + 16  # 2^31 + 2^19 elements in one plane


@pytest.fixture(scope="module")
def huge_plane():
    """(1, 1, H, W) with H*W > 2^31: ones, with markers in the last rows (offsets > 2^31)."""
    x = np.ones((1, 1, HUGE_H, HUGE_W), np.float32)
    x[0, 0, -1, -16:] = 5.0
    x[0, 0, -2, 7] = -4.0
    assert x.size > 1 << 31
    return x


@pytest.mark.slow
def test_huge_global_and_windowed_pools(huge_plane):
    x = huge_plane
    total = x.size + 16 * 4.0 - 5.0
    np.testing.assert_allclose(cnnfast.global_avg_pool2d(x)[0, 0, 0, 0], total / x.size,
                               rtol=1e-6)
    y = cnnfast.max_pool2d(x, 16, 16)
    assert y.shape == (1, 1, HUGE_H // 16, HUGE_W // 16)
    assert y[0, 0, -1, -1] == 5.0
    assert (y[0, 0, :-1] == 1.0).all() and (y[0, 0, -1, :-1] == 1.0).all()
    y, idx = cnnfast.max_pool2d(x, (2, 16), (2, 16), return_indices=True)
    assert y[0, 0, -1, -1] == 5.0
    assert idx[0, 0, -1, -1] == (HUGE_H - 1) * HUGE_W + HUGE_W - 16  # first maximum, > 2^31
    y = cnnfast.avg_pool2d(x, (2, 16), (2, 16))
    assert y[0, 0, -1, 0] == (32 - 1 - 4) / 32  # the -4 at row H-2, column 7


@pytest.mark.slow
def test_huge_conv_and_elementwise(huge_plane):
    x = huge_plane
    w = np.ones((1, 1, 2, 16), np.float32)
    y = cnnfast.conv2d(x, w, stride=(2, 16))
    assert y[0, 0, -1, -1] == 16 + 16 * 5.0 and y[0, 0, -1, 0] == 32 - 5.0 and y[0, 0, 0, 0] == 32
    # In place from here on (a second 8 GiB array would not fit many machines): the fixture's
    # last user.
    cnnfast.tanh(x, out=x)
    assert np.isclose(x[0, 0, -2, 7], np.tanh(-4.0), rtol=1e-6) and x[0, 0, 0, 0] > 0.76
    cnnfast.batch_norm(x, np.zeros(1, np.float32), np.ones(1, np.float32), activation="relu",
                       out=x)
    assert x[0, 0, -2, 7] == 0.0 and np.isclose(x[0, 0, -1, -1], np.tanh(5.0), rtol=1e-4)
    m, v = np.zeros(1, np.float32), np.ones(1, np.float32)
    cnnfast.batch_norm(x, m, v, training=True, momentum=1.0, out=x)  # statistics over > 2^31
    assert 0.76 < m[0] < 0.77 and abs(x.mean(dtype=np.float64)) < 1e-3


# -- MemoryError --------------------------------------------------------------------------------

TB = 1 << 40


@pytest.mark.parametrize("case", [
    "conv_transpose2d", "conv2d_padding", "upsample", "max_unpool", "adaptive", "matmul_out"])
def test_impossible_allocation_raises_memory_error(case):
    """About 1 TB requested from inputs of a few bytes: MemoryError, no crash, and the library
    works afterwards. (Linux refuses a single allocation larger than RAM + swap unless
    vm.overcommit_memory is 1.)"""
    with open("/proc/sys/vm/overcommit_memory") as f:
        if f.read().strip() == "1":
            pytest.skip("vm.overcommit_memory=1: the kernel grants any size")
    x = np.ones((1, 1, 2, 2), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    side = 1 << 19  # side^2 floats = 1 TB
    calls = {
        "conv_transpose2d": lambda: cnnfast.conv_transpose2d(x, w, stride=side),
        "conv2d_padding": lambda: cnnfast.conv2d(x, w, padding=side // 2),
        "upsample": lambda: cnnfast.upsample_nearest2d(x, size=(side, side)),
        "max_unpool": lambda: cnnfast.max_unpool2d(
            x, np.zeros((1, 1, 2, 2), np.int64), side // 2),  # output side x side
        "adaptive": lambda: cnnfast.adaptive_avg_pool2d(x, (side, side)),
        "matmul_out": lambda: cnnfast.matmul(np.ones((side * 4, 1), np.float32),
                                             np.ones((1, side), np.float32)),
    }
    with pytest.raises(MemoryError):
        calls[case]()
    np.testing.assert_array_equal(cnnfast.conv2d(x, w), x)  # still healthy


def test_huge_window_over_a_small_image_channels_last():
    """A 2^20+1 square window over a 2 x 2 image (pads of half the kernel are legal): the
    channels-last driver sized each task's tap table by the kernel (2^40 entries), and at 2
    threads the std::bad_alloc escaped the OpenMP region and aborted the process. Run in a
    child so that a regression fails this test instead of killing the session."""
    code = (
        "import numpy as np, cnnfast\n"
        "cnnfast.set_num_threads(2)\n"
        "x = np.random.default_rng(0).standard_normal((1, 2, 2, 16384)).astype(np.float32)\n"
        "y = cnnfast.max_pool2d(x, (1 << 20) + 1, 1, 1 << 19, layout='NHWC')\n"
        "assert y.shape == (1, 2, 2, 16384), y.shape\n"
        "assert (y == x.max(axis=(1, 2), keepdims=True)).all()\n"
        "z = cnnfast.max_pool2d(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), (1 << 20) + 1, 1,"
        " 1 << 19)\n"
        "assert (z.transpose(0, 2, 3, 1) == y).all()\n")
    result = subprocess.run(python_command(code), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
