"""Weight initialisation for the layers: torch.nn's default distributions drawn from a NumPy
Generator, and a per-thread switch that skips drawing when the weights are about to be
overwritten (cnnfast.nn.load, fuse), so building a large model to load into costs no draws.
"""

import contextlib
import threading

import numpy as np

_local = threading.local()


def initializing():
    """False inside ``skip_init()``: layers then allocate zeros instead of random weights."""
    return not getattr(_local, "skip", False)


@contextlib.contextmanager
def skip_init():
    previous = getattr(_local, "skip", False)
    _local.skip = True
    try:
        yield
    finally:
        _local.skip = previous


def make_rng(rng):
    """A numpy Generator from None (fresh entropy), an int seed, or a Generator."""
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {rng!r}")


def uniform(rng, bound, shape):
    """U(-bound, bound) float32 of this shape, or zeros when rng is None (skip_init)."""
    if rng is None:
        return np.zeros(shape, np.float32)
    return rng.uniform(-bound, bound, shape).astype(np.float32)
