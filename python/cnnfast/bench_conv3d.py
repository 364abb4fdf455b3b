"""``python -m cnnfast bench conv3d``: cnnfast.conv3d / conv_transpose3d against
torch.nn.functional's (NCDHW float32, torch.set_num_threads equal to cnnfast's), interleaved in
one process (bench.interleaved_best), over bench/shapes/conv3d.txt (issue 9's layer list)."""

import math

import numpy as np

from . import conv3d, conv_transpose3d
from .bench import import_torch, interleaved_best
from . import bench_conv
from .bench_conv import SHAPES_DIR, print_table

SHAPES_FILE = SHAPES_DIR / "conv3d.txt"
# Used when the source tree (and so the shapes file) is absent.
BUILTIN_LAYERS = [
    "name=c3d.conv3a n=1 c=128 d=8 h=28 w=28 oc=256 kd=3 kh=3 kw=3 pad=1",
    "name=dw.3x3x3 n=1 c=64 d=16 h=56 w=56 oc=64 kd=3 kh=3 kw=3 pad=1 groups=64",
    "name=unet3d.up n=1 c=64 d=16 h=16 w=16 oc=64 kd=2 kh=2 kw=2 stride=2 op=transpose",
]
QUICK_LAYERS = [
    "name=quick.3x3x3 n=1 c=16 d=6 h=12 w=12 oc=16 kd=3 kh=3 kw=3 pad=1",
    "name=quick.dw n=1 c=16 d=6 h=12 w=12 oc=16 kd=3 kh=3 kw=3 pad=1 groups=16",
    "name=quick.up n=1 c=16 d=4 h=4 w=4 oc=8 kd=2 kh=2 kw=2 stride=2 op=transpose",
]
KEYS = {"name", "n", "c", "d", "h", "w", "oc", "kd", "kh", "kw", "stride", "pad", "groups", "op"}


def parse_layer(line, where):
    fields = dict(token.partition("=")[::2] for token in line.split())
    unknown = set(fields) - KEYS
    if unknown or not {"c", "d", "h", "w", "oc", "kd", "kh", "kw"} <= set(fields) or \
            fields.get("op", "conv") not in ("conv", "transpose"):
        raise SystemExit(f"{where}: expected keys {sorted(KEYS)} (op=conv|transpose), got "
                         f"{line!r}")

    def triple(key):
        values = [int(v) for v in fields.get(key, "0" if key == "pad" else "1").split(",")]
        return tuple(values) if len(values) == 3 else (values[0],) * 3

    n, c, oc, groups = (int(fields.get(k, 1)) for k in ("n", "c", "oc", "groups"))
    kernel = tuple(int(fields[k]) for k in ("kd", "kh", "kw"))
    transposed = fields.get("op", "conv") == "transpose"
    return {
        "name": fields.get("name", "?"),
        "x": (n, c, int(fields["d"]), int(fields["h"]), int(fields["w"])),
        "w": (c, oc // groups) + kernel if transposed else (oc, c // groups) + kernel,
        "stride": triple("stride"),
        "pad": triple("pad"),
        "groups": groups,
        "transposed": transposed,
    }


def read_layers(quick, path=SHAPES_FILE):
    """The layers of `path` (the quick list with `quick`; built-in ones when `path` is absent)."""
    return bench_conv.read_layers(quick, path, QUICK_LAYERS, BUILTIN_LAYERS, parse_layer)


def bench_layer(layer, repeat, rng, torch):
    """(best seconds of cnnfast NCDHW, NDHWC and torch (when installed), flops)."""
    x = rng.standard_normal(layer["x"], dtype=np.float32)
    w = rng.standard_normal(layer["w"], dtype=np.float32)
    if layer["transposed"]:
        fn, name = conv_transpose3d, "conv_transpose3d"
        args = (layer["stride"], layer["pad"], 0, layer["groups"])
        # Every input element times every tap of its group's output channels.
        c_out = layer["w"][1] * layer["groups"]
        work = 2.0 * math.prod(layer["x"]) * c_out * math.prod(layer["w"][2:])
    else:
        fn, name = conv3d, "conv3d"
        args = (layer["stride"], layer["pad"], 1, layer["groups"])
    b = rng.standard_normal(layer["w"][1] * layer["groups"] if layer["transposed"]
                            else layer["w"][0], dtype=np.float32)
    y = fn(x, w, b, *args)
    if not layer["transposed"]:
        work = 2.0 * math.prod(y.shape) * math.prod(layer["w"][1:])
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    y_last = np.ascontiguousarray(np.moveaxis(y, 1, -1))
    runs = [lambda: fn(x, w, b, *args, out=y),
            lambda: fn(x_last, w, b, *args, layout="NDHWC", out=y_last)]
    if torch is not None:
        tfn = getattr(torch.nn.functional, name)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        expected = tfn(tx, tw, tb, *args).numpy()
        # The reduction length of one output: input channels of a group times taps.
        k = (w.shape[0] // layer["groups"] if layer["transposed"] else w.shape[1]) * \
            math.prod(w.shape[2:])
        bound = np.finfo(np.float32).eps * k * 8 * np.abs(x).max() * np.abs(w).max()
        if not np.abs(expected - y).max() <= bound:
            raise SystemExit(f"{layer['name']}: cnnfast.{name} differs from torch")
        runs.append(lambda: tfn(tx, tw, tb, *args))
    return interleaved_best(runs, repeat), work


def run(args):
    torch = import_torch()
    return print_table(args, read_layers(args.quick), bench_layer, torch, ("NCDHW", "ndhwc"))
