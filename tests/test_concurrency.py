"""Concurrency and processes: many Python threads calling every op at once, and sharing one
cnnfast.nn model (whose weights are packed lazily on the first call), give bitwise the serial
results; set_num_threads from one thread while others compute is safe; ops run in
multiprocessing workers started by 'spawn' and by 'fork' after the parent used OpenMP (the bare
os.fork() case is in test_runtime.py).
"""

import multiprocessing
import random
import threading

import numpy as np
import pytest

import cnnfast
from cnnfast import models, nn

THREADS = 8
ROUNDS = 3


def _inputs():
    rng = np.random.default_rng(11)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return dict(x=f32(2, 8, 13, 11), w=f32(12, 4, 3, 3), b=f32(12), x1=f32(2, 8, 17),
                w1=f32(6, 8, 3), x3=f32(1, 4, 5, 6, 7), w3=f32(6, 2, 3, 3, 3),
                wt=f32(8, 3, 3, 3), off=f32(2, 18, 13, 11), mask=f32(2, 9, 13, 11),
                wd=f32(6, 8, 3, 3), dw=f32(8, 1, 3, 3), pw=f32(10, 8, 1, 1), a=f32(70, 90),
                bmat=f32(90, 50), rm=f32(8), rv=np.abs(f32(8)) + 0.5, g=f32(8), beta=f32(8))


def op_table():
    """name -> zero-argument call, covering every operator family (layouts and algorithms
    included). Module-level, so 'spawn' workers can rebuild it."""
    v = _inputs()
    x, x1, x3 = v["x"], v["x1"], v["x3"]
    pos = np.abs(x)
    table = {
        "conv2d": lambda: cnnfast.conv2d(x, v["w"], v["b"], 1, 1, groups=2, activation="relu"),
        "conv2d_im2col": lambda: cnnfast.conv2d(x, v["w"], v["b"], 2, "same", groups=2,
                                                algo="im2col"),
        "conv2d_nhwc": lambda: cnnfast.conv2d(np.moveaxis(x, 1, -1), v["w"], None, 1, 1,
                                              groups=2, layout="NHWC"),
        "conv2d_direct": lambda: cnnfast.conv2d(x, v["w"], None, 1, 0, 2, 2, algo="direct"),
        "depthwise": lambda: cnnfast.conv2d(x, v["dw"], None, 1, 1, groups=8),
        "conv1d": lambda: cnnfast.conv1d(x1, v["w1"], None, 2, "same"),
        "conv3d": lambda: cnnfast.conv3d(x3, v["w3"], None, 1, 1, groups=2),
        "conv_transpose2d": lambda: cnnfast.conv_transpose2d(x, v["wt"], None, 2, 1, 1),
        "conv_transpose2d_col2im": lambda: cnnfast.conv_transpose2d(
            x, v["wt"], None, 2, 1, 1, algo="gemm_col2im"),
        "conv_transpose3d": lambda: cnnfast.conv_transpose3d(x3, v["w3"][:4], None, 2, 1, 1),
        "deform_conv2d": lambda: cnnfast.deform_conv2d(x, v["off"], v["wd"], None, 1, 1,
                                                       mask=v["mask"]),
        "separable_conv2d": lambda: cnnfast.separable_conv2d(x, v["dw"], v["pw"], stride=2,
                                                             padding=1),
        "conv2d_separable": lambda: cnnfast.conv2d_separable(x, v["g"][:3], v["beta"][:3],
                                                             padding="same"),
        "matmul": lambda: cnnfast.matmul(v["a"], v["bmat"]),
        "batch_norm": lambda: cnnfast.batch_norm(x, v["rm"], v["rv"], v["g"], v["beta"],
                                                 activation="silu"),
        "batch_norm_train": lambda: cnnfast.batch_norm(x, None, None, training=True),
        "conv_bn_act": lambda: cnnfast.conv_bn_act(x, v["w"], None, v["b"], np.abs(v["b"]) + 1,
                                                   padding=1, groups=2),
        "max_pool2d": lambda: cnnfast.max_pool2d(x, 3, 2, 1, return_indices=True),
        "avg_pool2d": lambda: cnnfast.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
        "lp_pool3d": lambda: cnnfast.lp_pool3d(x3, 2, 2),
        "max_pool1d": lambda: cnnfast.max_pool1d(x1, 3, 2),
        "adaptive_max_pool2d": lambda: cnnfast.adaptive_max_pool2d(x, (4, 3), True),
        "adaptive_avg_pool3d": lambda: cnnfast.adaptive_avg_pool3d(x3, 2),
        "global_avg_pool2d": lambda: cnnfast.global_avg_pool2d(x),
        "max_unpool2d": lambda: cnnfast.max_unpool2d(
            *cnnfast.max_pool2d(x, 2, return_indices=True), 2, output_size=x.shape[2:]),
        "stochastic_pool2d": lambda: cnnfast.stochastic_pool2d(pos, 2, seed=5),
        "spp": lambda: cnnfast.spatial_pyramid_pool2d(x, (1, 2, 4)),
        "spp_fast": lambda: cnnfast.spp_fast(x),
        "sigmoid": lambda: cnnfast.sigmoid(x),
        "hardswish": lambda: cnnfast.hardswish(x),
        "upsample_bilinear2d": lambda: cnnfast.upsample_bilinear2d(x, scale_factor=2),
    }
    return table


def results_of(names=None):
    table = op_table()
    return {name: table[name]() for name in (names or table)}


def assert_same(got, expected, name):
    for a, b in zip(got if isinstance(got, tuple) else (got,),
                    expected if isinstance(expected, tuple) else (expected,)):
        np.testing.assert_array_equal(a, b, err_msg=name)


def run_threads(target, count=THREADS):
    """Starts `count` threads on target(index) together; re-raises the first failure."""
    barrier = threading.Barrier(count)
    errors = []

    def body(index):
        try:
            barrier.wait()
            target(index)
        except BaseException as error:  # noqa: BLE001 - reported to the main thread
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_threads_calling_every_op_match_serial_results(restore_threads):
    cnnfast.set_num_threads(2)
    table = op_table()
    expected = {name: fn() for name, fn in table.items()}

    def worker(index):
        order = list(table)
        random.Random(index).shuffle(order)  # every thread meets the ops in another order
        for _ in range(ROUNDS):
            for name in order:
                assert_same(table[name](), expected[name], name)

    run_threads(worker)


def test_set_num_threads_while_others_compute(restore_threads):
    table = op_table()
    names = ["conv2d", "conv2d_nhwc", "conv3d", "conv_transpose2d", "deform_conv2d",
             "matmul", "batch_norm_train", "max_pool2d", "separable_conv2d"]
    cnnfast.set_num_threads(1)
    expected = {name: table[name]() for name in names}
    stop = threading.Event()

    def worker(index):
        if index == 0:  # the one that keeps changing the count
            n = 0
            while not stop.is_set():
                cnnfast.set_num_threads(1 + n % 3)
                n += 1
            assert n > 1
            return
        try:
            for _ in range(4 * ROUNDS):
                for name in names:
                    assert_same(table[name](), expected[name], name)
        finally:
            if index == 1:
                stop.set()

    run_threads(worker, count=4)


def _small_net(seed):
    """Conv, batch norm, ReLU, max pool, modulated deformable conv, conv, pooling and a linear
    head: every kind of layer that packs or caches state on its first call."""
    rng = np.random.default_rng(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, rng=rng), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2), nn.ModulatedDeformConv2d(8, 8, 3, padding=1, rng=rng),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, rng=rng), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5, rng=rng))
    for name, value in net.state_dict().items():  # non-trivial batch norm statistics
        if "running_var" in name:
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif "running_mean" in name:
            value[...] = rng.standard_normal(value.shape)
    return net.eval()


@pytest.mark.parametrize("build", [
    lambda: _small_net(3),
    lambda: models.resnet18(num_classes=10, rng=np.random.default_rng(4)).eval(),
], ids=["sequential", "resnet18"])
def test_threads_sharing_one_model_match_serial_results(build, restore_threads):
    cnnfast.set_num_threads(2)
    x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = build()(x)
    shared = build()  # fresh: its weights are packed by the racing threads' first calls
    results = [None] * THREADS

    def worker(index):
        results[index] = [shared(x) for _ in range(2)]

    run_threads(worker)
    for per_thread in results:
        for y in per_thread:
            np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(shared(x), expected)
    shared.fuse()  # fusing afterwards still gives the same network (to rounding)
    np.testing.assert_allclose(shared(x), expected, rtol=1e-4, atol=1e-4)


# -- processes ---------------------------------------------------------------------------------


def _worker_results(names):
    """Runs in a worker process: the named ops' results, computed there."""
    cnnfast.set_num_threads(2)
    return results_of(names)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_workers_match_the_parent(method, restore_threads):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    cnnfast.set_num_threads(2)
    expected = results_of()  # the parent has now run OpenMP regions: fork inherits that state
    names = sorted(expected)
    chunks = [names[i::2] for i in range(2)]
    with multiprocessing.get_context(method).Pool(2) as pool:
        parts = pool.map_async(_worker_results, chunks + chunks).get(timeout=240)
    for part in parts:
        for name, got in part.items():
            assert_same(got, expected[name], f"{name} in a {method} worker")
