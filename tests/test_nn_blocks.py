"""cnnfast.nn blocks (BasicBlock, Bottleneck, InvertedResidual, DepthwiseSeparable, Hourglass)
against float64 compositions of reference.py's conv2d / batch_norm / pool / upsample, on every
ISA tier; fuse() against the unfused block; save/load of fused and unfused blocks; torchvision's
key names; bad arguments; and a PyTorch cross-check of the ResNet blocks when torch is there."""

import numpy as np
import pytest

import cnnfast.nn as nn
import reference


def randomise(model, seed=0):
    """Random weights and batch-norm statistics (the defaults make BN the identity, which would
    hide a wrong fold), then eval mode."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        elif value.dtype == np.float32:
            state[key] = (rng.standard_normal(value.shape) * 0.5).astype(np.float32)
    model.load_state_dict(state)
    return model.eval()


def ref_conv_bn(x, state, conv, bn, stride=1, padding=0, dilation=1, groups=1, act=None):
    y = reference.conv2d(x, state[f"{conv}.weight"], state.get(f"{conv}.bias"), (stride,) * 2,
                         (padding,) * 4, (dilation,) * 2, groups)
    y = reference.batch_norm(y, state[f"{bn}.running_mean"], state[f"{bn}.running_var"],
                             state[f"{bn}.weight"], state[f"{bn}.bias"], 1e-5, 1)
    return reference.activation(act, y)


def ref_residual(x, state, kind, stride, prefix=""):
    """BasicBlock / Bottleneck from the definition: relu(body(x) + shortcut(x))."""
    p = prefix
    if kind == "basic":
        y = ref_conv_bn(x, state, p + "conv1", p + "bn1", stride, 1, act="relu")
        y = ref_conv_bn(y, state, p + "conv2", p + "bn2", 1, 1)
    else:
        y = ref_conv_bn(x, state, p + "conv1", p + "bn1", act="relu")
        y = ref_conv_bn(y, state, p + "conv2", p + "bn2", stride, 1, act="relu")
        y = ref_conv_bn(y, state, p + "conv3", p + "bn3")
    if p + "downsample.0.weight" in state:
        shortcut = ref_conv_bn(x, state, p + "downsample.0", p + "downsample.1", stride)
    else:
        shortcut = x
    return np.maximum(y + shortcut, 0)


def tolerance(y):
    return 2e-4 * max(1.0, float(np.abs(y).max()))


@pytest.mark.parametrize("cls, kind, inplanes, planes, stride, size", [
    (nn.BasicBlock, "basic", 8, 8, 1, 7),
    (nn.BasicBlock, "basic", 8, 16, 2, 9),
    (nn.Bottleneck, "bottleneck", 32, 8, 1, 6),
    (nn.Bottleneck, "bottleneck", 16, 8, 2, 11),
])
def test_resnet_blocks_against_reference_and_fused(isa, cls, kind, inplanes, planes, stride,
                                                   size, tmp_path):
    block = randomise(cls(inplanes, planes, stride, rng=1))
    x = np.random.default_rng(2).standard_normal((2, inplanes, size, size)).astype(np.float32)
    state = block.state_dict()
    assert ("downsample.0.weight" in state) == (stride != 1 or inplanes != planes *
                                                cls.expansion)
    expected = ref_residual(x.astype(np.float64), state, kind, stride)
    y = block(x)
    assert y.shape == expected.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, atol=tolerance(expected))
    block.save(tmp_path / "block.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "block.npz")(x), y)
    block.fuse()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert block.conv1.activation == "relu" and block.conv2.activation == (
        "relu" if kind == "bottleneck" else None)
    fused = block(x)
    np.testing.assert_allclose(fused, expected, atol=tolerance(expected))
    block.save(tmp_path / "fused.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "fused.npz")(x), fused)


def test_inverted_residual_and_depthwise_separable(isa, tmp_path):
    rng = np.random.default_rng(3)
    for inp, oup, stride, t in ((8, 8, 1, 6), (8, 12, 2, 6), (16, 8, 1, 1), (8, 8, 1, 1)):
        block = randomise(nn.InvertedResidual(inp, oup, stride, t, rng=4))
        x = rng.standard_normal((2, inp, 9, 9)).astype(np.float32)
        s = {k: v.astype(np.float64) for k, v in block.state_dict().items()}
        hidden, y, i = inp * t, x.astype(np.float64), 0
        if t != 1:
            y = np.minimum(ref_conv_bn(y, s, "conv.0.0", "conv.0.1", act="relu"), 6)
            i = 1
        y = np.minimum(ref_conv_bn(y, s, f"conv.{i}.0", f"conv.{i}.1", stride, 1,
                                   groups=hidden, act="relu"), 6)
        y = ref_conv_bn(y, s, f"conv.{i + 1}", f"conv.{i + 2}")
        expected = y + x if stride == 1 and inp == oup else y
        np.testing.assert_allclose(block(x), expected, atol=tolerance(expected))
        block.fuse()
        np.testing.assert_allclose(block(x), expected, atol=tolerance(expected))
        block.save(tmp_path / "ir.npz")
        np.testing.assert_array_equal(nn.load(tmp_path / "ir.npz")(x), block(x))

    block = randomise(nn.DepthwiseSeparable(6, 10, stride=2, rng=5))
    x = rng.standard_normal((1, 6, 8, 7)).astype(np.float32)
    s = block.state_dict()
    y = ref_conv_bn(x.astype(np.float64), s, "depthwise.0", "depthwise.1", 2, 1, groups=6,
                    act="relu")
    expected = ref_conv_bn(y, s, "pointwise.0", "pointwise.1", act="relu")
    np.testing.assert_allclose(block(x), expected, atol=tolerance(expected))
    np.testing.assert_allclose(block.fuse()(x), expected, atol=tolerance(expected))


def ref_hourglass(x, s, depth, prefix=""):
    """Newell et al.'s recursion from the definition, nearest upsampling by repetition."""
    skip = ref_residual(x, s, "basic", 1, prefix + "skip.")
    low = reference.pool(x, "max", (2, 2), (2, 2), ((0, 0), (0, 0)), (1, 1))[0]
    low = ref_residual(low, s, "basic", 1, prefix + "down.")
    low = ref_hourglass(low, s, depth - 1, prefix + "inner.") if depth > 1 else \
        ref_residual(low, s, "basic", 1, prefix + "inner.")
    low = ref_residual(low, s, "basic", 1, prefix + "post.")
    return skip + low.repeat(2, axis=2).repeat(2, axis=3)


def test_hourglass(isa, tmp_path):
    model = randomise(nn.Hourglass(3, 4, rng=6))
    x = np.random.default_rng(7).standard_normal((2, 4, 16, 8)).astype(np.float32)
    expected = ref_hourglass(x.astype(np.float64), model.state_dict(), 3)
    y = model(x)
    np.testing.assert_allclose(y, expected, atol=tolerance(expected))
    assert "inner.inner.inner.conv1.weight" in model.state_dict()
    model.fuse()
    np.testing.assert_allclose(model(x), expected, atol=tolerance(expected))
    model.save(tmp_path / "hg.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "hg.npz")(x), model(x))
    transposed = randomise(nn.Hourglass(2, 4, upsample="transposed", rng=8))
    assert transposed.state_dict()["up.weight"].shape == (4, 4, 2, 2)
    assert transposed(x).shape == x.shape


def test_torchvision_key_names():
    keys = list(nn.BasicBlock(64, 128, 2).state_dict())
    assert keys == [f"{m}.{p}" for m in ("conv1", "bn1", "conv2", "bn2", "downsample.0",
                                         "downsample.1")
                    for p in (("weight",) if m in ("conv1", "conv2", "downsample.0") else
                              ("weight", "bias", "running_mean", "running_var",
                               "num_batches_tracked"))]
    keys = set(nn.InvertedResidual(16, 24, 2, 6).state_dict())
    assert {"conv.0.0.weight", "conv.0.1.running_var", "conv.1.0.weight", "conv.2.weight",
            "conv.3.bias"} <= keys


@pytest.mark.parametrize("build, message", [
    (lambda: nn.InvertedResidual(8, 8, 3, 6), "stride must be 1 or 2"),
    (lambda: nn.InvertedResidual(8, 8, 1, 0.5), "expand_ratio must be a finite number >= 1"),
    (lambda: nn.BasicBlock(0, 8), "inplanes must be an int >= 1"),
    (lambda: nn.Bottleneck(8, 8, groups=0), "groups must be an int >= 1"),
    (lambda: nn.Hourglass(2, 4, upsample="bilinear"), "upsample must be 'nearest' or"),
    (lambda: nn.Hourglass(0, 4), "depth must be an int >= 1"),
    (lambda: nn.DepthwiseSeparable(4, 8, stride=0), "stride must be an int >= 1"),
])
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_inputs():
    x = np.zeros((1, 4, 12, 12), np.float32)
    with pytest.raises(ValueError, match=r"Hourglass: .*divisible by 2\*\*depth = 8.*12, 12"):
        nn.Hourglass(3, 4)(x)
    with pytest.raises(ValueError, match=r"BasicBlock: expected \(N, 8, H, W\).*\(1, 4, 12, 12\)"):
        nn.BasicBlock(8, 8)(x)
    with pytest.raises(ValueError, match=r"InvertedResidual: expected \(N, 8, H, W\)"):
        nn.InvertedResidual(8, 8, 1, 6)(x)


def test_fuse_refuses_training_mode_blocks():
    with pytest.raises(ValueError, match="batch norm 'bn1' is in training mode"):
        nn.BasicBlock(4, 4).fuse()


def test_resnet_blocks_against_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TorchBottleneck(tnn.Module):  # torchvision's layout, with plain torch.nn modules
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
            self.relu = tnn.ReLU()
            self.downsample = tnn.Sequential(tnn.Conv2d(inplanes, planes * 4, 1, stride,
                                                        bias=False), tnn.BatchNorm2d(planes * 4))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + self.downsample(x))

    ours = randomise(nn.Bottleneck(16, 8, 2, rng=9))
    theirs = TorchBottleneck(16, 8, 2).eval()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(10).standard_normal((2, 16, 13, 13)).astype(np.float32)
    with torch.inference_mode():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, atol=tolerance(expected))
    np.testing.assert_allclose(ours.fuse()(x), expected, atol=tolerance(expected))
