"""Peak extra memory of one cnnfast.conv2d call on the ResNet-50 56x56x64 3x3 layer at batch 8.

    python bench/conv_memory.py NCHW|NHWC THREADS

Resets the kernel's peak-RSS mark (/proc/self/clear_refs, Linux) just before the call and prints
how far the peak rose above the RSS before it: workspaces, packed panels, weight copies.
"""

import sys

import numpy as np

import cnnfast


def status_kib(key):
    """A field of /proc/self/status, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise SystemExit(f"/proc/self/status has no {key}")


def main(layout, threads):
    cnnfast.set_num_threads(threads)
    rng = np.random.default_rng(0)

    def image(n, size):
        x = rng.standard_normal((n, 64, size, size), dtype=np.float32)
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x

    x, small = image(8, 56), image(1, 4)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    b = rng.standard_normal(64, dtype=np.float32)
    y = np.zeros_like(x)
    cnnfast.conv2d(small, w, b, padding=1, layout=layout)  # loads code, starts the thread pool
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark
    before = status_kib("VmRSS:")
    cnnfast.conv2d(x, w, b, padding=1, layout=layout, out=y)
    extra = (status_kib("VmHWM:") - before) / 1024
    print(f"{layout} threads={threads}: peak RSS {extra:.2f} MiB above the RSS before the call")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "NCHW", int(sys.argv[2]) if len(sys.argv) > 2 else 1)
