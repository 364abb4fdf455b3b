"""Pre-packed convolution weights in cnnfast.nn: Conv2d packs its weight once into the GEMM's
panels (per layout and GEMM kernel) and the result equals the functional call bitwise; a new
weight array, a max_isa cap or a layout change repacks; an in-place edit of a packed weight
raises instead of going stale; the C++ side rejects a packed weight that does not match the
call. DeformConv2d's tap-major copy (conv2d_pack_weight) is checked here too."""

import numpy as np
import pytest

import cnnfast
import cnnfast.nn as nn
from cnnfast import _C


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("c_in, c_out, groups, k, packed", [
    (16, 8, 1, 3, True), (32, 8, 2, 3, True), (16, 8, 1, 1, True), (16, 8, 4, 3, False),
    (3, 45, 1, 3, True),    # c_out: 3 panels of 14 + 3 rows (NCHW), 1 of 32 + 13 (NHWC)
    (40, 33, 1, 2, True),   # non-square-ish: 2x2 taps, K = 160
    (300, 17, 1, 1, True),  # K = 300 spans two k blocks of 256
    (8, 8, 8, 3, False),    # depthwise: reads OIHW
])
def test_packed_layer_equals_the_functional_call(isa, layout, c_in, c_out, groups, k, packed):
    rng = np.random.default_rng(0)
    layer = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, rng=rng)
    layer.layout = layout
    shape = (2, 9, 7, c_in) if layout == "NHWC" else (2, c_in, 9, 7)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    np.testing.assert_array_equal(y, cnnfast.conv2d(x, layer.weight, layer.bias, 1, k // 2,
                                                    1, groups, layout=layout))
    # At most 8 channels per group runs "direct", and depthwise its own kernel: both read OIHW.
    assert (layer._packed[1] is not None) == packed
    if packed:
        assert layer._packed[1].kernel == _C.gemm_kernel()
        # An NCHW call that computes as NHWC (A read in place, or small images) packs for NHWC.
        pads = (k // 2,) * 4
        runs_nhwc = layout == "NHWC" or _C.conv2d_runs_via_nhwc(x, layer.weight, (1, 1), pads,
                                                                (1, 1), groups)
        assert layer._packed[1].nhwc == runs_nhwc


def test_packed_weight_follows_the_isa_cap_and_the_layout():
    rng = np.random.default_rng(2)
    layer = nn.Conv2d(12, 20, 3, padding=1, rng=rng)
    x = rng.standard_normal((1, 12, 6, 5)).astype(np.float32)
    expected = layer(x)
    first = layer._packed[1]
    with cnnfast.max_isa("scalar"):
        np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
        assert layer._packed[1].kernel == _C.gemm_kernel()
        # Repacked unless the first pack was already for this kernel (CNNFAST_MAX_ISA=scalar).
        assert (layer._packed[1] is not first) == (first.kernel != _C.gemm_kernel())
    np.testing.assert_array_equal(layer(x), expected)
    layer.layout = "NHWC"
    x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(layer(x_last), expected.transpose(0, 2, 3, 1))
    assert layer._packed[1].nhwc


def test_nchw_layer_packs_for_nhwc_when_its_calls_run_via_nhwc_copies():
    # 64 -> 64 3x3 on 8x8 images computes as NHWC on every tier (NHWC copies; at the scalar
    # tier's 4-pixel tiles, A read in place): the layer packs its weight as the NHWC GEMM reads
    # it. A 64 -> 8 1x1 does too little work per float for copies and stays NCHW. Same bits as
    # the functional call either way.
    rng = np.random.default_rng(5)
    for c_out, k, via in ((64, 3, True), (8, 1, False)):
        layer = nn.Conv2d(64, c_out, k, padding=k // 2, rng=rng)
        x = rng.standard_normal((2, 64, 8, 8)).astype(np.float32)
        pads = (k // 2,) * 4
        assert _C.conv2d_runs_via_nhwc(x, layer.weight, (1, 1), pads, (1, 1), 1) == via
        np.testing.assert_array_equal(layer(x),
                                      cnnfast.conv2d(x, layer.weight, layer.bias, 1, k // 2))
        assert layer._packed[1].nhwc == via


def test_nhwc_packed_weight_in_an_nchw_call():
    # Used when the NCHW call computes as NHWC (3x3 on 8x8 images: NHWC copies; on 64x64: A
    # read in place from a padded NHWC copy); refused when it runs the NCHW GEMMs (a 1x1 on
    # 64x64x64: 2 MiB of image, too little work per float for copies).
    rng = np.random.default_rng(6)
    args = (None, (1, 1), (1, 1, 1, 1), (1, 1), 1, None, 0.01, False, "auto", None)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    packed = _C.conv2d_prepack_weight(w, 1, True)
    for shape in ((2, 64, 8, 8), (1, 64, 64, 64)):
        x = rng.standard_normal(shape).astype(np.float32)
        assert _C.conv2d_runs_via_nhwc(x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
        np.testing.assert_array_equal(_C.conv2d(x, w, *args, packed=packed),
                                      _C.conv2d(x, w, *args))
    w1 = rng.standard_normal((64, 64, 1, 1)).astype(np.float32)
    packed1 = _C.conv2d_prepack_weight(w1, 1, True)
    args1 = (None, (1, 1), (0, 0, 0, 0), (1, 1), 1, None, 0.01, False, "auto", None)
    large = rng.standard_normal((1, 64, 64, 64)).astype(np.float32)
    assert not _C.conv2d_runs_via_nhwc(large, w1, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match=r"packed weight was made for another .* \(64, 64, 1, 1\)"):
        _C.conv2d(large, w1, *args1, packed=packed1)


def test_runs_via_nhwc_validates_its_arguments():
    w = np.zeros((8, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must be 4-D"):
        _C.conv2d_runs_via_nhwc(np.zeros((4, 5, 5), np.float32), w, (1, 1), (0,) * 4, (1, 1), 1)
    with pytest.raises(ValueError, match=r"expects 4 input channels"):
        _C.conv2d_runs_via_nhwc(np.zeros((1, 5, 5, 5), np.float32), w, (1, 1), (0,) * 4, (1, 1),
                                1)


def test_packed_weight_of_another_kernel_is_not_used():
    # A weight packed before a cap is ignored by calls on the capped kernel (they read the
    # OIHW weight): same numbers as without it.
    rng = np.random.default_rng(3)
    w = rng.standard_normal((10, 6, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 6, 7, 7)).astype(np.float32)
    packed = _C.conv2d_prepack_weight(w, 1, False)
    args = (None, (1, 1), (1, 1, 1, 1), (1, 1), 1, None, 0.01, False, "auto", None)
    with cnnfast.max_isa("scalar"):
        np.testing.assert_array_equal(_C.conv2d(x, w, *args, packed=packed),
                                      _C.conv2d(x, w, *args))


def test_prepack_weight_errors():
    w = np.zeros((8, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="weight must be 4-D"):
        _C.conv2d_prepack_weight(w[0], 1, False)
    with pytest.raises(ValueError, match="divisible by groups 3"):
        _C.conv2d_prepack_weight(w, 3, False)
    assert _C.conv2d_prepack_weight(w, 2, False) is None  # 4 channels per group: "direct"
    packed = _C.conv2d_prepack_weight(w, 1, False)
    x = np.zeros((1, 4, 5, 5), np.float32)
    args = (None, (1, 1), (1, 1, 1, 1), (1, 1), 1, None, 0.01)
    for weight, nhwc, xx in ((np.zeros((8, 4, 1, 3), np.float32), False, x),
                             (w, True, np.zeros((1, 5, 5, 4), np.float32))):
        with pytest.raises(ValueError, match="packed weight was made for another"):
            _C.conv2d(xx, weight, *args, nhwc, "auto", None, packed=packed)
    with pytest.raises(ValueError, match="packed weight was made for another"):
        _C.conv2d(x, w, *args, False, "direct", None, packed=packed)


def test_new_weights_are_repacked_and_in_place_edits_raise():
    rng = np.random.default_rng(1)
    layer = nn.Conv2d(4, 4, 3, padding=1, rng=rng)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    layer(x)
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0, 0, 0] = 1.0
    weight = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    layer.weight = weight
    np.testing.assert_array_equal(layer(x), cnnfast.conv2d(x, weight, layer.bias, padding=1))
    state = layer.state_dict()
    state["weight"] = np.ones((4, 4, 3, 3), np.float32)
    layer.load_state_dict(state)
    np.testing.assert_array_equal(layer(x), cnnfast.conv2d(x, state["weight"], layer.bias,
                                                           padding=1))


def test_pack_weight_order_and_errors():
    w = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(_C.conv2d_pack_weight(w).reshape(2, -1),
                                  w.transpose(0, 2, 3, 1).reshape(2, -1))
    with pytest.raises(ValueError, match="weight must be 4-D"):
        _C.conv2d_pack_weight(w[0])


@pytest.mark.parametrize("padding, stride, layout", [(1, 1, "NCHW"), ("same", 2, "NCHW"),
                                                     ((0, 1, 2, 0), 1, "NHWC"),
                                                     ("valid", 1, "NHWC")])
def test_direct_call_path_equals_the_checked_path(padding, stride, layout):
    # A contiguous float32 input takes the layer's direct call into the extension; any other
    # input (here a strided view) the fully checked functional path: the same numbers.
    rng = np.random.default_rng(4)
    layer = nn.Conv2d(6, 8, 3, stride=stride, padding=padding, rng=rng)
    if layout == "NHWC":
        layer.layout = "NHWC"
    for h, w in ((9, 7), (8, 8), (9, 7)):  # "same" pads depend on the size: cached per size
        shape = (2, h, w, 6) if layout == "NHWC" else (2, 6, h, w)
        x = rng.standard_normal(shape).astype(np.float32)
        strided = np.repeat(x, 2, axis=0)[::2]
        assert not strided.flags.c_contiguous
        expected = cnnfast.conv2d(x, layer.weight, layer.bias, stride, padding, layout=layout)
        np.testing.assert_array_equal(layer(x), expected)
        np.testing.assert_array_equal(layer(strided), expected)


def test_direct_call_path_reports_bad_shapes():
    layer = nn.Conv2d(6, 8, 3)
    with pytest.raises(ValueError, match="conv2d.*channels"):
        layer(np.zeros((1, 5, 8, 8), np.float32))
    with pytest.raises(ValueError, match="conv2d"):
        layer(np.zeros((1, 6, 2, 2), np.float32))  # smaller than the kernel
    with pytest.raises(TypeError, match="float32"):
        layer(np.zeros((1, 6, 8, 8)))  # float64 takes the checked path


def test_packed_layer_copies_and_pickles():
    import copy
    import pickle

    rng = np.random.default_rng(5)
    layer = nn.Conv2d(6, 8, 3, padding=1, rng=rng)
    x = rng.standard_normal((1, 6, 5, 5)).astype(np.float32)
    expected = layer(x)  # packs
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        np.testing.assert_array_equal(clone(x), expected)
        assert clone._packed[1] is not None and clone.weight is not layer.weight


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_layer_residual_and_its_activation(layout):
    rng = np.random.default_rng(6)
    layer = nn.Conv2d(8, 16, 3, padding=1, rng=rng)
    layer.layout = layout
    shape = (1, 5, 6, 8) if layout == "NHWC" else (1, 8, 5, 6)
    x = rng.standard_normal(shape).astype(np.float32)
    plain = layer(x)
    r = rng.standard_normal(plain.shape).astype(np.float32)
    np.testing.assert_array_equal(layer(x, residual=r), plain + r)
    np.testing.assert_array_equal(layer(x, residual=r, residual_activation="relu"),
                                  np.maximum(plain + r, 0))
    strided = np.repeat(x, 2, axis=0)[::2]  # the checked path takes the same arguments
    np.testing.assert_array_equal(layer(strided, residual=r, residual_activation="relu"),
                                  np.maximum(plain + r, 0))
    with pytest.raises(ValueError, match="unknown activation|activation"):
        layer(x, residual=r, residual_activation="swish")


@pytest.mark.parametrize("batch_shape", [(), (1,), (3,), (2, 5)])
def test_linear_packs_its_weight_and_adds_the_bias_in_the_epilogue(isa, batch_shape):
    rng = np.random.default_rng(8)
    layer = nn.Linear(300, 45, rng=rng)  # K = 300: two k blocks; 45 = 32 + 13 columns
    x = rng.standard_normal(batch_shape + (300,)).astype(np.float32)
    expected = cnnfast.matmul(x.reshape(-1, 300), np.ascontiguousarray(layer.weight.T))
    expected = (expected + layer.bias).reshape(batch_shape + (45,))
    np.testing.assert_array_equal(layer(x), expected)
    assert layer._packed[1].kernel == _C.gemm_kernel()
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0] = 1.0


def test_linear_repacks_for_a_new_weight_or_kernel_and_skips_huge_weights(monkeypatch):
    from cnnfast.nn import linear

    rng = np.random.default_rng(9)
    layer = nn.Linear(20, 10, bias=False, rng=rng)
    x = rng.standard_normal((4, 20)).astype(np.float32)
    first = layer(x)
    with cnnfast.max_isa("scalar"):
        np.testing.assert_allclose(layer(x), first, rtol=1e-5, atol=1e-5)
        assert layer._packed[1].kernel == _C.gemm_kernel()
    layer.weight = np.ones((10, 20), np.float32)
    np.testing.assert_array_equal(layer(x), cnnfast.matmul(x, np.ones((20, 10), np.float32)))
    monkeypatch.setattr(linear, "PACK_MAX_BYTES", 100)
    layer.weight = rng.standard_normal((10, 20)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), cnnfast.matmul(x, layer.weight.T))
    assert layer._packed[1] is None and layer.weight.flags.writeable


def test_linear_kernel_errors():
    w = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"x with shape \(2, 5\) and weight with shape \(4, 3\)"):
        _C.linear(np.zeros((2, 5), np.float32), w, None)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        _C.linear(np.zeros((2, 3), np.float32), w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="packed weight was made for another"):
        _C.linear(np.zeros((2, 3), np.float32), w, None,
                  _C.linear_prepack_weight(np.zeros((5, 3), np.float32)))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        _C.linear_prepack_weight(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="float64"):
        nn.Linear(3, 4)(np.zeros((2, 3)))
