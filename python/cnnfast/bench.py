"""``python -m cnnfast bench gemm``: cnnfast.matmul against numpy.matmul, in one process.

The two libraries are timed in alternating rounds (cnnfast, numpy, cnnfast, numpy, ...), so a
load that comes and goes on a shared machine hits both alike; each column is the best round
(the minimum: noise only ever adds time). Only the ratio between columns measured in one run
means much (DESIGN.md section 9). numpy's BLAS gets the same thread count as cnnfast through
threadpoolctl (the ``bench`` extra).
"""

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import _C, get_num_threads, isa, matmul, set_num_threads

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # without it, numpy keeps the BLAS thread count it started with
    threadpool_info = threadpool_limits = None

DEFAULT_PEAK_GFLOPS = 115.0  # FP32 FMA, one thread of the Zen 4 machines (DESIGN.md section 6)
MIN_SAMPLE_SECONDS = 0.1  # one sample: long enough that timer, call overhead and the ramp-up after
# the pause below vanish (at 0.02 s, 1024^3 measured 20 % slower than back-to-back calls)
# Pause before each sample so the other library's idle threads have gone to sleep: OpenBLAS
# workers spin for about 0.1 s after a call (libgomp's briefly), and on a 2-core machine a
# spinning thread takes a core from the library being timed (measured: 1024^3 at 2 threads ran
# 171 GFLOP/s without the pause, 222 with it; numpy 167 and 203).
IDLE_SECONDS = 0.2

# The shared size list; it exists only in a source checkout (an installed wheel has no bench/).
SHAPES_FILE = Path(__file__).resolve().parents[2] / "bench" / "shapes" / "gemm.txt"
# The same sizes as bench/shapes/gemm.txt, for installs without the file.
BUILTIN_SIZES = [(64, 64, 64), (256, 256, 256), (1024, 1024, 1024), (2048, 2048, 2048)]
BUILTIN_SIZES += [(3136, 64, 576), (49, 512, 4608), (12544, 32, 27), (196, 1024, 256)]  # conv
QUICK_SIZES = [(64, 64, 64), (256, 256, 256), (196, 1024, 256)]


def import_torch():
    """torch when installed (the comparisons are optional), else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# Every table row's ratios (peer time / cnnfast time) of this run, for --plot: (case, threads,
# {peer: ratio}). The bench modules call record() as they print a row.
RESULTS = []


def ort_op_session(op_type, inputs, attributes, threads, opset=19):
    """An ONNX Runtime session running one `op_type` node over float inputs named `inputs`
    (output "y"), or None when onnx/onnxruntime are missing or this build cannot run it."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node(op_type, list(inputs), ["y"], **attributes)
    values = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in inputs]
    graph = helper.make_graph([node], op_type, values,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
    except Exception:  # no kernel for this node in this onnxruntime
        return None


def record(case, threads, **ratios):
    """Keeps one table row's ratios for ``--plot``; NaN ratios (a peer not installed) are
    dropped. Called just before the row is printed, so it also erases the progress line."""
    end_progress()
    ratios = {peer: ratio for peer, ratio in ratios.items() if math.isfinite(ratio)}
    if ratios:
        RESULTS.append((case, threads, ratios))


def progress(done, total, case):
    """On a terminal, shows which case of how many is being timed (a full run takes minutes);
    the line is overwritten by the next one and erased by record() before the row prints."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\x1b[K[{done + 1}/{total}] timing {case} ...")
        sys.stderr.flush()


def end_progress():
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def write_plot(path, title, results=None):
    """Writes a PNG bar chart of the recorded ratios: one panel per thread count, one bar per
    case and peer, a line at 1 (left of it the peer is faster). Needs matplotlib; without it
    prints how to get it and returns False."""
    results = RESULTS if results is None else results
    try:
        import matplotlib
    except ImportError:
        print(f"--plot: matplotlib is not installed (pip install matplotlib); {path} not written")
        return False
    if not results:
        print(f"--plot: no peer was timed, so there is no ratio to draw; {path} not written")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({t for _, t, _ in results})
    peers = list(dict.fromkeys(p for _, _, ratios in results for p in ratios))
    cases = list(dict.fromkeys(case for case, _, _ in results))
    height = 0.8 / len(peers)
    fig, axes = plt.subplots(1, len(threads), squeeze=False, sharey=True,
                             figsize=(4 + 3 * len(threads), 1.5 + 0.25 * len(cases) * len(peers)))
    for ax, t in zip(axes[0], threads):
        rows = {case: ratios for case, tt, ratios in results if tt == t}
        for j, peer in enumerate(peers):
            y = [i + (j - (len(peers) - 1) / 2) * height for i, case in enumerate(cases)
                 if peer in rows.get(case, {})]
            x = [rows[case][peer] for case in cases if peer in rows.get(case, {})]
            ax.barh(y, x, height, label=f"vs {peer}")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}")
        ax.set_xlabel("peer time / cnnfast time (> 1: cnnfast faster)")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0][0].set_yticks(range(len(cases)), cases)
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(peers), fontsize="small")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))  # room for the legend below
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return True


def thread_counts(args, torch=None):
    """Each count of --threads, with cnnfast's (and torch's) thread count set to it while the
    caller's loop body runs; cnnfast's count is restored afterwards."""
    previous = get_num_threads()
    try:
        for t in [int(v) for v in args.threads.split(",")]:
            set_num_threads(t)
            if torch is not None:
                torch.set_num_threads(t)
            yield t
    finally:
        set_num_threads(previous)


def read_shapes(path):
    """(m, n, k) triples from `m=.. n=.. k=..` lines; '#' starts a comment."""
    sizes = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        fields = {}
        for token in tokens:
            key, _, value = token.partition("=")
            fields[key] = value
        try:
            sizes.append(tuple(int(fields.pop(key)) for key in "mnk"))
        except (KeyError, ValueError):
            raise SystemExit(f"{path}:{line_no}: expected 'm=<int> n=<int> k=<int>': {line!r}")
        if fields:
            raise SystemExit(f"{path}:{line_no}: unknown keys {sorted(fields)}")
    return sizes


def parse_sizes(args):
    if args.sizes:
        try:
            sizes = [tuple(int(x) for x in s.split(":")) for s in args.sizes.split()]
        except ValueError:
            sizes = []
        if not sizes or any(len(s) != 3 or min(s) < 1 for s in sizes):
            raise SystemExit(f"--sizes: expected positive 'm:n:k m:n:k ...', got {args.sizes!r}")
        return sizes
    if args.quick:
        return QUICK_SIZES
    return read_shapes(SHAPES_FILE) if SHAPES_FILE.is_file() else BUILTIN_SIZES


def peak_gflops(args):
    """(per-thread peak, where it came from): --peak-gflops, CNNFAST_PEAK_GFLOPS, or 115."""
    if getattr(args, "peak_gflops", None) is not None:
        value, source = args.peak_gflops, "--peak-gflops"
    elif os.environ.get("CNNFAST_PEAK_GFLOPS"):
        value, source = os.environ["CNNFAST_PEAK_GFLOPS"], "CNNFAST_PEAK_GFLOPS"
    else:
        value, source = DEFAULT_PEAK_GFLOPS, "default"
    try:
        peak = float(value)
    except ValueError:
        peak = math.nan
    if not peak > 0:
        raise SystemExit(f"{source}: peak GFLOP/s must be a positive number, got {value!r}")
    return peak, source


def blas_threads(n):
    """Context manager limiting numpy's BLAS (only: cnnfast's OpenMP is left alone) to n threads."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def sample(fn, calls):
    """Seconds per call, averaged over `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_per_sample(fn):
    """How many calls make one sample last at least MIN_SAMPLE_SECONDS."""
    calls = 1
    while (seconds := sample(fn, calls) * calls) < MIN_SAMPLE_SECONDS:
        calls = max(2 * calls, math.ceil(1.2 * calls * MIN_SAMPLE_SECONDS / max(seconds, 1e-9)))
    return calls


def check_match(c, c2, a, b, size):
    """Fail loudly rather than time a wrong kernel: |cnnfast - numpy| within the float32 rounding
    bound eps*k*max|a|*max|b| (DESIGN.md section 8); a wrong tile is off by O(sqrt(k))."""
    k = a.shape[1]
    tol = np.finfo(np.float32).eps * max(k, 1) * np.abs(a).max() * np.abs(b).max()
    err = float(np.abs(c - c2).max())
    if not err <= tol:
        raise SystemExit(
            f"cnnfast.matmul differs from numpy at m,n,k={size}: {err:.3g} > {tol:.3g}"
        )


def bench_one(size, repeat, rng):
    """Best seconds per call of (cnnfast, numpy) for one size, at the current thread settings."""
    m, n, k = size
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    c2 = np.empty((m, n), np.float32)
    runs = (lambda: matmul(a, b, out=c), lambda: np.matmul(a, b, out=c2))
    for fn in runs:  # warm-up: workspaces, BLAS thread pool, page faults on c and c2
        fn()
    check_match(c, c2, a, b, size)
    return interleaved_best(runs, repeat)


def interleaved_best(runs, repeat):
    """Best seconds per call of each function in `runs`, timed in alternating rounds."""
    calls = [calls_per_sample(fn) for fn in runs]
    best = [math.inf] * len(runs)
    for _ in range(repeat):  # interleaved rounds
        for i, fn in enumerate(runs):
            if get_num_threads() > 1:  # at one thread no library keeps spinning workers
                time.sleep(IDLE_SECONDS)
            best[i] = min(best[i], sample(fn, calls[i]))
    return best


def paired_ratio(first, second, repeat):
    """Median over `repeat` rounds of second's time over first's, each round timing the two
    back to back in A-B-B-A order. For two calls that do the same work, this cancels the host's
    drift (which moves each call's best time by 5-15 % here) far better than two best times."""
    calls = [calls_per_sample(first), calls_per_sample(second)]
    ratios = []
    for _ in range(repeat):
        a1, b1 = sample(first, calls[0]), sample(second, calls[1])
        b2, a2 = sample(second, calls[1]), sample(first, calls[0])
        ratios.append((b1 + b2) / (a1 + a2))
    return sorted(ratios)[len(ratios) // 2]


# The table: (title, width, format of the values) per column.
COLUMNS = [("threads", 7, "d"), ("m", 6, "d"), ("n", 6, "d"), ("k", 6, "d")]
COLUMNS += [("cnnfast ms", 10, ".4f"), ("numpy ms", 10, ".4f"), ("GFLOP/s", 8, ".1f")]
COLUMNS += [("%peak", 6, ".1f"), ("ratio", 6, ".2f")]


def print_header(peak, source, repeat):
    print(f"cnnfast isa {isa()}, gemm kernel {_C.gemm_kernel()}; numpy {np.__version__}")
    if threadpool_info is None:
        blas_env = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
        print(
            f"numpy BLAS threads uncontrolled (no threadpoolctl): OPENBLAS_NUM_THREADS={blas_env}"
        )
    else:
        for lib in threadpool_info():
            if lib["user_api"] == "blas":
                print(f"numpy BLAS: {lib['internal_api']} {lib['version']} ({lib['architecture']})")
    print(f"%peak of {peak:g} GFLOP/s per thread ({source})")
    print(f"time per call: best of {repeat} interleaved rounds of >= {MIN_SAMPLE_SECONDS:g} s")
    print("ratio = numpy time / cnnfast time (> 1: cnnfast faster)\n")
    header = " ".join(f"{title:>{width}}" for title, width, _ in COLUMNS)
    print(header + "\n" + "-" * len(header))


def print_row(*values):
    print(" ".join(f"{v:>{w}{spec}}" for v, (_, w, spec) in zip(values, COLUMNS)), flush=True)


def run(args):
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        threads = [0]
    if min(threads) < 1:
        raise SystemExit(f"--threads: expected counts >= 1 like '1,2', got {args.threads!r}")
    sizes, (peak, source), repeat = parse_sizes(args), peak_gflops(args), max(1, args.repeat)
    print_header(peak, source, repeat)
    rng = np.random.default_rng(0)
    previous = get_num_threads()
    try:
        for t in threads:
            set_num_threads(t)
            log_ratios = []
            with blas_threads(t):
                for i, size in enumerate(sizes):
                    progress(i, len(sizes), ":".join(map(str, size)))
                    ours, theirs = bench_one(size, repeat, rng)
                    record(":".join(map(str, size)), t, numpy=theirs / ours)
                    gflops = 2.0 * math.prod(size) / ours * 1e-9
                    log_ratios.append(math.log(theirs / ours))
                    percent = 100 * gflops / (peak * t)
                    print_row(t, *size, ours * 1e3, theirs * 1e3, gflops, percent, theirs / ours)
            geomean = math.exp(sum(log_ratios) / len(log_ratios))
            print(f"geometric mean ratio, {t} thread(s): {geomean:.2f}\n")
    finally:
        set_num_threads(previous)
    return 0
