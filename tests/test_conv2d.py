"""cnnfast.conv2d against the float64 reference on every SIMD tier and every algorithm that
serves the case: kernels 1..7 (square and not), strides, dilations, every padding form and mode,
groups and depthwise, odd channel and spatial sizes, both layouts, every activation, bias, out=,
thread determinism, strided and read-only inputs, and every user error.
"""

import dataclasses
import functools
import zlib

import numpy as np
import pytest

import cnnfast
import reference
from reference import EPS_FLOAT32, gemm_tolerance, same_padding

REGIMES = ("int", "normal")
LAYOUTS = ("NCHW", "NHWC")
ACTIVATIONS = (None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish")

# Activations float32 computes exactly on exact pre-activations. leaky_relu is exact too when the
# slope is a power of two (slope * x only shifts the exponent).
EXACT_ACTIVATIONS = (None, "relu", "relu6")
EXACT_SLOPES = (0.25, 0.5)

# Tolerance of a fused activation: its largest slope (hardswish: (2x + 3) / 6 = 1.5 at x = 3;
# silu ~1.1; the others <= 1) times the convolution's error, plus its own float32 evaluation:
# a few ulps of the result (exp-based ones), and a few eps absolute where the result goes
# through zero by cancellation (tanh written as 2 * sigmoid(2x) - 1).
ACTIVATION_SLOPE = 1.5
ACTIVATION_RTOL = 8 * EPS_FLOAT32
ACTIVATION_ATOL = 8 * EPS_FLOAT32


def listed_algorithms(function_name="conv2d_algorithms"):
    """("auto", then every algorithm the library lists). Without the listing function (not built
    yet) the two the spec promises, so that collection works; test_algorithms_are_listed fails."""
    listed = getattr(cnnfast, function_name, lambda: ("im2col", "gemm1x1"))()
    return ("auto",) + tuple(a for a in listed if a != "auto")


ALGORITHMS = listed_algorithms()


# -- cases ---------------------------------------------------------------------------------------


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class CallOptions:
    """The keyword arguments of one conv call (shared by the conv1d cases): fields left at their
    default are not passed, so the defaults are tested."""

    def kwargs(self):
        kw = {}
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            if getattr(self, name) != default:
                kw[name] = getattr(self, name)
        if self.mode != "zeros":
            kw["padding_mode"] = self.mode
        if self.act is not None:
            kw["activation"] = self.act
        if self.slope is not None:
            kw["negative_slope"] = self.slope
        return kw

    @property
    def slope_value(self):
        return 0.01 if self.slope is None else self.slope


@dataclasses.dataclass(frozen=True)
class Case(CallOptions):
    """One conv2d call. Fields left at their default are not passed, so the defaults are tested."""

    n: int
    c_in: int
    c_out: int
    hw: tuple
    k: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    mode: str = "zeros"
    bias: bool = True
    act: object = None
    slope: object = None  # None: negative_slope not passed (default 0.01)


    def padding4(self):
        """(top, bottom, left, right) of any padding form of the API."""
        return padding4(self.padding, self.hw, self.k, pair(self.stride), pair(self.dilation))

    @property
    def id(self):
        def fmt(v):
            return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)

        parts = [f"n{self.n}", f"c{self.c_in}to{self.c_out}", fmt(self.hw), f"k{fmt(self.k)}"]
        if self.stride != 1:
            parts.append(f"s{fmt(self.stride)}")
        if isinstance(self.padding, tuple) and len(self.padding) == 4:
            parts.append("p=t{}b{}l{}r{}".format(*self.padding))
        elif self.padding != 0:
            parts.append(f"p={fmt(self.padding)}")
        if self.dilation != 1:
            parts.append(f"d{fmt(self.dilation)}")
        if self.groups == self.c_in:
            multiplier = self.c_out // self.c_in
            parts.append("dw" if multiplier == 1 else f"dw_x{multiplier}")
        elif self.groups != 1:
            parts.append(f"g{self.groups}")
        if self.mode != "zeros":
            parts.append(self.mode)
        parts.append("bias" if self.bias else "nobias")
        if self.act is not None:
            parts.append(self.act if self.slope is None else f"{self.act}{self.slope}")
        return "_".join(parts)


def padding4(padding, hw, k, stride, dilation):
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        assert padding == "same"
        return same_padding(hw[0], k[0], stride[0], dilation[0]) + same_padding(
            hw[1], k[1], stride[1], dilation[1])
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


C = Case
CASES = [
    # 1x1 kernels. With stride 1 and no padding a plain GEMM, which gemm1x1 serves.
    C(1, 3, 5, (7, 7), (1, 1)),
    C(3, 17, 33, (13, 15), (1, 1), bias=False, act="relu"),
    C(1, 33, 17, (15, 13), (1, 1), padding="valid", dilation=2, act="relu6"),
    C(3, 6, 10, (7, 9), (1, 1), groups=2, act="leaky_relu"),
    C(1, 8, 16, (9, 7), (1, 1), stride=(1, 1), padding="same", groups=8, act="hardswish"),
    C(1, 64, 24, (12, 12), (1, 1), act="relu6"),
    C(1, 5, 7, (13, 13), (1, 1), stride=2, act="sigmoid"),
    C(1, 5, 5, (9, 11), (1, 1), padding=1, mode="replicate", bias=False),
    C(3, 4, 3, (8, 7), (1, 1), stride=(1, 3), padding=(0, 0, 1, 0), act="tanh"),
    # 3x3
    C(1, 3, 8, (13, 13), (3, 3), padding=1, act="relu"),
    C(3, 5, 17, (15, 15), (3, 3), stride=2, padding=1),
    C(1, 17, 16, (7, 7), (3, 3), padding="same", bias=False, act="silu"),
    C(3, 3, 5, (13, 15), (3, 3), stride=(1, 2), padding=(1, 2), mode="reflect", act="sigmoid"),
    C(1, 8, 12, (15, 13), (3, 3), padding=2, dilation=2, mode="replicate", act="tanh"),
    C(1, 4, 6, (9, 9), (3, 3), stride=3, padding="same", act="hardswish"),
    C(1, 17, 33, (15, 15), (3, 3), stride=2, padding="same", bias=False, act="relu"),
    C(3, 33, 17, (7, 7), (3, 3), padding="same", mode="reflect", act="relu6"),  # K = 297 > kc
    C(1, 3, 3, (13, 13), (3, 3), stride=3, dilation=3),
    C(3, 5, 4, (15, 13), (3, 3), padding="same", dilation=(2, 3), mode="replicate",
      act="sigmoid"),
    C(1, 1, 1, (7, 7), (3, 3), bias=False),
    C(1, 5, 3, (5, 5), (3, 3), padding=4, act="leaky_relu", slope=0.25),  # border: bias only
    C(1, 6, 5, (13, 11), (3, 3), stride=(3, 2), padding=(2, 0, 1, 1), dilation=(1, 2),
      mode="circular", act="leaky_relu", slope=0.25),
    C(1, 40, 50, (20, 20), (3, 3), padding=1, act="relu"),
    C(3, 16, 32, (14, 14), (3, 3), stride=2, padding="same", act="silu"),
    # The weights packed tap-major in one pass: 37 channels end mid-vector, k blocks of 256 end
    # mid-run (K = 925), 45 rows leave part panels of 14 and 32.
    C(2, 37, 45, (9, 8), (5, 5), padding=2, act="relu"),
    C(1, 300, 20, (6, 6), (3, 3), padding=1),  # K = 2700: runs of 300 cross k blocks
    C(2, 9, 20, (12, 11), (9, 9), padding=4, bias=False),  # 81 taps: two passes of 64
    # Weights of 2 MiB or more over at most 128 output pixels: packed one panel of 32 output
    # channels at a time (the last panel 12 or 2 wide), against rows packed once.
    C(1, 256, 300, (6, 7), (3, 3), padding=1, act="relu"),
    C(2, 232, 290, (7, 9), (3, 3), stride=(1, 2), padding=1, bias=False),
    # groups
    C(3, 6, 4, (11, 9), (3, 3), padding=1, groups=2),
    C(1, 33, 18, (7, 8), (3, 3), stride=(2, 1), padding=(1, 0), groups=3, mode="replicate",
      act="leaky_relu"),
    C(3, 9, 6, (13, 13), (2, 2), stride=2, groups=3, act="hardswish"),
    C(1, 10, 15, (9, 10), (3, 3), padding=(0, 2, 1, 0), groups=5, mode="reflect", bias=False),
    C(1, 4, 4, (15, 15), (5, 2), stride=(2, 3), padding=(2, 2, 0, 1), dilation=(1, 2), groups=2,
      mode="reflect"),
    # At least 16 channels per group: A read in place even with one short tile per output row.
    C(2, 64, 32, (9, 7), (3, 3), padding=1, groups=2),
    C(1, 48, 48, (5, 17), (3, 3), stride=(1, 1), padding=1, groups=3, act="relu"),
    # depthwise, and depthwise with a channel multiplier
    C(1, 33, 33, (13, 13), (3, 3), padding=1, groups=33, act="relu"),
    C(3, 17, 17, (15, 15), (3, 3), stride=2, padding=1, groups=17, mode="reflect", bias=False,
      act="relu6"),
    C(1, 5, 10, (13, 13), (3, 3), padding="same", dilation=2, groups=5),
    C(1, 16, 32, (7, 11), (5, 5), padding="same", groups=16, mode="circular", act="silu"),
    C(1, 8, 8, (13, 13), (7, 7), padding=3, groups=8),
    C(1, 12, 24, (9, 9), (5, 5), stride=2, padding="same", dilation=2, groups=12, mode="reflect",
      bias=False, act="relu"),
    C(3, 3, 3, (15, 13), (3, 3), stride=(2, 3), padding=(2, 1, 0, 2), groups=3, act="tanh"),
    C(1, 7, 14, (8, 13), (1, 5), padding=(0, 2), groups=7, mode="replicate", act="leaky_relu"),
    C(3, 20, 20, (9, 9), (3, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1), groups=20,
      mode="circular", act="sigmoid"),
    # 4x4 .. 7x7
    C(1, 3, 5, (15, 15), (5, 5), padding=2, act="relu"),
    C(1, 5, 3, (13, 13), (5, 5), stride=2, padding=(2, 1, 1, 2), mode="reflect", bias=False),
    C(3, 3, 7, (13, 15), (7, 7), stride=2, padding=3, act="relu"),
    C(1, 2, 3, (15, 13), (7, 7), padding="valid", act="tanh"),
    C(1, 5, 3, (7, 7), (7, 7)),  # a 1x1 output
    C(1, 3, 2, (4, 4), (5, 5), padding=1),  # kernel larger than the input, not the padded input
    C(1, 6, 4, (13, 15), (4, 4), stride=2, padding="same", mode="circular", act="leaky_relu"),
    C(1, 4, 5, (13, 14), (6, 6), padding="same", act="silu"),
    # non-square kernels
    C(1, 3, 4, (13, 7), (1, 7), padding=(0, 3)),
    C(1, 4, 3, (13, 7), (7, 1), padding=(3, 0), mode="replicate", bias=False, act="relu"),
    C(1, 5, 6, (9, 13), (3, 1), stride=(1, 2), padding=(1, 1, 0, 0), act="relu6"),
    C(3, 6, 5, (7, 9), (1, 3), stride=(3, 1), padding="same", mode="circular"),
    C(1, 3, 5, (13, 11), (5, 2), padding="same", act="hardswish"),
    C(3, 5, 7, (15, 7), (2, 5), stride=(2, 1), dilation=(3, 1), bias=False, act="sigmoid"),
    C(1, 3, 2, (1, 9), (1, 3), padding=(0, 1), act="relu"),  # H = 1
    C(3, 3, 2, (9, 1), (3, 1), stride=2, padding=(1, 1, 0, 0), mode="reflect"),  # W = 1
]
assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


def serves(algo, case):
    """True / False when the spec says whether algo serves the case; None for an algorithm the
    spec does not describe (it may then raise a ValueError naming itself)."""
    if algo in ("auto", "im2col"):
        return True
    if algo == "gemm1x1":
        return not gemm1x1_obstacles(case)
    return None


def gemm1x1_obstacles(case):
    """Regexes of the reasons gemm1x1 cannot serve the case (empty if it can)."""
    reasons = []
    if case.k != (1, 1):
        reasons.append("kernel|1x1|1×1")
    if pair(case.stride) != (1, 1):
        reasons.append("stride")
    if case.padding4() != (0, 0, 0, 0):
        reasons.append("pad")
    return reasons


def sweep(cases, algorithms=ALGORITHMS, serves=serves):
    """(case, algo) params for every algorithm that may serve the case."""
    return [pytest.param(case, algo, id=f"{case.id}-{algo}")
            for case in cases for algo in algorithms if serves(algo, case) is not False]


def exact_activation(act, slope):
    return act in EXACT_ACTIVATIONS or (act == "leaky_relu" and slope in EXACT_SLOPES)


def sweep_regimes(cases, algorithms=ALGORITHMS, serves=serves):
    """(case, algo, regime) params: the "normal" regime always, the "int" one where it makes the
    result exact (for sigmoid, tanh, ... it would only repeat the tolerance check)."""
    return [pytest.param(*p.values, regime, id=f"{p.id}-{regime}")
            for p in sweep(cases, algorithms, serves) for regime in REGIMES
            if regime == "normal" or exact_activation(p.values[0].act, p.values[0].slope_value)]


# -- data and checks -----------------------------------------------------------------------------


def random_values(shape, regime, rng):
    """Small integers in -2..2 (every product and partial sum is exact in float32) or normals."""
    if regime == "int":
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def problem(case, regime):
    """(x NCHW, weight, bias or None, expected NCHW in float64), read-only, cached per case."""
    rng = np.random.default_rng([zlib.crc32(case.id.encode()), REGIMES.index(regime)])
    kh, kw = case.k
    x = random_values((case.n, case.c_in) + case.hw, regime, rng)
    w = random_values((case.c_out, case.c_in // case.groups, kh, kw), regime, rng)
    b = random_values((case.c_out,), regime, rng) if case.bias else None
    expected = reference.conv2d(x, w, b, pair(case.stride), case.padding4(),
                                pair(case.dilation), case.groups, case.mode)
    expected = reference.activation(case.act, expected, case.slope_value)
    for a in (x, w, b, expected):
        if a is not None:
            a.flags.writeable = False
    return x, w, b, expected


def to_layout(x, layout):
    """A C-contiguous copy of NCHW x in layout."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if layout == "NHWC" else x)


def from_layout(y, layout):
    return y.transpose(0, 3, 1, 2) if layout == "NHWC" else y


def is_exact(x, w, b, act, slope, k):
    """Whether float32 computes the case exactly: integer data whose sums stay below 2**24 and an
    activation that is exact on integers."""
    integral = all(np.array_equal(a, np.round(a)) for a in (x, w) + ((b,) if b is not None else ()))
    bound = k * np.abs(x).max(initial=0) * np.abs(w).max(initial=0) + (
        np.abs(b).max(initial=0) if b is not None else 0)
    return integral and bound < 2**24 and exact_activation(act, slope)


def assert_conv_close(y, expected, x, w, b, act=None, slope=0.01):
    """y (float32) is the float64 expected: bitwise when the data make float32 exact, else within
    gemm_tolerance for K = C_in/groups * taps (the bias counted as one more term of value 1),
    widened for the activation. w has the OIHW / OIL layout, so K = prod(w.shape[1:])."""
    assert y.dtype == np.float32
    assert y.shape == expected.shape
    k = int(np.prod(w.shape[1:]))
    if is_exact(x, w, b, act, slope, k):
        np.testing.assert_array_equal(y, expected)
        return
    bmax = np.abs(b).max(initial=0) if b is not None else 0.0
    atol = gemm_tolerance(k + 1, max(np.abs(x).max(initial=0), 1.0),
                          max(np.abs(w).max(initial=0), bmax))
    rtol = 0.0
    if act not in EXACT_ACTIVATIONS:
        atol = ACTIVATION_SLOPE * atol + ACTIVATION_ATOL
        rtol = ACTIVATION_RTOL
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)


def call(case, x, w, b, layout="NCHW", algo="auto", **extra):
    """cnnfast.conv2d(x, w, b, <case's arguments>); layout and algo passed only if not the default.
    An algorithm the spec does not describe may decline the case with a ValueError naming itself:
    the test is then skipped."""
    kwargs = case.kwargs()
    if layout != "NCHW":
        kwargs["layout"] = layout
    if algo != "auto":
        kwargs["algo"] = algo
    kwargs.update(extra)
    try:
        return cnnfast.conv2d(x, w, b, **kwargs)
    except ValueError as e:
        if serves(algo, case) is None and algo in str(e):
            pytest.skip(f"{algo} declines: {e}")
        raise


def run_case(case, regime, layout, algo, **extra):
    """Calls conv2d on fresh writable copies of the case's data in layout; checks that the inputs
    are unchanged. Returns (y in NCHW order, x, w, b, expected)."""
    x, w, b, expected = problem(case, regime)
    xl, wl, bl = to_layout(x, layout), w.copy(), None if b is None else b.copy()
    y = call(case, xl, wl, bl, layout, algo, **extra)
    np.testing.assert_array_equal(from_layout(xl, layout), x)
    np.testing.assert_array_equal(wl, w)
    if b is not None:
        np.testing.assert_array_equal(bl, b)
    return from_layout(y, layout), x, w, b, expected


def check_case(case, regime, layout, algo, **extra):
    y, x, w, b, expected = run_case(case, regime, layout, algo, **extra)
    assert_conv_close(y, expected, x, w, b, case.act, case.slope_value)
    return y


# -- the algorithm list --------------------------------------------------------------------------


def test_algorithms_are_listed():
    algorithms = cnnfast.conv2d_algorithms()
    assert all(isinstance(a, str) for a in algorithms)
    assert {"im2col", "gemm1x1"} <= set(algorithms)
    assert len(set(algorithms)) == len(algorithms)


# -- the sweep -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo, regime", sweep_regimes(CASES))
def test_matches_reference(isa, case, algo, regime, layout):
    check_case(case, regime, layout, algo)


@pytest.mark.parametrize("case, algo", sweep(CASES))
def test_nhwc_is_nchw_transposed(isa, case, algo):
    # Bitwise: both layouts sum the same products in the same order.
    y_nchw, *_ = run_case(case, "normal", "NCHW", algo)
    y_nhwc, *_ = run_case(case, "normal", "NHWC", algo)
    np.testing.assert_array_equal(y_nhwc, y_nchw)


# -- NCHW layers run on NHWC copies of their images ----------------------------------------------

# NCHW layers with small images and enough work per float (2*C_out*K*pixels over the floats of
# an image's input and output: at least 500) run on NHWC copies of chunks of images (at most
# 2 MiB a chunk). These cases take that path: 576-1152 flops per float; the 1024-channel 1x1
# images take 800 KiB, so its three images run as chunks of two and one.
VIA_NHWC_CASES = [
    C(3, 64, 64, (8, 8), (3, 3), padding=1, act="relu"),
    C(2, 128, 96, (7, 9), (3, 3), stride=(1, 2), padding=1),
    C(2, 128, 128, (6, 6), (3, 3), padding=1, groups=2, bias=False),
    C(3, 1024, 1024, (10, 10), (1, 1)),
]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("case, algo", sweep(VIA_NHWC_CASES, ("auto", "gemm1x1", "implicit_gemm")))
def test_nchw_via_nhwc_copies(isa, case, algo, regime, restore_threads):
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        results.append(check_case(case, regime, "NCHW", algo))
    np.testing.assert_array_equal(results[1], results[0])
    y_nhwc, *_ = run_case(case, regime, "NHWC", algo)
    np.testing.assert_array_equal(results[0], y_nhwc)


# -- NHWC implicit GEMM reading A in place -------------------------------------------------------

# NHWC "implicit_gemm" with at least 16 input channels per group, on output rows of two or more
# micro-tiles that they fill to 90 % (OW 28: 2x14, 5x6 and 7x4 pixels on avx512, avx2 and
# scalar), reads the GEMM's A in place from a zero-padded copy of the images. These cases take
# that path on every tier (OW 28 each): strides, dilation, groups, asymmetric padding, a
# residual and an activation applied after the store; 8 and 3 channels per group stay on the
# packed panels.
IN_PLACE_CASES = [
    C(2, 32, 40, (28, 28), (3, 3), padding=1, act="relu"),
    C(1, 48, 33, (56, 57), (3, 3), stride=2, padding=(1, 1, 1, 0)),
    C(1, 32, 20, (32, 32), (5, 3), padding=(2, 1), dilation=(1, 2), act="sigmoid"),
    C(2, 64, 64, (28, 28), (3, 3), padding=1, groups=2, bias=False),
    C(1, 300, 30, (28, 28), (3, 3), padding=1),  # k blocks start inside a tap's channels
    C(1, 24, 18, (28, 28), (3, 3), padding=1, groups=3),
]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("case", IN_PLACE_CASES, ids=lambda c: c.id)
def test_nhwc_in_place_matches_reference_and_nchw(isa, case, regime):
    y_nhwc = check_case(case, regime, "NHWC", "implicit_gemm")
    y_nchw, *_ = run_case(case, regime, "NCHW", "implicit_gemm")
    np.testing.assert_array_equal(y_nhwc, y_nchw)


def test_nhwc_in_place_residual_is_fused_bitwise(isa):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 28, 28, 32)).astype(np.float32)
    w = rng.standard_normal((40, 32, 3, 3)).astype(np.float32)
    r = rng.standard_normal((2, 28, 28, 40)).astype(np.float32)
    plain = cnnfast.conv2d(x, w, None, 1, 1, layout="NHWC")
    y = cnnfast.conv2d(x, w, None, 1, 1, layout="NHWC", activation="relu", residual=r)
    np.testing.assert_array_equal(y, np.maximum(plain + r, 0))


# -- padding="same" (TensorFlow's rule, any stride) ----------------------------------------------


def same_param(size, k, stride, dilation, pads):
    """A padding="same" case on the height axis; `pads` documents what the rule gives there."""
    return pytest.param(size, k, stride, dilation, id=f"in{size}_k{k}_s{stride}_d{dilation}")


@pytest.mark.parametrize("size, k, stride, dilation", [
    same_param(13, 3, 2, 1, "total 2: (1, 1)"),
    same_param(8, 4, 2, 1, "total 2: (1, 1)"),
    same_param(13, 2, 1, 1, "total 1: (0, 1), the odd pixel at the end"),
    same_param(14, 4, 3, 1, "total 3: (1, 2)"),
    same_param(9, 3, 3, 1, "total 0"),
    same_param(11, 1, 3, 1, "(out - 1) * stride + 1 < in: total 0, not negative"),
    same_param(7, 3, 1, 3, "total 6: (3, 3)"),
    same_param(10, 5, 2, 2, "total 8: (4, 4)"),
])
def test_same_padding_any_stride(isa, size, k, stride, dilation):
    # PyTorch rejects padding="same" with stride > 1; cnnfast pads as TensorFlow: out = ceil(in /
    # stride). The kernel is non-square and the input not square, so the axes cannot be swapped.
    case = Case(1, 3, 4, (size, size + 2), (k, max(k - 1, 1)), stride=stride, padding="same",
                dilation=dilation)
    y = check_case(case, "int", "NCHW", "auto")
    assert y.shape[2:] == (-(-size // stride), -(-(size + 2) // stride))


# -- activations over their whole range ----------------------------------------------------------


def activation_inputs():
    """(1, 1, 9, 129) values from -100 to 100: the breakpoints (0, +-3, 6), saturation, and
    exp's overflow range (|x| > 88 overflows exp in float32)."""
    special = [0.0, -0.0, 3.0, -3.0, 6.0, -6.0, 1e-3, -1e-3, 20.0, -20.0, 88.0, -88.0, 89.0, -89.0,
               100.0, -100.0, 1e-30, -1e-30]
    values = np.concatenate([special, np.linspace(-12, 12, 9 * 129 - len(special))])
    return values.astype(np.float32).reshape(1, 1, 9, 129)


ACTIVATION_PARAMS = [pytest.param(act, None, id=act) for act in ACTIVATIONS[1:]] + [
    pytest.param("leaky_relu", 0.2, id="leaky_relu0.2")]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("act, slope", ACTIVATION_PARAMS)
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_activation_values(isa, algo, act, slope, layout):
    # A 1x1 conv from one channel to 19 with weight 1 and bias 0 makes every output channel an
    # exact copy of x, so only the activation is checked (in SIMD lanes and the scalar tail).
    x = activation_inputs()
    w, b = np.ones((19, 1, 1, 1), np.float32), np.zeros(19, np.float32)
    kwargs = {"activation": act}
    if slope is not None:
        kwargs["negative_slope"] = slope
    case = Case(1, 1, 19, x.shape[2:], (1, 1))
    y = from_layout(call(case, to_layout(x, layout), w, b, layout, algo, **kwargs), layout)
    expected = reference.activation(act, np.broadcast_to(x, y.shape),
                                    0.01 if slope is None else slope)
    assert y.dtype == np.float32 and not np.isnan(y).any()
    np.testing.assert_allclose(y, expected, rtol=ACTIVATION_RTOL, atol=ACTIVATION_ATOL)


def test_negative_slope_is_used(isa):
    x = -np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((1, 1, 1, 1), np.float32)
    for slope in (0.0, 0.01, 0.5, 2.0, -1.0):
        y = cnnfast.conv2d(x, w, activation="leaky_relu", negative_slope=slope)
        np.testing.assert_array_equal(y, np.float32(-slope) * np.ones_like(x))


# -- out= ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo", sweep(CASES[::4]))
def test_out_is_written_and_returned(isa, case, algo, layout):
    # out starts as NaN: every element must be written, none accumulated into.
    x, w, b, expected = problem(case, "normal")
    shape = expected.shape if layout == "NCHW" else expected.transpose(0, 2, 3, 1).shape
    out = np.full(shape, np.nan, np.float32)
    result = call(case, to_layout(x, layout), w, b, layout, algo, out=out)
    assert result is out
    assert_conv_close(from_layout(out, layout), expected, x, w, b, case.act, case.slope_value)


# -- threads -------------------------------------------------------------------------------------

# Big enough for two threads to share the work.
THREAD_CASES = [
    C(2, 32, 48, (28, 28), (3, 3), padding=1, act="relu"),
    C(1, 64, 96, (30, 30), (1, 1)),
    C(2, 64, 64, (40, 40), (3, 3), stride=2, padding="same", groups=64, act="relu6"),
    C(1, 24, 36, (33, 31), (5, 5), stride=(1, 2), padding=2, groups=3, mode="reflect"),
    # Depthwise on small planes: flat vectors in runs of planes per task (multiplier 2).
    C(2, 40, 80, (14, 14), (3, 3), padding=1, groups=40, act="relu"),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo", sweep(THREAD_CASES))
def test_thread_count_does_not_change_bits(isa, case, algo, layout, restore_threads):
    results = []
    for threads in (1, 2):
        cnnfast.set_num_threads(threads)
        y, x, w, b, expected = run_case(case, "normal", layout, algo)
        assert_conv_close(y, expected, x, w, b, case.act, case.slope_value)
        results.append(y)
    np.testing.assert_array_equal(results[1], results[0])


# -- strided, unaligned and read-only inputs -----------------------------------------------------


def _unaligned(a):
    # Data one byte past an element boundary.
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(np.float32).reshape(a.shape)
    view[...] = a
    return view


def _spread(a, axis):
    # Every other element along axis: a view with a doubled stride there.
    big = np.repeat(a, 2, axis=axis)
    return big[(slice(None),) * axis + (slice(None, None, 2),)]


# Each maker turns one of (x in its layout, weight, bias) into an equal-valued non-contiguous view.
STRIDED_VIEWS = {
    "x_window": ("x", lambda a: np.pad(a, [(0, 0), (1, 1), (2, 1), (0, 3)])[:, 1:-1, 2:-1, :-3]),
    "x_spatial_step": ("x", lambda a: _spread(_spread(a, 2), 3)),
    "x_reversed": ("x", lambda a: a[:, :, ::-1].copy()[:, :, ::-1]),
    "x_other_layout_memory": ("x", lambda a: np.ascontiguousarray(
        a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)),
    "x_unaligned": ("x", _unaligned),
    "weight_transposed": ("w", lambda a: np.ascontiguousarray(a.transpose(2, 3, 1, 0))
                          .transpose(3, 2, 0, 1)),
    "weight_sliced": ("w", lambda a: _spread(a, 0)),
    "bias_strided": ("b", lambda a: _spread(a, 0)),
}
STRIDED_CASES = [
    C(3, 5, 7, (13, 15), (3, 3), stride=2, padding=1, act="relu"),
    C(1, 17, 17, (9, 11), (3, 3), padding="same", groups=17, mode="reflect"),
    C(1, 6, 10, (7, 9), (1, 1), groups=2),
]


@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo", sweep(STRIDED_CASES))
def test_strided_inputs(isa, case, algo, layout, view):
    x, w, b, expected = problem(case, "int")
    args = {"x": to_layout(x, layout), "w": w, "b": b}
    operand, make = STRIDED_VIEWS[view]
    strided = make(args[operand])
    np.testing.assert_array_equal(strided, args[operand])
    assert not strided.flags.c_contiguous or not strided.flags.aligned
    before = strided.copy()
    args[operand] = strided
    y = call(case, args["x"], args["w"], args["b"], layout, algo)
    assert_conv_close(from_layout(y, layout), expected, x, w, b, case.act, case.slope_value)
    np.testing.assert_array_equal(strided, before)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_read_only_inputs(isa, layout):
    # problem() returns read-only arrays: inputs are only read.
    case = STRIDED_CASES[0]
    x, w, b, expected = problem(case, "int")
    xl = to_layout(x, layout)
    xl.flags.writeable = False
    y = from_layout(call(case, xl, w, b, layout), layout)
    assert_conv_close(y, expected, x, w, b, case.act, case.slope_value)


# -- NaN stays in its receptive field ------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo", sweep([C(1, 5, 7, (9, 10), (3, 3), padding=1)]))
def test_nan_poisons_only_its_receptive_field(isa, case, algo, layout):
    # A NaN at an input corner reaches exactly the outputs whose window covers it; the zero
    # padding around it must not be computed as 0 * NaN anywhere else.
    x = np.ones((1, 5, 9, 10), np.float32)
    x[0, 3, 0, 9] = np.nan
    w = np.ones((7, 5, 3, 3), np.float32)
    y = from_layout(call(case, to_layout(x, layout), w, None, layout, algo), layout)
    expected = np.zeros(y.shape, bool)
    expected[:, :, :2, 8:] = True
    np.testing.assert_array_equal(np.isnan(y), expected)


# -- optional cross-check ------------------------------------------------------------------------

TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


def torch_conv2d(torch, case, x, w, b):
    """torch.nn.functional: pad (F.pad's last-axis-first order), valid conv2d, activation."""
    F = torch.nn.functional
    top, bottom, left, right = case.padding4()
    t = torch.from_numpy(x.copy())
    t = F.pad(t, (left, right, top, bottom), mode=TORCH_PAD_MODES[case.mode])
    y = F.conv2d(t, torch.from_numpy(w.copy()), None if b is None else torch.from_numpy(b.copy()),
                 stride=pair(case.stride), dilation=pair(case.dilation), groups=case.groups)
    acts = {None: lambda v: v, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid,
            "tanh": torch.tanh, "silu": F.silu, "hardswish": F.hardswish,
            "leaky_relu": lambda v: F.leaky_relu(v, case.slope_value)}
    return acts[case.act](y).numpy()


@pytest.mark.parametrize("case", CASES[1::3], ids=lambda c: c.id)
def test_agrees_with_torch(isa, case):
    torch = pytest.importorskip("torch")
    x, w, b, expected = problem(case, "normal")
    expected_torch = torch_conv2d(torch, case, x, w, b)
    y = call(case, x, w, b)
    # Both are float32 results within the tolerance of the float64 reference.
    assert_conv_close(y, expected, x, w, b, case.act, case.slope_value)
    assert_conv_close(expected_torch, expected, x, w, b, case.act, case.slope_value)


@pytest.mark.parametrize("case", [
    C(1, 3, 4, (13, 11), (3, 3), padding="same"),
    C(3, 5, 6, (9, 12), (4, 2), padding="same"),  # even kernels: the odd pixel at the end
    C(1, 4, 4, (13, 13), (5, 4), padding="same", dilation=(2, 3), groups=2),
], ids=lambda c: c.id)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_same_agrees_with_torch_same_at_stride_1(isa, case):
    torch = pytest.importorskip("torch")
    x, w, b, expected = problem(case, "normal")
    expected_torch = torch.nn.functional.conv2d(
        torch.from_numpy(x.copy()), torch.from_numpy(w.copy()), torch.from_numpy(b.copy()),
        padding="same", dilation=pair(case.dilation), groups=case.groups).numpy()
    assert_conv_close(expected_torch, expected, x, w, b)
    assert_conv_close(call(case, x, w, b), expected, x, w, b)


# -- user errors ---------------------------------------------------------------------------------


def mentions(*patterns):
    """A regex that matches a message containing every pattern, in any order."""
    return "(?s)" + "".join(f"(?=.*(?:{p}))" for p in patterns)


def f32(*shape):
    return np.zeros(shape, np.float32)


def _read_only(a):
    a.flags.writeable = False
    return a


def _out_overlapping_x():
    # x and out are windows of one buffer that share elements; the 1x1 conv keeps the shape.
    base = f32(1, 4, 8, 8)
    return {"x": base[:, :, :7, :7], "weight": f32(4, 4, 1, 1), "out": base[:, :, 1:, 1:]}


def _out_is_x():
    x = f32(1, 4, 7, 7)
    return {"x": x, "weight": f32(4, 4, 1, 1), "out": x}


# The valid call the bad ones start from: (1, 6, 9, 9) x, (4, 6, 3, 3) weight -> (1, 4, 7, 7).
def bad(exception, message, **changes):
    def make():
        call = {"x": f32(1, 6, 9, 9), "weight": f32(4, 6, 3, 3)}
        for key, value in changes.items():
            call[key] = value() if callable(value) else value
        return call
    return make, exception, message


BAD_CALLS = {
    # ranks
    "x_3d": bad(ValueError, mentions("conv2d", r"\bx\b", r"\(6, 9, 9\)"), x=f32(6, 9, 9)),
    "x_5d": bad(ValueError, mentions("conv2d", r"\bx\b", r"\(1, 1, 6, 9, 9\)"),
                x=f32(1, 1, 6, 9, 9)),
    "weight_3d": bad(ValueError, mentions("conv2d", "weight", r"\(4, 6, 3\)"), weight=f32(4, 6, 3)),
    "weight_5d": bad(ValueError, mentions("conv2d", "weight", r"\(4, 6, 3, 3, 1\)"),
                     weight=f32(4, 6, 3, 3, 1)),
    # channels and groups
    "channel_mismatch": bad(ValueError, mentions("conv2d", r"\(1, 6, 9, 9\)", r"\(4, 5, 3, 3\)"),
                            weight=f32(4, 5, 3, 3)),
    "channel_mismatch_nhwc": bad(ValueError, mentions("conv2d", r"\(1, 9, 9, 6\)",
                                                      r"\(4, 5, 3, 3\)"),
                                 x=f32(1, 9, 9, 6), weight=f32(4, 5, 3, 3), layout="NHWC"),
    "channel_mismatch_grouped": bad(ValueError, mentions("conv2d", "groups", r"\(4, 2, 3, 3\)"),
                                    weight=f32(4, 2, 3, 3), groups=2),
    "groups_not_dividing_c_in": bad(ValueError, mentions("conv2d", "groups", r"\b6\b"),
                                    weight=f32(4, 1, 3, 3), groups=4),
    "groups_not_dividing_c_out": bad(ValueError, mentions("conv2d", "groups", r"\b5\b"),
                                     weight=f32(5, 3, 3, 3), groups=2),
    "groups_zero": bad(ValueError, mentions("conv2d", "groups"), groups=0),
    "groups_negative": bad(ValueError, mentions("conv2d", "groups"), groups=-1),
    # kernel against the (padded) input
    "kernel_larger_than_input": bad(ValueError, mentions("conv2d", "kernel|weight"),
                                    x=f32(1, 6, 4, 4), weight=f32(4, 6, 5, 5)),
    "kernel_wider_than_padded_input": bad(ValueError, mentions("conv2d", "kernel|weight"),
                                          x=f32(1, 6, 9, 4), weight=f32(4, 6, 3, 6),
                                          padding=(0, 0, 0, 1)),
    "dilated_kernel_larger_than_input": bad(ValueError, mentions("conv2d", "kernel|dilation"),
                                            x=f32(1, 6, 5, 5), dilation=3),
    # stride, dilation, padding values
    "stride_zero": bad(ValueError, mentions("conv2d", "stride"), stride=0),
    "stride_negative": bad(ValueError, mentions("conv2d", "stride"), stride=-1),
    "stride_pair_zero": bad(ValueError, mentions("conv2d", "stride"), stride=(1, 0)),
    "stride_three_values": bad(ValueError, mentions("conv2d", "stride"), stride=(1, 1, 1)),
    "dilation_zero": bad(ValueError, mentions("conv2d", "dilation"), dilation=0),
    "dilation_pair_negative": bad(ValueError, mentions("conv2d", "dilation"), dilation=(1, -2)),
    "padding_negative": bad(ValueError, mentions("conv2d", "padding"), padding=-1),
    "padding_pair_negative": bad(ValueError, mentions("conv2d", "padding"), padding=(0, -1)),
    "padding_4_negative": bad(ValueError, mentions("conv2d", "padding"), padding=(1, 1, 1, -1)),
    "padding_3_values": bad(ValueError, mentions("conv2d", "padding"), padding=(1, 1, 1)),
    "padding_5_values": bad(ValueError, mentions("conv2d", "padding"), padding=(1, 1, 1, 1, 1)),
    # padding modes need enough input to mirror or wrap (torch.nn.Conv2d's rule)
    "reflect_padding_not_less_than_input": bad(ValueError, mentions("conv2d", "reflect", "pad"),
                                               x=f32(1, 6, 9, 3), padding=(1, 3),
                                               padding_mode="reflect"),
    "circular_padding_larger_than_input": bad(ValueError, mentions("conv2d", "circular", "pad"),
                                              x=f32(1, 6, 4, 9), padding=(5, 0),
                                              padding_mode="circular"),
    # names
    "padding_unknown_string": bad(ValueError, mentions("conv2d", "padding", "full"),
                                  padding="full"),
    "padding_mode_unknown": bad(ValueError, mentions("conv2d", "padding_mode", "mirror"),
                                padding_mode="mirror"),
    "activation_unknown": bad(ValueError, mentions("conv2d", "activation", "gelu"),
                              activation="gelu"),
    "layout_unknown": bad(ValueError, mentions("conv2d", "layout", "NCWH"), layout="NCWH"),
    "layout_1d": bad(ValueError, mentions("conv2d", "layout", "NCL"), layout="NCL"),
    "algo_unknown": bad(ValueError, mentions("conv2d", "algo", "winograd"), algo="winograd"),
    "gemm1x1_3x3_kernel": bad(ValueError, mentions("conv2d", "gemm1x1", "kernel|1x1|1×1"),
                              algo="gemm1x1"),
    "gemm1x1_stride_2": bad(ValueError, mentions("conv2d", "gemm1x1", "stride"),
                            weight=f32(4, 6, 1, 1), stride=2, algo="gemm1x1"),
    "gemm1x1_padding": bad(ValueError, mentions("conv2d", "gemm1x1", "pad"),
                           weight=f32(4, 6, 1, 1), padding=(0, 0, 0, 1), algo="gemm1x1"),
    # dtypes and types
    "x_float64": bad(TypeError, mentions("conv2d", r"\bx\b", "float64"),
                     x=np.zeros((1, 6, 9, 9))),
    "x_float16": bad(TypeError, mentions("conv2d", r"\bx\b", "float16"),
                     x=np.zeros((1, 6, 9, 9), np.float16)),
    "x_list": bad(TypeError, mentions("conv2d", r"\bx\b", "list"),
                  x=lambda: np.zeros((1, 6, 9, 9)).tolist()),
    "weight_int32": bad(TypeError, mentions("conv2d", "weight", "int32"),
                        weight=np.zeros((4, 6, 3, 3), np.int32)),
    "weight_none": bad(TypeError, mentions("conv2d", "weight"), weight=None),
    "bias_float64": bad(TypeError, mentions("conv2d", "bias", "float64"), bias=np.zeros(4)),
    # bias shape
    "bias_too_long": bad(ValueError, mentions("conv2d", "bias", r"\(5,\)"), bias=f32(5)),
    "bias_too_short": bad(ValueError, mentions("conv2d", "bias", r"\(3,\)"), bias=f32(3)),
    "bias_2d": bad(ValueError, mentions("conv2d", "bias", r"\(1, 4\)"), bias=f32(1, 4)),
    # out
    "out_shape": bad(ValueError, mentions("conv2d", "out", r"\(1, 4, 9, 9\)", r"\(1, 4, 7, 7\)"),
                     out=f32(1, 4, 9, 9)),
    "out_nchw_shape_for_nhwc": bad(ValueError, mentions("conv2d", "out", r"\(1, 4, 7, 7\)",
                                                        r"\(1, 7, 7, 4\)"),
                                   x=f32(1, 9, 9, 6), layout="NHWC", out=f32(1, 4, 7, 7)),
    "out_float64": bad(ValueError, mentions("conv2d", "out", "float64"),
                       out=np.zeros((1, 4, 7, 7))),
    "out_read_only": bad(ValueError, mentions("conv2d", "out", "read-only|writ"),
                         out=lambda: _read_only(f32(1, 4, 7, 7))),
    "out_not_contiguous": bad(ValueError, mentions("conv2d", "out", "contiguous"),
                              out=lambda: f32(1, 4, 7, 14)[..., ::2]),
    "out_is_x": (_out_is_x, ValueError, mentions("conv2d", "out", "overlap")),
    "out_overlaps_x": (_out_overlapping_x, ValueError, mentions("conv2d", "out", "overlap")),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_call_raises(case):
    make, exception, message = BAD_CALLS[case]
    kwargs = make()
    x, weight = kwargs.pop("x"), kwargs.pop("weight")
    with pytest.raises(exception, match=message):
        cnnfast.conv2d(x, weight, **kwargs)


@pytest.mark.parametrize("case", [c for c in CASES if gemm1x1_obstacles(c)], ids=lambda c: c.id)
def test_gemm1x1_declines_other_shapes(case):
    # "Cannot serve" is a ValueError naming the algorithm and why, never a wrong answer.
    x, w, b, _ = problem(case, "int")
    with pytest.raises(ValueError, match=mentions("gemm1x1", "|".join(gemm1x1_obstacles(case)))):
        cnnfast.conv2d(x, w, b, algo="gemm1x1", **case.kwargs())
