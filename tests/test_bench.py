"""The benchmark layer lists of the source tree parse, and the GEMM one agrees with its built-in
fallback, so `python -m cnnfast bench` cannot rot unnoticed (timing itself is never asserted:
speed lives in bench/)."""

from pathlib import Path

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
