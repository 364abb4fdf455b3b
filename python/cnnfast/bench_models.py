"""``python -m cnnfast bench models``: whole networks (ResNet-50, MobileNetV2; batch 1 and 8,
224x224) as fused cnnfast.models against PyTorch eager in eval mode under inference_mode (NCHW)
and, when onnx and onnxruntime are installed, ONNX Runtime running the same torch model exported
with torch.onnx.export (all graph optimisations on, the same thread count), the same weights in
all, interleaved in one process. The torch model (torch_model below) is
torchvision's layout and forward in plain torch.nn modules (torchvision is not needed), its
layer arguments read from the cnnfast model so both do the same work (tests/test_models.py
checks the architecture itself against an independent torch replica and torchvision's keys).
"""

import io
import math
import warnings

import numpy as np

from . import models
from .bench import import_torch, interleaved_best, peak_gflops, progress, record, thread_counts
from .nn import summary

# (name, builder of the cnnfast model, batch sizes, input size)
CASES = [("resnet50", lambda: models.resnet50(rng=0), (1, 8), 224),
         ("mobilenet_v2", lambda: models.mobilenet_v2(rng=0), (1, 8), 224)]
QUICK_CASES = [("resnet_tiny", lambda: models.ResNet("basic", (1, 1, 1, 1), 10, rng=0), (2,),
                32),
               ("mobilenet_v2", lambda: models.mobilenet_v2(10, rng=0, width_mult=0.25), (1,),
                32)]


def torch_model(torch, model):
    """A torch.nn model with torchvision's module names and forward for a cnnfast ResNet or
    MobileNetV2 (same architecture arguments), weights copied, in eval mode. torch is the
    caller's; cnnfast never imports it."""
    tnn = torch.nn

    class Residual(tnn.Module):
        def __init__(self, block):
            super().__init__()
            self.bottleneck = isinstance(block, models.Bottleneck)
            for name, child in block.named_children():
                if name == "relu":
                    continue
                setattr(self, name, convert(child))
            self.relu = tnn.ReLU()

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if self.bottleneck:
                y = self.bn3(self.conv3(self.relu(y)))
            shortcut = self.downsample(x) if hasattr(self, "downsample") else x
            return self.relu(y + shortcut)

    class InvertedResidual(tnn.Module):
        def __init__(self, block):
            super().__init__()
            self.conv = convert(block.conv)
            self.res = block.use_res_connect

        def forward(self, x):
            return x + self.conv(x) if self.res else self.conv(x)

    class Network(tnn.Module):
        def __init__(self, model):
            super().__init__()
            self.resnet = isinstance(model, models.ResNet)
            for name, child in model.named_children():
                setattr(self, name, convert(child))

        def forward(self, x):
            if self.resnet:
                x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
                x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
                return self.fc(torch.flatten(self.avgpool(x), 1))
            x = tnn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    def convert(m):
        from . import nn

        if isinstance(m, (models.BasicBlock, models.Bottleneck)):
            return Residual(m)
        if isinstance(m, models.InvertedResidual):
            return InvertedResidual(m)
        if isinstance(m, nn.Sequential):
            return tnn.Sequential(*[convert(c) for c in m])
        if isinstance(m, nn.Conv2d):
            return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                              m.dilation, m.groups, bias=m.bias is not None)
        simple = {nn.BatchNorm2d: lambda: tnn.BatchNorm2d(m.num_features),
                  nn.ReLU: tnn.ReLU, nn.ReLU6: tnn.ReLU6,
                  nn.MaxPool2d: lambda: tnn.MaxPool2d(m.kernel_size, m.stride, m.padding),
                  nn.AdaptiveAvgPool2d: lambda: tnn.AdaptiveAvgPool2d(1),
                  nn.Dropout: lambda: tnn.Dropout(m.p),
                  nn.Linear: lambda: tnn.Linear(m.in_features, m.out_features)}
        return simple[type(m)]()

    result = Network(model).eval()
    result.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return result


def check(name, who, ours, expected):
    err = float(np.abs(ours - expected).max())
    if not err <= 1e-3 * max(1.0, float(np.abs(expected).max())):
        raise SystemExit(f"{name}: {who} differs from torch by {err:.3g}")


def ort_session(torch, reference, shape, threads):
    """An ONNX Runtime session for the torch model `reference` on inputs of `shape` (exported by
    torch.onnx.export's TorchScript exporter, which needs no extra package), or None when
    onnx/onnxruntime are missing or the export fails."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime as ort
    except ImportError:
        return None
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(reference, (torch.zeros(shape),), buffer, dynamo=False,
                                  opset_version=17, input_names=["x"])
            except TypeError:  # a torch from before the dynamo exporter: no such argument
                torch.onnx.export(reference, (torch.zeros(shape),), buffer, opset_version=17,
                                  input_names=["x"])
    except Exception as error:  # an exporter that cannot handle this torch build
        print(f"onnx export failed ({type(error).__name__}: {error}); no onnxruntime column")
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def run(args):
    torch = import_torch()
    repeat = max(1, args.repeat)
    peak, source = peak_gflops(args)
    try:
        import onnxruntime
        ort_version = f"onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort_version = "onnxruntime not installed"
    print(f"torch {torch.__version__ if torch else 'not installed (cnnfast timed alone)'}; "
          f"{ort_version}; best of {repeat} interleaved rounds; cnnfast models fused "
          f"(Conv+BN+ReLU folded), run NCHW and channels_last() (NHWC inside, NCHW input); "
          f"ratio = peer time / cnnfast time (> 1: cnnfast faster; the better of cnnfast's NCHW "
          f"and NHWC runs in the ort column); img/s, GFLOP/s and %peak (of {peak:g} GFLOP/s per "
          f"thread, {source}) of the NHWC run")
    header = (f"{'model':<14}{'batch':>6}{'thr':>4}{'nchw ms':>9}{'nhwc ms':>9}{'torch ms':>10}"
              f"{'ort ms':>9}{'img/s':>8}{'GFLOP/s':>9}{'%peak':>7}{'ratio':>7}"
              f"{'nhwc ratio':>11}{'vs ort':>8}")
    rng = np.random.default_rng(0)
    built = []
    for name, build, batches, size in QUICK_CASES if args.quick else CASES:
        model = build().eval()
        macs = summary(model, (1, 3, size, size), quiet=True).total_macs
        reference = torch_model(torch, model) if torch is not None else None
        nhwc = build().eval().fuse().channels_last()  # the same weights: build() is seeded
        built.append((name, model.fuse(), nhwc, reference, batches, size, macs))
    for t in thread_counts(args, torch):
        print(header + "\n" + "-" * len(header))
        logs = {"NCHW": [], "NHWC": [], "onnxruntime": []}
        cases = [(m, batch) for m in built for batch in m[4]]
        for i, ((name, model, nhwc, reference, _, size, macs), batch) in enumerate(cases):
            progress(i, len(cases), f"{name} batch {batch}")
            x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
            runs = [lambda: model(x), lambda: nhwc(x)]
            expected, times = model(x), [math.nan] * 4
            if reference is not None:
                tx = torch.from_numpy(x)

                def eager():
                    with torch.inference_mode():
                        return reference(tx)

                expected = eager().numpy()
                runs.append(eager)
                session = ort_session(torch, reference, x.shape, t)
                if session is not None:
                    check(name, "onnxruntime", session.run(None, {"x": x})[0], expected)
                    runs.append(lambda: session.run(None, {"x": x}))
            for ours in (model(x), nhwc(x)):
                check(name, "cnnfast", ours, expected)
            times[:len(runs)] = interleaved_best(runs, repeat)
            best = min(times[0], times[1])
            ratios = {"NCHW": times[2] / times[0], "NHWC": times[2] / times[1],
                      "onnxruntime": times[3] / best}
            for key, ratio in ratios.items():
                if math.isfinite(ratio):
                    logs[key].append(math.log(ratio))
            record(f"{name} b{batch}", t, **{"torch (NCHW run)": ratios["NCHW"],
                                             "torch (NHWC run)": ratios["NHWC"],
                                             "onnxruntime": ratios["onnxruntime"]})
            gflops = 2.0 * macs * batch / times[1] * 1e-9
            print(f"{name:<14}{batch:>6}{t:>4}{times[0] * 1e3:>9.2f}{times[1] * 1e3:>9.2f}"
                  f"{times[2] * 1e3:>10.2f}{times[3] * 1e3:>9.2f}{batch / times[1]:>8.1f}"
                  f"{gflops:>9.1f}{100 * gflops / (peak * t):>7.1f}{ratios['NCHW']:>7.2f}"
                  f"{ratios['NHWC']:>11.2f}{ratios['onnxruntime']:>8.2f}", flush=True)
        means = {k: math.exp(sum(v) / len(v)) for k, v in logs.items() if v}
        if means:
            titles = {"NCHW": "vs torch, NCHW run", "NHWC": "vs torch, NHWC run",
                      "onnxruntime": "vs onnxruntime, better run"}
            print(f"geometric mean ratio, {t} thread(s): "
                  + "; ".join(f"{titles[k]} {v:.2f}" for k, v in means.items()) + "\n")
    return 0
