"""``python -m cnnfast bench conv2d``: cnnfast.conv2d against torch.nn.functional.conv2d.

Each layer of bench/shapes/conv2d.txt runs through cnnfast (NCHW, and NHWC to check it is at
least as fast) and, when PyTorch is installed, torch (NCHW float32, torch.set_num_threads equal
to cnnfast's), in alternating rounds in one process (see bench.interleaved_best). Weights are
packed inside each call, as PyTorch's functional call does.
"""

import math
import re
from pathlib import Path

import numpy as np

from . import conv2d, isa
from .bench import (import_torch, interleaved_best, peak_gflops, progress, record,
                    thread_counts)

SHAPES_DIR = Path(__file__).resolve().parents[2] / "bench" / "shapes"
SHAPES_FILE = SHAPES_DIR / "conv2d.txt"
# Used when the source tree (and so the shapes file) is absent: a few representative layers.
BUILTIN_LAYERS = [
    "name=r50.stem n=1 c=3 h=224 w=224 oc=64 kh=7 kw=7 stride=2 pad=3",
    "name=r50.2.3x3 n=1 c=64 h=56 w=56 oc=64 kh=3 kw=3 pad=1",
    "name=r50.4.1x1c n=1 c=1024 h=14 w=14 oc=256 kh=1 kw=1",
]
QUICK_LAYERS = [
    "name=quick.3x3 n=1 c=32 h=28 w=28 oc=32 kh=3 kw=3 pad=1",
    "name=quick.1x1 n=1 c=64 h=14 w=14 oc=64 kh=1 kw=1",
]
# Keys some lists add, with their defaults: output_padding (conv_transpose2d.txt); offset
# groups and whether a modulation mask is used (deform_conv2d.txt).
EXTRA_KEYS = {"opad": 0, "og": 1, "mask": 0}
KEYS = {"name", "n", "c", "h", "w", "oc", "kh", "kw", "stride", "pad", "dilation", "groups"}
KEYS |= set(EXTRA_KEYS)


def parse_layer(line, where):
    fields = dict(token.partition("=")[::2] for token in line.split())
    unknown = set(fields) - KEYS
    if unknown or not {"c", "h", "w", "oc", "kh", "kw"} <= set(fields):
        raise SystemExit(f"{where}: expected keys {sorted(KEYS)}, got {line!r}")

    def pair(key, default):
        values = [int(v) for v in fields.get(key, default).split(",")]
        return (values[0], values[-1])

    return {
        "name": fields.get("name", "?"),
        "x": (int(fields.get("n", 1)), int(fields["c"]), int(fields["h"]), int(fields["w"])),
        "w": (int(fields["oc"]), int(fields["c"]) // int(fields.get("groups", 1)),
              int(fields["kh"]), int(fields["kw"])),
        "stride": pair("stride", "1"),
        "pad": pair("pad", "0"),
        "dilation": pair("dilation", "1"),
        "groups": int(fields.get("groups", 1)),
        **{key: int(fields.get(key, default)) for key, default in EXTRA_KEYS.items()},
    }


def read_layers(quick, path=SHAPES_FILE, quick_layers=QUICK_LAYERS, builtin_layers=BUILTIN_LAYERS,
                parse=None):
    """The layers of `path` (the quick list with `quick`; built-in ones when `path` is absent,
    as in an installed wheel), each line read by `parse(line, where)` (parse_layer)."""
    parse = parse or parse_layer
    if quick:
        return [parse(line, "quick") for line in quick_layers]
    if not path.is_file():
        return [parse(line, "builtin") for line in builtin_layers]
    layers = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            layers.append(parse(line, f"{path}:{line_no}"))
    return layers


def flops(layer, y_shape):
    _, cg, kh, kw = layer["w"]
    return 2.0 * math.prod(y_shape) * cg * kh * kw


def bench_layer(layer, repeat, rng, torch):
    x = rng.standard_normal(layer["x"], dtype=np.float32)
    w = rng.standard_normal(layer["w"], dtype=np.float32)
    b = rng.standard_normal(layer["w"][0], dtype=np.float32)
    args = (layer["stride"], layer["pad"], layer["dilation"], layer["groups"])
    y = conv2d(x, w, b, *args)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y_nhwc = np.ascontiguousarray(y.transpose(0, 2, 3, 1))
    runs = [lambda: conv2d(x, w, b, *args, out=y),
            lambda: conv2d(x_nhwc, w, b, *args, layout="NHWC", out=y_nhwc)]
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        expected = torch.nn.functional.conv2d(tx, tw, tb, *args).numpy()
        bound = np.finfo(np.float32).eps * math.prod(layer["w"][1:]) * 8 * np.abs(x).max()
        if not np.abs(expected - y).max() <= bound * np.abs(w).max():
            raise SystemExit(f"{layer['name']}: cnnfast.conv2d differs from torch")
        runs.append(lambda: torch.nn.functional.conv2d(tx, tw, tb, *args))
    return interleaved_best(runs, repeat), flops(layer, y.shape)


def run(args):
    torch = import_torch()
    shapes = getattr(args, "shapes", None)
    path = SHAPES_DIR / f"{shapes}.txt" if shapes else SHAPES_FILE
    if shapes and not path.is_file():
        raise SystemExit(f"--shapes {shapes}: no layer list {path}")
    return print_table(args, read_layers(args.quick, path), bench_layer, torch, ("NCHW", "nhwc"))


def print_table(args, layers, bench_layer, torch, names):
    """Runs bench_layer(layer, repeat, rng, torch) -> ((ours, ours in the other layout,
    torch's), flops) over the layers matching --layers at each thread count and prints the table
    and the geometric mean. names: (our layout, the other layout's column title)."""
    peak, source = peak_gflops(args)
    repeat = max(1, args.repeat)
    if getattr(args, "layers", None):
        layers = [layer for layer in layers if re.search(args.layers, layer["name"])]
    ours_name, other = names
    print(f"cnnfast isa {isa()}; torch {torch.__version__ if torch else 'not installed'}")
    print(f"%peak of {peak:g} GFLOP/s per thread ({source}); best of {repeat} interleaved rounds")
    print(f"ratio = torch time / cnnfast {ours_name} time (> 1: cnnfast faster); {other} = "
          f"{ours_name}/{other.upper()} time\n")
    width = max([15] + [len(layer["name"]) + 1 for layer in layers])
    header = (f"{'layer':<{width}}{'thr':>4}{'cnnfast ms':>11}{'torch ms':>10}{'GFLOP/s':>9}"
              f"{'%peak':>7}{'ratio':>7}{other:>7}")
    rng = np.random.default_rng(0)
    for t in thread_counts(args, torch):
        print(header + "\n" + "-" * len(header))
        log_ratios = []
        for i, layer in enumerate(layers):
            progress(i, len(layers), layer["name"])
            times, work = bench_layer(layer, repeat, rng, torch)
            ours, alt = times[0], times[1]
            theirs = times[2] if torch is not None else math.nan
            record(layer["name"], t, torch=theirs / ours)
            if torch is not None:
                log_ratios.append(math.log(theirs / ours))
            gflops = work / ours * 1e-9
            print(f"{layer['name']:<{width}}{t:>4}{ours * 1e3:>11.3f}{theirs * 1e3:>10.3f}"
                  f"{gflops:>9.1f}{100 * gflops / (peak * t):>7.1f}{theirs / ours:>7.2f}"
                  f"{ours / alt:>7.2f}", flush=True)
        if log_ratios:
            geomean = math.exp(sum(log_ratios) / len(log_ratios))
            print(f"geometric mean ratio vs torch, {t} thread(s): {geomean:.2f}\n")
    return 0
