"""Runtime controls: the SIMD tier cap (max_isa, CNNFAST_MAX_ISA), the thread count, the runtime
report and `python -m cnnfast info`, and ops in a forked child."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnfast
from conftest import ISA_ORDER


def run_python(code, **env_changes):
    """Runs `python -c code` in a fresh interpreter; env_changes set (or, if None, remove)
    environment variables. Returns the CompletedProcess."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


# -- ISA tiers ---------------------------------------------------------------------------------


def test_isa_names_a_tier_within_the_detected_one():
    assert cnnfast.isa() in ISA_ORDER
    assert cnnfast._C.detected_isa() in ISA_ORDER
    assert ISA_ORDER.index(cnnfast.isa()) <= ISA_ORDER.index(cnnfast._C.detected_isa())


def test_max_isa_caps_and_restores(isa):
    before = cnnfast.isa()
    with cnnfast.max_isa("scalar"):
        assert cnnfast.isa() == "scalar"
        assert cnnfast._C.gemm_kernel().startswith("scalar")
        with cnnfast.max_isa(isa.name):  # nested caps restore the outer one
            assert cnnfast.isa() == isa.name
        assert cnnfast.isa() == "scalar"
    assert cnnfast.isa() == before


def test_max_isa_above_the_detected_tier_runs_the_detected_tier():
    with cnnfast.max_isa("avx512"):
        assert cnnfast.isa() == cnnfast._C.detected_isa()


def test_max_isa_restores_on_exception():
    before = cnnfast.isa()
    with pytest.raises(KeyError):
        with cnnfast.max_isa("scalar"):
            raise KeyError("boom")
    assert cnnfast.isa() == before


@pytest.mark.parametrize("name", ["sse", "", "avx1024", 2, None])
def test_max_isa_rejects_unknown_tiers(name):
    before = cnnfast.isa()
    with pytest.raises(ValueError, match=r"max_isa: unknown ISA tier.*scalar.*avx2.*avx512"):
        with cnnfast.max_isa(name):
            pass
    assert cnnfast.isa() == before


def test_env_cap_selects_scalar_in_a_new_process():
    code = "import cnnfast; print(cnnfast.isa(), cnnfast._C.gemm_kernel())"
    proc = run_python(code, CNNFAST_MAX_ISA="scalar")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["scalar", "scalar_4x8"]


def test_invalid_env_cap_warns_and_is_ignored():
    code = "import cnnfast; print(cnnfast.isa() == cnnfast._C.detected_isa())"
    proc = run_python(code, CNNFAST_MAX_ISA="sse9", PYTHONWARNINGS="always")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert "RuntimeWarning" in proc.stderr
    assert "CNNFAST_MAX_ISA='sse9'" in proc.stderr


# -- threads -----------------------------------------------------------------------------------


def test_num_threads_round_trip(restore_threads):
    for n in (1, 3, 2):
        cnnfast.set_num_threads(n)
        assert cnnfast.get_num_threads() == n


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_rejects_non_positive(n, restore_threads):
    with pytest.raises(ValueError, match=rf"set_num_threads: n must be >= 1, got {n}"):
        cnnfast.set_num_threads(n)


@pytest.mark.parametrize("n", ["2", 2.0, True, None])
def test_set_num_threads_rejects_non_integers(n, restore_threads):
    message = rf"set_num_threads: n must be an int, got {type(n).__name__}"
    with pytest.raises(TypeError, match=message):
        cnnfast.set_num_threads(n)


def test_set_num_threads_rejects_huge_counts(restore_threads):
    # An int that does not fit the C int is a bad value, not a bad type.
    with pytest.raises((ValueError, OverflowError), match=r"set_num_threads"):
        cnnfast.set_num_threads(2**40)


def test_default_num_threads_follows_omp_num_threads():
    proc = run_python("import cnnfast; print(cnnfast.get_num_threads())", OMP_NUM_THREADS="3")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs os.sched_getaffinity")
def test_default_num_threads_is_the_usable_core_count():
    proc = run_python("import cnnfast; print(cnnfast.get_num_threads())", OMP_NUM_THREADS=None)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(os.sched_getaffinity(0))


# -- runtime report ----------------------------------------------------------------------------


def test_runtime_info_describes_the_runtime():
    info = cnnfast.runtime_info()
    assert info["version"] == cnnfast.__version__
    assert info["detected_isa"] == cnnfast._C.detected_isa()
    assert info["active_isa"] == cnnfast.isa()
    assert info["gemm_kernel"] == cnnfast._C.gemm_kernel()
    assert info["num_threads"] == cnnfast.get_num_threads()
    with cnnfast.max_isa("scalar"):
        assert cnnfast.runtime_info()["active_isa"] == "scalar"


def test_show_runtime_prints_every_fact(capsys):
    cnnfast.show_runtime()
    printed = capsys.readouterr().out
    for key, value in cnnfast.runtime_info().items():
        assert key in printed
        assert str(value) in printed


def test_cli_info():
    proc = subprocess.run([sys.executable, "-m", "cnnfast", "info"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "active_isa" in proc.stdout
    assert cnnfast._C.detected_isa() in proc.stdout


# -- fork --------------------------------------------------------------------------------------


def _matmul_in_child(a, b, expected):
    # Exit code 0 only if the child got the parent's (bitwise) result.
    if not np.array_equal(cnnfast.matmul(a, b), expected):
        raise SystemExit(1)


def _fork_ops():
    """A few ops of every family (each with an OpenMP region), as zero-argument calls."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 24, 24), dtype=np.float32)
    w = rng.standard_normal((16, 8, 3, 3), dtype=np.float32)
    offset = rng.standard_normal((2, 18, 24, 24), dtype=np.float32)
    return [
        lambda: cnnfast.conv2d(x, w, None, 1, 1),
        lambda: cnnfast.conv2d(x, w[:, :1].copy(), None, 1, 1, groups=8),
        lambda: cnnfast.conv_transpose2d(x, w.transpose(1, 0, 2, 3).copy(), None, 2, 1),
        lambda: cnnfast.deform_conv2d(x, offset, w, None, 1, 1),
        lambda: cnnfast.conv3d(x[:, :, None], w[:, :, None], None, 1, (0, 1, 1)),
        lambda: cnnfast.max_pool2d(x, 3, 2, 1),
        lambda: cnnfast.batch_norm(x, None, None, training=True),
        lambda: cnnfast.silu(x),
    ]


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_bare_os_fork_child_runs_every_op_family(restore_threads):
    # The child of a plain os.fork() (no multiprocessing machinery) after the parent ran OpenMP
    # regions at 2 threads: each op must finish and give the parent's bitwise result.
    cnnfast.set_num_threads(2)
    ops = _fork_ops()
    expected = [op() for op in ops]
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only, never return into pytest
        code = 1
        try:
            code = 0 if all(np.array_equal(op(), e) for op, e in zip(ops, expected)) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("cnnfast ops hung in an os.fork() child")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0


# Python 3.12+ warns that fork() in a process with threads (here OpenMP's pool) can deadlock:
# exactly the situation this test checks cnnfast survives.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_forked_child_runs_ops_without_hanging(restore_threads):
    # Big enough (2 * 300**3 flops) that the parent really starts OpenMP's thread pool, whose
    # threads do not exist in the child: a child that tried to use them would hang.
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 300), dtype=np.float32)
    b = rng.standard_normal((300, 300), dtype=np.float32)
    cnnfast.set_num_threads(2)
    expected = cnnfast.matmul(a, b)

    child = multiprocessing.get_context("fork").Process(target=_matmul_in_child,
                                                        args=(a, b, expected))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("cnnfast.matmul hung in a forked child")
    assert child.exitcode == 0
