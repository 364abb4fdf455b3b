"""``python -m cnnfast bench batch_norm``: cnnfast.batch_norm against torch's, and conv_bn_act
against the bare convolution, interleaved in one process.

Batch norm is memory-bound, so it is reported in GB/s of x read once plus y written once, next to
a plain copy (numpy.copyto) of the same bytes timed in the same rounds: the copy bandwidth for
that working-set size (L2/L3-resident or DRAM alike for both).
"""

import math

import numpy as np

from . import batch_norm, conv2d, conv_bn_act
from .bench import import_torch, interleaved_best, paired_ratio, progress, record, thread_counts
from .bench_conv import read_layers

# (name, shape): the layers issue 8 names.
CASES = [
    ("256@56x56.b1", (1, 256, 56, 56)),
    ("256@56x56.b8", (8, 256, 56, 56)),
    ("64@112x112.b1", (1, 64, 112, 112)),
]
QUICK_CASES = [("32@14x14.b2", (2, 32, 14, 14))]


def bn_case(shape, training, repeat, rng, torch):
    x = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    w, b = rng.standard_normal(c, dtype=np.float32), rng.standard_normal(c, dtype=np.float32)
    y, copy_dst, x_in_place = np.empty_like(x), np.empty_like(x), x.copy()
    # In place (out=x) saves the read-for-ownership of a separate output's cache lines.
    runs = [lambda: batch_norm(x, rm, rv, w, b, training=training, out=y),
            lambda: np.copyto(copy_dst, x),
            lambda: batch_norm(x_in_place, rm, rv, w, b, training=training, out=x_in_place)]
    if torch is not None:
        tx, trm, trv, tw, tb = (torch.from_numpy(a) for a in (x, rm.copy(), rv.copy(), w, b))
        runs.append(lambda: torch.nn.functional.batch_norm(tx, trm, trv, tw, tb,
                                                           training=training))
    return interleaved_best(runs, repeat), 2.0 * x.nbytes


def run_bn(threads, repeat, quick, torch):
    rng = np.random.default_rng(0)
    print(f"{'case':<16}{'mode':>6}{'thr':>4}{'cnnfast ms':>11}{'torch ms':>10}{'GB/s':>7}"
          f"{'copy GB/s':>10}{'%copy':>6}{'ratio':>7}{'in-place ratio':>15}")
    logs = {}
    cases = QUICK_CASES if quick else CASES
    for i, (name, shape) in enumerate(cases):
        for training in (False, True):
            mode = "train" if training else "eval"
            progress(i, len(cases), f"{name} {mode}")
            times, nbytes = bn_case(shape, training, repeat, rng, torch)
            ours, copy = times[0], times[1]
            theirs = times[3] if torch is not None else math.nan
            record(f"{name} {mode}", threads, torch=theirs / ours)
            if torch is not None:
                logs.setdefault(mode, []).append(math.log(theirs / ours))
            print(f"{name:<16}{mode:>6}{threads:>4}{ours * 1e3:>11.3f}{theirs * 1e3:>10.3f}"
                  f"{nbytes / ours * 1e-9:>7.1f}{nbytes / copy * 1e-9:>10.1f}"
                  f"{100 * copy / ours:>6.0f}{theirs / ours:>7.2f}{theirs / times[2]:>15.2f}",
                  flush=True)
    for mode, values in logs.items():
        print(f"geometric mean ratio vs torch, {mode}: {math.exp(sum(values) / len(values)):.2f}")


def run_fused(threads, repeat, quick):
    """conv_bn_act (folded BN + fused relu) against the bare conv2d on the ResNet-50 layers."""
    rng = np.random.default_rng(1)
    layers = [la for la in read_layers(quick) if la["name"].startswith(("r50", "quick"))]
    print("\noverhead = median over rounds of the two calls' time ratio, timed back to back")
    print(f"\n{'layer':<15}{'thr':>4}{'conv ms':>9}{'conv_bn_act ms':>15}{'overhead %':>11}")
    overheads = []
    for layer in layers:
        x = rng.standard_normal(layer["x"], dtype=np.float32)
        w = rng.standard_normal(layer["w"], dtype=np.float32)
        c = layer["w"][0]
        rm, rv = rng.standard_normal(c, dtype=np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
        g, beta = rng.standard_normal(c, dtype=np.float32), rng.standard_normal(c, dtype=np.float32)
        args = (layer["stride"], layer["pad"], layer["dilation"], layer["groups"])
        y = conv2d(x, w, None, *args)
        runs = [lambda: conv2d(x, w, None, *args, out=y),
                lambda: conv_bn_act(x, w, None, rm, rv, g, beta, *args, activation="relu", out=y)]
        times = interleaved_best(runs, repeat)
        overhead = 100 * (paired_ratio(*runs, repeat) - 1)
        overheads.append(overhead)
        print(f"{layer['name']:<15}{threads:>4}{times[0] * 1e3:>9.3f}{times[1] * 1e3:>15.3f}"
              f"{overhead:>11.1f}", flush=True)
    median = sorted(overheads)[len(overheads) // 2]
    print(f"largest overhead {max(overheads):.1f} %, median {median:.1f} %")


def run(args):
    torch = import_torch()
    repeat = max(1, args.repeat)
    print(f"torch {torch.__version__ if torch else 'not installed'}; best of {repeat} interleaved "
          f"rounds; ratio = torch time / cnnfast time; %copy = copy time / cnnfast time")
    for t in thread_counts(args, torch):
        run_bn(t, repeat, args.quick, torch)
        run_fused(t, repeat, args.quick)
    return 0
