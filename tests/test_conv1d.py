"""cnnfast.conv1d against the float64 reference on every SIMD tier and every algorithm that
serves the case: kernels 1..7, strides, dilations, padding as int / (left, right) / "same" /
"valid" and every padding mode, groups and depthwise, both layouts, activations, out=, threads,
strided inputs, and every user error. Checks and data come from test_conv2d.
"""

import dataclasses
import functools
import zlib

import numpy as np
import pytest

import cnnfast
import reference
from reference import same_padding
from test_conv2d import (
    CallOptions,
    ALGORITHMS as CONV2D_ALGORITHMS,
    REGIMES,
    assert_conv_close,
    f32,
    listed_algorithms,
    mentions,
    random_values,
)
from test_conv2d import sweep as conv2d_sweep
from test_conv2d import sweep_regimes as conv2d_sweep_regimes

LAYOUTS = ("NCL", "NLC")

# conv1d takes the same algo names as conv2d unless it lists its own.
ALGORITHMS = (listed_algorithms("conv1d_algorithms") if hasattr(cnnfast, "conv1d_algorithms")
              else CONV2D_ALGORITHMS)


@dataclasses.dataclass(frozen=True)
class Case(CallOptions):
    """One conv1d call. Fields left at their default are not passed, so the defaults are tested."""

    n: int
    c_in: int
    c_out: int
    length: int
    k: int
    stride: int = 1
    padding: object = 0
    dilation: int = 1
    groups: int = 1
    mode: str = "zeros"
    bias: bool = True
    act: object = None
    slope: object = None  # None: negative_slope not passed (default 0.01)


    def padding2(self):
        """(left, right) of any padding form of the API."""
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return same_padding(self.length, self.k, self.stride, self.dilation)
        if isinstance(self.padding, int):
            return (self.padding, self.padding)
        return tuple(self.padding)

    @property
    def id(self):
        parts = [f"n{self.n}", f"c{self.c_in}to{self.c_out}", f"L{self.length}", f"k{self.k}"]
        if self.stride != 1:
            parts.append(f"s{self.stride}")
        if isinstance(self.padding, tuple):
            parts.append("p=l{}r{}".format(*self.padding))
        elif self.padding != 0:
            parts.append(f"p={self.padding}")
        if self.dilation != 1:
            parts.append(f"d{self.dilation}")
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


C = Case
CASES = [
    # k = 1: a plain GEMM with stride 1 and no padding (gemm1x1 serves these)
    C(1, 3, 5, 17, 1),
    C(3, 17, 33, 15, 1, bias=False, act="relu"),
    C(1, 6, 10, 13, 1, padding="valid", dilation=3, groups=2, act="relu6"),
    C(1, 5, 7, 13, 1, stride=2, act="sigmoid"),
    C(3, 4, 4, 9, 1, padding=(1, 0), mode="replicate", groups=4, act="tanh"),
    # k = 2 .. 7
    C(1, 3, 8, 15, 3, padding=1, act="relu"),
    C(3, 5, 17, 31, 3, stride=2, padding=(1, 0)),
    C(1, 17, 16, 7, 3, padding="same", bias=False, act="silu"),
    C(3, 3, 5, 13, 5, stride=3, padding=(2, 1), mode="reflect", act="tanh"),
    C(1, 8, 12, 15, 3, padding=2, dilation=2, mode="replicate", act="hardswish"),
    C(1, 4, 6, 9, 4, stride=2, padding="same", mode="circular", act="leaky_relu"),
    C(1, 33, 17, 20, 3, padding="same", dilation=3, act="leaky_relu", slope=0.25),
    C(1, 9, 6, 13, 2, stride=3, groups=3, act="hardswish"),
    C(1, 3, 2, 4, 5, padding=1),  # kernel longer than the input, not the padded input
    C(1, 5, 3, 7, 7),  # output length 1
    C(3, 2, 3, 15, 7, padding="valid", bias=False, act="sigmoid"),
    C(1, 64, 40, 50, 3, padding=(0, 1), act="relu"),
    C(1, 40, 48, 30, 7, padding=3, mode="circular"),  # K = 280 > kc
    C(1, 1, 1, 9, 3, bias=False),
    C(3, 7, 5, 21, 6, stride=2, padding=(0, 3), dilation=2, mode="reflect", act="relu6"),
    # groups and depthwise
    C(3, 6, 4, 11, 3, padding=(0, 2), groups=2),
    C(1, 33, 33, 13, 3, padding=1, groups=33, act="relu6"),
    C(3, 5, 10, 14, 5, stride=2, padding="same", dilation=2, groups=5, mode="reflect"),
    C(1, 16, 16, 25, 7, stride=3, padding=(3, 2), groups=16, mode="circular", act="silu"),
    C(1, 12, 18, 16, 3, padding="same", groups=6, mode="replicate", act="leaky_relu"),
    C(1, 4, 8, 11, 3, stride=2, padding="valid", groups=4, act="sigmoid"),
]
assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


def gemm1x1_obstacles(case):
    reasons = []
    if case.k != 1:
        reasons.append("kernel|1x1|1×1")
    if case.stride != 1:
        reasons.append("stride")
    if case.padding2() != (0, 0):
        reasons.append("pad")
    return reasons


def serves(algo, case):
    if algo in ("auto", "im2col"):
        return True
    if algo == "gemm1x1":
        return not gemm1x1_obstacles(case)
    return None


def sweep(cases):
    return conv2d_sweep(cases, ALGORITHMS, serves)


def sweep_regimes(cases):
    return conv2d_sweep_regimes(cases, ALGORITHMS, serves)


@functools.lru_cache(maxsize=None)
def problem(case, regime):
    """(x NCL, weight, bias or None, expected NCL in float64), read-only, cached per case."""
    rng = np.random.default_rng([zlib.crc32(case.id.encode()), REGIMES.index(regime)])
    x = random_values((case.n, case.c_in, case.length), regime, rng)
    w = random_values((case.c_out, case.c_in // case.groups, case.k), regime, rng)
    b = random_values((case.c_out,), regime, rng) if case.bias else None
    expected = reference.conv1d(x, w, b, case.stride, case.padding2(), case.dilation,
                                case.groups, case.mode)
    expected = reference.activation(case.act, expected, case.slope_value)
    for a in (x, w, b, expected):
        if a is not None:
            a.flags.writeable = False
    return x, w, b, expected


def to_layout(x, layout):
    return np.ascontiguousarray(x.transpose(0, 2, 1) if layout == "NLC" else x)


def from_layout(y, layout):
    return y.transpose(0, 2, 1) if layout == "NLC" else y


def call(case, x, w, b, layout="NCL", algo="auto", **extra):
    kwargs = case.kwargs()
    if layout != "NCL":
        kwargs["layout"] = layout
    if algo != "auto":
        kwargs["algo"] = algo
    kwargs.update(extra)
    try:
        return cnnfast.conv1d(x, w, b, **kwargs)
    except ValueError as e:
        if serves(algo, case) is None and algo in str(e):
            pytest.skip(f"{algo} declines: {e}")
        raise


def run_case(case, regime, layout, algo, **extra):
    """conv1d on writable copies in layout; checks the inputs are unchanged; y in NCL order."""
    x, w, b, expected = problem(case, regime)
    xl, wl, bl = to_layout(x, layout), w.copy(), None if b is None else b.copy()
    y = call(case, xl, wl, bl, layout, algo, **extra)
    np.testing.assert_array_equal(from_layout(xl, layout), x)
    np.testing.assert_array_equal(wl, w)
    if b is not None:
        np.testing.assert_array_equal(bl, b)
    return from_layout(y, layout), x, w, b, expected


def check_case(case, regime, layout, algo):
    y, x, w, b, expected = run_case(case, regime, layout, algo)
    assert_conv_close(y, expected, x, w, b, case.act, case.slope_value)
    return y


# -- the sweep -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo, regime", sweep_regimes(CASES))
def test_matches_reference(isa, case, algo, regime, layout):
    check_case(case, regime, layout, algo)


@pytest.mark.parametrize("case, algo", sweep(CASES[::2]))
def test_nlc_is_ncl_transposed(isa, case, algo):
    y_ncl, *_ = run_case(case, "normal", "NCL", algo)
    y_nlc, *_ = run_case(case, "normal", "NLC", algo)
    np.testing.assert_array_equal(y_nlc, y_ncl)


@pytest.mark.parametrize("length, k, stride, dilation", [
    pytest.param(*v, id="L{}_k{}_s{}_d{}".format(*v))
    for v in [(13, 3, 2, 1), (13, 2, 1, 1), (14, 4, 3, 1), (11, 1, 3, 1), (10, 5, 2, 2)]])
def test_same_padding_any_stride(isa, length, k, stride, dilation):
    case = Case(2, 3, 4, length, k, stride=stride, padding="same", dilation=dilation)
    y = check_case(case, "int", "NCL", "auto")
    assert y.shape[2] == -(-length // stride)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo", sweep(CASES[::3]))
def test_out_is_written_and_returned(isa, case, algo, layout):
    x, w, b, expected = problem(case, "normal")
    shape = expected.shape if layout == "NCL" else expected.transpose(0, 2, 1).shape
    out = np.full(shape, np.nan, np.float32)
    result = call(case, to_layout(x, layout), w, b, layout, algo, out=out)
    assert result is out
    assert_conv_close(from_layout(out, layout), expected, x, w, b, case.act, case.slope_value)


THREAD_CASES = [
    C(2, 64, 96, 300, 3, padding=1, act="relu"),
    C(2, 128, 128, 500, 5, stride=2, padding="same", groups=128, mode="reflect"),
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


STRIDED_VIEWS = {
    "x_step": ("x", lambda a: np.repeat(a, 2, axis=2)[:, :, ::2]),
    "x_window": ("x", lambda a: np.pad(a, [(0, 0), (1, 2), (0, 1)])[:, 1:-2, :-1]),
    "x_other_layout_memory": ("x", lambda a: np.ascontiguousarray(a.transpose(0, 2, 1))
                              .transpose(0, 2, 1)),
    "weight_transposed": ("w", lambda a: np.ascontiguousarray(a.transpose(2, 1, 0))
                          .transpose(2, 1, 0)),
}


@pytest.mark.parametrize("view", STRIDED_VIEWS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case, algo", sweep([C(3, 5, 7, 19, 3, stride=2, padding=(1, 2))]))
def test_strided_inputs(isa, case, algo, layout, view):
    x, w, b, expected = problem(case, "int")
    args = {"x": to_layout(x, layout), "w": w}
    operand, make = STRIDED_VIEWS[view]
    strided = make(args[operand])
    np.testing.assert_array_equal(strided, args[operand])
    assert not strided.flags.c_contiguous
    before = strided.copy()
    args[operand] = strided
    y = call(case, args["x"], args["w"], b, layout, algo)
    assert_conv_close(from_layout(y, layout), expected, x, w, b)
    np.testing.assert_array_equal(strided, before)


@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: c.id)
def test_agrees_with_torch(isa, case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, expected = problem(case, "normal")
    modes = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
             "circular": "circular"}
    t = F.pad(torch.from_numpy(x.copy()), case.padding2(), mode=modes[case.mode])
    t = F.conv1d(t, torch.from_numpy(w.copy()), None if b is None else torch.from_numpy(b.copy()),
                 stride=case.stride, dilation=case.dilation, groups=case.groups)
    acts = {None: lambda v: v, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid,
            "tanh": torch.tanh, "silu": F.silu, "hardswish": F.hardswish,
            "leaky_relu": lambda v: F.leaky_relu(v, case.slope_value)}
    expected_torch = acts[case.act](t).numpy()
    assert_conv_close(call(case, x, w, b), expected, x, w, b, case.act, case.slope_value)
    assert_conv_close(expected_torch, expected, x, w, b, case.act, case.slope_value)


# -- user errors ---------------------------------------------------------------------------------


# The valid call the bad ones start from: (1, 6, 9) x, (4, 6, 3) weight -> (1, 4, 7).
def bad(exception, message, **changes):
    def make():
        call = {"x": f32(1, 6, 9), "weight": f32(4, 6, 3)}
        for key, value in changes.items():
            call[key] = value() if callable(value) else value
        return call
    return make, exception, message


def _out_is_x():
    x = f32(1, 4, 7)
    return {"x": x, "weight": f32(4, 4, 1), "out": x}


BAD_CALLS = {
    "x_2d": bad(ValueError, mentions("conv1d", r"\bx\b", r"\(6, 9\)"), x=f32(6, 9)),
    "x_4d": bad(ValueError, mentions("conv1d", r"\bx\b", r"\(1, 6, 9, 9\)"), x=f32(1, 6, 9, 9)),
    "weight_4d": bad(ValueError, mentions("conv1d", "weight", r"\(4, 6, 3, 3\)"),
                     weight=f32(4, 6, 3, 3)),
    "weight_2d": bad(ValueError, mentions("conv1d", "weight", r"\(4, 6\)"), weight=f32(4, 6)),
    "channel_mismatch": bad(ValueError, mentions("conv1d", r"\(1, 6, 9\)", r"\(4, 5, 3\)"),
                            weight=f32(4, 5, 3)),
    "channel_mismatch_nlc": bad(ValueError, mentions("conv1d", r"\(1, 9, 6\)", r"\(4, 5, 3\)"),
                                x=f32(1, 9, 6), weight=f32(4, 5, 3), layout="NLC"),
    "groups_not_dividing_c_in": bad(ValueError, mentions("conv1d", "groups", r"\b6\b"),
                                    weight=f32(4, 1, 3), groups=4),
    "groups_not_dividing_c_out": bad(ValueError, mentions("conv1d", "groups", r"\b5\b"),
                                     weight=f32(5, 3, 3), groups=2),
    "groups_zero": bad(ValueError, mentions("conv1d", "groups"), groups=0),
    "kernel_longer_than_input": bad(ValueError, mentions("conv1d", "kernel|weight"),
                                    x=f32(1, 6, 4), weight=f32(4, 6, 6), padding=(0, 1)),
    "dilated_kernel_longer_than_input": bad(ValueError, mentions("conv1d", "kernel|dilation"),
                                            x=f32(1, 6, 5), dilation=3),
    "stride_zero": bad(ValueError, mentions("conv1d", "stride"), stride=0),
    "stride_negative": bad(ValueError, mentions("conv1d", "stride"), stride=-2),
    "dilation_zero": bad(ValueError, mentions("conv1d", "dilation"), dilation=0),
    # The message shows the value as the caller wrote it, not conv2d's internal 4-tuple.
    "padding_negative": bad(ValueError, mentions("conv1d", "padding", r"got -1\b"), padding=-1),
    "padding_pair_negative": bad(ValueError, mentions("conv1d", "padding", r"got \(1, -1\)"),
                                 padding=(1, -1)),
    "padding_3_values": bad(ValueError, mentions("conv1d", "padding"), padding=(1, 1, 1)),
    "padding_4_values": bad(ValueError, mentions("conv1d", "padding"), padding=(1, 1, 1, 1)),
    "reflect_padding_not_less_than_input": bad(ValueError, mentions("conv1d", "reflect", "pad"),
                                               padding=(0, 9), padding_mode="reflect"),
    "padding_unknown_string": bad(ValueError, mentions("conv1d", "padding", "full"),
                                  padding="full"),
    "padding_mode_unknown": bad(ValueError, mentions("conv1d", "padding_mode", "mirror"),
                                padding_mode="mirror"),
    "activation_unknown": bad(ValueError, mentions("conv1d", "activation", "gelu"),
                              activation="gelu"),
    "layout_2d": bad(ValueError, mentions("conv1d", "layout", "NCHW"), layout="NCHW"),
    "layout_unknown": bad(ValueError, mentions("conv1d", "layout", "LNC"), layout="LNC"),
    "algo_unknown": bad(ValueError, mentions("conv1d", "algo", "winograd"), algo="winograd"),
    "gemm1x1_k3": bad(ValueError, mentions("conv1d", "gemm1x1", "kernel|1x1|1×1"),
                      algo="gemm1x1"),
    "x_float64": bad(TypeError, mentions("conv1d", r"\bx\b", "float64"), x=np.zeros((1, 6, 9))),
    "weight_int64": bad(TypeError, mentions("conv1d", "weight", "int64"),
                        weight=np.zeros((4, 6, 3), np.int64)),
    "bias_float64": bad(TypeError, mentions("conv1d", "bias", "float64"), bias=np.zeros(4)),
    "bias_wrong_length": bad(ValueError, mentions("conv1d", "bias", r"\(6,\)"), bias=f32(6)),
    "bias_2d": bad(ValueError, mentions("conv1d", "bias", r"\(4, 1\)"), bias=f32(4, 1)),
    "out_shape": bad(ValueError, mentions("conv1d", "out", r"\(1, 4, 9\)", r"\(1, 4, 7\)"),
                     out=f32(1, 4, 9)),
    "out_ncl_shape_for_nlc": bad(ValueError, mentions("conv1d", "out", r"\(1, 7, 4\)"),
                                 x=f32(1, 9, 6), layout="NLC", out=f32(1, 4, 7)),
    "out_float64": bad(ValueError, mentions("conv1d", "out", "float64"), out=np.zeros((1, 4, 7))),
    "out_is_x": (_out_is_x, ValueError, mentions("conv1d", "out", "overlap")),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_call_raises(case):
    make, exception, message = BAD_CALLS[case]
    kwargs = make()
    x, weight = kwargs.pop("x"), kwargs.pop("weight")
    with pytest.raises(exception, match=message):
        cnnfast.conv1d(x, weight, **kwargs)


@pytest.mark.parametrize("case", [c for c in CASES if gemm1x1_obstacles(c)], ids=lambda c: c.id)
def test_gemm1x1_declines_other_shapes(case):
    x, w, b, _ = problem(case, "int")
    with pytest.raises(ValueError, match=mentions("gemm1x1", "|".join(gemm1x1_obstacles(case)))):
        cnnfast.conv1d(x, w, b, algo="gemm1x1", **case.kwargs())
