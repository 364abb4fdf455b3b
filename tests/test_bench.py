"""The benchmark layer lists of the source tree parse, and the GEMM one agrees with its built-in
fallback, so `python -m cnnfast bench` cannot rot unnoticed (timing itself is never asserted:
speed lives in bench/)."""

from pathlib import Path

import pytest

from cnnfast import bench, bench_conv

SHAPES = Path(__file__).resolve().parents[1] / "bench" / "shapes"


def test_gemm_shapes_file_matches_builtin_sizes():
    assert bench.read_shapes(SHAPES / "gemm.txt") == bench.BUILTIN_SIZES


def test_conv_layers_parse():
    layers = bench_conv.read_layers(quick=False, path=SHAPES / "conv2d.txt")
    assert len(layers) >= 40
    for layer in layers:
        n, c, h, w = layer["x"]
        oc, cg, kh, kw = layer["w"]
        assert min(n, c, h, w, oc, cg, kh, kw) >= 1, layer["name"]


def test_batch_norm_bench_runs_quick(capsys):
    import argparse

    from cnnfast import bench_bn

    args = argparse.Namespace(threads="1", repeat=1, quick=True)
    assert bench_bn.run(args) == 0
    out = capsys.readouterr().out
    assert "32@14x14.b2" in out and "quick.3x3" in out


def test_pool_bench_runs_quick(capsys):
    import argparse

    from cnnfast import bench_pool

    assert bench_pool.run(argparse.Namespace(threads="1", repeat=1, quick=True)) == 0
    assert "quick.max3s2" in capsys.readouterr().out


def test_depthwise_layers_parse():
    layers = bench_conv.read_layers(quick=False, path=SHAPES / "depthwise.txt")
    assert len(layers) >= 15
    assert all(layer["groups"] == layer["x"][1] for layer in layers)


def test_transposed_and_grouped_lists_parse():
    from cnnfast import bench_transposed

    layers = bench_transposed.layers(quick=False, path=SHAPES / "conv_transpose2d.txt")
    assert len(layers) >= 12 and any(layer["opad"] == 1 for layer in layers)
    assert len(bench_conv.read_layers(quick=False, path=SHAPES / "grouped.txt")) >= 7


def test_deform_list_parses_and_bench_runs_quick(capsys):
    import argparse

    from cnnfast import bench_deform

    layers = bench_conv.read_layers(quick=False, path=SHAPES / "deform_conv2d.txt")
    assert len(layers) == 24
    assert {layer["og"] for layer in layers} == {1, 4}
    assert {layer["mask"] for layer in layers} == {0, 1}
    assert bench_deform.run(argparse.Namespace(threads="1", repeat=1, quick=True,
                                               peak_gflops=None)) == 0
    assert "quick.dcnv2" in capsys.readouterr().out


def test_conv3d_layers_parse_and_quick_run(capsys):
    import argparse

    from cnnfast import bench_conv3d

    layers = bench_conv3d.read_layers(quick=False, path=SHAPES / "conv3d.txt")
    assert len(layers) >= 8 and sum(layer["transposed"] for layer in layers) >= 1
    assert any(layer["groups"] == layer["x"][1] > 1 for layer in layers)
    assert bench_conv3d.run(argparse.Namespace(threads="1", repeat=1, quick=True)) == 0
    assert "quick.dw" in capsys.readouterr().out


def test_models_bench_runs_quick(capsys):
    import argparse

    from cnnfast import bench, bench_models

    args = argparse.Namespace(threads="1", repeat=1, quick=True, peak_gflops=None)
    assert bench_models.run(args) == 0
    out = capsys.readouterr().out
    assert "resnet_tiny" in out and "mobilenet_v2" in out
    assert ("geometric mean ratio" in out) == (bench.import_torch() is not None)


def test_record_keeps_finite_ratios_only():
    saved = list(bench.RESULTS)
    try:
        bench.RESULTS.clear()
        bench.record("case.a", 1, torch=2.0, onnxruntime=float("nan"))
        bench.record("case.b", 1, torch=float("nan"))  # no peer timed: nothing to draw
        assert bench.RESULTS == [("case.a", 1, {"torch": 2.0})]
    finally:
        bench.RESULTS[:] = saved


def test_write_plot_draws_every_thread_count(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "chart.png"
    results = [("a", 1, {"torch": 1.5, "onnxruntime": 0.8}), ("b", 1, {"torch": 0.9}),
               ("a", 2, {"torch": 2.0})]
    assert bench.write_plot(path, "test", results)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_plot_without_results_writes_nothing(tmp_path, capsys):
    path = tmp_path / "chart.png"
    assert not bench.write_plot(path, "test", [])
    assert not path.exists()
    assert "not written" in capsys.readouterr().out


def test_bench_command_writes_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from cnnfast.__main__ import main

    path = tmp_path / "gemm.png"
    assert main(["bench", "gemm", "--quick", "--threads", "1", "--repeat", "1",
                 "--plot", str(path)]) == 0
    assert path.is_file() and f"wrote {path}" in capsys.readouterr().out


def test_write_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    path = tmp_path / "chart.png"
    assert not bench.write_plot(path, "test", [("a", 1, {"torch": 1.5})])
    assert not path.exists() and "matplotlib is not installed" in capsys.readouterr().out
