"""cnnfast.models: parameter counts and state_dict keys/shapes equal torchvision's (the key list
tests/data/torchvision_keys.json was dumped from torchvision 0.29.1), the published parameter and
multiply-add totals, load_state_dict from a dict or an .npz and its errors, num_classes,
fuse() and save/load, and outputs equal to PyTorch models of torchvision's layout built here
from plain torch.nn modules (relative error <= 1e-4) when torch is installed."""

import json
import pathlib

import numpy as np
import pytest

import cnnfast
import cnnfast.nn as nn
from cnnfast import models
from cnnfast.nn.init import skip_init

TORCHVISION = json.loads((pathlib.Path(__file__).parent / "data" /
                          "torchvision_keys.json").read_text())["models"]
BUILDERS = {"resnet18": models.resnet18, "resnet50": models.resnet50,
            "mobilenet_v2": models.mobilenet_v2, "vgg16": models.vgg16}


def build_empty(name, **kwargs):
    with skip_init():  # zeros, no random draws: VGG-16 alone has 138 M weights
        return BUILDERS[name](**kwargs)


@pytest.mark.parametrize("name, params", [("resnet18", 11_689_512), ("resnet50", 25_557_032),
                                          ("mobilenet_v2", 3_504_872), ("vgg16", 138_357_544)])
def test_parameter_counts_and_torchvision_keys(name, params):
    model = build_empty(name)
    assert sum(p.size for p in model.parameters()) == params  # 11.69 M, 25.56 M, 3.50 M, 138.36 M
    ours = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert ours == TORCHVISION[name]  # same keys, same shapes, same order


@pytest.mark.parametrize("name, params, macs", [("resnet50", 25.6e6, 4.1e9),
                                                ("mobilenet_v2", 3.5e6, 0.30e9)])
def test_published_totals(name, params, macs):
    s = nn.summary(build_empty(name), (1, 3, 224, 224), quiet=True)
    assert s.rows[-1]["output_shape"] == (1, 1000)
    assert round(s.total_params / 1e5) == round(params / 1e5)
    assert round(s.total_macs / 1e9, 1 if macs > 1e9 else 2) == macs / 1e9


def randomise_bn(model, seed):
    """Batch-norm statistics away from (0, 1), which would make a wrong fold invisible."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        elif key.endswith(("running_mean", "bn1.bias", "1.bias")):
            state[key] = (rng.standard_normal(value.shape) * 0.1).astype(np.float32)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_fuse_and_save_load(name, tmp_path):
    model = randomise_bn(BUILDERS[name](num_classes=10, rng=1), 2)
    x = np.random.default_rng(3).standard_normal((2, 3, 40, 48)).astype(np.float32)
    y = model(x)
    assert y.shape == (2, 10) and np.isfinite(y).all()
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "m.npz")(x), y)
    model.fuse()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    fused = model(x)
    np.testing.assert_allclose(fused, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())
    model.save(tmp_path / "fused.npz")
    np.testing.assert_array_equal(nn.load(tmp_path / "fused.npz")(x), fused)


def test_vgg16_small_input_runs_and_fuses():
    model = models.vgg16(num_classes=5, rng=4, batch_norm=True)
    randomise_bn(model, 5)
    x = np.random.default_rng(6).standard_normal((1, 3, 32, 32)).astype(np.float32)
    y = model(x)
    assert y.shape == (1, 5)
    np.testing.assert_allclose(model.fuse()(x), y, rtol=1e-4, atol=1e-4 * np.abs(y).max())


def test_load_state_dict_from_npz_and_weights_argument(tmp_path):
    source = models.resnet18(num_classes=7, rng=7)
    np.savez(tmp_path / "w.npz", **source.state_dict())
    x = np.random.default_rng(8).standard_normal((1, 3, 32, 32)).astype(np.float32)
    expected = source.eval()(x)
    target = models.resnet18(num_classes=7, rng=9)
    target.load_state_dict(str(tmp_path / "w.npz"))
    np.testing.assert_array_equal(target.eval()(x), expected)
    loaded = models.resnet18(num_classes=7, weights=tmp_path / "w.npz")
    np.testing.assert_array_equal(loaded.eval()(x), expected)
    np.testing.assert_array_equal(
        models.resnet18(num_classes=7, weights=source.state_dict()).eval()(x), expected)


def test_load_state_dict_errors_name_the_key():
    model = build_empty("mobilenet_v2", num_classes=3)
    state = model.state_dict()
    missing = dict(state)
    del missing["features.5.conv.1.0.weight"]
    with pytest.raises(ValueError, match=r"missing keys \['features.5.conv.1.0.weight'\]"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['features.99.weight'\]"):
        model.load_state_dict({**state, "features.99.weight": np.zeros(1, np.float32)})
    wrong = {**state, "classifier.1.weight": np.zeros((1000, 1280), np.float32)}
    with pytest.raises(ValueError, match=r"'classifier.1.weight' has shape \(1000, 1280\), "
                                         r"the model expects \(3, 1280\)"):
        model.load_state_dict(wrong)
    with pytest.raises(ValueError, match="missing keys"):
        models.resnet18(weights={"conv1.weight": state["features.0.0.weight"]})


@pytest.mark.parametrize("call, message", [
    (lambda: models.resnet18(num_classes=0), "ResNet: num_classes must be an int >= 1"),
    (lambda: models.mobilenet_v2(num_classes=2.5), "MobileNetV2: num_classes must be"),
    (lambda: models.mobilenet_v2(width_mult=0), "width_mult must be a finite number > 0"),
    (lambda: models.ResNet("wide"), "block must be one of"),
    (lambda: models.ResNet("basic", (2, 2, 2)), "layers must be 4 block counts"),
    (lambda: models.VGG("Z"), "config must be one of"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_input():
    model = build_empty("resnet18", num_classes=2)
    with pytest.raises(ValueError, match=r"ResNet: expected images \(N, 3, H, W\), got shape "
                                         r"\(1, 1, 32, 32\)"):
        model(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(TypeError, match="float64"):
        model(np.zeros((1, 3, 32, 32)))


# -- PyTorch models of torchvision's layout, from plain torch.nn modules ---------------------

def torch_models(torch):
    tnn = torch.nn

    def cna(cin, cout, k, stride=1, groups=1, act=tnn.ReLU6):
        layers = [tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                  tnn.BatchNorm2d(cout)]
        return tnn.Sequential(*layers, act()) if act else tnn.Sequential(*layers)

    class Block(tnn.Module):
        def __init__(self, inplanes, planes, stride, bottleneck):
            super().__init__()
            self.expansion = 4 if bottleneck else 1
            if bottleneck:
                self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
                self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
                self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
                self.bn3 = tnn.BatchNorm2d(planes * 4)
            else:
                self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
                self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn1, self.bn2 = tnn.BatchNorm2d(planes), tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            out = planes * self.expansion
            self.downsample = None if stride == 1 and inplanes == out else tnn.Sequential(
                tnn.Conv2d(inplanes, out, 1, stride, bias=False), tnn.BatchNorm2d(out))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if self.expansion == 4:
                y = self.bn3(self.conv3(self.relu(y)))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class Bottleneck(Block):  # from_torch tells torchvision's blocks apart by class name
        pass

    class ResNet(tnn.Module):
        def __init__(self, layers, bottleneck, num_classes):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1, self.relu = tnn.BatchNorm2d(64), tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            inplanes = 64
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
                blocks = []
                for b in range(n):
                    cls = Bottleneck if bottleneck else Block
                    blocks.append(cls(inplanes, planes, 2 if i and not b else 1, bottleneck))
                    inplanes = planes * blocks[-1].expansion
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(inplanes, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class InvertedResidual(tnn.Module):
        def __init__(self, inp, oup, stride, t):
            super().__init__()
            hidden = inp * t
            layers = [cna(inp, hidden, 1)] if t != 1 else []
            layers += [cna(hidden, hidden, 3, stride, hidden), tnn.Conv2d(hidden, oup, 1,
                                                                          bias=False),
                       tnn.BatchNorm2d(oup)]
            self.conv = tnn.Sequential(*layers)
            self.res = stride == 1 and inp == oup

        def forward(self, x):
            return x + self.conv(x) if self.res else self.conv(x)

    class MobileNetV2(tnn.Module):
        def __init__(self, num_classes):
            super().__init__()
            layers, c_in = [cna(3, 32, 3, 2)], 32
            for t, c, n, s in models.MobileNetV2.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                    c_in = c
            self.features = tnn.Sequential(*layers, cna(320, 1280, 1))
            self.classifier = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(1280, num_classes))

        def forward(self, x):
            x = tnn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    return {"resnet18": lambda k: ResNet((2, 2, 2, 2), False, k),
            "resnet50": lambda k: ResNet((3, 4, 6, 3), True, k),
            "mobilenet_v2": MobileNetV2}


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_against_torch(name):
    torch = pytest.importorskip("torch")
    ours = randomise_bn(BUILDERS[name](num_classes=10, rng=11), 12)
    theirs = torch_models(torch)[name](10).eval()
    assert set(theirs.state_dict()) == set(ours.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(13).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        expected = theirs(torch.from_numpy(x)).numpy()
    scale = np.abs(expected).max()
    for model in (ours, ours.fuse()):
        y = model(x)
        assert np.abs(y - expected).max() <= 1e-4 * scale  # relative to the largest logit


def check_from_torch(torch, module, expected_type):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    module.eval()
    model = nn.from_torch(module)
    assert type(model) is expected_type and not model.training
    x = np.random.default_rng(14).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    scale = np.abs(expected).max()
    assert np.abs(model(x) - expected).max() <= 1e-4 * scale
    assert np.abs(model.fuse()(x) - expected).max() <= 1e-4 * scale


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_from_torch_on_torchvision_layout(name):
    """from_torch recognises torchvision's classes by module and name: the replicas above, so
    named, stand in for them where torchvision is not installed."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch_models(torch)[name](10)
    kind = "MobileNetV2" if name == "mobilenet_v2" else "ResNet"
    module.__class__ = type(kind, (type(module),), {"__module__": "torchvision.models.x"})
    check_from_torch(torch, module, getattr(models, kind))


@pytest.mark.parametrize("name, kind", [("resnet18", "ResNet"), ("resnet50", "ResNet"),
                                        ("mobilenet_v2", "MobileNetV2"), ("vgg16", "VGG")])
def test_from_torch_on_torchvision_models(name, kind):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    check_from_torch(torch, getattr(torchvision.models, name)(num_classes=10),
                     getattr(models, kind))
    train = nn.from_torch(torchvision.models.resnet18().train())
    assert all(m.training for m in train.modules())


def test_models_are_exported():
    assert cnnfast.models.resnet50 is models.resnet50
    assert {"ResNet", "MobileNetV2", "VGG"} <= set(nn.REGISTRY)


def test_threads_share_one_model():
    import threading

    model = models.resnet18(num_classes=4, rng=15).eval().fuse()
    inputs = [np.random.default_rng(16 + i).standard_normal((1, 3, 32, 32)).astype(np.float32)
              for i in range(4)]
    expected = [model(x) for x in inputs]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(3):
            results[i] = model(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "vgg16_bn"])
def test_channels_last_matches_nchw(isa, name):
    def build():
        if name == "vgg16_bn":
            return models.vgg16(num_classes=6, rng=17, batch_norm=True)
        return BUILDERS[name](num_classes=6, rng=17)

    x = np.random.default_rng(18).standard_normal((2, 3, 32, 40)).astype(np.float32)
    expected = randomise_bn(build(), 19)(x)
    tol = 1e-4 * np.abs(expected).max()
    nhwc = randomise_bn(build(), 19).channels_last()
    assert nhwc.layout == "NHWC"
    np.testing.assert_allclose(nhwc(x), expected, atol=tol)
    np.testing.assert_allclose(nhwc.fuse()(x), expected, atol=tol)  # fuse keeps the layout
    assert all(getattr(m, "layout", "NHWC") == "NHWC" for m in nhwc.modules()
               if isinstance(m, nn.Conv2d))
    fused_first = randomise_bn(build(), 19).fuse().channels_last()
    np.testing.assert_allclose(fused_first(x), expected, atol=tol)


def test_channels_last_errors():
    model = models.resnet18(num_classes=3, rng=20)
    model.fc = nn.Sigmoid()
    with pytest.raises(TypeError, match=r"channels_last: fc \(Sigmoid\) has no NHWC path"):
        model.channels_last()
    block = nn.BasicBlock(4, 4)
    block.layout = "NHWC"
    with pytest.raises(ValueError, match=r"expected \(N, 4, H, W\) input \(NHWC\), got shape "
                                         r"\(1, 4, 6, 6\)"):
        block(np.zeros((1, 4, 6, 6), np.float32))
