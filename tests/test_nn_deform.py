"""cnnfast.nn.DeformConv2d and ModulatedDeformConv2d: against the float64 reference and the
functional op, state_dict keys, save/load round trip, fuse() with a following batch norm, and
constructor errors."""

import numpy as np
import pytest

import cnnfast
import cnnfast.nn as nn
import reference


def test_deform_conv2d_layer_matches_reference(isa):
    rng = np.random.default_rng(0)
    layer = nn.DeformConv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=rng)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    offset = rng.standard_normal((2, 2 * 2 * 9, 5, 4)).astype(np.float32)
    mask = rng.random((2, 2 * 9, 5, 4)).astype(np.float32)
    y = layer(x, offset, mask)
    expected = reference.deform_conv2d(x, offset, layer.weight, layer.bias, (2, 2), (1, 1, 1, 1),
                                       (1, 1), mask)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert list(layer.state_dict()) == ["weight", "bias"]
    assert layer.weight.shape == (6, 2, 3, 3)


def test_modulated_block_is_conv_offsets_then_deform():
    rng = np.random.default_rng(1)
    block = nn.ModulatedDeformConv2d(6, 8, 3, padding=1, deform_groups=2, rng=rng)
    assert list(block.state_dict()) == ["weight", "bias", "conv_offset.weight",
                                        "conv_offset.bias"]
    assert block.conv_offset.weight.shape == (3 * 2 * 9, 6, 3, 3)
    x = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    # Zero-initialised offsets: every sample at its grid point with mask 0.5.
    np.testing.assert_allclose(block(x), cnnfast.conv2d(x, 0.5 * block.weight, block.bias,
                                                         padding=1), rtol=1e-5, atol=1e-5)
    state = block.state_dict()
    state["conv_offset.weight"] = 0.1 * rng.standard_normal(state["conv_offset.weight"].shape
                                                            ).astype(np.float32)
    state["conv_offset.bias"] = rng.standard_normal(54).astype(np.float32)
    block.load_state_dict(state)
    out = cnnfast.conv2d(x, state["conv_offset.weight"], state["conv_offset.bias"], padding=1)
    offset, logits = out[:, :36], out[:, 36:].astype(np.float64)
    expected = reference.deform_conv2d(x, offset, block.weight, block.bias, (1, 1),
                                       (1, 1, 1, 1), (1, 1), 1 / (1 + np.exp(-logits)))
    np.testing.assert_allclose(block(x), expected, rtol=1e-4, atol=1e-4)


def test_modulated_block_save_load_and_fuse(tmp_path):
    rng = np.random.default_rng(2)
    block = nn.ModulatedDeformConv2d(4, 4, 3, padding=1, rng=rng)
    state = block.state_dict()
    state["conv_offset.weight"] = 0.1 * rng.standard_normal(state["conv_offset.weight"].shape
                                                            ).astype(np.float32)
    block.load_state_dict(state)
    bn = nn.BatchNorm2d(4)
    bn.load_state_dict({**bn.state_dict(), "running_mean": rng.random(4).astype(np.float32),
                        "running_var": 1 + rng.random(4).astype(np.float32)})
    model = nn.Sequential(block, bn, nn.ReLU()).eval()
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    y = model(x)
    path = tmp_path / "dcn.npz"
    model.save(path)
    np.testing.assert_array_equal(nn.load(path)(x), y)
    fused = model.fuse()
    assert isinstance(fused[0], nn.ModulatedDeformConv2d) and fused[0].activation == "relu"
    np.testing.assert_array_equal(fused[0].conv_offset.weight, state["conv_offset.weight"])
    np.testing.assert_allclose(fused(x), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda: nn.ModulatedDeformConv2d(6, 4, 3, deform_groups=4), "deform_groups=4 must be"),
    (lambda: nn.DeformConv2d(4, 6, 3, groups=4), "groups=4 must divide"),
    (lambda: nn.DeformConv2d(4, 6, 0), "kernel_size must be >= 1"),
])
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_summary_counts_the_block_and_its_offset_conv():
    model = nn.Sequential(nn.ModulatedDeformConv2d(4, 8, 3, padding=1), nn.ReLU())
    table = nn.summary(model, (1, 4, 8, 8), quiet=True)
    assert [row["name"] for row in table.rows] == ["0.conv_offset", "0", "1"]
    assert table.rows[1]["macs"] == 8 * 8 * 8 * 4 * 9
    assert table.total_params == (27 * 4 * 9 + 27) + (8 * 4 * 9 + 8)


def test_deform_layer_packs_its_weight_once(isa):
    rng = np.random.default_rng(3)
    layer = nn.DeformConv2d(6, 5, 3, padding=1, rng=rng)
    x = rng.standard_normal((1, 6, 7, 7)).astype(np.float32)
    offset = rng.standard_normal((1, 18, 7, 7)).astype(np.float32)
    y = layer(x, offset)
    np.testing.assert_array_equal(
        y, cnnfast.deform_conv2d(x, offset, layer.weight, layer.bias, padding=1))
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0, 0, 0] = 1.0
    layer.weight = np.ones((5, 6, 3, 3), np.float32)
    np.testing.assert_array_equal(
        layer(x, offset), cnnfast.deform_conv2d(x, offset, layer.weight, layer.bias, padding=1))
