"""Pre-packed convolution weights in cnnfast.nn: Conv2d packs its weight once in the GEMM's
tap-major order and the result equals the functional call bitwise; a new weight array is
repacked; an in-place edit of a packed weight raises instead of going stale; the C++ side
rejects a tap-major weight for the non-GEMM algorithms."""

import numpy as np
import pytest

import cnnfast
import cnnfast.nn as nn
from cnnfast import _C, functional


@pytest.mark.parametrize("c_in, groups, k, packed", [(16, 1, 3, True), (32, 2, 3, True),
                                                     (16, 1, 1, False), (16, 4, 3, False)])
def test_packed_layer_equals_the_functional_call(isa, c_in, groups, k, packed):
    rng = np.random.default_rng(0)
    layer = nn.Conv2d(c_in, 8, k, padding=k // 2, groups=groups, rng=rng)
    x = rng.standard_normal((2, c_in, 9, 7)).astype(np.float32)
    y = layer(x)
    np.testing.assert_array_equal(y, cnnfast.conv2d(x, layer.weight, layer.bias, 1, k // 2,
                                                    1, groups))
    # At most 8 channels per group runs "direct", which reads OIHW; 1x1 is already tap-major.
    assert (layer._packed[1] is not None) == packed


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
    x = np.zeros((1, 8, 5, 5), np.float32)
    w = np.zeros((8, 4, 3, 3), np.float32)  # groups=2, 4 channels per group: "direct"
    with pytest.raises(ValueError, match="tap-major .* needs a GEMM algorithm, not 'direct'"):
        functional._conv2d(x, w, None, 1, 1, 1, 2, "zeros", None, 0.01, "NCHW", "auto", None,
                           "conv2d", weight_tap_major=True)


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
