"""Differential fuzzer: hypothesis draws random valid parameter combinations for every operator
(shapes, strides, paddings in every form, dilations, groups, layouts, algorithms, ISA tiers) and
compares cnnfast with the float64 references of reference.py. Every case runs at 1 and at 2
threads and the two results must be bitwise equal. Fixed seed (derandomize); examples per test:
CNNFAST_FUZZ_EXAMPLES (default below), e.g. CNNFAST_FUZZ_EXAMPLES=5000 for a long run
(CONTRIBUTING.md).
"""

import os

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnnfast
import reference
from conftest import available_tiers

EXAMPLES = int(os.environ.get("CNNFAST_FUZZ_EXAMPLES", "0")) or 50
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
ACTIVATIONS = [None, "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "silu", "hardswish"]
# Our sigmoid / tanh / silu use a vectorised exp accurate to a few ulp: absolute slack on top of
# the accumulation tolerance.
ACTIVATION_SLACK = 4e-6


def run_tiers_threads(data, fn):
    """fn() on a drawn ISA tier at 1 and 2 threads: the two results must be bitwise equal (the
    reduction is never split across threads). Returns the 1-thread result."""
    tier = data.draw(st.sampled_from(available_tiers()), label="tier")
    saved = cnnfast.get_num_threads()
    try:
        with cnnfast.max_isa(tier):
            cnnfast.set_num_threads(1)
            one = fn()
            cnnfast.set_num_threads(2)
            two = fn()
    finally:
        cnnfast.set_num_threads(saved)
    for a, b in zip(one if isinstance(one, tuple) else (one,),
                    two if isinstance(two, tuple) else (two,)):
        np.testing.assert_array_equal(a, b, err_msg=f"1 vs 2 threads differ on tier {tier}")
    return one


def normals(data, shape, label, scale=1.0, exact=False):
    """Random normals, or with `exact` small integers in [-2, 2]: every product and partial
    sum of a convolution over them is exact in float32, so results must match bitwise."""
    seed = data.draw(st.integers(0, 2**32 - 1), label=f"{label} seed")
    rng = np.random.default_rng(seed)
    if exact:
        return rng.integers(-2, 3, shape).astype(np.float32)
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def draw_exact(data, activation):
    """Whether this case runs in the exact small-integer regime (only with activations that
    keep integers integral)."""
    return activation in (None, "relu", "relu6") and data.draw(st.booleans(), label="exact")


def assert_conv_close(y, expected, k, x, w, activation=None, exact=False):
    if exact:
        np.testing.assert_array_equal(y, expected.astype(np.float32))
        return
    tol = reference.gemm_tolerance(k, np.abs(x).max(initial=0), np.abs(w).max(initial=0))
    slack = ACTIVATION_SLACK * (1 + np.abs(expected).max(initial=0)) if activation else 0.0
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol + slack + 1e-6)


def padding_form(data, pairs, sizes, kernel, stride, dilation):
    """A drawn way of writing per-axis (begin, end) pads: int / per axis / begin-end tuple, or
    "same" / "valid". Returns (argument, pairs it means)."""
    form = data.draw(st.sampled_from(["pairs", "axis", "int", "same", "valid"]), label="form")
    dims = len(pairs)
    if form == "same":
        return "same", [reference.same_padding(*a) for a in zip(sizes, kernel, stride, dilation)]
    if form == "valid":
        return "valid", [(0, 0)] * dims
    if form == "int":  # the smallest pad drawn, so per-axis limits (pooling's) still hold
        v = min(min(p) for p in pairs)
        return v, [(v, v)] * dims
    if form == "axis":
        return tuple(p[0] for p in pairs), [(p[0], p[0]) for p in pairs]
    return tuple(v for p in pairs for v in p), pairs


def to_last(a):
    """Channels-first -> channels-last."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def to_first(a):
    return np.moveaxis(a, -1, 1)


# -- convolutions ------------------------------------------------------------------------------


@st.composite
def conv_case(draw, dims):
    groups = draw(st.integers(1, 3), label="groups")
    icg, ocg = draw(st.integers(1, 4), label="icg"), draw(st.integers(1, 4), label="ocg")
    n = draw(st.integers(1, 2), label="n")
    kernel = tuple(draw(st.integers(1, 4 if dims < 3 else 3), label="k") for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3), label="s") for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 3 if dims < 3 else 2), label="d") for _ in range(dims))
    pairs = [(draw(st.integers(0, 3), label="pb"), draw(st.integers(0, 3), label="pe"))
             for _ in range(dims)]
    sizes = tuple(draw(st.integers(1, 11 if dims < 3 else 6), label="size") for _ in range(dims))
    return groups, icg, ocg, n, kernel, stride, dilation, pairs, sizes


def _padded_ok(sizes, pairs, kernel, dilation):
    return all(s + b + e >= d * (k - 1) + 1
               for s, (b, e), k, d in zip(sizes, pairs, kernel, dilation))


def _mode_ok(mode, sizes, pairs):
    if mode == "reflect":
        return all(max(p) < s for s, p in zip(sizes, pairs))
    if mode == "circular":
        return all(max(p) <= s for s, p in zip(sizes, pairs))
    return True


@FUZZ
@given(data=st.data())
def test_conv2d_and_conv1d(data):
    dims = data.draw(st.sampled_from([1, 2]), label="dims")
    groups, icg, ocg, n, kernel, stride, dilation, pairs, sizes = data.draw(conv_case(dims))
    arg, pairs = padding_form(data, pairs, sizes, kernel, stride, dilation)
    assume(_padded_ok(sizes, pairs, kernel, dilation))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]), label="mode")
    assume(_mode_ok(mode, sizes, pairs))
    c_in, c_out = icg * groups, ocg * groups
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    exact = draw_exact(data, activation)
    x = normals(data, (n, c_in) + sizes, "x", exact=exact)
    w = normals(data, (c_out, icg) + kernel, "w", exact=exact)
    bias = normals(data, (c_out,), "bias", exact=exact) \
        if data.draw(st.booleans(), label="bias") else None
    algo = data.draw(st.sampled_from(cnnfast.conv2d_algorithms()), label="algo")
    last = data.draw(st.booleans(), label="channels_last")
    layout = ("NLC" if last else "NCL") if dims == 1 else ("NHWC" if last else "NCHW")
    fn = cnnfast.conv1d if dims == 1 else cnnfast.conv2d
    xin = to_last(x) if last else x
    if dims == 1:
        expected = reference.conv1d(x, w, bias, stride[0], pairs[0], dilation[0], groups, mode)
    else:
        expected = reference.conv2d(x, w, bias, stride, pairs[0] + pairs[1], dilation, groups,
                                    mode)
    expected = reference.activation(activation, expected, 0.1)
    use_out = data.draw(st.booleans(), label="out")

    def run():
        out = np.empty(to_last(expected).shape if last else expected.shape, np.float32) \
            if use_out else None
        y = fn(xin, w, bias, stride if dims == 2 else stride[0], arg, dilation if dims == 2
               else dilation[0], groups, padding_mode=mode, activation=activation,
               negative_slope=0.1, layout=layout, algo=algo, out=out)
        assert out is None or y is out
        return y

    try:
        y = run_tiers_threads(data, run)
    except ValueError as error:
        # A forced algorithm that cannot serve these parameters says so; "auto" never refuses.
        assert algo != "auto" and "algo=" in str(error), str(error)
        return
    y = to_first(y) if last else y
    assert_conv_close(y, expected, icg * np.prod(kernel), x, w, activation, exact)


@FUZZ
@given(data=st.data())
def test_conv3d(data):
    groups, icg, ocg, n, kernel, stride, dilation, pairs, sizes = data.draw(conv_case(3))
    arg, pairs = padding_form(data, pairs, sizes, kernel, stride, dilation)
    assume(_padded_ok(sizes, pairs, kernel, dilation))
    mode = data.draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]), label="mode")
    assume(_mode_ok(mode, sizes, pairs))
    c_in, c_out = icg * groups, ocg * groups
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    exact = draw_exact(data, activation)
    x = normals(data, (n, c_in) + sizes, "x", exact=exact)
    w = normals(data, (c_out, icg) + kernel, "w", exact=exact)
    bias = normals(data, (c_out,), "bias", exact=exact) \
        if data.draw(st.booleans(), label="bias") else None
    algo = data.draw(st.sampled_from(cnnfast.conv3d_algorithms()), label="algo")
    last = data.draw(st.booleans(), label="channels_last")
    expected = reference.activation(activation, reference.conv3d(
        x, w, bias, stride, [v for p in pairs for v in p], dilation, groups, mode), 0.1)

    def run():
        return cnnfast.conv3d(to_last(x) if last else x, w, bias, stride, arg, dilation, groups,
                              padding_mode=mode, activation=activation, negative_slope=0.1,
                              layout="NDHWC" if last else "NCDHW", algo=algo)

    try:
        y = run_tiers_threads(data, run)
    except ValueError as error:
        assert algo != "auto" and "algo=" in str(error), str(error)
        return
    assert_conv_close(to_first(y) if last else y, expected, icg * np.prod(kernel), x, w,
                      activation, exact)


@FUZZ
@given(data=st.data())
def test_conv_transpose(data):
    dims = data.draw(st.sampled_from([1, 2, 3]), label="dims")
    groups, icg, ocg, n, kernel, stride, dilation, pairs, sizes = data.draw(conv_case(dims))
    sizes = tuple(min(s, 6) for s in sizes)
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1), label="op")
                           for s, d in zip(stride, dilation))
    out_sizes = [(i - 1) * s - b - e + d * (k - 1) + op + 1 for i, s, (b, e), d, k, op in zip(
        sizes, stride, pairs, dilation, kernel, output_padding)]
    assume(min(out_sizes) >= 1)
    # output_size names the size instead of output_padding (reachable only below the stride).
    use_size = data.draw(st.booleans(), label="output_size") and \
        all(op < s for op, s in zip(output_padding, stride))
    c_in, c_out = icg * groups, ocg * groups
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    exact = draw_exact(data, activation)
    x = normals(data, (n, c_in) + sizes, "x", exact=exact)
    w = normals(data, (c_in, ocg) + kernel, "w", exact=exact)
    bias = normals(data, (c_out,), "bias", exact=exact) \
        if data.draw(st.booleans(), label="bias") else None
    last = data.draw(st.booleans(), label="channels_last")
    flat = [v for p in pairs for v in p]
    if dims == 3:
        expected = reference.conv_transpose3d(x, w, bias, stride, flat, output_padding,
                                              dilation, groups)
        fn, layouts = cnnfast.conv_transpose3d, ("NCDHW", "NDHWC")
        algos = cnnfast.conv_transpose3d_algorithms()
    else:
        pad2 = ([0, 0] + flat) if dims == 1 else flat
        lift = (lambda a: a[:, :, None]) if dims == 1 else (lambda a: a)
        expected = reference.conv_transpose2d_general(
            lift(x), lift(w), bias, ((1,) * (3 - dims) + stride)[-2:], pad2,
            ((0,) * (3 - dims) + output_padding)[-2:], ((1,) * (3 - dims) + dilation)[-2:],
            groups)
        expected = expected[:, :, 0] if dims == 1 else expected
        fn = cnnfast.conv_transpose1d if dims == 1 else cnnfast.conv_transpose2d
        layouts = ("NCL", "NLC") if dims == 1 else ("NCHW", "NHWC")
        algos = cnnfast.conv_transpose2d_algorithms()
    expected = reference.activation(activation, expected, 0.1)
    algo = data.draw(st.sampled_from(algos), label="algo")
    one = lambda v: v[0] if dims == 1 else v  # noqa: E731
    padding = data.draw(st.sampled_from(["pairs", "int"]), label="padding form") \
        if len(set(flat)) == 1 else "pairs"
    pad_arg = flat[0] if padding == "int" else tuple(flat)

    def run():
        extra = dict(output_size=out_sizes) if use_size else dict(
            output_padding=one(output_padding))
        return fn(to_last(x) if last else x, w, bias, one(stride), pad_arg, groups=groups,
                  dilation=one(dilation), activation=activation, negative_slope=0.1,
                  layout=layouts[last], algo=algo, **extra)

    try:
        y = run_tiers_threads(data, run)
    except ValueError as error:
        assert algo != "auto" and "algo=" in str(error), str(error)
        return
    y = to_first(y) if last else y
    assert y.shape == expected.shape
    # Each output sums at most icg * taps products.
    assert_conv_close(y, expected, icg * np.prod(kernel), x, w, activation, exact)


@FUZZ
@given(data=st.data())
def test_deform_conv2d(data):
    offset_groups = data.draw(st.integers(1, 2), label="offset_groups")
    groups = data.draw(st.integers(1, 2), label="groups")
    c_in = offset_groups * groups * data.draw(st.integers(1, 2), label="c mult")
    icg, ocg = c_in // groups, data.draw(st.integers(1, 3), label="ocg")
    kernel = (data.draw(st.integers(1, 3), label="kh"), data.draw(st.integers(1, 3), label="kw"))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    pairs = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(2)]
    sizes = (data.draw(st.integers(1, 6), label="h"), data.draw(st.integers(1, 6), label="w"))
    arg, pairs = padding_form(data, pairs, sizes, kernel, stride, dilation)
    assume(_padded_ok(sizes, pairs, kernel, dilation))
    oh, ow = [(s + b + e - d * (k - 1) - 1) // st_ + 1 for s, (b, e), d, k, st_ in zip(
        sizes, pairs, dilation, kernel, stride)]
    n, taps = data.draw(st.integers(1, 2), label="n"), kernel[0] * kernel[1]
    x = normals(data, (n, c_in) + sizes, "x")
    w = normals(data, (ocg * groups, icg) + kernel, "w")
    offset = normals(data, (n, 2 * offset_groups * taps, oh, ow), "offset", scale=1.5)
    mask = normals(data, (n, offset_groups * taps, oh, ow), "mask") \
        if data.draw(st.booleans(), label="v2") else None
    bias = normals(data, (ocg * groups,), "bias") if data.draw(st.booleans(), label="b") else None
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    last = data.draw(st.booleans(), label="channels_last")
    expected = reference.activation(activation, reference.deform_conv2d(
        x, offset, w, bias, stride, pairs[0] + pairs[1], dilation, mask), 0.1)

    def run():
        t = to_last if last else (lambda a: a)
        return cnnfast.deform_conv2d(t(x), t(offset), w, bias, stride, arg, dilation,
                                     None if mask is None else t(mask), activation=activation,
                                     negative_slope=0.1, layout="NHWC" if last else "NCHW")

    y = run_tiers_threads(data, run)
    scale = 1.0 if mask is None else np.abs(mask).max()
    assert_conv_close(to_first(y) if last else y, expected, icg * taps, x * scale, w, activation)


@FUZZ
@given(data=st.data())
def test_separable(data):
    c = data.draw(st.integers(1, 5), label="c")
    kh, kw = data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw")
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    pairs = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(2)]
    sizes = (data.draw(st.integers(1, 10), label="h"), data.draw(st.integers(1, 10), label="w"))
    arg, pairs = padding_form(data, pairs, sizes, (kh, kw), stride, dilation)
    assume(_padded_ok(sizes, pairs, (kh, kw), dilation))
    x = normals(data, (2, c) + sizes, "x")
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    last = data.draw(st.booleans(), label="channels_last")
    t = to_last if last else (lambda a: a)
    layout = "NHWC" if last else "NCHW"
    if data.draw(st.booleans(), label="spatially separable"):
        per_channel = data.draw(st.booleans(), label="per channel")
        col = normals(data, (c, kh) if per_channel else (kh,), "col")
        row = normals(data, (c, kw) if per_channel else (kw,), "row")
        bias = normals(data, (c,), "bias")
        kernel = np.einsum("ci,cj->cij", np.broadcast_to(col, (c, kh)),
                           np.broadcast_to(row, (c, kw)))[:, None]
        expected = reference.activation(activation, reference.conv2d(
            x, kernel, bias, stride, pairs[0] + pairs[1], dilation, c), 0.1)

        def run():
            return cnnfast.conv2d_separable(t(x), col, row, bias, stride, arg, dilation,
                                            activation=activation, negative_slope=0.1,
                                            layout=layout)

        y = run_tiers_threads(data, run)
        # Two passes, each rounded: k_h then k_w products per output.
        tol = 4 * reference.EPS_FLOAT32 * (kh + kw) * np.abs(x).max() * \
            np.abs(col).max() * np.abs(row).max() * max(kh, kw)
        np.testing.assert_allclose(to_first(y) if last else y, expected, rtol=0,
                                   atol=tol + ACTIVATION_SLACK * (1 + np.abs(expected).max()))
        return
    m = data.draw(st.integers(1, 2), label="multiplier")
    c_out = data.draw(st.integers(1, 6), label="c_out")
    dw = normals(data, (c * m, 1, kh, kw), "dw")
    pw = normals(data, (c_out, c * m, 1, 1), "pw")
    db, pb = normals(data, (c * m,), "db"), normals(data, (c_out,), "pb")
    mid_activation = data.draw(st.sampled_from(ACTIVATIONS), label="mid")
    mid = reference.activation(mid_activation, reference.conv2d(
        x, dw, db, stride, pairs[0] + pairs[1], dilation, c), 0.1)
    expected = reference.activation(activation, reference.conv2d(
        mid, pw, pb, (1, 1), (0, 0, 0, 0), (1, 1), 1), 0.1)

    def run():
        return cnnfast.separable_conv2d(t(x), dw, pw, db, pb, stride, arg, dilation,
                                        activation=activation, mid_activation=mid_activation,
                                        negative_slope=0.1, layout=layout)

    y = run_tiers_threads(data, run)
    mid_tol = reference.gemm_tolerance(kh * kw, np.abs(x).max(), np.abs(dw).max()) + \
        ACTIVATION_SLACK * (1 + np.abs(mid).max())
    tol = reference.gemm_tolerance(c * m, np.abs(mid).max() + mid_tol, np.abs(pw).max()) + \
        c * m * mid_tol * np.abs(pw).max()
    np.testing.assert_allclose(to_first(y) if last else y, expected, rtol=0,
                               atol=tol + ACTIVATION_SLACK * (1 + np.abs(expected).max()))


@FUZZ
@given(data=st.data())
def test_matmul(data):
    m, k, n = (data.draw(st.integers(0 if i == 1 else 1, 70), label=name)
               for i, name in enumerate("mkn"))
    exact = draw_exact(data, None)
    a = normals(data, (k, m) if data.draw(st.booleans(), label="a^T") else (m, k), "a",
                exact=exact)
    b = normals(data, (n, k) if data.draw(st.booleans(), label="b^T") else (k, n), "b",
                exact=exact)
    a = a.T if a.shape != (m, k) else a
    b = b.T if b.shape != (k, n) else b
    use_out = data.draw(st.booleans(), label="out")

    def run():
        out = np.empty((m, n), np.float32) if use_out else None
        y = cnnfast.matmul(a, b, out=out)
        assert out is None or y is out
        return y

    y = run_tiers_threads(data, run)
    assert_conv_close(y, reference.matmul(a, b), k, a, b, exact=exact)


# -- batch norm, folding, activations ----------------------------------------------------------

BN_LAYOUTS = {2: ["NC"], 3: ["NCL", "NLC"], 4: ["NCHW", "NHWC"], 5: ["NCDHW", "NDHWC"]}


@FUZZ
@given(data=st.data())
def test_batch_norm(data):
    ndim = data.draw(st.integers(2, 5), label="ndim")
    layout = data.draw(st.sampled_from(BN_LAYOUTS[ndim]), label="layout")
    c = data.draw(st.integers(1, 20), label="c")
    spatial = tuple(data.draw(st.integers(1, 5), label="size") for _ in range(ndim - 2))
    n = data.draw(st.integers(1, 3), label="n")
    training = data.draw(st.booleans(), label="training")
    assume(not training or n * int(np.prod(spatial)) > 1)
    shape = (n,) + spatial + (c,) if layout.endswith("C") and ndim > 2 else (n, c) + spatial
    axis = -1 if shape[-1] == c and layout.endswith("C") and ndim > 2 else 1
    x = normals(data, shape, "x", scale=2.0) + np.float32(data.draw(st.integers(-3, 3)))
    rm, rv = normals(data, (c,), "rm"), np.abs(normals(data, (c,), "rv")) + np.float32(0.1)
    w = normals(data, (c,), "w") if data.draw(st.booleans(), label="affine") else None
    b = normals(data, (c,), "b") if w is not None else None
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.1]), label="eps")
    momentum = data.draw(st.sampled_from([0.1, 0.5, None]), label="momentum")
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    in_place = data.draw(st.booleans(), label="in place")
    outputs = []

    def run():
        rm_c, rv_c = rm.copy(), rv.copy()
        tracked = np.array([data_tracked], np.int64)
        xin = x.copy()
        y = cnnfast.batch_norm(xin, rm_c, rv_c, w, b, training, momentum, eps,
                               activation=activation, negative_slope=0.1, layout=layout,
                               num_batches_tracked=tracked, out=xin if in_place else None)
        outputs.append((rm_c, rv_c, tracked))
        return y

    data_tracked = data.draw(st.integers(0, 5), label="tracked")
    y = run_tiers_threads(data, run)
    for rm_c, rv_c, tracked in outputs[1:]:  # the running statistics do not depend on threads
        np.testing.assert_array_equal(rm_c, outputs[0][0])
        np.testing.assert_array_equal(rv_c, outputs[0][1])
    if training:
        mean, var = reference.batch_stats(x, axis)
        expected = reference.batch_norm(x, mean, var, w, b, eps, axis)
        count = x.size // c
        factor = 1.0 / (data_tracked + 1) if momentum is None else momentum
        np.testing.assert_allclose(outputs[0][0], (1 - factor) * rm + factor * mean, rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(outputs[0][1], (1 - factor) * rv +
                                   factor * var * count / (count - 1), rtol=1e-5, atol=1e-5)
        assert outputs[0][2][0] == data_tracked + 1
    else:
        expected = reference.batch_norm(x, rm, rv, w, b, eps, axis)
        np.testing.assert_array_equal(outputs[0][0], rm)
    expected = reference.activation(activation, expected, 0.1)
    scale = np.abs(expected).max() + 1
    np.testing.assert_allclose(y, expected, rtol=256 * reference.EPS_FLOAT32,
                               atol=256 * reference.EPS_FLOAT32 * scale + ACTIVATION_SLACK * scale)


@FUZZ
@given(data=st.data())
def test_fold_batch_norm_and_conv_bn_act(data):
    groups = data.draw(st.integers(1, 2), label="groups")
    icg, ocg = data.draw(st.integers(1, 3), label="icg"), data.draw(st.integers(1, 3), label="ocg")
    k = data.draw(st.integers(1, 3), label="k")
    c_in, c_out = icg * groups, ocg * groups
    transposed = data.draw(st.booleans(), label="transposed")
    x = normals(data, (1, c_in, 5, 5), "x")
    w = normals(data, (c_in, ocg, k, k) if transposed else (c_out, icg, k, k), "w")
    bias = normals(data, (c_out,), "bias") if data.draw(st.booleans(), label="bias") else None
    rm, rv = normals(data, (c_out,), "rm"), np.abs(normals(data, (c_out,), "rv")) + 0.5
    rv = rv.astype(np.float32)
    bn_w = normals(data, (c_out,), "bn_w") if data.draw(st.booleans(), label="bn_w") else None
    bn_b = normals(data, (c_out,), "bn_b") if data.draw(st.booleans(), label="bn_b") else None
    eps = data.draw(st.sampled_from([1e-5, 1e-3]), label="eps")
    if transposed:
        conv = reference.conv_transpose2d_general(x, w, bias, (1, 1), (0, 0, 0, 0), (0, 0),
                                                  (1, 1), groups)
    else:
        conv = reference.conv2d(x, w, bias, (1, 1), (1, 1, 1, 1), (1, 1), groups)
    expected = reference.batch_norm(conv, rm, rv, bn_w, bn_b, eps, 1)
    new_w, new_b = cnnfast.fold_batch_norm(w, bias, rm, rv, bn_w, bn_b, eps,
                                           transposed=transposed, groups=groups)
    scale = np.abs(np.asarray(bn_w if bn_w is not None else 1.0)).max() / np.sqrt(rv.min() + eps)
    if transposed:
        y = run_tiers_threads(data, lambda: cnnfast.conv_transpose2d(x, new_w, new_b,
                                                                     groups=groups))
    else:
        y = run_tiers_threads(data, lambda: cnnfast.conv2d(x, new_w, new_b, 1, 1, 1, groups))
    tol = reference.gemm_tolerance(icg * k * k, np.abs(x).max(), np.abs(w).max() * scale)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=4 * tol + 1e-5)
    if transposed:
        return
    activation = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
    last = data.draw(st.booleans(), label="channels_last")
    fused = run_tiers_threads(data, lambda: cnnfast.conv_bn_act(
        to_last(x) if last else x, w, bias, rm, rv, bn_w, bn_b, 1, 1, 1, groups, eps=eps,
        activation=activation, negative_slope=0.1, layout="NHWC" if last else "NCHW"))
    np.testing.assert_allclose(to_first(fused) if last else fused,
                               reference.activation(activation, expected, 0.1), rtol=1e-5,
                               atol=4 * tol + 1e-5 + ACTIVATION_SLACK * (np.abs(expected).max()
                                                                          + 1))


@FUZZ
@given(data=st.data())
def test_activations(data):
    name = data.draw(st.sampled_from(ACTIVATIONS[1:]), label="activation")
    shape = tuple(data.draw(st.integers(0 if i == 0 else 1, 40), label="dim")
                  for i in range(data.draw(st.integers(1, 4), label="ndim")))
    x = normals(data, shape, "x", scale=data.draw(st.sampled_from([1.0, 5.0, 40.0])))
    in_place = data.draw(st.booleans(), label="in place")
    slope = data.draw(st.sampled_from([0.01, 0.2, -0.5]), label="slope")
    kwargs = {"negative_slope": slope} if name == "leaky_relu" else {}

    def run():
        xin = x.copy()
        y = getattr(cnnfast, name)(xin, out=xin if in_place else None, **kwargs)
        assert not in_place or y is xin
        return y

    y = run_tiers_threads(data, run)
    expected = reference.activation(name, x, slope)
    np.testing.assert_allclose(y, expected, rtol=8 * reference.EPS_FLOAT32,
                               atol=ACTIVATION_SLACK)


# -- pooling -----------------------------------------------------------------------------------

LAYOUT_NAMES = {1: ("NCL", "NLC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


@st.composite
def pool_case(draw):
    dims = draw(st.integers(1, 3), label="dims")
    kernel = tuple(draw(st.integers(1, 4), label="k") for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3), label="s") for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2), label="d") for _ in range(dims))
    pairs = [(draw(st.integers(0, (d * (k - 1) + 1) // 2), label="pb"),
              draw(st.integers(0, (d * (k - 1) + 1) // 2), label="pe"))
             for k, d in zip(kernel, dilation)]
    sizes = tuple(draw(st.integers(1, 9 if dims < 3 else 5), label="size") for _ in range(dims))
    c = draw(st.integers(1, 9 if dims < 3 else 4), label="c")
    return dims, kernel, stride, dilation, pairs, sizes, c


@FUZZ
@given(data=st.data())
def test_pool(data):
    dims, kernel, stride, dilation, pairs, sizes, c = data.draw(pool_case())
    arg, pairs = padding_form(data, pairs, sizes, kernel, stride, dilation)
    assume(_padded_ok(sizes, pairs, kernel, dilation))
    mode = data.draw(st.sampled_from(["max", "avg", "lp"]), label="mode")
    ceil_mode = data.draw(st.booleans(), label="ceil")
    last = data.draw(st.booleans(), label="channels_last")
    layout = LAYOUT_NAMES[dims][last]
    x = normals(data, (2, c) + sizes, "x")
    xin = to_last(x) if last else x
    back = to_first if last else (lambda a: a)
    if mode == "max":
        expected, expected_idx = reference.pool(x, "max", kernel, stride, pairs, dilation,
                                                ceil_mode)
        y, idx = run_tiers_threads(data, lambda: getattr(cnnfast, f"max_pool{dims}d")(
            xin, kernel, stride, arg, dilation, ceil_mode, True, layout=layout))
        np.testing.assert_array_equal(back(y), expected.astype(np.float32))
        np.testing.assert_array_equal(back(idx), expected_idx)
        return
    if mode == "avg":
        include = data.draw(st.booleans(), label="count_include_pad")
        divisor = data.draw(st.sampled_from([None, None, 1, 3]), label="divisor")
        expected = reference.pool(x, "avg", kernel, stride, pairs, dilation, ceil_mode, include,
                                  divisor)
        y = run_tiers_threads(data, lambda: getattr(cnnfast, f"avg_pool{dims}d")(
            xin, kernel, stride, arg, ceil_mode, include, divisor, dilation=dilation,
            layout=layout))
    else:
        power = data.draw(st.sampled_from([1, 2, 3, 1.5]), label="p")
        expected = reference.pool(x, "lp", kernel, stride, pairs, dilation, ceil_mode,
                                  power=power)
        y = run_tiers_threads(data, lambda: getattr(cnnfast, f"lp_pool{dims}d")(
            xin, power, kernel, stride, ceil_mode, padding=arg, dilation=dilation,
            layout=layout))
    taps = int(np.prod(kernel))
    np.testing.assert_allclose(back(y), expected, rtol=8 * taps * reference.EPS_FLOAT32,
                               atol=8 * taps * reference.EPS_FLOAT32 * np.abs(x).max())


@FUZZ
@given(data=st.data())
def test_adaptive_and_global_pool(data):
    dims = data.draw(st.integers(1, 3), label="dims")
    sizes = tuple(data.draw(st.integers(1, 9 if dims < 3 else 5), label="size")
                  for _ in range(dims))
    output = tuple(data.draw(st.integers(1, s + 2), label="out") for s in sizes)
    c = data.draw(st.integers(1, 9), label="c")
    last = data.draw(st.booleans(), label="channels_last")
    layout = LAYOUT_NAMES[dims][last]
    x = normals(data, (2, c) + sizes, "x")
    xin = to_last(x) if last else x
    back = to_first if last else (lambda a: a)
    mode = data.draw(st.sampled_from(["max", "avg"]), label="mode")
    is_global = dims == 2 and data.draw(st.booleans(), label="global")
    if is_global:
        output = (1, 1)
    expected = reference.adaptive_pool(x, mode, output)
    if is_global:
        y = run_tiers_threads(data, lambda: getattr(cnnfast, f"global_{mode}_pool2d")(
            xin, layout=layout))
    else:
        y = run_tiers_threads(data, lambda: getattr(cnnfast, f"adaptive_{mode}_pool{dims}d")(
            xin, output, mode == "max", layout=layout))
    if mode == "max":
        if not is_global:
            y, idx = y
            np.testing.assert_array_equal(back(idx), expected[1])
        np.testing.assert_array_equal(back(y), expected[0].astype(np.float32))
    else:
        np.testing.assert_allclose(back(y), expected, rtol=1e-5, atol=1e-6)


@FUZZ
@given(data=st.data())
def test_max_unpool(data):
    dims = data.draw(st.integers(1, 3), label="dims")
    kernel = tuple(data.draw(st.integers(1, 3), label="k") for _ in range(dims))
    stride = tuple(data.draw(st.integers(1, 3), label="s") for _ in range(dims))
    pad = tuple(data.draw(st.integers(0, k // 2), label="p") for k in kernel)
    sizes = tuple(data.draw(st.integers(k, 7 if dims < 3 else 5), label="size") for k in kernel)
    c = data.draw(st.integers(1, 5), label="c")
    last = data.draw(st.booleans(), label="channels_last")
    layout = LAYOUT_NAMES[dims][last]
    x = normals(data, (2, c) + sizes, "x")
    pooled, idx = reference.pool(x, "max", kernel, stride, [(p, p) for p in pad], (1,) * dims)
    default = [(i - 1) * s - 2 * p + k for i, s, p, k in
               zip(pooled.shape[2:], stride, pad, kernel)]
    size = [d + data.draw(st.integers(0, s - 1), label="extra") for d, s in zip(default, stride)]
    assume(all(int(idx.max(initial=0)) < np.prod(size) for _ in [0]))
    pooled = pooled.astype(np.float32)
    expected = reference.max_unpool(pooled, idx, size)
    t = to_last if last else (lambda a: a)
    y = run_tiers_threads(data, lambda: getattr(cnnfast, f"max_unpool{dims}d")(
        t(pooled), t(idx), kernel, stride, pad, output_size=size, layout=layout))
    np.testing.assert_array_equal(to_first(y) if last else y, expected)


@FUZZ
@given(data=st.data())
def test_stochastic_pool2d(data):
    kernel = (data.draw(st.integers(1, 4), label="kh"), data.draw(st.integers(1, 4), label="kw"))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    pairs = [(data.draw(st.integers(0, k // 2)), data.draw(st.integers(0, k // 2)))
             for k in kernel]
    sizes = (data.draw(st.integers(1, 9), label="h"), data.draw(st.integers(1, 9), label="w"))
    arg, pairs = padding_form(data, pairs, sizes, kernel, stride, (1, 1))
    assume(_padded_ok(sizes, pairs, kernel, (1, 1)))
    c = data.draw(st.integers(1, 9), label="c")
    x = np.maximum(normals(data, (2, c) + sizes, "x"), 0)  # ReLU output: zeros included
    last = data.draw(st.booleans(), label="channels_last")
    t, back = (to_last, to_first) if last else ((lambda a: a), (lambda a: a))
    layout = "NHWC" if last else "NCHW"
    training = data.draw(st.booleans(), label="training")
    seed = data.draw(st.integers(0, 2**63), label="seed")
    y, idx = run_tiers_threads(data, lambda: cnnfast.stochastic_pool2d(
        t(x), kernel, stride, arg, training=training, seed=seed, return_indices=True,
        layout=layout))
    y, idx = back(y), back(idx)
    if not training:
        expected = reference.stochastic_pool_eval(x, kernel, stride, pairs)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
        return
    # Training draws one window element: y is x at the returned index, which lies in the window
    # (or y is 0 for an all-zero window).
    plane = x.reshape(x.shape[:2] + (-1,))
    picked = np.take_along_axis(plane, idx.reshape(idx.shape[:2] + (-1,)), axis=2)
    np.testing.assert_array_equal(y.reshape(picked.shape), picked)
    window_max = reference.pool(x, "max", kernel, stride, pairs, (1, 1))[0]
    assert (y <= window_max).all()
    # The same seed gives the same draw in the other layout.
    y2 = cnnfast.stochastic_pool2d(to_last(x) if not last else x, kernel, stride, arg,
                                   training=True, seed=seed, layout="NCHW" if last else "NHWC")
    np.testing.assert_array_equal(y2 if last else to_first(y2), y)


@FUZZ
@given(data=st.data())
def test_spatial_pyramid_and_spp_fast(data):
    h, w = data.draw(st.integers(1, 9), label="h"), data.draw(st.integers(1, 9), label="w")
    c = data.draw(st.integers(1, 6), label="c")
    last = data.draw(st.booleans(), label="channels_last")
    layout = "NHWC" if last else "NCHW"
    x = normals(data, (2, c, h, w), "x")
    xin = to_last(x) if last else x
    if data.draw(st.booleans(), label="spp_fast"):
        k = data.draw(st.sampled_from([1, 3, 5]), label="k")
        y = run_tiers_threads(data, lambda: cnnfast.spp_fast(xin, k, layout=layout))
        parts = [x] + [reference.pool(x, "max", (kk, kk), (1, 1), [(kk // 2, kk // 2)] * 2,
                                      (1, 1))[0] for kk in (k, 2 * k - 1, 3 * k - 2)]
        np.testing.assert_array_equal(to_first(y) if last else y,
                                      np.concatenate(parts, axis=1).astype(np.float32))
        return
    levels = data.draw(st.lists(st.integers(1, min(h, w)), min_size=1, max_size=3),
                       label="levels")
    mode = data.draw(st.sampled_from(["max", "avg"]), label="mode")
    y = run_tiers_threads(data, lambda: cnnfast.spatial_pyramid_pool2d(xin, levels, mode,
                                                                       layout=layout))
    parts = []
    for level in levels:
        pooled = reference.adaptive_pool(x, mode, (level, level))
        parts.append((pooled[0] if mode == "max" else pooled).reshape(2, -1))
    np.testing.assert_allclose(y, np.concatenate(parts, axis=1), rtol=1e-5, atol=1e-6)


@FUZZ
@given(data=st.data())
def test_upsample(data):
    h, w = data.draw(st.integers(1, 8), label="h"), data.draw(st.integers(1, 8), label="w")
    x = normals(data, (1, 2, h, w), "x")
    if data.draw(st.booleans(), label="by size"):
        size = (data.draw(st.integers(1, 17), label="oh"), data.draw(st.integers(1, 17)))
        scale, out = None, size
        ratios = (h / size[0], w / size[1])
    else:
        scale = (data.draw(st.sampled_from([0.5, 1, 1.5, 2, 3]), label="sh"),
                 data.draw(st.sampled_from([0.5, 1, 2, 2.5]), label="sw"))
        out = (int(np.floor(h * scale[0])), int(np.floor(w * scale[1])))
        assume(min(out) >= 1)
        size, ratios = None, (1 / scale[0], 1 / scale[1])
    if data.draw(st.booleans(), label="nearest"):
        y = cnnfast.upsample_nearest2d(x, scale_factor=scale, size=size)
        np.testing.assert_array_equal(y, reference.upsample_nearest2d(x, *out, *ratios))
    else:
        align = data.draw(st.booleans(), label="align_corners")
        y = cnnfast.upsample_bilinear2d(x, scale_factor=scale, size=size, align_corners=align)
        np.testing.assert_allclose(y, reference.upsample_bilinear2d(x, *out, *ratios, align),
                                   rtol=1e-5, atol=1e-5)

