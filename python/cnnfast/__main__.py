"""Command line: ``python -m cnnfast info`` and ``python -m cnnfast bench <what>``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnfast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, ISA tiers, threads, compiler and OpenMP")
    bench = sub.add_parser("bench", help="time cnnfast against other libraries, interleaved")
    bench.add_argument(
        "what",
        choices=["gemm", "conv2d", "conv3d", "conv_transpose2d", "batch_norm", "pool",
                 "separable"],
        help="which benchmark to run",
    )
    bench.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    bench.add_argument("--sizes", default=None, help="m,n,k triples as 'm:n:k m:n:k ...'")
    bench.add_argument("--repeat", type=int, default=7, help="timed rounds per size")
    bench.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    bench.add_argument(
        "--layers", default=None,
        help="conv2d, conv3d: only the layers whose name matches this regex",
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
    args = parser.parse_args(argv)

    if args.command == "info":
        from . import show_runtime

        show_runtime()
        return 0
    if args.what == "conv_transpose2d":
        from . import bench_transposed

        return bench_transposed.run(args)
    if args.what == "separable":
        from . import bench_separable

        return bench_separable.run(args)
    if args.what == "pool":
        from . import bench_pool

        return bench_pool.run(args)
    if args.what == "batch_norm":
        from . import bench_bn

        return bench_bn.run(args)
    if args.what == "conv3d":
        from . import bench_conv3d

        return bench_conv3d.run(args)
    if args.what == "conv2d":
        from . import bench_conv

        return bench_conv.run(args)
    from . import bench as bench_module

    return bench_module.run(args)


if __name__ == "__main__":
    sys.exit(main())
