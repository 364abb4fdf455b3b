"""Shared fixtures: run a test on every SIMD tier this machine has, and restore the thread count."""

import collections

import pytest

import cnnfast

ISA_ORDER = ("scalar", "avx2", "avx512")

# GEMM blocking per tier, mirroring the table in csrc/kernels/registry.cpp (mr x nr micro-tile,
# mc x kc packed A block, kc x nc packed B block). The sweeps in test_gemm.py derive their edge
# sizes from it; test_gemm.py::test_tile_table_matches_the_library keeps it honest.
Tier = collections.namedtuple("Tier", "name mr nr mc kc nc")
TIERS = {
    "scalar": Tier("scalar", mr=4, nr=8, mc=4 * 64, kc=256, nc=8 * 256),
    "avx2": Tier("avx2", mr=6, nr=16, mc=6 * 96, kc=256, nc=16 * 256),
    "avx512": Tier("avx512", mr=14, nr=32, mc=14 * 48, kc=256, nc=32 * 128),
}


def available_tiers():
    """Every tier up to the one active at start-up.

    That is the detected tier (cnnfast._C.detected_isa()) unless CNNFAST_MAX_ISA lowers it, so
    `CNNFAST_MAX_ISA=avx2 pytest` tests exactly what an AVX2-only machine would run.
    """
    return ISA_ORDER[: ISA_ORDER.index(cnnfast.isa()) + 1]


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
