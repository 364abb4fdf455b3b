"""cnnfast.analysis: conv_matrix against conv2d / conv1d (C x) and the transposed convolutions
(Cᵀ y) on random shapes in the exact small-integer regime, the adjoint (gradient) identity, the
4×16 docstring example entry by entry, the output-size functions against the ops' shapes,
receptive fields, parameter/MAC counts, errors, and PyTorch cross-checks when it is installed."""

import importlib.util
import math

import numpy as np
import pytest

import cnnfast
from cnnfast import analysis

# conv_matrix returns scipy.sparse when SciPy is installed (the test extra installs it) and a
# dense array otherwise; both must pass.
SCIPY = importlib.util.find_spec("scipy") is not None


def entries(c):
    """Stored entries of C: nnz of a sparse matrix, non-zeros of a dense one."""
    return c.nnz if hasattr(c, "nnz") else int(np.count_nonzero(c))


def random_case(seed, dims=2):
    """A random convolution: (x, weight, stride, pads as (begin, end) per axis, dilation,
    groups) with small integers in x and weight (every partial sum exact in float32)."""
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 4))
    cg, ocg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kernel = tuple(int(v) for v in rng.integers(1, 5, dims))
    stride = tuple(int(v) for v in rng.integers(1, 4, dims))
    dilation = tuple(int(v) for v in rng.integers(1, 4, dims))
    pads = [tuple(int(v) for v in rng.integers(0, 3, 2)) for _ in range(dims)]
    sizes = tuple(max(1, d * (k - 1) + 1 - pb - pe) + int(rng.integers(0, 6))
                  for d, k, (pb, pe) in zip(dilation, kernel, pads))
    x = rng.integers(-2, 3, (1, cg * groups) + sizes).astype(np.float32)
    weight = rng.integers(-2, 3, (ocg * groups, cg) + kernel).astype(np.float32)
    return x, weight, stride, pads, dilation, groups


def flat(pads):
    return tuple(v for pair in pads for v in pair)


SEEDS = range(16)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_matrix_is_conv2d(seed, dense):
    x, weight, stride, pads, dilation, groups = random_case(seed)
    c = analysis.conv_matrix(weight, x.shape[2:], stride, flat(pads), dilation, groups,
                             dense=dense)
    assert isinstance(c, np.ndarray) == (dense or not SCIPY)
    y = cnnfast.conv2d(x, weight, None, stride, flat(pads), dilation, groups)
    assert c.shape == (y.size, x.size)
    np.testing.assert_array_equal(c @ x.ravel(), y.ravel())


@pytest.mark.parametrize("seed", SEEDS)
def test_transpose_is_conv_transpose2d(seed):
    x, weight, stride, pads, dilation, groups = random_case(seed)
    c = analysis.conv_matrix(weight, x.shape[2:], stride, flat(pads), dilation, groups)
    y_shape = (1, weight.shape[0]) + analysis.conv_output_size(x.shape[2:], weight.shape[2:],
                                                               stride, flat(pads), dilation)
    y = np.random.default_rng(seed).integers(-2, 3, y_shape).astype(np.float32)
    # The same weight array, read as (C_in, C_out/groups, kh, kw) of the transposed conv;
    # output_size recovers the pixels the forward conv's floor dropped.
    xt = cnnfast.conv_transpose2d(y, weight, None, stride, flat(pads), groups=groups,
                                  dilation=dilation, output_size=x.shape[2:])
    assert xt.shape == x.shape
    np.testing.assert_array_equal(c.T @ y.ravel(), xt.ravel())


@pytest.mark.parametrize("seed", SEEDS)
def test_gradient_identity(seed):
    """<conv2d(x), y> = <x, conv_transpose2d(y)>: the transposed convolution is the gradient of
    the convolution with respect to its input. Random normals, float64 dot products."""
    _, weight, stride, pads, dilation, groups = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    shape = random_case(seed)[0].shape
    x = rng.standard_normal(shape).astype(np.float32)
    weight = rng.standard_normal(weight.shape).astype(np.float32)
    fx = cnnfast.conv2d(x, weight, None, stride, flat(pads), dilation, groups)
    y = rng.standard_normal(fx.shape).astype(np.float32)
    gy = cnnfast.conv_transpose2d(y, weight, None, stride, flat(pads), groups=groups,
                                  dilation=dilation, output_size=shape[2:])
    left = np.dot(fx.ravel().astype(np.float64), y.ravel())
    right = np.dot(x.ravel().astype(np.float64), gy.ravel())
    scale = np.dot(np.abs(fx.ravel()).astype(np.float64), np.abs(y.ravel())) + 1.0
    assert abs(left - right) <= 1e-5 * scale


@pytest.mark.parametrize("seed", range(8))
def test_matrix_1d(seed):
    x4, weight4, stride, pads, dilation, groups = random_case(seed, dims=1)
    c = analysis.conv_matrix(weight4, x4.shape[2], stride[0], pads[0], dilation[0], groups)
    y = cnnfast.conv1d(x4, weight4, None, stride, pads[0], dilation, groups)
    np.testing.assert_array_equal(c @ x4.ravel(), y.ravel())
    yt = np.ones(y.shape, np.float32)
    xt = cnnfast.conv_transpose1d(yt, weight4, None, stride, pads[0], groups=groups,
                                  dilation=dilation, output_size=x4.shape[2:])
    np.testing.assert_array_equal(c.T @ yt.ravel(), xt.ravel())


def test_docstring_example_entry_by_entry():
    """4×4 input, 3×3 kernel, stride 1, no padding: C is 4×16, row (i, j) holds w[r, s] at
    column (i + r)·4 + (j + s) and zeros elsewhere."""
    w = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
    assert analysis.conv_output_size(4, 3) == (4 + 2 * 0 - 3) // 1 + 1 == 2
    assert analysis.conv_transpose_output_size(2, 3) == 1 * (2 - 1) + 3 == 4
    for dense in (False, True):
        c = analysis.conv_matrix(w, (4, 4), dense=dense)
        c = c if isinstance(c, np.ndarray) else c.toarray()
        assert c.shape == (4, 16)
        for row in range(4):
            i, j = divmod(row, 2)
            for col in range(16):
                a, b = divmod(col, 4)
                r, s = a - i, b - j
                expected = w[0, 0, r, s] if 0 <= r < 3 and 0 <= s < 3 else 0.0
                assert c[row, col] == expected, (row, col)
    assert entries(analysis.conv_matrix(w, (4, 4))) == 36  # 4 outputs × 9 taps, none zero


@pytest.mark.skipif(not SCIPY, reason="stored zeros exist only in the sparse form")
def test_padding_taps_have_no_entry_and_zero_weights_keep_theirs():
    w = np.zeros((1, 1, 3, 3), np.float32)
    c = analysis.conv_matrix(w, (3, 3), padding=1)
    # Per output pixel, the taps inside the 3×3 input: corners 4, edges 6, centre 9.
    assert c.nnz == 4 * 4 + 4 * 6 + 9
    np.testing.assert_array_equal(c.toarray(), 0)


def test_dense_without_scipy(monkeypatch):
    monkeypatch.setattr(analysis, "_scipy_sparse", lambda: None)
    x, weight, stride, pads, dilation, groups = random_case(3)
    c = analysis.conv_matrix(weight, x.shape[2:], stride, flat(pads), dilation, groups)
    assert isinstance(c, np.ndarray) and c.dtype == np.float32
    y = cnnfast.conv2d(x, weight, None, stride, flat(pads), dilation, groups)
    np.testing.assert_array_equal(c @ x.ravel(), y.ravel())


def test_same_and_valid_padding():
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, (1, 2, 7, 6)).astype(np.float32)
    w = rng.integers(-2, 3, (3, 2, 3, 2)).astype(np.float32)
    for padding in ("same", "valid"):
        c = analysis.conv_matrix(w, (7, 6), 2, padding)
        y = cnnfast.conv2d(x, w, None, 2, padding)
        assert analysis.conv_output_size((7, 6), (3, 2), 2, padding) == y.shape[2:]
        np.testing.assert_array_equal(c @ x.ravel(), y.ravel())


# -- output sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_output_sizes_match_the_ops(seed):
    x, weight, stride, pads, dilation, groups = random_case(seed)
    y = cnnfast.conv2d(x, weight, None, stride, flat(pads), dilation, groups)
    assert analysis.conv_output_size(x.shape[2:], weight.shape[2:], stride, flat(pads),
                                     dilation) == y.shape[2:]
    opad = tuple(int(v) for v in np.random.default_rng(seed).integers(0, 3, 2))
    opad = tuple(min(p, max(s, d) - 1) for p, s, d in zip(opad, stride, dilation))
    t = cnnfast.conv_transpose2d(y, weight, None, stride, flat(pads), opad, groups, dilation)
    assert analysis.conv_transpose_output_size(y.shape[2:], weight.shape[2:], stride, flat(pads),
                                               opad, dilation) == t.shape[2:]
    x1 = x[:, :, 0]
    y1 = cnnfast.conv1d(x1, weight[:, :, 0], None, stride[1], pads[1], dilation[1], groups)
    assert analysis.conv_output_size(x1.shape[2], weight.shape[3], stride[1], pads[1],
                                     dilation[1]) == y1.shape[2]


@pytest.mark.parametrize("size,k,s,p,d", [(5, 2, 2, 0, 1), (6, 3, 2, 1, 1), (7, 3, 3, 1, 2),
                                          (8, 2, 3, 1, 1), (10, 3, 4, 1, 1)])
def test_ceil_mode_matches_max_pool(size, k, s, p, d):
    x = np.zeros((1, 1, size, size + 1), np.float32)
    for ceil_mode in (False, True):
        y = cnnfast.max_pool2d(x, k, s, p, d, ceil_mode=ceil_mode)
        assert analysis.conv_output_size((size, size + 1), k, s, p, d,
                                         ceil_mode=ceil_mode) == y.shape[2:]


def test_output_size_forms():
    assert analysis.conv_output_size(224, 7, 2, 3) == 112
    assert analysis.conv_output_size((224, 224), 7, 2, 3) == (112, 112)
    assert analysis.conv_output_size((9, 10, 11), 3, (1, 2, 3), (0, 1, 0, 0, 2, 1)) == \
        (8, 4, 4)  # (9+1-3)//1+1, (10-3)//2+1, (11+3-3)//3+1
    assert analysis.conv_output_size(10, 3, 3, "same") == 4
    assert analysis.conv_output_size(10, 3, dilation=2) == 6
    assert analysis.conv_transpose_output_size(4, 4, 2, 1) == 8  # DCGAN 4x4/2
    assert analysis.conv_transpose_output_size((16, 16), 2, 2) == (32, 32)  # UNet 2x2/2
    assert analysis.conv_transpose_output_size((28, 5, 3), 3, (2, 1, 1), 1, (1, 0, 0)) == \
        (56, 5, 3)
    assert analysis.conv_transpose_output_size(5, 3, 1, (2, 1), output_padding=1,
                                               dilation=2) == 7


# -- receptive field, parameters, MACs ---------------------------------------------------------

def test_receptive_field_examples():
    rf = analysis.receptive_field([3, 3, 3])
    assert [f.receptive_field for f in rf] == [3, 5, 7]
    assert [f.jump for f in rf] == [1, 1, 1]
    for k in (2, 3, 5):
        for r in (1, 2, 4):
            assert analysis.receptive_field([(k, 1, r)])[0].receptive_field == \
                k + (k - 1) * (r - 1)
    # ResNet stem: 7×7/2 conv, 3×3/2 max pool, then a 3×3 stride-1 conv.
    rf = analysis.receptive_field([(7, 2), (3, 2), (3, 1)])
    assert [(f.receptive_field, f.jump) for f in rf] == [(7, 2), (11, 4), (19, 4)]
    rf = analysis.receptive_field([((3, 1), (2, 1)), (3, 1, (1, 2))])
    assert rf[-1] == ((7, 5), (2, 1))  # w: 1 + (3 - 1)·2 (dilation 2) = 5


def test_receptive_field_matches_conv_matrix():
    """The receptive field is the span of one output's non-zero columns through the stack."""
    layers = [(3, 1, 1), (3, 2, 1), (3, 1, 2)]
    size = 40
    product = None
    for k, s, d in layers:
        c = analysis.conv_matrix(np.ones((1, 1, k), np.float32), size, s, 0, d, dense=True)
        product = c if product is None else c @ product
        size = c.shape[0]
    columns = np.nonzero(product[0])[0]
    expected = analysis.receptive_field(layers)[-1].receptive_field
    assert columns[-1] - columns[0] + 1 == expected == 1 + 2 + 2 + 2 * 2 * 2


def test_parameters_and_macs():
    assert analysis.conv_parameters((64, 3, 7, 7)) == 64 * 3 * 49 + 64
    assert analysis.conv_parameters((64, 3, 7, 7), bias=False) == 64 * 3 * 49
    assert analysis.conv_parameters((32, 1, 3, 3), groups=32) == 32 * 9 + 32
    # Transposed weight (C_in, C_out/groups, kh, kw): C_out = 2 * 4 biases.
    assert analysis.conv_parameters((8, 2, 4, 4), groups=4, transposed=True) == 8 * 2 * 16 + 8
    assert analysis.conv_macs((64, 3, 7, 7), (112, 112)) == 112 * 112 * 64 * 3 * 49
    assert analysis.conv_macs((16, 8, 3), 10, batch=2) == 2 * 10 * 16 * 8 * 3
    # Without padding every tap of every output pixel lands in the input, so C has one entry
    # per MAC; Cᵀ (the transposed conv, whose input is C's output) has the same entries.
    w = np.ones((4, 3, 3, 3), np.float32)
    c = analysis.conv_matrix(w, (9, 10), 2)
    assert entries(c) == analysis.conv_macs(w.shape, (4, 4)) == 4 * 4 * math.prod(w.shape)


# -- errors -------------------------------------------------------------------------------------

def test_errors():
    w = np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(TypeError, match="float32"):
        analysis.conv_matrix(w.astype(np.float64), (4, 4))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        analysis.conv_matrix([[1.0]], (4, 4))
    with pytest.raises(ValueError, match=r"weight must be .* shape \(2, 3\)"):
        analysis.conv_matrix(np.ones((2, 3), np.float32), 4)
    with pytest.raises(ValueError, match="groups=3 must divide C_out"):
        analysis.conv_matrix(w, (4, 4), groups=3)
    with pytest.raises(ValueError, match="groups must be an int >= 1"):
        analysis.conv_matrix(w, (4, 4), groups=0)
    with pytest.raises(ValueError, match="empty axis"):
        analysis.conv_matrix(np.ones((0, 1, 3, 3), np.float32), (4, 4))
    with pytest.raises(ValueError, match="larger than the padded input"):
        analysis.conv_matrix(w, (2, 4))
    with pytest.raises(ValueError, match="input_size must be an int or a tuple of 2"):
        analysis.conv_matrix(w, (4, 4, 4))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        analysis.conv_matrix(w, (4, 4), stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        analysis.conv_output_size(4, 3, padding=-1)
    with pytest.raises(ValueError, match="unknown padding 'full'"):
        analysis.conv_output_size(4, 3, padding="full")
    with pytest.raises(ValueError, match="1, 2 or 3 spatial axes"):
        analysis.conv_output_size((4, 4, 4, 4), 3)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        analysis.conv_output_size(4, 3, dilation=0)
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2"):
        analysis.conv_output_size((4, 4), (3, 3, 3))
    with pytest.raises(ValueError, match=r"output_padding \(2,\) must be >= 0 and smaller"):
        analysis.conv_transpose_output_size(4, 3, 2, output_padding=2)
    with pytest.raises(ValueError, match="no padding strings"):
        analysis.conv_transpose_output_size(4, 3, padding="same")
    with pytest.raises(ValueError, match="crops the whole output"):
        analysis.conv_transpose_output_size(1, 1, 1, 1)
    with pytest.raises(ValueError, match="input_size must be >= 1"):
        analysis.conv_transpose_output_size(0, 3)
    with pytest.raises(ValueError, match="non-empty list"):
        analysis.receptive_field([])
    with pytest.raises(ValueError, match="layer 1 must be kernel"):
        analysis.receptive_field([3, (3, 1, 1, 1)])
    with pytest.raises(ValueError, match="layer 0 stride must be >= 1"):
        analysis.receptive_field([(3, 0)])
    with pytest.raises(ValueError, match="weight_shape must be 3-5 positive ints"):
        analysis.conv_parameters((3, 3))
    with pytest.raises(ValueError, match="groups must be an int >= 1"):
        analysis.conv_parameters((3, 3, 3), groups=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        analysis.conv_macs((3, 3, 3), -1)


# -- PyTorch cross-checks ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_torch_cross_check_2d_and_3d(seed):
    torch = pytest.importorskip("torch")
    for dims in (2, 3):
        x, weight, stride, pads, dilation, groups = random_case(seed, dims)
        padded = np.pad(x, [(0, 0), (0, 0)] + pads)
        conv = torch.nn.functional.conv2d if dims == 2 else torch.nn.functional.conv3d
        expected = conv(torch.from_numpy(padded), torch.from_numpy(weight), None, stride, 0,
                        dilation, groups).numpy()
        c = analysis.conv_matrix(weight, x.shape[2:], stride, flat(pads), dilation, groups)
        np.testing.assert_array_equal(c @ x.ravel(), expected.ravel())
        assert analysis.conv_output_size(x.shape[2:], weight.shape[2:], stride, flat(pads),
                                         dilation) == expected.shape[2:]
        # Symmetric pads: torch's transposed convolution (and its output-size rule).
        p = tuple(max(pair) for pair in pads)
        sym = analysis.conv_matrix(weight, x.shape[2:], stride, p, dilation, groups)
        y_size = analysis.conv_output_size(x.shape[2:], weight.shape[2:], stride, p, dilation)
        y = np.ones((1, weight.shape[0]) + y_size, np.float32)
        convt = torch.nn.functional.conv_transpose2d if dims == 2 else \
            torch.nn.functional.conv_transpose3d
        opad = tuple(i - ((o - 1) * s - 2 * q + d * (k - 1) + 1) for i, o, s, q, d, k in zip(
            x.shape[2:], y_size, stride, p, dilation, weight.shape[2:]))
        t = convt(torch.from_numpy(y), torch.from_numpy(weight), None, stride, p, opad, groups,
                  dilation).numpy()
        assert analysis.conv_transpose_output_size(y_size, weight.shape[2:], stride, p, opad,
                                                   dilation) == t.shape[2:] == x.shape[2:]
        np.testing.assert_array_equal(sym.T @ y.ravel(), t.ravel())


def test_summary_is_the_nn_summary():
    import cnnfast.nn as nn

    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3))
    table = cnnfast.analysis.summary(model, (1, 1, 8, 8), quiet=True)
    assert table.total_params == nn.summary(model, (1, 1, 8, 8), quiet=True).total_params
    assert table.rows[-1]["receptive_field"] == (5, 5)
