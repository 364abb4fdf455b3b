"""Peak extra memory of one cnnfast.conv2d call on the ResNet-50 56x56x64 3x3 layer at batch 8.

    python bench/conv_memory.py NCHW|NHWC THREADS

Resets the kernel's peak-RSS mark (/proc/self/clear_refs, Linux) just before the call and prints
how far the peak rose above the RSS before it: workspaces, packed panels, weight copies.
"""
import sys, numpy as np, cnnfast
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key): return int(line.split()[1])  # kB
cnnfast.set_num_threads(int(sys.argv[2]))
layout = sys.argv[1]
x = np.random.rand(8, 64, 56, 56).astype(np.float32)
if layout == "NHWC": x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
w = np.random.rand(64, 64, 3, 3).astype(np.float32); b = np.random.rand(64).astype(np.float32)
y = np.zeros_like(x)
small_x = np.random.rand(1, 64, 4, 4).astype(np.float32)
if layout == "NHWC": small_x = np.ascontiguousarray(small_x.transpose(0, 2, 3, 1))
cnnfast.conv2d(small_x, w, b, padding=1, layout=layout)  # loads code, starts the thread pool
open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS mark
before = status("VmRSS:")
cnnfast.conv2d(x, w, b, padding=1, layout=layout, out=y)
print(f"{layout} threads={sys.argv[2]}: peak RSS {(status('VmHWM:') - before) / 1024:.2f} MiB above the RSS before the call")
