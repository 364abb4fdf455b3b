"""Argument fuzzer: every public function of cnnfast (and cnnfast.analysis) and every cnnfast.nn
layer's constructor and call gets random invalid values in place of one or two of its arguments
(wrong dtype, ndim or shape, negative/zero/huge ints, floats, NaN, None, strings, bools, nested
tuples, objects, non-contiguous or overlapping ``out=``). The only outcomes allowed are a result
or TypeError / ValueError / MemoryError (NotImplementedError where documented): any other
exception is a defect in the argument checks, and a crash or hang kills the run (faulthandler
prints where). Examples per test: CNNFAST_FUZZ_EXAMPLES (default below; see CONTRIBUTING.md).
"""

import contextlib
import faulthandler
import functools
import inspect
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnfast
from cnnfast import analysis, models, nn

ALLOWED = (TypeError, ValueError, MemoryError, NotImplementedError)
EXAMPLES = int(os.environ.get("CNNFAST_FUZZ_EXAMPLES", "0")) or 40
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
# A case that has not returned after this long is a hang: faulthandler dumps every thread's
# stack and ends the process (pytest would otherwise wait forever).
HANG_SECONDS = 120
# Huge sizes must fail cleanly, not succeed by overcommitting memory the machine lacks: the
# address space is capped while a case runs. ASan reserves terabytes of shadow memory, so under
# it the cap must come from ASan itself (an uncapped run was OOM-killed at 22 GB).
ADDRESS_SPACE_HEADROOM = 4 << 30
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
ASAN_CAPPED = all(option in os.environ.get("ASAN_OPTIONS", "") for option in
                  ("allocator_may_return_null=1", "max_allocation_size_mb="))
pytestmark = pytest.mark.skipif(
    UNDER_ASAN and not ASAN_CAPPED,
    reason="under ASan the fuzzer needs ASAN_OPTIONS with allocator_may_return_null=1 and "
           "max_allocation_size_mb=1024 (see CONTRIBUTING.md)")


def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pos(*shape):
    return np.abs(_f32(*shape)) + np.float32(0.5)


class Unrelated:
    """An object that is none of the types an argument takes."""

    def __repr__(self):
        return "<object>"


# -- the valid call of every function: (positional args, keyword args) --------------------------


def _pool_indices(dims):
    x = _f32(1, 2, *(4,) * dims)
    y, idx = getattr(cnnfast, f"max_pool{dims}d")(x, 2, return_indices=True)
    return y, idx


def _valid_calls():
    x2, w2 = _f32(1, 4, 6, 6), _f32(4, 2, 3, 3)
    x1, w1 = _f32(1, 4, 7), _f32(4, 2, 3)
    x3, w3 = _f32(1, 2, 4, 4, 4), _f32(2, 1, 2, 2, 2)
    off = _f32(1, 18, 4, 4)
    mean, var = _f32(4), _pos(4)
    calls = {
        "matmul": ((_f32(3, 4), _f32(4, 5)), {"out": None}),
        "conv1d": ((x1, w1, _f32(4)), dict(stride=1, padding=1, dilation=1, groups=2,
                                           padding_mode="zeros", activation=None,
                                           negative_slope=0.01, layout="NCL", algo="auto",
                                           out=None)),
        "conv2d": ((x2, w2, _f32(4)), dict(stride=1, padding=1, dilation=1, groups=2,
                                           padding_mode="zeros", activation="relu",
                                           negative_slope=0.01, layout="NCHW", algo="auto",
                                           out=None)),
        "conv3d": ((x3, w3, _f32(2)), dict(stride=1, padding=0, dilation=1, groups=2,
                                           padding_mode="zeros", activation=None,
                                           layout="NCDHW", algo="auto", out=None)),
        "conv_transpose1d": ((x1, w1, _f32(4)), dict(stride=2, padding=1, output_padding=1,
                                                     groups=2, dilation=1, output_size=None,
                                                     layout="NCL", algo="auto", out=None)),
        "conv_transpose2d": ((x2, w2, _f32(4)), dict(stride=2, padding=1, output_padding=1,
                                                     groups=2, dilation=1, output_size=None,
                                                     activation=None, layout="NCHW",
                                                     algo="auto", out=None)),
        "conv_transpose3d": ((x3, w3, _f32(2)), dict(stride=2, padding=0, output_padding=1,
                                                     groups=2, dilation=1, output_size=None,
                                                     layout="NCDHW", algo="auto", out=None)),
        "deform_conv2d": ((x2[:, :2], off, _f32(3, 2, 3, 3)),
                          dict(bias=_f32(3), stride=1, padding=0, dilation=1,
                               mask=_f32(1, 9, 4, 4), activation=None, layout="NCHW",
                               out=None)),
        "conv2d_separable": ((x2, _f32(3), _f32(3)), dict(bias=None, stride=1, padding=1,
                                                          dilation=1, layout="NCHW", out=None)),
        "separable_conv2d": ((x2, _f32(4, 1, 3, 3), _f32(5, 4, 1, 1)),
                             dict(depthwise_bias=_f32(4), pointwise_bias=_f32(5), stride=1,
                                  padding=1, dilation=1, activation="relu",
                                  mid_activation="relu6", layout="NCHW", out=None)),
        "separable_factors": ((np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]),), {"tol": 1e-6}),
        "stochastic_pool2d": ((_pos(1, 2, 6, 6), 2), dict(stride=None, padding=0,
                                                          training=True, seed=3, rng=None,
                                                          return_indices=False,
                                                          layout="NCHW", out=None)),
        "spp_fast": ((x2,), dict(kernel_size=5, layout="NCHW")),
        "spatial_pyramid_pool2d": ((x2,), dict(levels=(1, 2), mode="max", layout="NCHW")),
        "global_avg_pool2d": ((x2,), dict(layout="NCHW", out=None)),
        "global_max_pool2d": ((x2,), dict(layout="NCHW", out=None)),
        "batch_norm": ((x2, mean, var), dict(weight=_f32(4), bias=_f32(4), training=False,
                                             momentum=0.1, eps=1e-5, activation=None,
                                             layout="NCHW", num_batches_tracked=None,
                                             out=None)),
        "conv_bn_act": ((x2, w2, _f32(4), mean, var), dict(bn_weight=_f32(4), bn_bias=None,
                                                          stride=1, padding=1, dilation=1,
                                                          groups=2, eps=1e-5,
                                                          activation="relu", layout="NCHW",
                                                          algo="auto", out=None)),
        "fold_batch_norm": ((w2, _f32(4), mean, var), dict(bn_weight=_f32(4), bn_bias=_f32(4),
                                                           eps=1e-5, transposed=False,
                                                           groups=1)),
        "upsample_nearest2d": ((x2,), dict(scale_factor=2, size=None)),
        "upsample_bilinear2d": ((x2,), dict(scale_factor=None, size=(5, 7),
                                            align_corners=False)),
        "set_num_threads": ((1,), {}),
        "max_isa": (("scalar",), {}),
    }
    for name in ("relu", "relu6", "sigmoid", "tanh", "silu", "hardswish"):
        calls[name] = ((x2,), {"out": None})
    calls["leaky_relu"] = ((x2,), {"negative_slope": 0.2, "out": None})
    for dims, (x, layout) in {1: (x1, "NCL"), 2: (x2, "NCHW"), 3: (x3, "NCDHW")}.items():
        calls[f"max_pool{dims}d"] = ((x, 2), dict(stride=None, padding=1, dilation=1,
                                                  ceil_mode=True, return_indices=False,
                                                  layout=layout, out=None))
        calls[f"avg_pool{dims}d"] = ((x, 2), dict(stride=1, padding=1, ceil_mode=False,
                                                  count_include_pad=True, divisor_override=None,
                                                  dilation=1, layout=layout, out=None))
        calls[f"lp_pool{dims}d"] = ((x, 2.0, 2), dict(stride=None, ceil_mode=False, padding=0,
                                                      dilation=1, layout=layout, out=None))
        for mode in ("max", "avg"):
            calls[f"adaptive_{mode}_pool{dims}d"] = ((x, 3), dict(layout=layout, out=None))
        y, idx = _pool_indices(dims)
        calls[f"max_unpool{dims}d"] = ((y, idx, 2), dict(stride=None, padding=0,
                                                         output_size=None, layout=None))
    # cnnfast.analysis
    calls["conv_output_size"] = (((7, 8), 3), dict(stride=2, padding=1, dilation=1,
                                                   ceil_mode=False))
    calls["conv_transpose_output_size"] = (((7, 8), 3), dict(stride=2, padding=1,
                                                             output_padding=1, dilation=1))
    calls["conv_matrix"] = ((w2, (5, 5)), dict(stride=1, padding=1, dilation=1, groups=2,
                                               dense=False))
    calls["receptive_field"] = (([3, (3, 2), (3, 1, 2)],), {})
    calls["conv_parameters"] = (((4, 2, 3, 3),), dict(bias=True, groups=2, transposed=False))
    calls["conv_macs"] = (((4, 2, 3, 3), (5, 5)), dict(batch=2))
    return calls


VALID_CALLS = _valid_calls()
NO_ARGUMENTS = {"conv2d_algorithms", "conv_transpose2d_algorithms", "conv3d_algorithms",
                "conv_transpose3d_algorithms", "get_num_threads", "isa", "runtime_info",
                "show_runtime"}


def _function(name):
    return getattr(cnnfast, name, None) or getattr(analysis, name)


def test_every_public_function_has_a_valid_call():
    """The fuzzer covers the whole public surface: a new function needs a valid call here."""
    public = {name for name in cnnfast.__all__
              if callable(getattr(cnnfast, name)) and not inspect.ismodule(getattr(cnnfast, name))}
    public |= {name for name in dir(analysis) if not name.startswith("_") and
               inspect.isfunction(getattr(analysis, name)) and
               getattr(analysis, name).__module__ == "cnnfast.analysis"}
    public -= {"summary"}  # cnnfast.nn.summary: fuzzed with the layers below
    assert public - NO_ARGUMENTS == set(VALID_CALLS)


def _call(name, args, kwargs):
    result = _function(name)(*args, **kwargs)
    if name == "max_isa":  # a context manager: entering it applies the argument
        with result:
            pass
    return result


@pytest.mark.parametrize("name", sorted(VALID_CALLS))
def test_valid_call_succeeds(name, restore_threads):
    args, kwargs = VALID_CALLS[name]
    _call(name, args, kwargs)


# -- bad values --------------------------------------------------------------------------------

SCALARS = [None, True, False, 0, -1, -7, 2, 3, 10**6, 2**31, 2**31 - 1, -2**31, 2**63, 2**64,
           -2**63, 10**30, 0.0, 1.5, -2.5, float("nan"), float("inf"), -float("inf"), "", "a",
           "same", "valid", "relu", "NHWC", "NCHW", "max", b"x", 1j, Unrelated(), [], (),
           {}, {1: 2}, (1,), (1, 2), (0, 0), (-1, 2), (1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4, 5, 6),
           (2**40, 1), (1.5, 2), ("a", 1), ((1, 2), (3, 4)), [[1]], (None,), (None, 3),
           (float("nan"), 2), (True, False), np.int64(2), np.int32(-3), np.float32(2.0),
           np.float64("nan"), np.uint64(2**63), np.array(2), np.array([1, 2]),
           np.bool_(True), range(2), slice(1), object]


def _array_variants(value):
    """Arrays like `value` but wrong in one way."""
    shape = value.shape
    out = [value.astype(np.float64), value.astype(np.int64), value.astype(np.float16),
           value.astype(np.int8), value[..., None], value.reshape(-1), value.reshape(1, -1),
           np.zeros((0,) + shape[1:], np.float32), np.zeros(shape[:-1] + (0,), np.float32),
           np.float32(1.0), np.zeros((), np.float32), np.zeros(shape[::-1], np.float32),
           np.zeros(tuple(s + 1 for s in shape), np.float32),
           np.zeros(tuple(max(s - 1, 0) for s in shape), np.float32),
           np.zeros((1,) * len(shape), np.float32), np.zeros((2,) * len(shape), np.float32),
           value.tolist(), np.full(shape, np.nan, np.float32),
           np.full(shape, np.inf, np.float32), np.full(shape, -1.0, np.float32),
           np.zeros(shape, np.float32), value.astype(">f4"),
           np.asfortranarray(value), np.zeros(shape, np.complex64), value.astype(object)]
    if value.ndim >= 1:
        out.append(np.repeat(value, 2, axis=-1)[..., ::2])  # non-contiguous, same shape
        out.append(np.broadcast_to(value[..., :1], shape))  # zero strides
    if value.ndim >= 2:
        out.append(value.swapaxes(0, 1))
        out.append(np.zeros(shape[:1] + (7,) + shape[2:], np.float32))
        out.append(np.zeros((shape[0] + 2,) + shape[1:], np.float32))
    readonly = value.copy()
    readonly.flags.writeable = False
    out.append(readonly)
    return out


@st.composite
def bad_value(draw, valid, others):
    """A random replacement for an argument whose valid value is `valid`; `others` are the
    call's arrays (the candidates an out= can overlap)."""
    choices = list(SCALARS)
    if isinstance(valid, np.ndarray):
        choices += _array_variants(valid)
    arrays = [a for a in others if isinstance(a, np.ndarray) and a.ndim >= 1 and a.size]
    for a in arrays:
        choices += [a, a[..., ::-1], a.reshape(-1)[: max(a.size // 2, 1)]]
    return draw(st.sampled_from(choices))


def _signature_names(name):
    fn = _function(name)
    params = inspect.signature(fn).parameters
    return [p for p in params if not p.startswith("_")]


_watchdog = {"file": sys.__stderr__}


@pytest.fixture(autouse=True, scope="module")
def _watchdog_file(pytestconfig):
    """The watchdog writes where pytest's own faulthandler does: the real stderr, which pytest
    keeps open beside its output capture (else the dump would vanish with the process)."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key
        _watchdog["file"] = pytestconfig.stash[fault_handler_stderr_fd_key]
    except (ImportError, KeyError):
        pass
    yield


@contextlib.contextmanager
def guarded():
    """Caps the address space and arms the hang watchdog while one case runs."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=_watchdog["file"])
    limited = False
    try:
        import resource
        if not UNDER_ASAN:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            cap = used + ADDRESS_SPACE_HEADROOM
            if soft == resource.RLIM_INFINITY or soft > cap:
                resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
                limited = True
    except (ImportError, OSError, ValueError):
        pass
    try:
        yield
    finally:
        if limited:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        faulthandler.cancel_dump_traceback_later()


def check_outcome(fn, description):
    """Runs fn(); a result or an allowed exception passes, anything else fails with the case."""
    with guarded():
        try:
            fn()
        except ALLOWED:
            pass
        except Exception as error:  # noqa: BLE001 - any other type is the defect being hunted
            raise AssertionError(f"{description} raised {type(error).__name__}: {error}") \
                from error


@pytest.mark.parametrize("name", sorted(VALID_CALLS))
@FUZZ_SETTINGS
@given(data=st.data())
def test_bad_arguments_raise_only_type_or_value_errors(name, data, restore_threads):
    args, kwargs = VALID_CALLS[name]
    names = _signature_names(name)
    positional = dict(zip(names, args))
    call = {**positional, **kwargs}
    arrays = [v for v in call.values() if isinstance(v, np.ndarray)]
    count = data.draw(st.integers(1, min(2, len(call))), label="count")
    targets = data.draw(st.lists(st.sampled_from(sorted(call)), min_size=count, max_size=count,
                                 unique=True), label="targets")
    changed = dict(call)
    for target in targets:
        changed[target] = data.draw(bad_value(call[target], arrays), label=target)
    new_args = [changed[n] for n in names[:len(args)]]
    new_kwargs = {k: changed[k] for k in kwargs}
    with cnnfast.max_isa(cnnfast.isa()):  # max_isa's own case must not leak a cap
        check_outcome(lambda: _call(name, new_args, new_kwargs),
                      f"{name}({', '.join(f'{t}={changed[t]!r}' for t in targets)})")


WITH_OUT = sorted(name for name, (args, kwargs) in VALID_CALLS.items()
                  if "out" in kwargs and isinstance(args[0], np.ndarray))


@pytest.mark.parametrize("name", WITH_OUT)
@settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 4, 1))  # each case runs the op twice
@given(data=st.data())
def test_out_sharing_memory_with_an_input_is_rejected_or_harmless(name, data):
    """out= placed in the same buffer as an input at a drawn element offset (partial overlap,
    exact alias, or just apart): the op either refuses it with ValueError or writes the result
    it would have written to a separate array."""
    args, kwargs = VALID_CALLS[name]
    expected = _call(name, args, kwargs)
    expected = expected[0] if isinstance(expected, tuple) else expected
    position = data.draw(st.sampled_from([i for i, a in enumerate(args)
                                          if isinstance(a, np.ndarray)]), label="input")
    source = args[position]
    shift = data.draw(st.integers(-source.size - 2, source.size + 2), label="shift")
    start = 2 * (source.size + expected.size) + 8  # room for out on either side
    buf = np.zeros(4 * start, np.float32)
    moved = buf[start:start + source.size].reshape(source.shape)
    moved[...] = source
    out = buf[start + shift:start + shift + expected.size].reshape(expected.shape)
    new_args = list(args)
    new_args[position] = moved
    kept = moved.copy()
    with guarded():
        try:
            result = _function(name)(*new_args, **dict(kwargs, out=out))
        except ValueError:
            return
    result = result[0] if isinstance(result, tuple) else result
    assert result is out
    reference_args = list(args)
    reference_args[position] = kept  # the input as it was before the call overwrote it
    np.testing.assert_array_equal(out, _function(name)(*reference_args, **kwargs),
                                  err_msg=f"{name}: out at element offset {shift} of input "
                                          f"{position}")


# -- cnnfast.nn: constructors and calls --------------------------------------------------------

LAYERS = {
    "Conv1d": ((4, 6, 3), dict(stride=1, padding=1, dilation=1, groups=2, bias=True,
                               padding_mode="zeros"), (_f32(1, 4, 9),)),
    "Conv2d": ((4, 6, 3), dict(stride=1, padding="same", dilation=1, groups=2, bias=True,
                               padding_mode="reflect"), (_f32(1, 4, 7, 7),)),
    "ConvTranspose1d": ((4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2),
                        (_f32(1, 4, 5),)),
    "ConvTranspose2d": ((4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2),
                        (_f32(1, 4, 5, 5),)),
    "DeformConv2d": ((2, 3, 3), dict(stride=1, padding=1, dilation=1),
                     (_f32(1, 2, 5, 5), _f32(1, 18, 5, 5))),
    "ModulatedDeformConv2d": ((2, 3, 3), dict(stride=1, padding=1), (_f32(1, 2, 5, 5),)),
    "BatchNorm1d": ((4,), dict(eps=1e-5, momentum=0.1, affine=True), (_f32(2, 4, 5),)),
    "BatchNorm2d": ((4,), dict(eps=1e-5, momentum=None), (_f32(2, 4, 3, 3),)),
    "BatchNorm3d": ((2,), dict(eps=1e-3), (_f32(2, 2, 3, 3, 3),)),
    "Linear": ((4, 3), dict(bias=True), (_f32(2, 4),)),
    "LeakyReLU": ((0.2,), {}, (_f32(2, 3),)),
    "ReLU": ((), {}, (_f32(2, 3),)),
    "ReLU6": ((), {}, (_f32(2, 3),)),
    "Sigmoid": ((), {}, (_f32(2, 3),)),
    "Hardswish": ((), {}, (_f32(2, 3),)),
    "Identity": ((), {}, (_f32(2, 3),)),
    "Dropout": ((0.5,), {}, (_f32(2, 3),)),
    "MaxPool1d": ((2,), dict(stride=None, padding=1, ceil_mode=True), (_f32(1, 2, 7),)),
    "MaxPool2d": ((3,), dict(stride=2, padding=1), (_f32(1, 2, 7, 7),)),
    "MaxPool3d": ((2,), {}, (_f32(1, 2, 4, 4, 4),)),
    "AvgPool1d": ((2,), {}, (_f32(1, 2, 7),)),
    "AvgPool2d": ((3,), dict(stride=1, padding=1, count_include_pad=False),
                  (_f32(1, 2, 7, 7),)),
    "AvgPool3d": ((2,), {}, (_f32(1, 2, 4, 4, 4),)),
    "AdaptiveAvgPool2d": (((2, 3),), {}, (_f32(1, 2, 7, 7),)),
    "AdaptiveMaxPool2d": ((2,), {}, (_f32(1, 2, 7, 7),)),
    "AdaptiveAvgPool3d": ((2,), {}, (_f32(1, 2, 4, 4, 4),)),
    "AdaptiveMaxPool3d": ((2,), {}, (_f32(1, 2, 4, 4, 4),)),
    "StochasticPool2d": ((2,), {}, (_pos(1, 2, 6, 6),)),
    "SPP": ((), {}, (_f32(1, 2, 8, 8),)),
    "Upsample": ((), dict(scale_factor=2, mode="nearest"), (_f32(1, 2, 3, 3),)),
    "Flatten": ((), {}, (_f32(2, 3, 4),)),
    "BasicBlock": ((4, 4), dict(stride=1), (_f32(1, 4, 6, 6),)),
    "InvertedResidual": ((4, 4, 1, 2), {}, (_f32(1, 4, 6, 6),)),
    "DepthwiseSeparable": ((4, 6), dict(stride=2), (_f32(1, 4, 6, 6),)),
    "Bottleneck": ((8, 2), dict(stride=2, groups=1, base_width=64, dilation=1),
                   (_f32(1, 8, 6, 6),)),
    "Hourglass": ((1, 4), dict(upsample="nearest"), (_f32(1, 4, 8, 8),)),
}


def _layer_init_names(name):
    params = inspect.signature(getattr(nn, name).__init__).parameters
    return [p for p in params if p != "self" and params[p].kind not in
            (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_valid_layer_runs(name):
    args, kwargs, inputs = LAYERS[name]
    getattr(nn, name)(*args, **kwargs)(*inputs)


@pytest.mark.parametrize("name", sorted(LAYERS))
@FUZZ_SETTINGS
@given(data=st.data())
def test_bad_layer_arguments_raise_only_type_or_value_errors(name, data):
    args, kwargs, inputs = LAYERS[name]
    names = _layer_init_names(name)
    call = {**dict(zip(names, args)), **kwargs}
    # Half the cases break the constructor, half the call's inputs.
    if call and data.draw(st.booleans(), label="constructor"):
        target = data.draw(st.sampled_from(sorted(call)), label="target")
        changed = dict(call, **{target: data.draw(bad_value(call[target], []), label="value")})
        new_args = [changed[n] for n in names[:len(args)]]
        new_kwargs = {k: changed[k] for k in kwargs}
        description = f"nn.{name}({target}={changed[target]!r})"

        def run():
            layer = getattr(nn, name)(*new_args, **new_kwargs)
            layer(*inputs)
    else:
        position = data.draw(st.integers(0, len(inputs) - 1), label="input")
        new_inputs = list(inputs)
        new_inputs[position] = data.draw(bad_value(inputs[position], []), label="value")
        description = f"nn.{name}(...)(input {position} = {new_inputs[position]!r})"

        def run():
            getattr(nn, name)(*args, **kwargs)(*new_inputs)
    check_outcome(run, description)


@FUZZ_SETTINGS
@given(data=st.data())
def test_bad_model_arguments_raise_only_type_or_value_errors(data):
    """cnnfast.models: MobileNetV2 (the one cheap to build) with a bad constructor argument, or
    a built network called on a bad input. A missing .npz path for ``weights`` is
    FileNotFoundError, as open() raises."""
    valid = dict(num_classes=3, weights=None, rng=0, width_mult=0.25, dropout=0.2)
    if data.draw(st.booleans(), label="constructor"):
        target = data.draw(st.sampled_from(sorted(valid)), label="target")
        kwargs = dict(valid, **{target: data.draw(bad_value(valid[target], []), label="value")})
        description = f"models.mobilenet_v2({target}={kwargs[target]!r})"

        def run():
            try:
                models.mobilenet_v2(**kwargs)
            except FileNotFoundError:
                assert target == "weights" and isinstance(kwargs["weights"], (str, bytes))
    else:
        x = data.draw(bad_value(_f32(1, 3, 32, 32), []), label="x")
        description = f"mobilenet_v2(x={x!r})"

        def run():
            _small_model()(x)
    check_outcome(run, description)


@functools.lru_cache(maxsize=1)
def _small_model():
    return models.mobilenet_v2(num_classes=3, width_mult=0.25, rng=0).eval()


# -- regressions: the defects this fuzzer found, each as a plain test --------------------------


def test_sizes_overflowing_64_bits_raise_value_error():
    # checked_mul threw std::overflow_error, which reached Python as OverflowError.
    x, w = _f32(1, 2, 3, 3), _f32(2, 1, 3, 3)
    with pytest.raises(ValueError, match=r"overflows a 64-bit element count"):
        cnnfast.conv_transpose2d(x, w, dilation=2**31)
    with pytest.raises(ValueError, match=r"overflows a 64-bit element count"):
        cnnfast.adaptive_avg_pool2d(x, 2**31)
    with pytest.raises(ValueError, match=r"overflows a 64-bit element count"):
        cnnfast.adaptive_max_pool3d(_f32(1, 2, 2, 2, 2), 10**6)


@pytest.mark.parametrize("value", [None, 3.0, [1.0, 2.0], "x"])
def test_layers_reject_non_array_inputs_with_type_error(value):
    # Dropout, Flatten, ... raised AttributeError reading value.shape / value.ndim.
    for layer in (nn.Dropout(0.5), nn.Flatten(), nn.ReLU(), nn.Identity(), nn.Conv2d(1, 1, 1)):
        with pytest.raises(TypeError, match=rf"{type(layer).__name__}: the input must be a "
                                            rf"numpy.ndarray of float32, got"):
            layer(value)


def test_flatten_checks_its_axes():
    # A 0-D input raised ZeroDivisionError; an axis beyond the input wrapped around silently.
    with pytest.raises(ValueError, match=r"Flatten: start_dim 1 and end_dim -1 must be axes of "
                                         r"the input, of shape \(\)"):
        nn.Flatten()(np.ones((), np.float32))
    with pytest.raises(ValueError, match=r"Flatten: start_dim 3 .* shape \(2, 3, 4\)"):
        nn.Flatten(start_dim=3)(_f32(2, 3, 4))
    with pytest.raises(TypeError, match=r"Flatten: start_dim must be an int, got 1.5"):
        nn.Flatten(start_dim=1.5)
    assert nn.Flatten(start_dim=-3, end_dim=1)(_f32(2, 3, 4)).shape == (6, 4)


@pytest.mark.parametrize("name, value", [("stride", 2**63), ("input_size", 2**63),
                                         ("padding", 2**40), ("dilation", 2**31)])
def test_conv_matrix_rejects_sizes_beyond_int64_positions(name, value):
    # int64 position arithmetic overflowed: OverflowError from NumPy.
    kwargs = {"input_size": (5, 5), name: value}
    with pytest.raises(ValueError, match=rf"conv_matrix: {name} .* is too large for a matrix "
                                         rf"index"):
        analysis.conv_matrix(_f32(2, 1, 3, 3), **kwargs)


def test_conv_transpose1d_checks_out_ndim():
    # A 1-D out raised IndexError while being given its unit H axis.
    with pytest.raises(ValueError, match=r"conv_transpose1d: out must be 3-D, got shape \(5,\)"):
        cnnfast.conv_transpose1d(_f32(1, 2, 5), _f32(2, 3, 3), out=np.zeros(5, np.float32))


@pytest.mark.parametrize("width_mult", [float("inf"), float("nan"), 0.0, -1.0])
def test_mobilenet_v2_rejects_non_finite_width(width_mult):
    # width_mult=inf raised OverflowError converting the channel count to int.
    with pytest.raises(ValueError, match=r"MobileNetV2: width_mult must be a finite number > 0"):
        models.mobilenet_v2(width_mult=width_mult)


def test_inverted_residual_rejects_non_finite_expand_ratio():
    # expand_ratio=inf raised OverflowError converting the hidden width to int.
    with pytest.raises(ValueError, match=r"InvertedResidual: expand_ratio must be a finite"):
        nn.InvertedResidual(4, 4, 1, float("inf"))


@pytest.mark.parametrize("size", [[], (), 7.5, "7"])
def test_conv_transpose1d_checks_output_size(size):
    # output_size=[] raised IndexError taking its last entry.
    with pytest.raises(ValueError, match=r"conv_transpose1d: output_size must be the output "
                                         r"length"):
        cnnfast.conv_transpose1d(_f32(1, 2, 5), _f32(2, 3, 3), output_size=size)


def test_conv_transpose1d_output_size_forms():
    x, w = _f32(1, 2, 5), _f32(2, 3, 3)
    expected = cnnfast.conv_transpose1d(x, w, stride=2, output_padding=1)
    for size in (12, [12], (1, 3, 12)):
        np.testing.assert_array_equal(
            cnnfast.conv_transpose1d(x, w, stride=2, output_size=size), expected)


def test_separable_factors_rejects_complex_kernels():
    # The float64 conversion dropped the imaginary part silently (a ComplexWarning only).
    with pytest.raises(TypeError, match=r"separable_factors: kernel_2d must be real"):
        cnnfast.separable_factors(np.ones((3, 3), np.complex64))


def test_hourglass_depth_is_bounded():
    # depth=10**6 built blocks until RecursionError.
    with pytest.raises(ValueError, match=r"Hourglass: depth must be at most 16"):
        nn.Hourglass(17, 4)
    assert nn.Hourglass(2, 4)(_f32(1, 4, 8, 8)).shape == (1, 4, 8, 8)


@pytest.mark.parametrize("kwargs", [dict(stride=-2**32), dict(kernel_size=-3), dict(padding=-1),
                                    dict(kernel_size=2, stride=1, padding=1)])
def test_max_unpool_rejects_bad_windows_and_empty_outputs(kwargs):
    # A negative stride made a negative output size that reached the C++ binding, where
    # pybind11's stride arithmetic overflowed (UBSan: signed integer overflow).
    y, idx = cnnfast.max_pool3d(_f32(1, 2, 2, 2, 2), 2, return_indices=True)
    args = dict(dict(kernel_size=2), **kwargs)
    with pytest.raises(ValueError, match=r"max_unpool3d: (kernel_size and stride must be >= 1|"
                                         r"the output size .* must be >= 1)"):
        cnnfast.max_unpool3d(y, idx, **args)


def test_binding_rejects_negative_or_overflowing_output_shapes():
    # The shared output allocator (csrc/python/bind.cpp new_array) checks sizes before pybind11
    # multiplies strides out; reached here through max_unpool's output_size.
    y, idx = cnnfast.max_pool1d(_f32(1, 2, 4), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"negative size"):
        cnnfast._C.max_unpool(y, idx, False, 1, [-5], "max_unpool1d")
    with pytest.raises(ValueError, match=r"output bytes: .* overflows"):
        cnnfast._C.max_unpool(y, idx, False, 1, [2**62], "max_unpool1d")
