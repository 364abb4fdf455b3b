"""``python -m cnnfast bench pool``: cnnfast's poolings against torch's (NCHW, and channels-last
when installed), interleaved in one process, in GB/s of the input read once plus the output
written once, next to a plain copy of the input's bytes timed in the same rounds (the copy
bandwidth for that working-set size).
"""

import math

import numpy as np

from . import pooling
from .bench import (import_torch, interleaved_best, ort_op_session, progress, record,
                    thread_counts)

# (name, function, shape NC..., args, kwargs): the cases of issue 7.
CASES = [
    ("r50.max3s2", "max_pool2d", (64, 112, 112), (3, 2, 1), {}),
    ("vgg.max2s2", "max_pool2d", (128, 112, 112), (2, 2), {}),
    ("alex.max3s2", "max_pool2d", (96, 55, 55), (3, 2), {}),
    ("inc.avg3s1", "avg_pool2d", (192, 35, 35), (3, 1, 1), {}),
    ("dense.avg2s2", "avg_pool2d", (128, 56, 56), (2, 2), {}),
    ("global.avg", "adaptive_avg_pool2d", (2048, 7, 7), (1,), {}),
    ("adapt.avg6", "adaptive_avg_pool2d", (256, 13, 13), ((6, 6),), {}),
    ("max3d.2", "max_pool3d", (64, 16, 56, 56), (2, 2), {}),
    ("spp.1-2-4", "spatial_pyramid_pool2d", (256, 13, 13), ((1, 2, 4),), {}),
    ("stoch.train", "stochastic_pool2d", (64, 56, 56), (2, 2), {"seed": 1}),
    ("stoch.eval", "stochastic_pool2d", (64, 56, 56), (2, 2), {"training": False}),
]
QUICK_CASES = [("quick.max3s2", "max_pool2d", (8, 20, 20), (3, 2, 1), {})]


def ort_pool(fn_name, dims, args, threads):
    """The ONNX Runtime session for a max/avg/global pooling case (NCHW), else None."""
    if fn_name == "adaptive_avg_pool2d":
        return ort_op_session("GlobalAveragePool", ["x"], {}, threads) if args == (1,) else None
    if fn_name not in ("max_pool2d", "avg_pool2d", "max_pool3d"):
        return None
    kernel = args[0]
    stride = args[1] if len(args) > 1 else kernel
    pad = args[2] if len(args) > 2 else 0
    attributes = dict(kernel_shape=[kernel] * dims, strides=[stride] * dims,
                      pads=[pad] * (2 * dims))
    if fn_name == "avg_pool2d":  # torch's default count_include_pad=True (ONNX's default: 0)
        attributes["count_include_pad"] = 1
    return ort_op_session("MaxPool" if fn_name.startswith("max") else "AveragePool", ["x"],
                          attributes, threads)


def run_case(fn_name, shape, args, kwargs, batch, repeat, rng, torch, threads):
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    if fn_name == "stochastic_pool2d":
        np.abs(x, out=x)  # stochastic pooling needs non-negative inputs
    fn = getattr(pooling, fn_name)
    # torch has no stochastic or pyramid pooling: for those only cnnfast and the copy run.
    torch = torch if hasattr(torch, "nn") and hasattr(torch.nn.functional, fn_name) else None
    out_kw = {} if fn_name == "spatial_pyramid_pool2d" else {"out": None}
    y = fn(x, *args, **kwargs)
    if out_kw:
        out_kw["out"] = y
    copy_dst = np.empty_like(x)
    dims = x.ndim - 2
    layout = {2: "NHWC", 3: "NDHWC"}[dims]
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    runs = [lambda: fn(x, *args, **out_kw, **kwargs),
            lambda: fn(x_last, *args, layout=layout, **kwargs),
            lambda: np.copyto(copy_dst, x)]
    if torch is not None:
        tfn = getattr(torch.nn.functional, fn_name)
        tx = torch.from_numpy(x)
        expected = tfn(tx, *args, **kwargs).numpy()
        if not np.allclose(expected, y, rtol=1e-5, atol=1e-6):
            raise SystemExit(f"{fn_name}: cnnfast differs from torch on {shape}")
        fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
        tx_last = tx.contiguous(memory_format=fmt)
        runs += [lambda: tfn(tx, *args, **kwargs), lambda: tfn(tx_last, *args, **kwargs)]
    session = ort_pool(fn_name, dims, args, threads)
    if session is not None:
        if not np.allclose(session.run(None, {"x": x})[0], y, rtol=1e-5, atol=1e-6):
            raise SystemExit(f"{fn_name}: cnnfast differs from onnxruntime on {shape}")
        runs.append(lambda: session.run(None, {"x": x}))
    times = interleaved_best(runs, repeat)
    ort = times.pop() if session is not None else math.nan
    return times, ort, x.nbytes + y.nbytes, x.nbytes


def run(args):
    torch = import_torch()
    repeat = max(1, args.repeat)
    cases = QUICK_CASES if args.quick else CASES
    print(f"torch {torch.__version__ if torch else 'not installed'}; best of {repeat} "
          f"interleaved rounds; GB/s = (input + output bytes) / time; copy = numpy.copyto of "
          f"the input; ratio = torch NCHW time / cnnfast NCHW time; last = torch channels-last "
          f"time / cnnfast channels-last time; ort = onnxruntime (NCHW) time / cnnfast NCHW "
          f"time; peer = the best of onnxruntime and torch channels-last / cnnfast's better "
          f"layout")
    header = (f"{'case':<14}{'n':>3}{'thr':>4}{'ms':>8}{'GB/s':>7}{'last GB/s':>10}"
              f"{'copy GB/s':>10}{'%copy':>6}{'torch GB/s':>11}{'ratio':>7}{'last':>6}"
              f"{'ort':>6}{'peer':>6}")
    for t in thread_counts(args, torch):
        print(header + "\n" + "-" * len(header))
        logs, rng = [], np.random.default_rng(0)
        for i, (name, fn_name, shape, fargs, kwargs) in enumerate(cases):
            for batch in (1, 8):
                progress(i, len(cases), f"{name} n={batch}")
                times, ort, moved, copied = run_case(fn_name, shape, fargs, kwargs, batch,
                                                     repeat, rng, torch, t)
                ours, last, copy = times[0], times[1], times[2]
                theirs = times[3] if len(times) > 3 else math.nan
                theirs_last = times[4] if len(times) > 3 else math.nan
                if len(times) > 3:
                    logs.append(math.log(theirs / ours))
                peers = [v for v in (theirs_last, ort) if not math.isnan(v)]
                peer = min(peers) / min(ours, last) if peers else math.nan
                record(f"{name} n={batch}", t, torch=theirs / ours, onnxruntime=ort / ours)
                print(f"{name:<14}{batch:>3}{t:>4}{ours * 1e3:>8.3f}{moved / ours * 1e-9:>7.1f}"
                      f"{moved / last * 1e-9:>10.1f}{2 * copied / copy * 1e-9:>10.1f}"
                      f"{100 * (moved / ours) / (2 * copied / copy):>6.0f}"
                      f"{moved / theirs * 1e-9:>11.1f}{theirs / ours:>7.2f}"
                      f"{theirs_last / last:>6.2f}{ort / ours:>6.2f}{peer:>6.2f}", flush=True)
        if logs:
            print(f"geometric mean ratio vs torch NCHW, {t} thread(s): "
                  f"{math.exp(sum(logs) / len(logs)):.2f}\n")
    return 0
