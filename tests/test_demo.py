"""The main job, ``python -m cnnfast demo``, run in-process: the shipped model and test digits
load (no network, nothing beyond NumPy), the accuracy is at least 95 % unfused and fused, the
printout has its sections, and --plot writes a PNG (or explains that matplotlib is missing)."""

import sys

import pytest

import cnnfast.demo
from cnnfast.__main__ import main


def test_demo_accuracy_and_printout(capsys):
    assert main(["demo", "--repeat", "1"]) == 0
    text = capsys.readouterr().out
    for section in ("total parameters: 6,138", "test accuracy:", "time per layer",
                    "Conv2d+BN+relu", "images per second", "demo finished in"):
        assert section in text


def test_demo_results(capsys):
    results = cnnfast.demo.main(repeat=1, threads=1)
    capsys.readouterr()
    assert results["accuracy"] >= 0.95 and results["fused_accuracy"] >= 0.95
    assert set(results["images_per_second"]) == {1}
    rates = results["images_per_second"][1]
    assert set(rates) == {1, 360}
    assert all(r["fused"] > 0 and r["unfused"] > 0 for r in rates.values())
    capsys.readouterr()
    two = cnnfast.demo.main(repeat=1, threads=2)
    assert set(two["images_per_second"]) == {1, 2}
    assert "2 threads, batch  360" in capsys.readouterr().out


def test_shipped_data_is_small_and_consistent():
    x, labels = cnnfast.demo.load_test_set()
    assert x.shape == (360, 1, 8, 8) and labels.shape == (360,)
    assert 0 <= x.min() and x.max() <= 1 and set(labels.tolist()) == set(range(10))
    for path in (cnnfast.demo.MODEL_FILE, cnnfast.demo.TEST_FILE):
        assert path.stat().st_size < 200_000


def test_demo_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "digits.png"
    main(["demo", "--repeat", "1", "--plot", str(path)])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {path}" in capsys.readouterr().out


def test_demo_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    path = tmp_path / "digits.png"
    main(["demo", "--repeat", "1", "--plot", str(path)])
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not path.exists()
