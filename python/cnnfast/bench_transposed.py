"""``python -m cnnfast bench conv_transpose2d``: cnnfast.conv_transpose2d against
torch.nn.functional.conv_transpose2d (NCHW, same thread count), interleaved in one process, over
bench/shapes/conv_transpose2d.txt. Each algorithm is timed too (the columns that chose "auto")."""

import math
import re

import numpy as np

from . import conv_transpose2d, conv_transpose2d_algorithms
from .bench import (import_torch, interleaved_best, peak_gflops, progress, record,
                    thread_counts)
from .bench_conv import SHAPES_DIR, parse_layer

QUICK = ["name=quick.4x4s2 n=1 c=16 h=8 w=8 oc=8 kh=4 kw=4 stride=2 pad=1"]


def layers(quick, path=SHAPES_DIR / "conv_transpose2d.txt"):
    """The layers of `path` (the quick list with `quick`, or when the source tree's bench/ is
    absent, as in an installed wheel)."""
    if quick or not path.is_file():
        return [dict(parse_layer(line, "quick"), opad=0) for line in QUICK]
    out = []
    for number, line in enumerate(path.read_text().splitlines()):
        line = line.split("#", 1)[0].strip()
        if line:
            fields = dict(token.partition("=")[::2] for token in line.split())
            layer = parse_layer(" ".join(t for t in line.split() if not t.startswith("opad=")),
                                f"conv_transpose2d.txt:{number + 1}")
            layer["opad"] = int(fields.get("opad", 0))
            out.append(layer)
    return out


def run(args):
    torch = import_torch()
    peak, _ = peak_gflops(args)
    repeat = max(1, args.repeat)
    rng = np.random.default_rng(0)
    algos = [a for a in conv_transpose2d_algorithms() if a != "auto"]
    header = f"{'layer':<17}{'thr':>4}{'cnnfast ms':>11}{'torch ms':>10}{'GFLOP/s':>9}" \
             f"{'%peak':>7}{'ratio':>7}" + "".join(f"{a + ' ms':>15}" for a in algos)
    selected = layers(args.quick)
    if getattr(args, "layers", None):
        selected = [layer for layer in selected if re.search(args.layers, layer["name"])]
    for t in thread_counts(args, torch):
        print(header + "\n" + "-" * len(header))
        logs = []
        for i, layer in enumerate(selected):
            progress(i, len(selected), layer["name"])
            n, c, h, w = layer["x"]
            oc, kh, kw = layer["w"][0], layer["w"][2], layer["w"][3]
            x = rng.standard_normal((n, c, h, w), dtype=np.float32)
            weight = rng.standard_normal((c, oc, kh, kw), dtype=np.float32)
            a = (layer["stride"], layer["pad"], layer["opad"])
            y = conv_transpose2d(x, weight, None, *a)
            runs = [lambda algo=algo: conv_transpose2d(x, weight, None, *a, algo=algo, out=y)
                    for algo in ["auto"] + algos]
            if torch is not None:
                tx, tw = torch.from_numpy(x), torch.from_numpy(weight)
                runs.append(lambda: torch.nn.functional.conv_transpose2d(tx, tw, None, *a))
            times = interleaved_best(runs, repeat)
            flops = 2.0 * n * h * w * c * oc * kh * kw
            theirs = times[-1] if torch is not None else math.nan
            if torch is not None:
                logs.append(math.log(theirs / times[0]))
            record(layer["name"], t, torch=theirs / times[0])
            gflops = flops / times[0] * 1e-9
            print(f"{layer['name']:<17}{t:>4}{times[0] * 1e3:>11.3f}{theirs * 1e3:>10.3f}"
                  f"{gflops:>9.1f}{100 * gflops / (peak * t):>7.1f}"
                  f"{theirs / times[0]:>7.2f}" +
                  "".join(f"{v * 1e3:>15.3f}" for v in times[1:1 + len(algos)]), flush=True)
        if logs:
            print(f"geometric mean ratio vs torch, {t} thread(s): "
                  f"{math.exp(sum(logs) / len(logs)):.2f}\n")
    return 0
