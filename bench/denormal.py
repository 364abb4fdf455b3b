"""Do denormal (subnormal) inputs slow cnnfast's ops down? Times each op on an input of normal
floats and on the same input scaled into the subnormal range (|x| < 1.18e-38), in alternating
rounds in one process (cnnfast.bench.interleaved_best), and prints time(denormal) / time(normal)
per op, for cnnfast and, when installed, for PyTorch on the same arrays.

    python bench/denormal.py [--threads 1] [--repeat 5] [--isa avx512]
    CNNFAST_FLUSH_DENORMALS=0 python bench/denormal.py     # IEEE subnormals: the cost avoided

A ratio near 1 means the op does not care; issue 11 allows at most 2. cnnfast's ops flush
subnormals to zero inside their threads (csrc/core/denormals.h) unless CNNFAST_FLUSH_DENORMALS=0.
"""

import argparse
import os
import sys

import numpy as np

import cnnfast
from cnnfast.bench import import_torch, interleaved_best

SCALE = np.float32(1e-39)  # standard normals times this are subnormal (min normal 1.18e-38)


def cases(rng):
    """(name, cnnfast call, torch call or None, input shape, extra arrays) per op."""
    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    w3 = normal(64, 64, 3, 3) * 0.1
    w1 = normal(128, 64, 1, 1) * 0.1
    wd = normal(64, 1, 3, 3) * 0.1
    mean, var = normal(64) * 0.1, np.abs(normal(64)) + 0.5
    b = normal(512, 512) * 0.1
    F = None
    torch = import_torch()
    if torch is not None:
        F = torch.nn.functional
        t = torch.from_numpy
    return [
        ("conv2d 3x3 gemm", (8, 64, 28, 28),
         lambda x: cnnfast.conv2d(x, w3, padding=1, algo="implicit_gemm"),
         F and (lambda x: F.conv2d(t(x), t(w3), padding=1))),
        ("conv2d 3x3 im2col", (8, 64, 28, 28),
         lambda x: cnnfast.conv2d(x, w3, padding=1, algo="im2col"), None),
        ("conv2d 3x3 direct g8", (8, 64, 28, 28),
         lambda x: cnnfast.conv2d(x, w3[:, :8], padding=1, groups=8, algo="direct"),
         F and (lambda x: F.conv2d(t(x), t(w3[:, :8].copy()), padding=1, groups=8))),
        ("conv2d 1x1", (8, 64, 28, 28), lambda x: cnnfast.conv2d(x, w1),
         F and (lambda x: F.conv2d(t(x), t(w1)))),
        ("depthwise 3x3", (8, 64, 28, 28),
         lambda x: cnnfast.conv2d(x, wd, padding=1, groups=64, algo="depthwise"),
         F and (lambda x: F.conv2d(t(x), t(wd), padding=1, groups=64))),
        ("max_pool2d 3/2", (8, 64, 56, 56), lambda x: cnnfast.max_pool2d(x, 3, 2, 1),
         F and (lambda x: F.max_pool2d(t(x), 3, 2, 1))),
        ("avg_pool2d 3/2", (8, 64, 56, 56), lambda x: cnnfast.avg_pool2d(x, 3, 2, 1),
         F and (lambda x: F.avg_pool2d(t(x), 3, 2, 1))),
        ("batch_norm infer", (8, 64, 56, 56), lambda x: cnnfast.batch_norm(x, mean, var),
         F and (lambda x: F.batch_norm(t(x), t(mean), t(var)))),
        ("batch_norm train", (8, 64, 56, 56),
         lambda x: cnnfast.batch_norm(x, mean.copy(), var.copy(), training=True),
         F and (lambda x: F.batch_norm(t(x), t(mean.copy()), t(var.copy()), training=True))),
        ("relu", (8, 64, 56, 56), cnnfast.relu, F and (lambda x: F.relu(t(x)))),
        ("sigmoid", (8, 64, 56, 56), cnnfast.sigmoid, F and (lambda x: F.sigmoid(t(x)))),
        ("tanh", (8, 64, 56, 56), cnnfast.tanh, F and (lambda x: F.tanh(t(x)))),
        ("silu", (8, 64, 56, 56), cnnfast.silu, F and (lambda x: F.silu(t(x)))),
        ("hardswish", (8, 64, 56, 56), cnnfast.hardswish, F and (lambda x: F.hardswish(t(x)))),
        ("matmul 512^3", (512, 512), lambda x: cnnfast.matmul(x, b),
         F and (lambda x: t(x) @ t(b))),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--isa", default=None, help="cap the tier (scalar, avx2, avx512)")
    args = parser.parse_args(argv)
    cnnfast.set_num_threads(args.threads)
    torch = import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
    if args.isa:
        cnnfast._C.set_max_isa(args.isa)
    rng = np.random.default_rng(0)
    torch_name = f"{torch.__version__} (flush_denormal off)" if torch else "absent"
    flush = os.environ.get("CNNFAST_FLUSH_DENORMALS", "") != "0"
    print(f"cnnfast isa {cnnfast.isa()}, threads {args.threads}, best of {args.repeat} "
          f"interleaved rounds, subnormals {'flushed' if flush else 'IEEE'}; torch {torch_name}")
    print("ratio = time(denormal input) / time(normal input); > 2 fails issue 11's rule\n")
    header = f"{'op':22} {'normal ms':>10} {'denorm ms':>10} {'ratio':>6} {'torch ratio':>12}"
    print(header + "\n" + "-" * len(header))
    worst = 0.0
    for name, shape, ours, theirs in cases(rng):
        x = rng.standard_normal(shape).astype(np.float32)
        x = np.where(np.abs(x) < 1e-3, np.float32(1e-3), np.clip(x, -10, 10))
        xd = x * SCALE  # every element subnormal, none zero
        assert np.count_nonzero(xd) == xd.size and np.abs(xd).max() < np.finfo(np.float32).tiny
        runs = [lambda: ours(x), lambda: ours(xd)]
        if theirs is not None:
            runs += [lambda: theirs(x), lambda: theirs(xd)]
        best = interleaved_best(runs, args.repeat)
        ratio = best[1] / best[0]
        worst = max(worst, ratio)
        torch_ratio = f"{best[3] / best[2]:12.2f}" if theirs is not None else f"{'-':>12}"
        print(f"{name:22} {best[0] * 1e3:10.3f} {best[1] * 1e3:10.3f} {ratio:6.2f} {torch_ratio}",
              flush=True)
    print(f"\nworst cnnfast ratio {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
