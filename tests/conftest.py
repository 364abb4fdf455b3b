"""Shared fixtures: run a test on every SIMD tier this machine has, and restore the thread count.
Tests marked `slow` (inputs of several GiB) are skipped unless `--run-slow` or
CNNFAST_RUN_SLOW=1 is given."""

import collections
import os
import sys

import pytest

import cnnfast

ISA_ORDER = ("scalar", "avx2", "avx512")

# GEMM blocking per tier, mirroring the table in csrc/kernels/registry.cpp (mr x nr micro-tile,
# mc x kc packed A block, kc x nc packed B block). The sweeps in test_gemm.py derive their edge
# sizes from it; test_gemm.py::test_tile_table_matches_the_library keeps it honest.
Tier = collections.namedtuple("Tier", "name mr nr mc kc nc")
TIERS = {
    "scalar": Tier("scalar", mr=4, nr=8, mc=4 * 64, kc=256, nc=8 * 256),
    "avx2": Tier("avx2", mr=6, nr=16, mc=6 * 96, kc=256, nc=16 * 96),
    "avx512": Tier("avx512", mr=14, nr=32, mc=14 * 20, kc=256, nc=32 * 32),
}


def available_tiers():
    """Every tier up to the one active at start-up.

    That is the detected tier (cnnfast._C.detected_isa()) unless CNNFAST_MAX_ISA lowers it, so
    `CNNFAST_MAX_ISA=avx2 pytest` tests exactly what an AVX2-only machine would run.
    """
    return ISA_ORDER[: ISA_ORDER.index(cnnfast.isa()) + 1]


def python_command(code):
    """argv running `code` in a child Python that imports the cnnfast under test: with -S as
    well when this one runs with it (scripts/sanitize.sh puts the sanitized copy on PYTHONPATH,
    which the child inherits, and keeps site-packages' editable install out)."""
    return [sys.executable] + (["-S"] if sys.flags.no_site else []) + ["-c", code]


@pytest.fixture(params=available_tiers())
def isa(request):
    """The test body runs capped at this tier; yields its Tier (name and GEMM blocking)."""
    name = request.param
    with cnnfast.max_isa(name):
        assert cnnfast.isa() == name
        yield TIERS[name]


@pytest.fixture
def restore_threads():
    """Puts cnnfast's thread count back after a test that changes it."""
    saved = cnnfast.get_num_threads()
    yield
    cnnfast.set_num_threads(saved)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (several GiB of memory, minutes)")
    parser.addoption("--subset", type=int, default=0, metavar="K",
                     help="run at most K evenly spaced parametrizations of each test function "
                          "on each ISA tier (scripts/ci_sanitize.sh's bounded run)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: needs several GiB or minutes; run with --run-slow")
    config.addinivalue_line(
        "markers", "tiered: runs once per ISA tier up to the cap (takes the isa fixture); "
                   "-m 'not tiered' keeps the tests that run only at the active tier")


def subset(items, k):
    """At most k parametrizations of each (test function, ISA tier), evenly spaced over the
    collection order (first and last included): every test function still runs on every tier,
    on a spread of its shapes and options."""
    groups = collections.defaultdict(list)
    for item in items:
        callspec = getattr(item, "callspec", None)
        tier = callspec.params.get("isa") if callspec else None
        groups[(item.module.__name__, item.originalname, tier)].append(item)
    keep = set()
    for members in groups.values():
        n = len(members)
        picks = range(n) if n <= k else {round(i * (n - 1) / (k - 1)) for i in range(k)} \
            if k > 1 else {0}
        keep.update(id(members[i]) for i in picks)
    return [item for item in items if id(item) in keep]


def pytest_collection_modifyitems(config, items):
    tiered = pytest.mark.tiered
    for item in items:
        if "isa" in getattr(item, "fixturenames", ()):
            item.add_marker(tiered)
    k = config.getoption("--subset")
    if k > 0:
        kept = subset(items, k)
        kept_ids = {id(item) for item in kept}
        config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept_ids])
        items[:] = kept
    if config.getoption("--run-slow") or os.environ.get("CNNFAST_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or CNNFAST_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
