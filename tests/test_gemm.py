"""cnnfast.matmul against the float64 reference on every SIMD tier: micro-kernel and cache-block
edges, strided operands, out=, empty sizes, thread determinism, NaN/Inf, memory bounds, and
every user error.
"""

import ctypes
import functools
import mmap
import sys

import numpy as np
import pytest

import cnnfast
from reference import gemm_tolerance
from reference import matmul as reference_matmul

REGIMES = ("int", "normal")
SENTINEL = np.float32(-1234.5)


def random_operand(shape, regime, rng):
    """Small integers in -3..3 (every product and partial sum is exact in float32) or normals."""
    if regime == "int":
        return rng.integers(-3, 4, size=shape).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def problem(m, n, k, regime):
    """(a, b, a @ b in float64), shared by every tier and thread count so the float64 reference
    of the large cases is computed once. The arrays are read-only so that no test can change
    the cached inputs."""
    rng = np.random.default_rng([m, n, k, REGIMES.index(regime)])
    a = random_operand((m, k), regime, rng)
    b = random_operand((k, n), regime, rng)
    expected = reference_matmul(a, b)
    for x in (a, b, expected):
        x.flags.writeable = False
    return a, b, expected


def is_exact(a, b):
    """Whether float32 computes a @ b exactly: integer inputs whose sums stay below 2**24."""
    integral = np.array_equal(a, np.round(a)) and np.array_equal(b, np.round(b))
    bound = a.shape[1] * np.abs(a).max(initial=0) * np.abs(b).max(initial=0)
    return integral and bound < 2**24


def assert_matmul_equal(c, a, b, expected=None):
    """c is a @ b: bitwise when the inputs make float32 exact, else within gemm_tolerance."""
    if expected is None:
        expected = reference_matmul(a, b)
    assert c.dtype == np.float32
    assert c.shape == expected.shape
    if is_exact(a, b):
        np.testing.assert_array_equal(c, expected)
    else:
        atol = gemm_tolerance(a.shape[1], np.abs(a).max(), np.abs(b).max())
        np.testing.assert_allclose(c, expected, rtol=0, atol=atol)


def edge_sizes(tile):
    """Sizes around a micro-tile dimension ("mr" or "nr") as (multiple, offset) pairs, resolved
    per tier by tile_size: 1, tile-1, tile, tile+1, 2*tile+1 and two primes."""
    pairs = {"1": (0, 1), f"{tile}-1": (1, -1), tile: (1, 0), f"{tile}+1": (1, 1),
             f"2{tile}+1": (2, 1), "17": (0, 17), "37": (0, 37)}
    return [pytest.param(pair, id=f"{tile[0]}={name}") for name, pair in pairs.items()]


def tile_size(pair, tile):
    multiple, offset = pair
    return multiple * tile + offset


# -- the tile table itself -------------------------------------------------------------------


def test_tile_table_matches_the_library(isa):
    # The edge sweeps below are only meaningful if conftest.TIERS has the library's tiles.
    assert cnnfast._C.gemm_kernel() == f"{isa.name}_{isa.mr}x{isa.nr}"


# -- micro-kernel edges and cache-block edges --------------------------------------------------


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("k", [1, 2, 7, 255, 256, 257], ids=lambda k: f"k={k}")
@pytest.mark.parametrize("n_edge", edge_sizes("nr"))
@pytest.mark.parametrize("m_edge", edge_sizes("mr"))
def test_microkernel_edges(isa, m_edge, n_edge, k, regime):
    # k = 255, 256, 257 end the last K block one short of, exactly at, and one past kc.
    m, n = tile_size(m_edge, isa.mr), tile_size(n_edge, isa.nr)
    a, b, expected = problem(m, n, k, regime)
    assert_matmul_equal(cnnfast.matmul(a, b), a, b, expected)


# Single-threaded, every tier crosses mc (280 / 576 / 256 rows) and nc (1024 / 1536 / 2048
# columns) on these. Two threads split C in halves, so the second and third shapes keep each half
# beyond mc (1400 / 2 > 576) or nc (8300 / 2 > 2048). All cross kc with a short last K block.
# (300, 2100, 300): more columns than any tier's nc (several column blocks, each packing A again).
LARGE_SHAPES = [(700, 600, 520), (1400, 40, 300), (3, 8300, 300), (300, 2100, 300)]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("m, n, k", LARGE_SHAPES, ids=lambda s: str(s))
def test_cache_block_edges(isa, m, n, k, threads, regime, restore_threads):
    cnnfast.set_num_threads(threads)
    a, b, expected = problem(m, n, k, regime)
    assert_matmul_equal(cnnfast.matmul(a, b), a, b, expected)


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"threads={t}")
def test_column_blocks_are_bitwise_independent(isa, threads, restore_threads):
    # Each output tile is summed the same way whatever blocking surrounds it: with n past nc
    # (several column blocks, and at 2 threads a split between them) the columns are bitwise
    # those of the product of their own slice of B (a single column block).
    cnnfast.set_num_threads(threads)
    a, b, _ = problem(300, 2100, 300, "normal")
    c = cnnfast.matmul(a, b)
    for j0, j1 in [(0, 1024), (1024, 2048), (2048, 2100)]:
        assert np.array_equal(c[:, j0:j1], cnnfast.matmul(a, np.ascontiguousarray(b[:, j0:j1])))


# -- strided operands --------------------------------------------------------------------------


def _unaligned(x):
    # Data one byte past an element boundary: cnnfast must read it through its one documented copy.
    raw = np.zeros(x.nbytes + 1, np.uint8)
    y = raw[1:].view(np.float32).reshape(x.shape)
    y[...] = x
    return y


def _odd_byte_strides(x):
    # A structured-array field: byte strides (5 * cols, 5) are not whole float32 elements.
    rec = np.zeros(x.shape, dtype=[("v", np.float32), ("pad", np.int8)])
    rec["v"] = x
    return rec["v"]


# Each maker turns a C-contiguous (rows, cols) array into an equal-valued view with other strides.
STRIDED_VIEWS = {
    "transposed": lambda x: np.ascontiguousarray(x.T).T,
    "fortran": np.asfortranarray,
    "sliced": lambda x: np.repeat(np.repeat(x, 2, axis=0), 3, axis=1)[::2, 1::3],
    "reversed_rows": lambda x: x[::-1].copy()[::-1],
    "reversed_both": lambda x: x[::-1, ::-1].copy()[::-1, ::-1],
    "transposed_reversed": lambda x: np.ascontiguousarray(x[::-1].T)[:, ::-1].T,
    "unaligned": _unaligned,
    "odd_byte_strides": _odd_byte_strides,
}


@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("operand", ["a", "b"])
def test_strided_operands(isa, operand, view):
    m, n, k = 2 * isa.mr + 1, 2 * isa.nr + 1, 257
    a, b, expected = problem(m, n, k, "int")
    args = {"a": a, "b": b}
    strided = STRIDED_VIEWS[view](args[operand])
    np.testing.assert_array_equal(strided, args[operand])
    before = strided.copy()
    args[operand] = strided
    assert_matmul_equal(cnnfast.matmul(**args), a, b, expected)
    np.testing.assert_array_equal(strided, before)  # inputs are never modified


@pytest.mark.parametrize("axis", [0, 1], ids=["zero_row_stride", "zero_col_stride"])
@pytest.mark.parametrize("operand", ["a", "b"])
def test_broadcast_operands(isa, operand, axis):
    # np.broadcast_to gives a zero stride: every row (or column) is the same memory.
    m, n, k = isa.mr + 1, isa.nr + 1, 257
    a, b, _ = problem(m, n, k, "int")
    args = {"a": a, "b": b}
    full = args[operand]
    line = full[:1, :] if axis == 0 else full[:, :1]
    args[operand] = np.broadcast_to(line, full.shape)
    assert args[operand].strides[axis] == 0
    assert_matmul_equal(cnnfast.matmul(**args), args["a"], args["b"])


# -- out= --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [7, 257, 600], ids=lambda k: f"k={k}")
def test_out_is_overwritten_and_returned(isa, k):
    # out starts as NaN: the first K block must overwrite C, never accumulate into it.
    m, n = 2 * isa.mr + 1, 2 * isa.nr + 1
    a, b, expected = problem(m, n, k, "normal")
    out = np.full((m, n), np.nan, np.float32)
    result = cnnfast.matmul(a, b, out=out)
    assert result is out
    assert_matmul_equal(out, a, b, expected)


@pytest.mark.parametrize("m_edge", edge_sizes("mr"))
@pytest.mark.parametrize("n_edge", edge_sizes("nr"))
def test_out_with_padded_rows(isa, m_edge, n_edge):
    # out is a window of a bigger array (row stride > n, start not at column 0): the masked edge
    # tiles must not write the sentinel border around it. k = 257 makes the last K block re-read
    # and rewrite C.
    m, n, k = tile_size(m_edge, isa.mr), tile_size(n_edge, isa.nr), 257
    a, b, expected = problem(m, n, k, "int")
    canvas = np.full((m + 2, n + 7), SENTINEL, np.float32)
    window = (slice(1, m + 1), slice(3, n + 3))
    out = canvas[window]
    assert cnnfast.matmul(a, b, out=out) is out
    assert_matmul_equal(out, a, b, expected)
    border = np.ones(canvas.shape, bool)
    border[window] = False
    assert (canvas[border] == SENTINEL).all()


# -- empty sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("m, n, k", [(0, 5, 3), (4, 0, 3), (0, 0, 3), (0, 5, 0), (4, 0, 0)])
def test_empty_result(isa, m, n, k):
    c = cnnfast.matmul(np.ones((m, k), np.float32), np.ones((k, n), np.float32))
    assert c.shape == (m, n) and c.dtype == np.float32


@pytest.mark.parametrize("m, n", [(1, 1), (3, 5), (37, 41)])
def test_empty_reduction_gives_zeros(isa, m, n):
    a, b = np.empty((m, 0), np.float32), np.empty((0, n), np.float32)
    np.testing.assert_array_equal(cnnfast.matmul(a, b), np.zeros((m, n), np.float32))
    out = np.full((m, n), np.nan, np.float32)
    assert cnnfast.matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, np.zeros((m, n), np.float32))


# -- determinism -------------------------------------------------------------------------------


# Big enough that two threads are used (>= 2 MFLOP per thread), split by rows, then by columns.
THREADED_SHAPES = [(200, 33, 513), (37, 1000, 257), (97, 301, 300), (700, 600, 520)]


@pytest.mark.parametrize("m, n, k", THREADED_SHAPES, ids=lambda s: str(s))
def test_thread_count_does_not_change_bits(isa, m, n, k, restore_threads):
    a, b, _ = problem(m, n, k, "normal")
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(cnnfast.matmul(a, b))
    assert np.array_equal(results[0], results[1])


# -- NaN and Inf -------------------------------------------------------------------------------


def test_nan_in_a_poisons_only_its_row(isa):
    # The NaN sits in the last (edge) row tile and in the second K block; the zero padding of
    # packed panels must not spread it to other rows.
    m, n, k = 2 * isa.mr + 1, 2 * isa.nr + 1, 257
    a, b, expected = problem(m, n, k, "normal")
    a = a.copy()
    a[m - 1, 256] = np.nan
    c = cnnfast.matmul(a, b)
    assert np.isnan(c[m - 1]).all()
    assert_matmul_equal(c[: m - 1], a[: m - 1], b, expected[: m - 1])


def test_inf_in_b_reaches_only_its_column(isa):
    m, n, k = 2 * isa.mr + 1, 2 * isa.nr + 1, 257
    a, b, expected = problem(m, n, k, "normal")
    b = b.copy()
    b[256, n - 1] = np.inf
    c = cnnfast.matmul(a, b)
    # Every a[i, 256] is a nonzero normal, so column n-1 is +-inf, never NaN.
    np.testing.assert_array_equal(c[:, n - 1], np.sign(a[:, 256]) * np.inf)
    assert_matmul_equal(c[:, : n - 1], a, b[:, : n - 1], expected[:, : n - 1])


# -- memory bounds -----------------------------------------------------------------------------


PROT_NONE = 0  # <sys/mman.h>; the mmap module exports only PROT_READ / PROT_WRITE / PROT_EXEC


def _guarded(shape):
    """A C-contiguous float32 array whose last byte is followed by an inaccessible page."""
    page = mmap.PAGESIZE
    nbytes = 4 * int(np.prod(shape))
    data_pages = -(-nbytes // page)
    mem = mmap.mmap(-1, (data_pages + 1) * page)
    start = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    libc = ctypes.CDLL(None, use_errno=True)
    guard = ctypes.c_void_p(start + data_pages * page)
    if libc.mprotect(guard, ctypes.c_size_t(page), PROT_NONE) != 0:
        pytest.skip(f"mprotect failed: errno {ctypes.get_errno()}")
    offset = data_pages * page - nbytes
    return np.frombuffer(mem, np.float32, count=nbytes // 4, offset=offset).reshape(shape)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses mmap + mprotect")
@pytest.mark.parametrize("transposed_a", [False, True], ids=["a", "a.T"])
@pytest.mark.parametrize("m_edge", edge_sizes("mr"))
@pytest.mark.parametrize("n_edge", edge_sizes("nr"))
def test_no_access_past_the_end(isa, n_edge, m_edge, transposed_a):
    # a, b and out each end right before an unmapped page: a full-width load or store at an edge
    # tile where a masked one is needed crashes the test process (pytest's faulthandler then
    # names this test). k = 257 makes the last K block read C back.
    m, n, k = tile_size(m_edge, isa.mr), tile_size(n_edge, isa.nr), 257
    a_src, b_src, expected = problem(m, n, k, "int")
    a = _guarded((k, m)).T if transposed_a else _guarded((m, k))
    b, out = _guarded((k, n)), _guarded((m, n))
    a[...], b[...] = a_src, b_src
    assert cnnfast.matmul(a, b, out=out) is out
    assert_matmul_equal(out, a, b, expected)


# -- user errors -------------------------------------------------------------------------------


def f32(*shape):
    return np.zeros(shape, np.float32)


def _read_only(shape):
    x = f32(*shape)
    x.flags.writeable = False
    return x


def _unaligned_out(shape):
    return _unaligned(f32(*shape))


def _out_aliasing(name):
    """(a, b, out) where out is the memory of one input ("b_reversed": a negative-stride view)."""
    out = f32(4, 4)
    inputs = {"a": (out, f32(4, 4)), "b": (f32(4, 4), out), "b_reversed": (f32(4, 4), out[::-1])}
    a, b = inputs[name]
    return a, b, out


def _out_overlapping_view():
    # a and out are offset windows of one buffer that share elements.
    base = f32(5, 5)
    return base[:4, :4], f32(4, 4), base[1:, 1:]


# (a, b, out) makers, the exception and a regex its message must match.
BAD_CALLS = {
    "a_float64": (lambda: (np.zeros((3, 4)), f32(4, 5), None), TypeError,
                  r"matmul: a has dtype float64.*float32"),
    "b_int32": (lambda: (f32(3, 4), np.zeros((4, 5), np.int32), None), TypeError,
                r"matmul: b has dtype int32.*float32"),
    "b_float16": (lambda: (f32(3, 4), np.zeros((4, 5), np.float16), None), TypeError,
                  r"matmul: b has dtype float16"),
    "a_big_endian": (lambda: (np.zeros((3, 4), ">f4"), f32(4, 5), None), TypeError,
                     r"matmul: a has dtype >f4"),
    "a_list": (lambda: ([[0.0] * 4] * 3, f32(4, 5), None), TypeError,
               r"matmul: a must be a numpy.ndarray.*got list"),
    "b_scalar": (lambda: (f32(3, 4), np.float32(1), None), TypeError,
                 r"matmul: b must be a numpy.ndarray"),
    "a_1d": (lambda: (f32(4), f32(4, 5), None), ValueError,
             r"matmul: expected 2-D .*a with shape \(4,\) and b with shape \(4, 5\)"),
    "b_3d": (lambda: (f32(3, 4), f32(2, 4, 5), None), ValueError,
             r"matmul: expected 2-D .*a with shape \(3, 4\) and b with shape \(2, 4, 5\)"),
    "a_0d": (lambda: (f32(), f32(4, 5), None), ValueError,
             r"matmul: expected 2-D .*a with shape \(\) and b with shape \(4, 5\)"),
    "b_7d": (lambda: (f32(3, 4), f32(1, 1, 1, 1, 1, 1, 1), None), ValueError,
             r"matmul: b has 7 dimensions"),
    "inner_dims": (lambda: (f32(3, 4), f32(5, 6), None), ValueError,
                   r"matmul: inner dimensions differ.*\(3, 4\).*\(5, 6\)"),
    "out_shape": (lambda: (f32(3, 4), f32(4, 5), f32(5, 3)), ValueError,
                  r"matmul: out has shape \(5, 3\).*\(3, 4\).*\(4, 5\).*needs \(3, 5\)"),
    "out_1d": (lambda: (f32(3, 4), f32(4, 5), f32(15)), ValueError,
               r"matmul: out has shape \(15,\)"),
    "out_float64": (lambda: (f32(3, 4), f32(4, 5), np.zeros((3, 5))), ValueError,
                    r"matmul: out has dtype float64.*float32"),
    "out_int32": (lambda: (f32(3, 4), f32(4, 5), np.zeros((3, 5), np.int32)), ValueError,
                  r"matmul: out has dtype int32"),
    "out_list": (lambda: (f32(3, 4), f32(4, 5), [[0.0] * 5] * 3), TypeError,
                 r"matmul: out must be a numpy.ndarray"),
    "out_is_a": (lambda: _out_aliasing("a"), ValueError, r"matmul: out overlaps an input"),
    "out_is_b": (lambda: _out_aliasing("b"), ValueError, r"matmul: out overlaps an input"),
    "out_is_b_reversed": (lambda: _out_aliasing("b_reversed"), ValueError,
                          r"matmul: out overlaps an input"),
    "out_overlaps_view": (_out_overlapping_view, ValueError, r"matmul: out overlaps an input"),
    "out_read_only": (lambda: (f32(3, 4), f32(4, 5), _read_only((3, 5))), ValueError,
                      r"matmul: out is read-only"),
    "out_strided_cols": (lambda: (f32(3, 4), f32(4, 5), f32(3, 10)[:, ::2]), ValueError,
                         r"matmul: out must have contiguous rows.*\(3, 5\)"),
    "out_fortran": (lambda: (f32(3, 4), f32(4, 5), np.asfortranarray(f32(3, 5))), ValueError,
                    r"matmul: out must have contiguous rows"),
    "out_reversed_rows": (lambda: (f32(3, 4), f32(4, 5), f32(3, 5)[::-1]), ValueError,
                          r"matmul: out must have contiguous rows"),
    "out_unaligned": (lambda: (f32(3, 4), f32(4, 5), _unaligned_out((3, 5))), ValueError,
                      r"matmul: out .*align"),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_call_raises(case):
    make, exception, message = BAD_CALLS[case]
    a, b, out = make()
    with pytest.raises(exception, match=message):
        cnnfast.matmul(a, b, out=out)


@pytest.mark.parametrize("side", [2**40, 2**31], ids=["elements", "bytes"])
def test_size_overflow_raises(side):
    # Zero-size operands take no memory, but the (side, side) result cannot be described:
    # 2**80 elements, or 2**62 elements = 2**64 bytes.
    a, b = np.empty((side, 0), np.float32), np.empty((0, side), np.float32)
    with pytest.raises(ValueError, match=r"matmul.*overflow"):
        cnnfast.matmul(a, b)


# -- optional cross-check ----------------------------------------------------------------------


@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (37, 45, 257), (200, 130, 600)])
def test_agrees_with_torch(isa, m, n, k):
    torch = pytest.importorskip("torch")
    a, b, _ = problem(m, n, k, "normal")
    expected = torch.matmul(torch.from_numpy(a.copy()), torch.from_numpy(b.copy())).numpy()
    atol = gemm_tolerance(k, np.abs(a).max(), np.abs(b).max())
    np.testing.assert_allclose(cnnfast.matmul(a, b), expected, rtol=0, atol=2 * atol)
