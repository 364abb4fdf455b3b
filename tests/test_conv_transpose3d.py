"""cnnfast.conv_transpose3d against the float64 scatter-definition reference on every SIMD tier:
strides, asymmetric padding, output_padding, dilation, groups and depthwise, both layouts,
exact small integers, activations, output_size, out=, the adjoint identity with conv3d,
1 vs 2 threads, torch, and every user error.
"""

import dataclasses
import zlib

import numpy as np
import pytest

import cnnfast
import reference
from reference import EPS_FLOAT32, gemm_tolerance


def triple(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


def pads6(padding):
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
    output_padding: object = 0
    groups: int = 1
    dilation: object = 1

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                    groups=self.groups, dilation=self.dilation)

    @property
    def id(self):
        parts = [f"n{self.n}", f"c{self.c_in}to{self.c_out}", "x".join(map(str, self.dhw)),
                 "k" + "x".join(map(str, self.k))]
        for name in ("stride", "padding", "output_padding", "groups", "dilation"):
            value = getattr(self, name)
            if value != (1 if name in ("stride", "groups", "dilation") else 0):
                parts.append(f"{name[:4]}{value}".replace(" ", ""))
        return "-".join(parts)


CASES = [
    Case(1, 4, 3, (3, 4, 5), (2, 2, 2), stride=2),  # UNet up-convolution
    Case(2, 3, 5, (3, 3, 4), (3, 3, 3), stride=(2, 1, 2), padding=1, output_padding=(1, 0, 1)),
    Case(1, 5, 4, (4, 3, 3), (3, 1, 1), padding=(1, 0, 0)),
    Case(1, 4, 6, (3, 4, 3), (1, 3, 3), stride=(1, 2, 3), padding=(0, 2, 1, 0, 1, 2),
         output_padding=(0, 1, 2)),
    Case(1, 4, 4, (3, 3, 4), (2, 3, 2), stride=2, groups=2, dilation=(2, 1, 3), padding=1,
         output_padding=(1, 0, 2)),
    Case(2, 3, 6, (3, 4, 3), (3, 3, 3), stride=2, groups=3, padding=(1, 0, 1)),  # depthwise x2
    Case(1, 6, 17, (2, 3, 4), (1, 1, 1)),
    # Kernel == stride: taps tile the output (stored, not added); output_padding leaves zeros.
    Case(1, 3, 2, (2, 3, 2), (2, 3, 2), stride=(2, 3, 2), padding=(1, 0, 0),
         output_padding=(1, 2, 0)),
]
IDS = [c.id for c in CASES]


def integers(rng, shape):
    return rng.integers(-3, 4, size=shape).astype(np.float32)


def case_arrays(case, rng, regime):
    make = (lambda s: integers(rng, s)) if regime == "int" else (
        lambda s: rng.standard_normal(s, dtype=np.float32))
    x = make((case.n, case.c_in) + case.dhw)
    w = make((case.c_in, case.c_out // case.groups) + case.k)
    return x, w, make((case.c_out,))


def expected(case, x, w, b):
    return reference.conv_transpose3d(x, w, b, triple(case.stride), pads6(case.padding),
                                      triple(case.output_padding), triple(case.dilation),
                                      case.groups)


def to_last(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_exact_small_integers(isa, case):
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    x, w, b = case_arrays(case, rng, "int")
    want = expected(case, x, w, b)
    y = cnnfast.conv_transpose3d(x, w, b, **case.kwargs())
    np.testing.assert_array_equal(y, want)
    y_last = cnnfast.conv_transpose3d(to_last(x), w, b, **case.kwargs(), layout="NDHWC",
                                      algo="gemm_col2im")
    np.testing.assert_array_equal(np.moveaxis(y_last, -1, 1), want)


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu", "silu"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_normal_values_and_activations(isa, case, activation):
    rng = np.random.default_rng(11)
    x, w, b = case_arrays(case, rng, "normal")
    want = reference.activation(activation, expected(case, x, w, b), 0.01)
    k = case.c_in // case.groups * int(np.prod(case.k))
    tol = 1.5 * gemm_tolerance(k, np.abs(x).max(), np.abs(w).max()) + 8 * EPS_FLOAT32 * (
        1 + np.abs(want))
    y = cnnfast.conv_transpose3d(x, w, b, **case.kwargs(), activation=activation)
    assert y.shape == want.shape and y.dtype == np.float32
    assert np.all(np.abs(y - want) <= tol), np.abs(y - want).max()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adjoint_of_conv3d(case):
    """<conv3d(z, w), x> = <z, conv_transpose3d(x, w)> for the forward conv of the same
    parameters (weight read as (C_out_fwd = C_in, C_in_fwd/groups, ...))."""
    rng = np.random.default_rng(12)
    x, w, _ = case_arrays(case, rng, "normal")
    y = cnnfast.conv_transpose3d(x, w, **case.kwargs())
    z = rng.standard_normal(y.shape, dtype=np.float32)
    fwd = cnnfast.conv3d(z, w, stride=case.stride, padding=pads6(case.padding),
                         dilation=case.dilation, groups=case.groups)
    # With output_padding the forward conv may reach one element further per axis: the
    # transposed conv is the adjoint of the forward conv cropped to x's shape.
    assert all(0 <= f - s <= 1 for f, s in zip(fwd.shape, x.shape))
    fwd = fwd[tuple(slice(0, s) for s in x.shape)]
    lhs = np.dot(fwd.ravel().astype(np.float64), x.ravel())
    rhs = np.dot(z.ravel().astype(np.float64), y.ravel())
    assert abs(lhs - rhs) <= 1e-4 * (1 + np.abs(z).sum() * np.abs(y).max())


def test_output_size_picks_the_output_padding():
    rng = np.random.default_rng(13)
    x, w = integers(rng, (1, 2, 3, 3, 3)), integers(rng, (2, 3, 3, 3, 3))
    smallest = cnnfast.conv_transpose3d(x, w, stride=2, padding=1).shape[2:]
    assert smallest == (5, 5, 5)
    y = cnnfast.conv_transpose3d(x, w, stride=2, padding=1, output_size=(6, 5, 6))
    want = reference.conv_transpose3d(x, w, None, (2,) * 3, (1,) * 6, (1, 0, 1), (1,) * 3, 1)
    np.testing.assert_array_equal(y, want)
    full = cnnfast.conv_transpose3d(x, w, stride=2, padding=1, output_size=(1, 3, 6, 5, 6))
    np.testing.assert_array_equal(full, y)
    with pytest.raises(ValueError, match=r"output_size \(7, 5, 5\) is not reachable: each size "
                                         r"must lie between \(5, 5, 5\) and \(6, 6, 6\)"):
        cnnfast.conv_transpose3d(x, w, stride=2, padding=1, output_size=(7, 5, 5))
    with pytest.raises(ValueError, match="output_size must give the 3 spatial sizes"):
        cnnfast.conv_transpose3d(x, w, stride=2, padding=1, output_size=(6, 5))


@pytest.mark.parametrize("layout", ["NCDHW", "NDHWC"])
def test_out_is_written_and_returned(layout):
    case = CASES[1]
    rng = np.random.default_rng(14)
    x, w, b = case_arrays(case, rng, "int")
    want = expected(case, x, w, b).astype(np.float32)
    if layout == "NDHWC":
        x, want = to_last(x), to_last(want)
    out = np.full(want.shape, np.nan, np.float32)
    assert cnnfast.conv_transpose3d(x, w, b, **case.kwargs(), layout=layout, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_one_and_two_threads_are_bitwise_equal(restore_threads):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 8, 5, 7, 9), dtype=np.float32)
    w = rng.standard_normal((8, 6, 3, 3, 3), dtype=np.float32)
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(cnnfast.conv_transpose3d(x, w, stride=2, padding=1, output_padding=1))
    np.testing.assert_array_equal(results[0], results[1])


def test_cross_check_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    for case in CASES:
        p = pads6(case.padding)
        if p[0::2] != p[1::2]:
            continue  # torch takes symmetric padding only (the reference covers the rest)
        x, w, b = case_arrays(case, rng, "normal")
        want = torch.nn.functional.conv_transpose3d(
            torch.from_numpy(x).double(), torch.from_numpy(w).double(),
            torch.from_numpy(b).double(), case.stride, p[0::2], case.output_padding, case.groups,
            case.dilation).numpy()
        k = case.c_in // case.groups * int(np.prod(case.k))
        tol = gemm_tolerance(k, np.abs(x).max(), np.abs(w).max()) + 4 * EPS_FLOAT32
        y = cnnfast.conv_transpose3d(x, w, b, **case.kwargs())
        np.testing.assert_allclose(y, want, rtol=0, atol=tol, err_msg=case.id)


# -- errors --------------------------------------------------------------------------------------

X = np.zeros((1, 4, 3, 3, 3), np.float32)
W = np.zeros((4, 2, 2, 2, 2), np.float32)


def tconv(**kw):
    args = dict(x=X, weight=W)
    args.update(kw)
    return lambda: cnnfast.conv_transpose3d(**args)


ERRORS = [
    (tconv(x=X.astype(np.float64)), TypeError, r"conv_transpose3d: x has dtype float64"),
    (tconv(layout="NHWC"), ValueError, r"unknown layout 'NHWC'; expected 'NCDHW' or 'NDHWC'"),
    (tconv(x=X[0]), ValueError, r"x must be 5-D \(N, C_in, D, H, W\), got shape \(4, 3, 3, 3\)"),
    (tconv(weight=W[0]), ValueError,
     r"weight must be 5-D \(C_in, C_out/groups, kd, kh, kw\), got shape \(2, 2, 2, 2\)"),
    (tconv(groups=0), ValueError, r"groups must be >= 1, got 0"),
    (tconv(groups=3), ValueError, r"groups=3 must divide C_in=4"),
    (tconv(weight=W[:3]), ValueError, r"weight \(3, 2, 2, 2, 2\) expects 3 input channels"),
    (tconv(bias=np.zeros(3, np.float32)), ValueError, r"bias must have shape \(2,\), got \(3,\)"),
    (tconv(stride=(1, 0, 1)), ValueError, r"stride must be >= 1, got \(1, 0, 1\)"),
    (tconv(dilation=(0, 1, 1)), ValueError, r"dilation must be >= 1, got \(0, 1, 1\)"),
    (tconv(padding=-1), ValueError, r"padding must be >= 0"),
    (tconv(padding="same"), ValueError, r"take no padding strings"),
    (tconv(padding=(1, 1)), ValueError, r"padding must be an int, \(pd, ph, pw\) or \(front"),
    (tconv(output_padding=(0, 1, 0)), ValueError,
     r"output_padding \(0, 1, 0\) must be >= 0 and smaller than stride \(1, 1, 1\) or dilation"),
    (tconv(output_padding=(1, 1)), ValueError, r"output_padding must be an int or a tuple of 3"),
    (tconv(padding=(3, 0, 0)), ValueError, r"the output size \(-2, 4, 4\) .* is not positive"),
    (tconv(activation="gelu"), ValueError, r"unknown activation 'gelu'"),
    (tconv(algo="phase"), ValueError, r"unknown algo 'phase'; expected one of auto, gemm_col2im"),
    (tconv(out=np.zeros((1, 2, 4, 4, 3), np.float32)), ValueError,
     r"conv_transpose3d: out has shape \(1, 2, 4, 4, 3\) but the result has shape "
     r"\(1, 2, 4, 4, 4\)"),
    (tconv(out=np.zeros((1, 2, 4, 4, 8), np.float32)[..., ::2]), ValueError,
     r"must be C-contiguous"),
    (tconv(out=X), ValueError, r"out overlaps an input"),
]


@pytest.mark.parametrize("call, error, match", ERRORS, ids=[m[:40] for _, _, m in ERRORS])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
