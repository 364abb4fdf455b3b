"""``python -m cnnfast bench separable``: the fused depthwise-separable block against the two
separate cnnfast calls (depthwise conv2d, then the 1x1 conv2d) and, when installed, torch's two
calls, on MobileNetV1's blocks, interleaved in one process."""

import math

import numpy as np

from . import conv2d, separable_conv2d
from .bench import import_torch, interleaved_best, progress, record, thread_counts

# MobileNetV1 (224x224): (C_in, input size, stride, C_out) of each depthwise-separable block.
BLOCKS = [(32, 112, 1, 64), (64, 112, 2, 128), (128, 56, 1, 128), (128, 56, 2, 256),
          (256, 28, 1, 256), (256, 28, 2, 512), (512, 14, 1, 512), (512, 14, 2, 1024),
          (1024, 7, 1, 1024)]
QUICK_BLOCKS = [(16, 14, 1, 32)]


def run(args):
    torch = import_torch()
    repeat = max(1, args.repeat)
    blocks = QUICK_BLOCKS if args.quick else BLOCKS
    print(f"torch {torch.__version__ if torch else 'not installed'}; best of {repeat} "
          f"interleaved rounds; fused = two cnnfast calls' time / separable_conv2d time; "
          f"torch = torch's two calls / separable_conv2d")
    header = f"{'block':<22}{'layout':>7}{'thr':>4}{'fused ms':>10}{'2 calls ms':>11}" \
             f"{'fused':>7}{'torch':>7}"
    rng = np.random.default_rng(0)
    for t in thread_counts(args, torch):
        print(header + "\n" + "-" * len(header))
        logs = []
        for i, (c, size, stride, c_out) in enumerate(blocks):
            name = f"{c}@{size}s{stride}->{c_out}"
            x = rng.standard_normal((1, c, size, size), dtype=np.float32)
            dw = rng.standard_normal((c, 1, 3, 3), dtype=np.float32)
            pw = rng.standard_normal((c_out, c, 1, 1), dtype=np.float32)
            db = rng.standard_normal(c, dtype=np.float32)
            pb = rng.standard_normal(c_out, dtype=np.float32)
            for layout in ("NCHW", "NHWC"):
                progress(i, len(blocks), f"{name} {layout}")
                xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
                kw = {"layout": layout}
                runs = [
                    lambda: separable_conv2d(xl, dw, pw, db, pb, stride, 1, activation="relu",
                                             mid_activation="relu", **kw),
                    lambda: conv2d(conv2d(xl, dw, db, stride, 1, groups=c, activation="relu",
                                          **kw), pw, pb, activation="relu", **kw),
                ]
                if torch is not None and layout == "NCHW":
                    tensors = [torch.from_numpy(a) for a in (x, dw, db, pw, pb)]
                    F = torch.nn.functional
                    runs.append(lambda: F.relu(F.conv2d(F.relu(F.conv2d(
                        tensors[0], tensors[1], tensors[2], stride, 1, groups=c)),
                        tensors[3], tensors[4])))
                times = interleaved_best(runs, repeat)
                logs.append(math.log(times[1] / times[0]))
                theirs = times[2] / times[0] if len(times) > 2 else math.nan
                record(f"{name} {layout}", t, **{"two cnnfast calls": times[1] / times[0],
                                                  "torch": theirs})
                print(f"{name:<22}{layout:>7}{t:>4}{times[0] * 1e3:>10.3f}"
                      f"{times[1] * 1e3:>11.3f}{times[1] / times[0]:>7.2f}{theirs:>7.2f}",
                      flush=True)
        print(f"geometric mean, fused over two calls, {t} thread(s): "
              f"{math.exp(sum(logs) / len(logs)):.2f}\n")
    return 0
