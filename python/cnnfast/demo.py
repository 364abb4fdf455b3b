"""``python -m cnnfast demo``: the shipped digits CNN (scripts/train_demo.py trained it on
scikit-learn's 8x8 digits) classifies the shipped held-out test images with cnnfast.nn,
unfused and fused (Conv+BN+ReLU as one convolution): the model summary, the test accuracy,
the time per layer and images per second. No network, no packages beyond NumPy;
``--plot FILE`` draws some digits and the first layer's feature maps (needs matplotlib).
"""

import time
from pathlib import Path

import numpy as np

from . import get_num_threads, isa, nn, set_num_threads

DATA = Path(__file__).resolve().parent / "data"
MODEL_FILE = DATA / "digits_cnn.npz"
TEST_FILE = DATA / "digits_test.npz"


def load_test_set(path=TEST_FILE):
    """(images as (N, 1, 8, 8) float32 in [0, 1], labels int64)."""
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    return images.astype(np.float32)[:, None] / np.float32(16), labels.astype(np.int64)


def interleaved_seconds(fns, repeat, min_seconds=0.02):
    """Best per-call time of each function, timed in alternating rounds (one sample of each per
    round, a sample being back-to-back calls lasting >= min_seconds), so that load from other
    processes hits them alike (the scheme of cnnfast.bench, with shorter samples)."""
    calls = []
    for fn in fns:
        fn()  # warm-up
        start = time.perf_counter()
        fn()
        calls.append(max(1, int(min_seconds / max(time.perf_counter() - start, 1e-7))))
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls[i]):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls[i])
    return best


def layer_times(model, x, repeat):
    """Seconds per leaf layer (by qualified name) for one forward pass on x: the best of
    ``repeat`` traced passes (the trace hook adds one perf_counter pair per layer)."""
    names = {id(m): name for name, m in model.named_modules()}
    best = {}

    def tracer(module, args, kwargs):
        start = time.perf_counter()
        out = module.forward(*args, **kwargs)
        if not module._modules:
            name = names[id(module)]
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        return out

    for _ in range(repeat):
        with nn.module.trace(tracer):
            model(x)
    return best


def main(plot=None, repeat=5, threads=None):
    """Runs the demo; returns {"accuracy", "fused_accuracy", "images_per_second": {threads:
    {batch: {"unfused", "fused"}}}} (the test suite reads it). ``threads``: cnnfast's thread
    count for the run (default: the current one); images/s are also measured at 1 thread."""
    if threads is None:
        return _main(plot, repeat)
    previous = get_num_threads()
    set_num_threads(threads)
    try:
        return _main(plot, repeat)
    finally:
        set_num_threads(previous)


def _main(plot, repeat):
    start = time.perf_counter()
    x, labels = load_test_set()
    model = nn.load(MODEL_FILE)
    fused = nn.load(MODEL_FILE).fuse()
    print(f"cnnfast demo: {MODEL_FILE.name}, {len(labels)} held-out 8x8 digits "
          f"(scikit-learn's digits; see data/README.md); isa {isa()}, {get_num_threads()} "
          f"threads\n")
    nn.summary(model, (1,) + x.shape[1:])

    results = {"images_per_second": {}}
    predictions = {}
    for label, m in (("unfused", model), ("fused", fused)):
        predictions[label] = m(x).argmax(axis=1)
        results["accuracy" if label == "unfused" else "fused_accuracy"] = float(
            np.mean(predictions[label] == labels))
    print(f"\ntest accuracy: {results['accuracy']:.2%} unfused, {results['fused_accuracy']:.2%} "
          f"fused ({len(labels)} images; the predictions agree on "
          f"{np.mean(predictions['unfused'] == predictions['fused']):.2%})")

    print(f"\ntime per layer, batch of {len(labels)} (best of {repeat}, ms):")
    times = {label: layer_times(m, x, repeat) for label, m in (("unfused", model),
                                                                 ("fused", fused))}
    kinds = {label: {name: _kind(mod) for name, mod in m.named_modules()}
             for label, m in (("unfused", model), ("fused", fused))}
    print(f"  {'layer':6} {'unfused':14} {'ms':>7}   {'fused':22} {'ms':>7}")
    for name in times["unfused"]:
        fused_kind = kinds["fused"].get(name, "-")
        print(f"  {name:6} {kinds['unfused'][name]:14} {times['unfused'][name] * 1e3:7.3f}   "
              f"{fused_kind:22} {times['fused'].get(name, 0.0) * 1e3:7.3f}")
    print(f"  {'total':6} {'':14} {sum(times['unfused'].values()) * 1e3:7.3f}   {'':22} "
          f"{sum(times['fused'].values()) * 1e3:7.3f}")

    # One thread too when more are set: the layers of this small model are a few microseconds
    # of work each, where an OpenMP region's start-up and barrier cost as much (far more when
    # another process holds a core).
    counts = sorted({1, get_num_threads()})
    print(f"\nimages per second (best of {repeat} interleaved rounds):")
    previous = get_num_threads()
    try:
        for threads in counts:
            set_num_threads(threads)
            results["images_per_second"][threads] = {}
            for batch in (1, len(labels)):
                xb = x[:batch]
                seconds = interleaved_seconds([lambda: model(xb), lambda: fused(xb)], repeat)
                rates = {"unfused": batch / seconds[0], "fused": batch / seconds[1]}
                results["images_per_second"][threads][batch] = rates
                print(f"  {threads} thread{'s' if threads > 1 else ' '}, batch {batch:4}: "
                      f"unfused {rates['unfused']:10,.0f}   fused {rates['fused']:10,.0f}   "
                      f"({rates['fused'] / rates['unfused']:.2f}x)")
    finally:
        set_num_threads(previous)
    if plot:
        _plot(plot, fused, x, labels, predictions["fused"])
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s")
    return results


def _kind(module):
    """The layer's class name, with the activation a fused convolution applies."""
    activation = getattr(module, "activation", None)
    if isinstance(module, nn.Conv2d) and activation:
        return f"Conv2d+BN+{activation}" if module.bias is not None else f"Conv2d+{activation}"
    return type(module).__name__


def _plot(path, model, x, labels, predicted):
    try:
        import matplotlib
    except ImportError:
        print(f"\n--plot: matplotlib is not installed (pip install matplotlib); {path} not "
              f"written")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = model[0](x[:1])[0]  # the first (fused) layer's output for the first digit
    columns = 8
    fig, axes = plt.subplots(1 + -(-first.shape[0] // columns), columns,
                             figsize=(columns * 1.2, 1.4 * (1 + first.shape[0] // columns)))
    for i, ax in enumerate(axes[0]):
        ax.imshow(x[i, 0], cmap="gray_r")
        color = "black" if predicted[i] == labels[i] else "red"
        ax.set_title(f"pred {predicted[i]} (true {labels[i]})", fontsize=7, color=color)
    for c, ax in enumerate(axes[1:].flat):
        if c < first.shape[0]:
            ax.imshow(first[c], cmap="viridis")
            ax.set_title(f"map {c}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("test digits with predicted labels (top); first layer's feature maps of the "
                 "first digit", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nwrote {path}")
