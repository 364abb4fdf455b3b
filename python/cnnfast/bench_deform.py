"""``python -m cnnfast bench deform_conv2d``: cnnfast.deform_conv2d against its peers, interleaved
in one process, over bench/shapes/deform_conv2d.txt.

Peers, each when importable: torchvision.ops.deform_conv2d (CPU, same thread count), ONNX
Runtime's DeformConv (opset 19, same thread count), and cnnfast's own dense conv2d on the same
shape (the ceiling a deformable convolution can approach: same GEMM, no sampling). The ratio
columns are peer time / cnnfast time (> 1: cnnfast is faster), except "vs dense", which is
dense time / deformable time (the fraction of dense throughput reached).
"""

import math
import re

import numpy as np

from . import conv2d, deform_conv2d
from .bench import (interleaved_best, ort_op_session, peak_gflops, progress, record,
                    thread_counts)
from .bench_conv import SHAPES_DIR, read_layers

QUICK = ["name=quick.dcnv2 n=1 c=32 h=14 w=14 oc=32 kh=3 kw=3 pad=1 og=2 mask=1"]


def import_torchvision():
    """(torch, torchvision.ops) when both import, else (None, None)."""
    try:
        import torch
        import torchvision.ops as ops
    except Exception:  # ImportError, or a torchvision built for another torch
        return None, None
    return torch, ops


def ort_session(layer, threads):
    """An ONNX Runtime session running DeformConv for `layer`, or None when onnx/onnxruntime
    are missing or this build has no DeformConv."""
    kh, kw = layer["w"][2:]
    (sh, sw), (ph, pw), (dh, dw) = layer["stride"], layer["pad"], layer["dilation"]
    inputs = ["x", "w", "offset", "b"] + (["mask"] if layer["mask"] else [])
    return ort_op_session("DeformConv", inputs, dict(
        dilations=[dh, dw], group=layer["groups"], kernel_shape=[kh, kw],
        offset_group=layer["og"], pads=[ph, pw, ph, pw], strides=[sh, sw]), threads)


def layer_arrays(layer, rng):
    """x, offset, weight, bias, mask (None for DCNv1) of one layer: offsets of a few pixels and a
    mask in (0, 1), like trained DCN layers."""
    n, c, h, w = layer["x"]
    oc, cg, kh, kw = layer["w"]
    (sh, sw), (ph, pw), (dh, dw) = layer["stride"], layer["pad"], layer["dilation"]
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    taps = layer["og"] * kh * kw
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    weight = rng.standard_normal((oc, cg, kh, kw), dtype=np.float32)
    bias = rng.standard_normal(oc, dtype=np.float32)
    offset = 2.0 * rng.standard_normal((n, 2 * taps, oh, ow), dtype=np.float32)
    mask = rng.random((n, taps, oh, ow), dtype=np.float32) if layer["mask"] else None
    return x, offset, weight, bias, mask


def run(args):
    torch, tv_ops = import_torchvision()
    peak, _ = peak_gflops(args)
    repeat = max(1, args.repeat)
    rng = np.random.default_rng(0)
    if tv_ops is None:
        print("torchvision not importable: no torchvision column")
    header = (f"{'layer':<22}{'thr':>4}{'cnnfast ms':>11}{'GFLOP/s':>9}{'%peak':>7}"
              f"{'vs dense':>9}{'vs tv':>7}{'vs ort':>8}")
    for t in thread_counts(args, torch):
        print(header + "\n" + "-" * len(header))
        logs = {"tv": [], "ort": []}
        layers = read_layers(args.quick, SHAPES_DIR / "deform_conv2d.txt", QUICK, QUICK)
        if getattr(args, "layers", None):
            layers = [layer for layer in layers if re.search(args.layers, layer["name"])]
        for i, layer in enumerate(layers):
            progress(i, len(layers), layer["name"])
            x, offset, weight, bias, mask = layer_arrays(layer, rng)
            conv = (layer["stride"], layer["pad"], layer["dilation"])
            y = deform_conv2d(x, offset, weight, bias, *conv, mask)
            y_dense = conv2d(x, weight, bias, *conv)
            runs = [lambda: deform_conv2d(x, offset, weight, bias, *conv, mask, out=y),
                    lambda: conv2d(x, weight, bias, *conv, out=y_dense)]
            peers = []
            if tv_ops is not None:
                tensors = [None if a is None else torch.from_numpy(a)
                           for a in (x, offset, weight, bias, mask)]
                tx, toff, tw, tb, tm = tensors
                runs.append(lambda: tv_ops.deform_conv2d(tx, toff, tw, tb, *conv, mask=tm))
                peers.append("tv")
            session = ort_session(layer, t)
            if session is not None:
                feed = {"x": x, "w": weight, "offset": offset, "b": bias}
                if mask is not None:
                    feed["mask"] = mask
                runs.append(lambda: session.run(None, feed))
                peers.append("ort")
            times = interleaved_best(runs, repeat)
            ratios = {name: times[2 + i] / times[0] for i, name in enumerate(peers)}
            for name, ratio in ratios.items():
                logs[name].append(math.log(ratio))
            record(layer["name"], t, **{{"tv": "torchvision", "ort": "onnxruntime"}[name]: ratio
                                        for name, ratio in ratios.items()})
            _, cg, kh, kw = layer["w"]
            gflops = 2.0 * y.size * cg * kh * kw / times[0] * 1e-9
            cells = "".join(f"{ratios[name]:>{width}.2f}" if name in ratios else
                            f"{'-':>{width}}" for name, width in (("tv", 7), ("ort", 8)))
            print(f"{layer['name']:<22}{t:>4}{times[0] * 1e3:>11.3f}{gflops:>9.1f}"
                  f"{100 * gflops / (peak * t):>7.1f}{times[1] / times[0]:>9.2f}{cells}",
                  flush=True)
        for name, title in (("tv", "torchvision"), ("ort", "onnxruntime")):
            if logs[name]:
                print(f"geometric mean ratio vs {title}, {t} thread(s): "
                      f"{math.exp(sum(logs[name]) / len(logs[name])):.2f}")
        print()
    return 0
