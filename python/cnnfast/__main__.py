"""Command line: ``python -m cnnfast demo``, ``python -m cnnfast info`` and
``python -m cnnfast bench <operator>``."""

import argparse
import importlib
import os
import sys

# The module of each `python -m cnnfast bench` choice (gemm: bench).
BENCH_MODULES = {
    "conv2d": "bench_conv",
    "conv3d": "bench_conv3d",
    "conv_transpose2d": "bench_transposed",
    "deform_conv2d": "bench_deform",
    "batch_norm": "bench_bn",
    "pool": "bench_pool",
    "separable": "bench_separable",
    "models": "bench_models",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnfast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, ISA tiers, threads, compiler and OpenMP")
    demo = sub.add_parser("demo", help="classify the shipped test digits with the shipped CNN: "
                          "summary, accuracy, time per layer, images per second")
    demo.add_argument("--plot", metavar="FILE", help="write a PNG of test digits with predicted "
                      "labels and the first layer's feature maps (needs matplotlib)")
    demo.add_argument("--repeat", type=int, default=5, help="timed samples per measurement")
    demo.add_argument("--threads", type=int, default=None,
                      help="cnnfast's thread count (default: as set, OMP_NUM_THREADS or cores)")
    bench = sub.add_parser("bench", help="time cnnfast against other libraries, interleaved")
    bench.add_argument(
        "what",
        choices=["gemm", *BENCH_MODULES],
        help="which benchmark to run",
    )
    bench.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    bench.add_argument("--sizes", default=None, help="m,n,k triples as 'm:n:k m:n:k ...'")
    bench.add_argument("--repeat", type=int, default=7, help="timed rounds per size")
    bench.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    bench.add_argument(
        "--layers", default=None, help="conv2d, conv3d, conv_transpose2d, deform_conv2d: only the "
        "layers whose name matches this regex"
    )
    bench.add_argument(
        "--shapes", default=None, help="conv2d: the layer list bench/shapes/<SHAPES>.txt"
    )
    bench.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="one thread's FP32 peak for %%peak (else CNNFAST_PEAK_GFLOPS or 115)",
    )
    bench.add_argument("--plot", metavar="FILE", default=None, help="also write a PNG chart of "
                       "the ratios to the peers per case (needs matplotlib)")
    args = parser.parse_args(argv)

    if args.command == "info":
        from . import show_runtime

        show_runtime()
        return 0
    if args.command == "demo":
        from . import demo as demo_module

        demo_module.main(args.plot, args.repeat, args.threads)
        return 0
    module = BENCH_MODULES.get(args.what, "bench")
    status = importlib.import_module(f".{module}", __package__).run(args)
    if args.plot:
        from . import bench as bench_module

        bench_module.write_plot(args.plot, f"python -m cnnfast bench {args.what}")
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader went away (`python -m cnnfast info | head -3`): exit quietly, as Unix tools
        # do. stdout is pointed at devnull so that the interpreter's final flush cannot raise
        # the same error again (the recipe of the Python docs, signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
