"""cnnfast.nn layers against the float64 references of reference.py (and the functional ops),
on every ISA tier where they run kernels; fuse() against the unfused model; state_dict and
load_state_dict (errors name the key); save/load round trip and tampered files; several
threads sharing one model; key compatibility with torch.nn when PyTorch is installed."""

import copy
import json
import threading
import zipfile

import numpy as np
import pytest

import cnnfast
import cnnfast.nn as nn
import reference


def ints(rng, shape, low=-3, high=4):
    """Small integers as float32: every partial sum of a layer is exact."""
    return rng.integers(low, high, shape).astype(np.float32)


def set_weights(layer, rng, low=-2, high=3):
    """Replaces every parameter of a layer by small integers (through load_state_dict)."""
    state = layer.state_dict()
    for key, value in state.items():
        if value.dtype == np.float32 and not key.endswith(("running_var", "running_mean")):
            state[key] = ints(rng, value.shape, low, high)
    layer.load_state_dict(state)
    return layer


# -- convolutions ----------------------------------------------------------------------------

CONV2D_CASES = [
    # in, out, kernel, stride, padding, dilation, groups, bias, padding_mode
    (3, 5, 3, 1, 1, 1, 1, True, "zeros"),
    (4, 6, (3, 2), (2, 1), (1, 0), 1, 2, False, "zeros"),
    (6, 6, 3, 1, "same", 2, 6, True, "zeros"),  # depthwise, dilated
    (3, 17, 1, 1, 0, 1, 1, True, "zeros"),  # 1x1
    (2, 3, 3, 2, (0, 1, 1, 2), 1, 1, True, "zeros"),  # asymmetric begin/end pads
    (2, 4, 3, 1, 1, 1, 1, True, "reflect"),
    (5, 7, 5, 3, "valid", 1, 1, True, "zeros"),
]


def padding4(padding, x_spatial, kernel, stride, dilation):
    pairs = cnnfast._args.conv_padding(padding, x_spatial, kernel, stride, dilation, "test")
    return pairs[0] + pairs[1]


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_layer_matches_reference_exactly(isa, case):
    c_in, c_out, k, s, p, d, g, bias, mode = case
    rng = np.random.default_rng(1)
    layer = set_weights(nn.Conv2d(c_in, c_out, k, s, p, d, g, bias, mode, rng=rng), rng)
    x = ints(rng, (2, c_in, 11, 9))
    kernel, stride = cnnfast._args.int_tuple(k, 2, "", ""), cnnfast._args.int_tuple(s, 2, "", "")
    dil = (d, d)
    expected = reference.conv2d(x, layer.weight, layer.bias, stride,
                                padding4(p, (11, 9), kernel, stride, dil), dil, g, mode)
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_array_equal(layer(x), cnnfast.conv2d(x, layer.weight, layer.bias, s, p, d,
                                                           g, padding_mode=mode))


def test_conv1d_layer_matches_reference(isa):
    rng = np.random.default_rng(2)
    layer = set_weights(nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), rng)
    x = ints(rng, (3, 4, 17))
    expected = reference.conv1d(x, layer.weight, layer.bias, 2, (2, 2), 2, 2)
    np.testing.assert_array_equal(layer(x), expected)


@pytest.mark.parametrize("stride, padding, output_padding, groups, dilation", [
    (2, 1, 1, 1, 1), ((2, 3), (1, 0), (0, 2), 2, 1), (1, 0, 0, 1, 2)])
def test_conv_transpose2d_layer_matches_reference(isa, stride, padding, output_padding, groups,
                                                  dilation):
    rng = np.random.default_rng(3)
    layer = set_weights(nn.ConvTranspose2d(4, 6, 3, stride, padding, output_padding, groups,
                                           dilation=dilation), rng)
    assert layer.weight.shape == (4, 3 if groups == 2 else 6, 3, 3)  # torch's (in, out/g, k, k)
    x = ints(rng, (2, 4, 5, 7))
    st = cnnfast._args.int_tuple(stride, 2, "", "")
    pd = cnnfast._args.int_tuple(padding, 2, "", "")
    expected = reference.conv_transpose2d_general(
        x, layer.weight, layer.bias, st, (pd[0], pd[0], pd[1], pd[1]),
        cnnfast._args.int_tuple(output_padding, 2, "", ""), (dilation, dilation), groups)
    np.testing.assert_array_equal(layer(x), expected)


def test_conv_transpose1d_layer_and_output_size(isa):
    rng = np.random.default_rng(4)
    layer = set_weights(nn.ConvTranspose1d(3, 2, 4, stride=3, padding=1), rng)
    x = ints(rng, (2, 3, 6))
    expected = reference.conv_transpose2d_general(x[:, :, None], layer.weight[:, :, None],
                                                  layer.bias, (1, 3), (0, 0, 1, 1), (0, 0),
                                                  (1, 1), 1)[:, :, 0]
    np.testing.assert_array_equal(layer(x), expected)
    assert layer(x, output_size=[expected.shape[-1] + 2]).shape[-1] == expected.shape[-1] + 2


def test_conv_default_initialisation_follows_torch():
    layer = nn.Conv2d(8, 16, 3, groups=2, rng=0)
    bound = 1 / np.sqrt(4 * 9)  # fan_in = in/groups * kh * kw
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and p.flags.c_contiguous
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound
    np.testing.assert_array_equal(nn.Conv2d(8, 16, 3, groups=2, rng=0).weight, layer.weight)
    assert not np.array_equal(nn.Conv2d(8, 16, 3, groups=2, rng=1).weight, layer.weight)
    lin = nn.Linear(25, 3, rng=0)
    assert np.abs(lin.weight).max() <= 0.2 and lin.weight.shape == (3, 25)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Conv2d(4, 6, 3, groups=4), "groups=4 must divide"),
    (lambda: nn.Conv2d(0, 6, 3), "in_channels must be an int >= 1"),
    (lambda: nn.Conv2d(4, 6, 0), "kernel_size must be >= 1"),
    (lambda: nn.Conv2d(4, 6, (3, 3, 3)), "kernel_size must be an int or a tuple of 2"),
    (lambda: nn.Conv2d(4, 6, 3, padding="full"), "unknown padding 'full'"),
    (lambda: nn.Conv2d(4, 6, 3, padding=-1), "padding must be >= 0"),
    (lambda: nn.Conv2d(4, 6, 3, padding_mode="mirror"), "padding_mode must be one of"),
    (lambda: nn.Conv2d(4, 6, 3, activation="gelu"), "unknown activation 'gelu'"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, padding="same"), "no padding strings"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=2), "output_padding"),
    (lambda: nn.Conv2d(4, 6, 3, rng="seed"), "rng must be None, an int seed"),
    (lambda: nn.Linear(0, 3), "in_features must be an int >= 1"),
    (lambda: nn.BatchNorm2d(0), "num_features must be an int >= 1"),
    (lambda: nn.BatchNorm2d(3, eps=0), "eps must be a number > 0"),
    (lambda: nn.MaxPool2d(0), "kernel_size must be >= 1"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), "divisor_override must be a positive int"),
    (lambda: nn.AdaptiveAvgPool2d((2, 0)), "output_size must be an int or 2 ints"),
    (lambda: nn.SPP((1, 0)), "levels must be a non-empty sequence"),
    (lambda: nn.SPP(mode="min"), "mode must be 'max' or 'avg'"),
    (lambda: nn.Dropout(1.5), "p must be a probability"),
    (lambda: nn.LeakyReLU("0.1"), "negative_slope must be a number"),
    (lambda: nn.Sequential(nn.ReLU(), "relu"), "child '1' must be a cnnfast.nn.Module"),
    (lambda: nn.Add(), "needs at least one branch"),
])
def test_constructor_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_forward_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"expected 4-D input with 3 channels.*\(2, 4, 5, 5\)"):
        nn.BatchNorm2d(3).eval()(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Linear: expected input \(\.\.\., 8\).*\(2, 7\)"):
        nn.Linear(8, 2)(np.zeros((2, 7), np.float32))
    with pytest.raises(ValueError, match="conv2d"):
        nn.Conv2d(3, 4, 3)(np.zeros((1, 5, 8, 8), np.float32))
    with pytest.raises(TypeError, match="float32"):
        nn.Conv2d(3, 4, 3)(np.zeros((1, 3, 8, 8)))
    with pytest.raises(ValueError, match="Add: the branches' outputs differ in shape"):
        nn.Add(nn.Identity(), nn.MaxPool2d(2))(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="Concat: cannot join"):
        nn.Concat(nn.Identity(), nn.MaxPool2d(2))(np.zeros((1, 1, 4, 4), np.float32))


# -- batch norm --------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (4, 5)), (nn.BatchNorm1d, (3, 5, 7)),
                                        (nn.BatchNorm2d, (2, 5, 6, 7)),
                                        (nn.BatchNorm3d, (2, 5, 3, 4, 3))])
def test_batch_norm_eval_and_training(isa, cls, shape):
    rng = np.random.default_rng(5)
    bn = cls(5, eps=1e-3, momentum=0.25)
    state = {"weight": rng.uniform(0.5, 2, 5), "bias": rng.uniform(-1, 1, 5),
             "running_mean": rng.uniform(-1, 1, 5), "running_var": rng.uniform(0.5, 2, 5)}
    bn.load_state_dict({**{k: v.astype(np.float32) for k, v in state.items()},
                        "num_batches_tracked": np.array(3, np.int64)})
    x = rng.standard_normal(shape).astype(np.float32)
    bn.eval()
    expected = reference.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, 1e-3,
                                    1)
    np.testing.assert_allclose(bn(x), expected, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == 3  # eval mode changes nothing

    bn.train()
    mean, var = reference.batch_stats(x, 1)
    count = x.size // 5
    old_mean = bn.running_mean.copy()
    y = bn(x)
    np.testing.assert_allclose(y, reference.batch_norm(x, mean, var, bn.weight, bn.bias, 1e-3, 1),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.running_mean, 0.75 * old_mean + 0.25 * mean, rtol=1e-5,
                               atol=1e-6)
    assert int(bn.num_batches_tracked) == 4
    assert var.shape == (5,) and count > 1


def test_batch_norm_without_affine_or_running_stats():
    bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    assert list(bn.state_dict()) == []
    x = np.random.default_rng(6).standard_normal((4, 3, 5, 5)).astype(np.float32)
    mean, var = reference.batch_stats(x, 1)
    np.testing.assert_allclose(bn(x), reference.batch_norm(x, mean, var, None, None, 1e-5, 1),
                               rtol=1e-4, atol=1e-4)


# -- pooling, activations and the rest ---------------------------------------------------------

@pytest.mark.parametrize("layer, mode, dims, kernel, stride, pads, dilation, ceil", [
    (nn.MaxPool1d(3, 2, 1), "max", 1, (3,), (2,), ((1, 1),), (1,), False),
    (nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), "max", 2, (3, 3), (2, 2),
     ((1, 1), (1, 1)), (2, 2), True),
    (nn.MaxPool3d(2), "max", 3, (2, 2, 2), (2, 2, 2), ((0, 0),) * 3, (1, 1, 1), False),
    (nn.AvgPool1d(4, 3, 2), "avg", 1, (4,), (3,), ((2, 2),), (1,), False),
    (nn.AvgPool2d((3, 2), (1, 2), (1, 0), ceil_mode=True), "avg", 2, (3, 2), (1, 2),
     ((1, 1), (0, 0)), (1, 1), True),
    (nn.AvgPool3d(3, 2, 1), "avg", 3, (3,) * 3, (2,) * 3, ((1, 1),) * 3, (1,) * 3, False),
])
def test_pool_layers_match_reference(isa, layer, mode, dims, kernel, stride, pads, dilation,
                                     ceil):
    rng = np.random.default_rng(7)
    x = ints(rng, (2, 3) + (7, 6, 5)[:dims], -9, 10)
    expected = reference.pool(x, mode, kernel, stride, pads, dilation, ceil)
    if mode == "max":
        expected = expected[0]
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)


def test_adaptive_pool_layers_and_spp(isa):
    rng = np.random.default_rng(8)
    x2, x3 = ints(rng, (2, 3, 7, 5), -9, 10), ints(rng, (1, 2, 5, 4, 3), -9, 10)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((3, 2))(x2),
                               reference.adaptive_pool(x2, "avg", (3, 2)), rtol=1e-6)
    np.testing.assert_array_equal(nn.AdaptiveMaxPool2d(2)(x2),
                                  reference.adaptive_pool(x2, "max", (2, 2))[0])
    y, idx = nn.AdaptiveMaxPool2d(2, return_indices=True)(x2)
    np.testing.assert_array_equal(idx, reference.adaptive_pool(x2, "max", (2, 2))[1])
    np.testing.assert_allclose(nn.AdaptiveAvgPool3d(2)(x3),
                               reference.adaptive_pool(x3, "avg", (2, 2, 2)), rtol=1e-6)
    np.testing.assert_array_equal(nn.AdaptiveMaxPool3d((1, 2, 3))(x3),
                                  reference.adaptive_pool(x3, "max", (1, 2, 3))[0])
    spp = nn.SPP((1, 2))(x2)
    parts = [reference.adaptive_pool(x2, "max", (lv, lv))[0].reshape(2, -1) for lv in (1, 2)]
    np.testing.assert_array_equal(spp, np.concatenate(parts, axis=1))


def test_stochastic_pool_layer():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 5, (2, 3, 6, 6)).astype(np.float32)
    layer = nn.StochasticPool2d(2, rng=np.random.default_rng(0))
    windows = x.reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 3, 4)
    y = layer(x)  # training: one element of each window, never a zero of a non-zero window
    assert np.all((windows == y[..., None]).any(axis=-1))
    assert np.all((y > 0) | (windows.sum(axis=-1) == 0))
    np.testing.assert_array_equal(nn.StochasticPool2d(2, rng=np.random.default_rng(0))(x), y)
    layer.eval()  # the probability-weighted average sum(a^2) / sum(a)
    total = windows.astype(np.float64).sum(axis=-1)
    expected = np.where(total > 0, (windows.astype(np.float64) ** 2).sum(axis=-1) /
                        np.maximum(total, 1), 0)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)


ACTIVATION_LAYERS = [(nn.ReLU(), "relu"), (nn.ReLU6(), "relu6"), (nn.Sigmoid(), "sigmoid"),
                     (nn.Tanh(), "tanh"), (nn.SiLU(), "silu"), (nn.Hardswish(), "hardswish"),
                     (nn.LeakyReLU(0.2), "leaky_relu")]


@pytest.mark.parametrize("layer, name", ACTIVATION_LAYERS)
def test_activation_layers(isa, layer, name):
    x = np.random.default_rng(10).standard_normal((3, 4, 5)).astype(np.float32) * 4
    expected = reference.activation(name, x, 0.2)
    y = layer(x)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    assert not np.shares_memory(x, y)
    inplace = type(layer)(0.2, inplace=True) if name == "leaky_relu" else \
        type(layer)(inplace=True) if name not in ("sigmoid", "tanh") else None
    if inplace is not None:
        x2 = x.copy()
        assert inplace(x2) is x2
        np.testing.assert_array_equal(x2, y)


def test_flatten_linear_dropout(isa):
    rng = np.random.default_rng(11)
    x = ints(rng, (2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60) and np.shares_memory(nn.Flatten()(x), x)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    lin = set_weights(nn.Linear(5, 7), rng)
    np.testing.assert_array_equal(lin(x), np.einsum("...i,oi->...o", x.astype(np.float64),
                                                    lin.weight) + lin.bias)
    nobias = set_weights(nn.Linear(5, 7, bias=False), rng)
    np.testing.assert_array_equal(nobias(x[0, 0]), reference.matmul(x[0, 0], nobias.weight.T))
    drop = nn.Dropout(0.25, rng=0)
    big = np.ones((200, 200), np.float32)
    y = drop(big)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs(np.mean(y == 0) - 0.25) < 0.01
    np.testing.assert_array_equal(nn.Dropout(0.25, rng=0)(big), y)
    assert drop.eval()(big) is big


def test_add_and_concat(isa):
    rng = np.random.default_rng(12)
    x = ints(rng, (2, 4, 6, 6))
    conv = set_weights(nn.Conv2d(4, 4, 3, padding=1), rng)
    block = nn.Add(conv, nn.Identity())
    np.testing.assert_array_equal(block(x), conv(x) + x)
    three = nn.Add(nn.Identity(), nn.Identity(), nn.ReLU())
    np.testing.assert_array_equal(three(x), 2 * x + np.maximum(x, 0))
    cat = nn.Concat(nn.Identity(), conv, nn.MaxPool2d(3, 1, 1))
    y = cat(x)
    assert y.shape == (2, 12, 6, 6)
    np.testing.assert_array_equal(y[:, 4:8], conv(x))
    assert list(block.state_dict()) == ["0.weight", "0.bias"]


# -- fuse ------------------------------------------------------------------------------------

def conv_bn_model(rng, activation_layer):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(8), activation_layer,
        nn.MaxPool2d(2),
        nn.Add(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2, rng=rng),
                             nn.BatchNorm2d(8)), nn.Identity()),
        nn.ConvTranspose2d(8, 4, 2, stride=2, rng=rng), nn.BatchNorm2d(4), nn.ReLU6(),
        nn.Conv2d(4, 5, 1, rng=rng), nn.SiLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3, rng=rng))
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.load_state_dict({"weight": rng.uniform(0.5, 2, c).astype(np.float32),
                                "bias": rng.uniform(-1, 1, c).astype(np.float32),
                                "running_mean": rng.uniform(-1, 1, c).astype(np.float32),
                                "running_var": rng.uniform(0.5, 2, c).astype(np.float32),
                                "num_batches_tracked": np.array(1, np.int64)})
    return model


@pytest.mark.parametrize("activation_layer", [nn.ReLU(), nn.LeakyReLU(0.1), nn.Hardswish()])
def test_fuse_equals_unfused(isa, activation_layer):
    rng = np.random.default_rng(13)
    model = conv_bn_model(rng, activation_layer).eval()
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    expected = model(x)
    fused = copy.deepcopy(model).fuse()
    kinds = [type(m).__name__ for m in fused]
    assert kinds[:4] == ["Conv2d", "Identity", "Identity", "MaxPool2d"]
    assert fused[0].activation == activation_layer.activation and fused[0].bias is not None
    assert fused[0].negative_slope == activation_layer.negative_slope
    # The batch norm inside the residual branch.
    assert type(getattr(fused[4], "0")[1]).__name__ == "Identity"
    assert fused[5].activation == "relu6" and fused[8].activation == "silu"
    np.testing.assert_allclose(fused(x), expected, rtol=1e-4, atol=1e-5)
    assert "1.weight" not in fused.state_dict() and "0.bias" in fused.state_dict()


def test_fuse_conv1d_chains_and_bare_activations(isa):
    rng = np.random.default_rng(24)
    model = nn.Sequential(nn.Conv1d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm1d(4),
                          nn.LeakyReLU(0.3), nn.Conv1d(4, 2, 1, bias=False, rng=rng), nn.Tanh(),
                          nn.BatchNorm1d(2))  # a BN after an activation stays
    model[1].load_state_dict({**model[1].state_dict(),
                              "running_mean": rng.uniform(-1, 1, 4).astype(np.float32)})
    x = rng.standard_normal((2, 3, 9)).astype(np.float32)
    expected = model.eval()(x)
    model.fuse()
    assert [type(m).__name__ for m in model] == ["Conv1d", "Identity", "Identity", "Conv1d",
                                                 "Identity", "BatchNorm1d"]
    assert model[3].activation == "tanh" and model[3].bias is None
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


def test_fuse_needs_eval_mode():
    model = conv_bn_model(np.random.default_rng(14), nn.ReLU())
    with pytest.raises(ValueError, match=r"batch norm '1' is in training mode.*model.eval\(\)"):
        model.fuse()


def test_fused_model_saves_and_loads(tmp_path):
    rng = np.random.default_rng(15)
    model = conv_bn_model(rng, nn.ReLU()).eval().fuse()
    model.save(tmp_path / "fused.npz")
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(nn.load(tmp_path / "fused.npz")(x), model(x))


# -- state_dict ----------------------------------------------------------------------------

def test_state_dict_keys_and_round_trip():
    rng = np.random.default_rng(16)
    model = conv_bn_model(rng, nn.ReLU())
    state = model.state_dict()
    assert list(state)[:7] == ["0.weight", "1.weight", "1.bias", "1.running_mean",
                               "1.running_var", "1.num_batches_tracked", "4.0.0.weight"]
    assert state["1.num_batches_tracked"].dtype == np.int64
    other = conv_bn_model(np.random.default_rng(99), nn.ReLU())
    result = other.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[key])
    state["0.weight"][...] = 7  # state_dict returns copies; loading copies too
    assert not np.any(model[0].weight == 7) and not np.any(other[0].weight == 7)
    assert len(list(model.parameters())) == len(list(model.named_parameters())) == 15


def test_load_state_dict_errors_name_the_key():
    model = conv_bn_model(np.random.default_rng(17), nn.ReLU())
    state = model.state_dict()
    missing = dict(state)
    del missing["4.0.1.running_var"]
    with pytest.raises(ValueError, match=r"missing keys \['4.0.1.running_var'\]"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['9.weight'\]"):
        model.load_state_dict({**state, "9.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"'5.weight' has shape \(4, 8, 2, 2\), the model "
                                         r"expects \(8, 4, 2, 2\)"):
        model.load_state_dict({**state, "5.weight": np.zeros((4, 8, 2, 2), np.float32)})
    with pytest.raises(TypeError, match=r"'0.weight' has dtype float64"):
        model.load_state_dict({**state, "0.weight": state["0.weight"].astype(np.float64)})
    with pytest.raises(TypeError, match=r"Conv2d.weight: expected a float32 array, got dtype "
                                        r"float64"):
        model[0].weight = np.zeros((8, 3, 3, 3))
    with pytest.raises(TypeError, match="expected a mapping"):
        model.load_state_dict([1, 2])
    before = model[0].weight.copy()  # nothing was assigned by the failed calls
    np.testing.assert_array_equal(model[0].weight, before)
    result = model.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["4.0.1.running_var"]


# -- save / load ---------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(18)
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding="same"), nn.BatchNorm1d(4), nn.LeakyReLU(0.3),
        nn.MaxPool1d(2), nn.AvgPool1d(2, ceil_mode=True), nn.Dropout(0.3),
        nn.ConvTranspose1d(4, 2, 2, stride=2), nn.Concat(nn.Identity(), nn.Tanh()),
        nn.Flatten(), nn.Linear(24, 3))
    path = tmp_path / "model.cnnfast"  # the exact name: nothing appended
    model.eval().save(path)
    loaded = nn.load(path)
    assert path.exists() and not loaded.training
    assert repr(loaded) == repr(model)
    x = rng.standard_normal((2, 2, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)


def test_save_load_named_children_and_pools(tmp_path):
    from collections import OrderedDict
    model = nn.Sequential(OrderedDict(
        stem=nn.Conv2d(1, 2, 3, padding=(1, 0, 1, 2), padding_mode="replicate"),
        pool=nn.AdaptiveMaxPool2d((2, None)), spp=nn.Sequential(nn.ReLU(), nn.StochasticPool2d(1),
                                                                nn.SPP((1, 2), "avg"))))
    model.eval().save(tmp_path / "m.npz")
    loaded = nn.load(tmp_path / "m.npz")
    assert list(loaded.state_dict()) == ["stem.weight", "stem.bias"]
    x = np.random.default_rng(19).random((1, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


def write_npz(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def saved(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten())
    model.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(arrays["__architecture__"].tobytes())


def architecture(spec):
    return np.frombuffer(json.dumps(spec).encode(), np.uint8)


def test_load_rejects_truncated_and_foreign_files(tmp_path):
    saved(tmp_path)
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="not a readable cnnfast model file"):
        nn.load(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable cnnfast model file"):
        nn.load(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        nn.load(tmp_path / "single.npy")
    write_npz(tmp_path / "plain.npz", {"a": np.zeros(3)})
    with pytest.raises(ValueError, match="no __architecture__"):
        nn.load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "absent.npz")


def test_load_never_unpickles(tmp_path):
    arrays, _ = saved(tmp_path)
    arrays["0.bias"] = np.array([object(), 1], dtype=object)
    write_npz(tmp_path / "pickled.npz", arrays)
    with pytest.raises(ValueError, match="not a readable cnnfast model file.*pickle"):
        nn.load(tmp_path / "pickled.npz")


@pytest.mark.parametrize("tamper, message", [
    (lambda a, s: a.update(__architecture__=np.frombuffer(b"{not json", np.uint8)),
     "not valid JSON"),
    (lambda a, s: a.update(__architecture__=np.frombuffer(b"\xff\xfe", np.uint8)),
     "not valid JSON"),
    (lambda a, s: a.update(__architecture__=architecture({**s, "version": 99})),
     "expected a cnnfast.nn version 1 architecture"),
    (lambda a, s: (s["model"]["children"][1][1].update(type="os.system"),
                   a.update(__architecture__=architecture(s))),
     "1: unknown layer type 'os.system'"),
    (lambda a, s: (s["model"]["children"][0][1]["config"].update(kernel_size=-3),
                   a.update(__architecture__=architecture(s))),
     r"0 \(Conv2d\): bad constructor arguments"),
    (lambda a, s: (s["model"]["children"][0][1]["config"].update(evil=1),
                   a.update(__architecture__=architecture(s))),
     r"0 \(Conv2d\): bad constructor arguments.*evil"),
    (lambda a, s: (s["model"].update(children="x"), a.update(__architecture__=architecture(s))),
     "'children' must be a list"),
    (lambda a, s: (s.update(model=[1]), a.update(__architecture__=architecture(s))),
     "expected {'type'"),
    (lambda a, s: a.pop("0.weight"), r"missing keys \['0.weight'\]"),
    (lambda a, s: a.update({"0.weight": np.zeros((2, 1, 3, 2), np.float32)}),
     r"'0.weight' has shape \(2, 1, 3, 2\)"),
    (lambda a, s: a.update({"0.bias": np.zeros(2, np.float64)}), "'0.bias' has dtype float64"),
    (lambda a, s: a.update({"extra": np.zeros(2, np.float32)}), r"unexpected keys \['extra'\]"),
])
def test_load_rejects_tampered_files(tmp_path, tamper, message):
    arrays, spec = saved(tmp_path)
    tamper(arrays, spec)
    write_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(ValueError, match=message):
        nn.load(tmp_path / "bad.npz")


def test_deeply_nested_architecture_is_rejected(tmp_path):
    arrays, _ = saved(tmp_path)
    text = '{"format": "cnnfast.nn", "version": 1, "model": ' + \
        '{"type": "Sequential", "config": {}, "children": [["0", ' * 3000 + \
        '{"type": "ReLU", "config": {}}' + "]]}" * 3000 + "}"
    arrays = {"__architecture__": np.frombuffer(text.encode(), np.uint8)}
    write_npz(tmp_path / "deep.npz", arrays)
    with pytest.raises(ValueError, match="nested too deeply|not valid JSON"):
        nn.load(tmp_path / "deep.npz")


def test_save_rejects_unregistered_layers(tmp_path):
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="1 is a Custom, which is not a registered"):
        nn.Sequential(nn.ReLU(), Custom()).save(tmp_path / "x.npz")
    assert zipfile.is_zipfile(tmp_path / "x.npz") is False


# -- threads -------------------------------------------------------------------------------

def test_threads_share_one_model(restore_threads):
    rng = np.random.default_rng(20)
    model = conv_bn_model(rng, nn.ReLU()).eval()
    fused = conv_bn_model(np.random.default_rng(20), nn.ReLU()).eval().fuse()
    inputs = [rng.standard_normal((2, 3, 12, 12)).astype(np.float32) for _ in range(6)]
    cnnfast.set_num_threads(2)
    expected = [(model(x), fused(x)) for x in inputs]
    results, errors = {}, []

    def worker(t):
        try:
            for rep in range(5):
                for i, x in enumerate(inputs):
                    results[(t, rep, i)] = (model(x), fused(x))
        except Exception as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4 * 5 * len(inputs)
    for (t, rep, i), (y, yf) in results.items():
        np.testing.assert_array_equal(y, expected[i][0])
        np.testing.assert_array_equal(yf, expected[i][1])


def test_one_and_two_threads_bitwise_equal(restore_threads):
    rng = np.random.default_rng(21)
    model = conv_bn_model(rng, nn.SiLU()).eval()
    x = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    cnnfast.set_num_threads(1)
    one = model(x)
    cnnfast.set_num_threads(2)
    np.testing.assert_array_equal(model(x), one)


# -- torch -------------------------------------------------------------------------------------

def test_torch_state_dict_keys_and_outputs_match():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = torch.nn
    tmodel = t.Sequential(t.Conv2d(3, 8, 3, padding=1, bias=False), t.BatchNorm2d(8), t.ReLU(),
                          t.MaxPool2d(2), t.Conv2d(8, 6, 3, stride=2, groups=2),
                          t.BatchNorm2d(6), t.Hardswish(), t.ConvTranspose2d(6, 4, 2, 2),
                          t.AdaptiveAvgPool2d(2), t.Flatten(), t.Linear(16, 5))
    with torch.no_grad():  # non-trivial running statistics
        for m in tmodel.modules():
            if isinstance(m, t.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    tmodel.eval()
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 6, 3, stride=2, groups=2),
                         nn.BatchNorm2d(6), nn.Hardswish(), nn.ConvTranspose2d(6, 4, 2, 2),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5))
    state = tmodel.state_dict()
    assert list(ours.state_dict()) == list(state)
    for key, value in ours.state_dict().items():
        assert value.shape == tuple(state[key].shape), key
    ours.load_state_dict({k: v.numpy() for k, v in state.items()})
    ours.eval()
    x = np.random.default_rng(22).standard_normal((2, 3, 14, 14)).astype(np.float32)
    with torch.inference_mode():
        expected = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.fuse()(x), expected, rtol=1e-4, atol=1e-4)


def test_from_torch_converts_supported_trees_and_names_the_rest():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    t = torch.nn
    tmodel = t.Sequential(
        t.Conv2d(3, 8, 3, padding="same", bias=False), t.BatchNorm2d(8), t.LeakyReLU(0.2),
        t.Sequential(t.MaxPool2d(3, 2, 1, ceil_mode=True), t.Dropout(0.3)),
        t.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1), t.ReLU6(),
        t.AvgPool2d(2, count_include_pad=False), t.AdaptiveMaxPool2d((3, 2)), t.Flatten(),
        t.Linear(24, 5), t.SiLU()).eval()
    with torch.no_grad():
        tmodel[1].running_mean.uniform_(-1, 1)
        tmodel[1].running_var.uniform_(0.5, 2)
    ours = nn.from_torch(tmodel)
    assert not ours.training and list(ours.state_dict()) == list(tmodel.state_dict())
    x = np.random.default_rng(23).standard_normal((2, 3, 11, 13)).astype(np.float32)
    with torch.inference_mode():
        expected = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match=r"from_torch: 1 is a torch.nn.modules.activation.GELU"):
        nn.from_torch(t.Sequential(t.ReLU(), t.GELU()))
