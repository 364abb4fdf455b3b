"""cnnfast.conv3d against the float64 reference on every SIMD tier and every algorithm that serves
the case: kernels 1..3 per axis and mixed (1x3x3, 3x1x1), strides, dilations and paddings per axis
(asymmetric 6-tuples, "same" at stride 2, "valid", padding modes), groups and depthwise with a
channel multiplier, both layouts, odd sizes, batch 1 and 2, exact small integers, activations,
out=, 1 vs 2 threads, the depth-1 case against conv2d, torch, and every user error.
"""

import dataclasses
import zlib

import numpy as np
import pytest

import cnnfast
import reference
from reference import EPS_FLOAT32, gemm_tolerance, same_padding

ALGORITHMS = ("auto",) + tuple(a for a in cnnfast.conv3d_algorithms() if a != "auto")
ACTIVATIONS = (None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish")


def triple(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


def pads6(padding, dhw, kernel, stride, dilation):
    """(front, back, top, bottom, left, right) of any padding form of the API."""
    if padding == "valid":
        return (0,) * 6
    if padding == "same":
        return sum((same_padding(*a) for a in zip(dhw, kernel, stride, dilation)), ())
    if isinstance(padding, int):
        return (padding,) * 6
    if len(padding) == 3:
        return sum(((p, p) for p in padding), ())
    return tuple(padding)


@dataclasses.dataclass(frozen=True)
class Case:
    n: int
    c_in: int
    c_out: int
    dhw: tuple
    k: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def pads(self):
        return pads6(self.padding, self.dhw, self.k, triple(self.stride), triple(self.dilation))

    @property
    def depthwise(self):
        return self.groups == self.c_in and self.groups > 1

    @property
    def id(self):
        parts = [f"n{self.n}", f"c{self.c_in}to{self.c_out}", "x".join(map(str, self.dhw)),
                 "k" + "x".join(map(str, self.k))]
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            value = getattr(self, name)
            if value != default:
                parts.append(f"{name[0]}{value}".replace(" ", ""))
        return "-".join(parts)


CASES = [
    Case(1, 3, 5, (4, 5, 6), (3, 3, 3), padding=1),
    Case(2, 4, 6, (5, 7, 6), (1, 3, 3), padding=(0, 1, 1)),  # R(2+1)D spatial
    Case(1, 5, 3, (6, 5, 4), (3, 1, 1), padding=(1, 0, 0)),  # R(2+1)D temporal
    Case(1, 6, 4, (3, 4, 5), (1, 1, 1)),  # pointwise: a plain GEMM on x
    Case(1, 6, 7, (5, 6, 7), (1, 1, 1), stride=(2, 1, 2)),
    Case(2, 3, 4, (7, 8, 9), (2, 3, 2), stride=(2, 1, 3), padding=(1, 0, 2, 1, 0, 2),
         dilation=(1, 2, 1)),
    Case(1, 4, 4, (9, 7, 8), (3, 2, 3), stride=2, padding="same"),  # TensorFlow's rule
    Case(1, 2, 3, (5, 5, 5), (3, 3, 3), padding="same", dilation=(2, 1, 2)),
    Case(1, 4, 5, (4, 6, 5), (2, 2, 3), padding="valid"),
    Case(1, 6, 6, (4, 5, 6), (3, 3, 3), padding=1, groups=3),
    Case(2, 4, 4, (5, 6, 7), (3, 3, 3), padding=(1, 2, 1), groups=4),  # depthwise
    Case(1, 3, 6, (4, 9, 10), (3, 3, 2), stride=(1, 2, 2), padding=1, groups=3),  # multiplier 2
    Case(1, 3, 3, (6, 5, 7), (2, 3, 3), padding=(2, 0, 1, 1, 0, 2), dilation=(2, 1, 1),
         groups=3),
    Case(1, 4, 4, (3, 19, 11), (2, 3, 3), stride=(1, 1, 2), padding=(0, 2, 2), dilation=(1, 2, 2),
         groups=4),  # depthwise, 19 output rows: blocks of 8, 2 and 1
    # Output rows of 3 pixels: each 32-pixel panel spans rows and depth slices.
    Case(1, 2, 17, (5, 4, 3), (3, 3, 3), padding=1),
    # K = 11 * 27 = 297 > kc = 256: a K block ends in the middle of a tap's channels.
    Case(1, 11, 15, (3, 4, 35), (3, 3, 3), padding=(1, 1, 0)),
    # Padding larger than the kernel reach: whole output planes see no input.
    Case(1, 2, 3, (2, 3, 3), (1, 2, 2), padding=(3, 3, 1, 0, 0, 1)),
    Case(1, 2, 2, (2, 3, 3), (1, 2, 2), padding=(3, 3, 1, 0, 0, 1), groups=2),
]
IDS = [c.id for c in CASES]


def algorithms_for(case):
    return [a for a in ALGORITHMS if a != "depthwise" or case.depthwise]


def integers(rng, shape, low=-3, high=3):
    return rng.integers(low, high + 1, size=shape).astype(np.float32)


def case_arrays(case, rng, regime):
    make = (lambda s: integers(rng, s)) if regime == "int" else (
        lambda s: rng.standard_normal(s, dtype=np.float32))
    x = make((case.n, case.c_in) + case.dhw)
    w = make((case.c_out, case.c_in // case.groups) + case.k)
    b = make((case.c_out,))
    return x, w, b


def expected(case, x, w, b, mode="zeros"):
    return reference.conv3d(x, w, b, triple(case.stride), case.pads(), triple(case.dilation),
                            case.groups, mode)


def to_last(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_exact_small_integers(isa, case):
    """Every partial sum is an exact float32 integer: every algorithm, both layouts, bitwise."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    x, w, b = case_arrays(case, rng, "int")
    want = expected(case, x, w, b)
    for algo in algorithms_for(case):
        y = cnnfast.conv3d(x, w, b, **case.kwargs(), algo=algo)
        np.testing.assert_array_equal(y, want, err_msg=algo)
        y_last = cnnfast.conv3d(to_last(x), w, b, **case.kwargs(), algo=algo, layout="NDHWC")
        np.testing.assert_array_equal(np.moveaxis(y_last, -1, 1), want, err_msg=algo)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_normal_values_within_tolerance(isa, case):
    """Random normals: every algorithm within the GEMM tolerance, NDHWC bitwise equal to NCDHW."""
    rng = np.random.default_rng(7)
    x, w, b = case_arrays(case, rng, "normal")
    want = expected(case, x, w, b)
    k = (case.c_in // case.groups) * int(np.prod(case.k))
    tol = gemm_tolerance(k, np.abs(x).max(), np.abs(w).max()) + EPS_FLOAT32 * np.abs(b).max()
    for algo in algorithms_for(case):
        y = cnnfast.conv3d(x, w, b, **case.kwargs(), algo=algo)
        assert y.dtype == np.float32 and y.shape == want.shape
        np.testing.assert_allclose(y, want, rtol=0, atol=tol, err_msg=algo)
        y_last = cnnfast.conv3d(to_last(x), w, b, **case.kwargs(), algo=algo, layout="NDHWC")
        np.testing.assert_array_equal(np.moveaxis(y_last, -1, 1), y, err_msg=algo)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("case", [CASES[0], CASES[10]], ids=[CASES[0].id, CASES[10].id])
def test_fused_activations(isa, case, activation):
    rng = np.random.default_rng(3)
    x, w, b = case_arrays(case, rng, "normal")
    pre = expected(case, x, w, b)
    want = reference.activation(activation, pre, 0.125)
    k = (case.c_in // case.groups) * int(np.prod(case.k))
    tol = 1.5 * gemm_tolerance(k, np.abs(x).max(), np.abs(w).max()) + 8 * EPS_FLOAT32 * (
        1 + np.abs(want))
    for algo in algorithms_for(case):
        y = cnnfast.conv3d(x, w, b, **case.kwargs(), activation=activation, negative_slope=0.125,
                           algo=algo)
        assert np.all(np.abs(y - want) <= tol), (algo, np.abs(y - want).max())


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes(mode):
    case = Case(1, 3, 4, (4, 5, 6), (3, 3, 3), padding=(1, 2, 1))
    rng = np.random.default_rng(5)
    x, w, b = case_arrays(case, rng, "int")
    y = cnnfast.conv3d(x, w, b, **case.kwargs(), padding_mode=mode)
    np.testing.assert_array_equal(y, expected(case, x, w, b, mode))


def test_default_arguments_and_no_bias():
    rng = np.random.default_rng(1)
    x, w = integers(rng, (1, 2, 3, 4, 5)), integers(rng, (3, 2, 2, 2, 2))
    y = cnnfast.conv3d(x, w)
    np.testing.assert_array_equal(y, reference.conv3d(x, w, None, (1,) * 3, (0,) * 6, (1,) * 3,
                                                      1))


@pytest.mark.parametrize("layout", ["NCDHW", "NDHWC"])
def test_out_is_written_and_returned(layout):
    case = CASES[0]
    rng = np.random.default_rng(2)
    x, w, b = case_arrays(case, rng, "int")
    want = expected(case, x, w, b).astype(np.float32)
    if layout == "NDHWC":
        x, want = to_last(x), to_last(want)
    out = np.full(want.shape, np.nan, np.float32)
    assert cnnfast.conv3d(x, w, b, **case.kwargs(), layout=layout, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_non_contiguous_inputs_are_read_correctly():
    rng = np.random.default_rng(4)
    x_big = integers(rng, (1, 6, 5, 6, 14))
    x = x_big[:, ::2, :, :, ::2]
    w = integers(rng, (4, 3, 3, 3, 3))[:, :, ::-1]
    y = cnnfast.conv3d(x, w, padding=1)
    np.testing.assert_array_equal(y, reference.conv3d(x, w, None, (1,) * 3, (1,) * 6, (1,) * 3,
                                                      1))


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_one_and_two_threads_are_bitwise_equal(restore_threads, algo):
    groups = 8 if algo == "depthwise" else 1
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 8, 9, 12, 13), dtype=np.float32)
    w = rng.standard_normal((16, 8 // groups, 3, 3, 3), dtype=np.float32)
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(cnnfast.conv3d(x, w, padding=1, groups=groups, algo=algo,
                                      activation="silu"))
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("layout", ["NCDHW", "NDHWC"])
def test_depth_one_equals_conv2d(isa, groups, layout):
    """A depth-1 kernel on a depth-1 input is conv2d on the plane: the same numbers."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 1, 9, 11), dtype=np.float32)
    w = rng.standard_normal((8, 4 // groups, 1, 3, 3), dtype=np.float32)
    b = rng.standard_normal(8, dtype=np.float32)
    kw = dict(stride=(1, 2, 1), padding=(0, 1, 2), dilation=(1, 1, 2), groups=groups)
    y3 = cnnfast.conv3d(x if layout == "NCDHW" else to_last(x), w, b, **kw, layout=layout)
    y2 = cnnfast.conv2d(x[:, :, 0], w[:, :, 0], b, stride=(2, 1), padding=(1, 2),
                        dilation=(1, 2), groups=groups)
    y3 = y3 if layout == "NCDHW" else np.moveaxis(y3, -1, 1)
    tol = gemm_tolerance(4 // groups * 9, np.abs(x).max(), np.abs(w).max())
    np.testing.assert_allclose(y3[:, :, 0], y2, rtol=0, atol=tol)
    if groups == 1:  # the same GEMM on the same K order: bitwise
        np.testing.assert_array_equal(y3[:, :, 0], y2)


def test_algorithms_are_listed():
    assert cnnfast.conv3d_algorithms() == ["auto", "implicit_gemm", "vol2col", "depthwise"]
    assert cnnfast.conv_transpose3d_algorithms() == ["auto", "gemm_col2im"]


def test_cross_check_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    for case in CASES:
        if case.padding == "same" and case.stride != 1:
            continue  # torch has no "same" at stride > 1 (checked against the reference above)
        x, w, b = case_arrays(case, rng, "normal")
        pads = case.pads()
        tx = torch.nn.functional.pad(torch.from_numpy(x).double(),
                                     (pads[4], pads[5], pads[2], pads[3], pads[0], pads[1]))
        want = torch.nn.functional.conv3d(tx, torch.from_numpy(w).double(),
                                          torch.from_numpy(b).double(), case.stride, 0,
                                          case.dilation, case.groups).numpy()
        k = (case.c_in // case.groups) * int(np.prod(case.k))
        tol = gemm_tolerance(k, np.abs(x).max(), np.abs(w).max()) + EPS_FLOAT32 * 4
        y = cnnfast.conv3d(x, w, b, **case.kwargs())
        np.testing.assert_allclose(y, want, rtol=0, atol=tol, err_msg=case.id)


# -- errors --------------------------------------------------------------------------------------

X = np.zeros((1, 4, 5, 6, 7), np.float32)
W = np.zeros((8, 4, 3, 3, 3), np.float32)


def conv(**kw):
    args = dict(x=X, weight=W)
    args.update(kw)
    return lambda: cnnfast.conv3d(**args)


ERRORS = [
    (conv(x=X.astype(np.float64)), TypeError, r"conv3d: x has dtype float64.*float32"),
    (conv(weight=W.astype(np.float16)), TypeError, r"conv3d: weight has dtype float16"),
    (conv(bias=np.zeros(8)), TypeError, r"conv3d: bias has dtype float64"),
    (conv(x=[[1.0]]), TypeError, r"conv3d: x must be a numpy.ndarray"),
    (conv(layout="NCHW"), ValueError, r"unknown layout 'NCHW'; expected 'NCDHW' or 'NDHWC'"),
    (conv(x=X[0]), ValueError, r"x must be 5-D \(N, C_in, D, H, W\), got shape \(4, 5, 6, 7\)"),
    (conv(x=X[0], layout="NDHWC"), ValueError, r"x must be 5-D \(N, D, H, W, C_in\)"),
    (conv(weight=W[0]), ValueError, r"weight must be 5-D \(C_out, C_in/groups, kd, kh, kw\)"),
    (conv(groups=0), ValueError, r"groups must be >= 1, got 0"),
    (conv(groups=1.5), TypeError, r"groups must be an int"),
    (conv(groups=3), ValueError, r"groups=3 must divide both C_in=4 .* and C_out=8"),
    (conv(weight=W[:, :2]), ValueError,
     r"weight \(8, 2, 3, 3, 3\) with groups=1 expects 2 input channels, but x .* has 4"),
    (conv(bias=np.zeros(7, np.float32)), ValueError,
     r"bias must have shape \(8,\) to match weight \(8, 4, 3, 3, 3\), got \(7,\)"),
    (conv(stride=(1, 0, 1)), ValueError, r"stride must be >= 1, got \(1, 0, 1\)"),
    (conv(stride=(1, 1)), ValueError, r"stride must be an int or a tuple of 3 ints"),
    (conv(dilation=(1, 1, -1)), ValueError, r"dilation must be >= 1, got \(1, 1, -1\)"),
    (conv(dilation="2"), TypeError, r"dilation must be an int or a tuple of 3 ints"),
    (conv(padding=(1, 2, -1)), ValueError, r"padding must be >= 0"),
    (conv(padding=(1, 2, 3, 4)), ValueError, r"padding tuple must have 3 or 6 ints"),
    (conv(padding="full"), ValueError, r"unknown padding 'full'"),
    (conv(padding=1.5), TypeError, r"padding must be 'same', 'valid', an int or a tuple"),
    (conv(padding_mode="mirror"), ValueError, r"unknown padding_mode 'mirror'"),
    (conv(padding=(5, 0, 0), padding_mode="reflect"), ValueError,
     r"padding_mode='reflect' needs padding < the input size"),
    (conv(weight=np.zeros((8, 4, 6, 3, 3), np.float32)), ValueError,
     r"kernel \(6, 3, 3\) with dilation \(1, 1, 1\) spans \(6, 3, 3\), larger than the padded "
     r"input \(5, 6, 7\)"),
    (conv(dilation=(3, 1, 1)), ValueError, r"spans \(7, 3, 3\), larger than the padded input"),
    (conv(activation="gelu"), ValueError, r"unknown activation 'gelu'"),
    (conv(algo="winograd"), ValueError,
     r"conv3d: unknown algo 'winograd'; expected one of auto, implicit_gemm, vol2col, depthwise"),
    (conv(algo=3), TypeError, r"algo must be a string"),
    (conv(algo="depthwise"), ValueError,
     r"algo='depthwise' needs one input channel per group \(groups == C_in\); got groups=1"),
    (conv(out=np.zeros((1, 8, 3, 4, 4), np.float32)), ValueError,
     r"conv3d: out has shape \(1, 8, 3, 4, 4\) but the result has shape \(1, 8, 3, 4, 5\)"),
    (conv(out=np.zeros((1, 8, 3, 4, 5), np.float64)), ValueError,
     r"conv3d: out has dtype float64; it must be float32"),
    (conv(out=np.zeros((1, 8, 3, 4, 10), np.float32)[..., ::2]), ValueError,
     r"must be C-contiguous"),
    (conv(out=X), ValueError, r"out overlaps an input"),
]


@pytest.mark.parametrize("call, error, match", ERRORS, ids=[m[:40] for _, _, m in ERRORS])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
