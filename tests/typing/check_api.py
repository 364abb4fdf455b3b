"""Typed use of cnnfast's public API: mypy checks it against the installed package (py.typed,
the annotations and the _C.pyi stub; scripts/ci_wheel.sh runs `mypy --strict` on it), and
tests/test_packaging.py runs it, so every call here is also a valid call at run time.

assert_type pins the result types mypy infers; the `type: ignore[arg-type]` lines are calls mypy
must reject (float64 arrays, a string where an int goes): with warn_unused_ignores (part of
--strict) an ignore that is not needed is itself an error, so a signature that stops catching
them fails the check.
"""

import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

import cnnfast
from cnnfast import analysis, models, nn

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

F32 = NDArray[np.float32]


def operators(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 4, 9, 9), dtype=np.float32)
    w = rng.standard_normal((6, 4, 3, 3), dtype=np.float32)
    b = np.zeros(6, np.float32)
    assert_type(cnnfast.conv2d(x, w, b, 2, "same", activation="relu"), F32)
    assert_type(cnnfast.conv2d(x, w, padding=(1, 0, 1, 2), dilation=(1, 2), algo="im2col"), F32)
    out = np.empty((2, 6, 9, 9), np.float32)
    assert cnnfast.conv2d(x, w, padding=1, out=out) is out
    assert_type(cnnfast.conv1d(x[:, :, 0], w[:, :, 0], padding=1), F32)
    assert_type(cnnfast.matmul(x[0, 0], x[0, 1]), F32)
    assert_type(cnnfast.conv2d_algorithms(), list[str])
    wt = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    assert_type(cnnfast.conv_transpose2d(x, wt, stride=2, output_padding=1), F32)
    assert_type(cnnfast.conv_transpose1d(x[:, :, 0], wt[:, :, 0], stride=2), F32)
    assert_type(cnnfast.conv_transpose2d_algorithms(), list[str])
    offset = np.zeros((2, 18, 9, 9), np.float32)
    assert_type(cnnfast.deform_conv2d(x, offset, w, b, padding=1), F32)
    x3 = rng.standard_normal((1, 4, 5, 5, 5), dtype=np.float32)
    w3 = rng.standard_normal((2, 4, 3, 3, 3), dtype=np.float32)
    assert_type(cnnfast.conv3d(x3, w3, padding="same"), F32)
    assert_type(cnnfast.conv_transpose3d(x3, w3.transpose(1, 0, 2, 3, 4).copy()), F32)
    assert_type(cnnfast.conv3d_algorithms(), list[str])
    assert_type(cnnfast.conv_transpose3d_algorithms(), list[str])
    factors = cnnfast.separable_factors([[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert factors is not None
    col, row = factors
    assert_type(cnnfast.conv2d_separable(x, col, row, padding=1), F32)
    dw = rng.standard_normal((4, 1, 3, 3), dtype=np.float32)
    pw = rng.standard_normal((6, 4, 1, 1), dtype=np.float32)
    assert_type(cnnfast.separable_conv2d(x, dw, pw, padding=1, mid_activation="relu6"), F32)


def pooling_and_normalization(rng: np.random.Generator) -> None:
    x = np.abs(rng.standard_normal((2, 4, 8, 8), dtype=np.float32))
    y, indices = cnnfast.max_pool2d(x, 2, return_indices=True)
    assert_type(y, F32)
    assert_type(indices, NDArray[np.int64])
    assert_type(cnnfast.max_pool2d(x, 2, 2, 0, 1, False), F32)
    assert_type(cnnfast.adaptive_max_pool2d(x, 2, return_indices=True)[1], NDArray[np.int64])
    assert_type(cnnfast.max_unpool2d(y, indices, 2), F32)
    assert cnnfast.max_pool1d(x[:, :, 0], 2).shape == (2, 4, 4)
    assert cnnfast.max_pool3d(x[:, :, None], (1, 2, 2)).shape == (2, 4, 1, 4, 4)
    assert_type(cnnfast.avg_pool2d(x, 3, 1, 1, count_include_pad=False), F32)
    assert_type(cnnfast.avg_pool1d(x[:, :, 0], 2), F32)
    assert_type(cnnfast.avg_pool3d(x[:, :, None], (1, 2, 2), divisor_override=3), F32)
    assert_type(cnnfast.lp_pool2d(x, 2, 2), F32)
    assert_type(cnnfast.lp_pool1d(x[:, :, 0], 3.0, 2), F32)
    assert_type(cnnfast.lp_pool3d(x[:, :, None], 2, (1, 2, 2)), F32)
    assert cnnfast.adaptive_avg_pool2d(x, (3, None)).shape == (2, 4, 3, 8)
    assert cnnfast.adaptive_avg_pool1d(x[:, :, 0], 3).shape == (2, 4, 3)
    assert cnnfast.adaptive_avg_pool3d(x[:, :, None], 1).shape == (2, 4, 1, 1, 1)
    assert_type(cnnfast.adaptive_max_pool2d(x, 3), F32)
    assert cnnfast.adaptive_max_pool1d(x[:, :, 0], 3).shape == (2, 4, 3)
    assert cnnfast.adaptive_max_pool3d(x[:, :, None], 1).shape == (2, 4, 1, 1, 1)
    assert_type(cnnfast.global_avg_pool2d(x), F32)
    assert_type(cnnfast.global_max_pool2d(x, layout="NCHW"), F32)
    assert_type(cnnfast.max_unpool1d(*cnnfast.max_pool1d(x[:, :, 0], 2, return_indices=True), 2),
                F32)
    y3, i3 = cnnfast.max_pool3d(x[:, :, None], (1, 2, 2), return_indices=True)
    assert_type(cnnfast.max_unpool3d(y3, i3, (1, 2, 2)), F32)
    assert cnnfast.stochastic_pool2d(x, 2, seed=1).shape == (2, 4, 4, 4)
    assert_type(cnnfast.spatial_pyramid_pool2d(x, (1, 2)), F32)
    assert_type(cnnfast.spp_fast(x, 3), F32)
    assert_type(cnnfast.upsample_nearest2d(x, 2), F32)
    assert_type(cnnfast.upsample_bilinear2d(x, size=(5, 7), align_corners=True), F32)

    mean, var = np.zeros(4, np.float32), np.ones(4, np.float32)
    assert_type(cnnfast.batch_norm(x, mean, var, activation="silu"), F32)
    tracked = np.zeros(1, np.int64)
    cnnfast.batch_norm(x, mean, var, training=True, momentum=None, num_batches_tracked=tracked)
    w = rng.standard_normal((4, 4, 3, 3), dtype=np.float32)
    folded_w, folded_b = cnnfast.fold_batch_norm(w, None, mean, var, eps=1e-3)
    assert_type(folded_w, F32)
    assert_type(cnnfast.conv_bn_act(x, w, None, mean, var, padding=1), F32)
    for activation in (cnnfast.relu, cnnfast.relu6, cnnfast.sigmoid, cnnfast.tanh, cnnfast.silu,
                       cnnfast.hardswish):
        assert_type(activation(x), F32)
    assert_type(cnnfast.leaky_relu(x, 0.2, out=x.copy()), F32)


def runtime_and_analysis() -> None:
    assert_type(cnnfast.__version__, str)
    assert_type(cnnfast.isa(), str)
    with cnnfast.max_isa("scalar"):
        assert cnnfast.isa() == "scalar"
    threads: int = cnnfast.get_num_threads()
    cnnfast.set_num_threads(threads)
    assert_type(cnnfast.runtime_info(), dict[str, Any])
    size = analysis.conv_output_size(224, 7, 2, 3)
    assert size == 112
    assert analysis.conv_transpose_output_size((7, 7), 4, 2, 1) == (14, 14)
    assert_type(analysis.conv_parameters((64, 3, 7, 7), bias=False), int)
    assert_type(analysis.conv_macs((64, 3, 7, 7), (112, 112)), int)
    assert analysis.receptive_field([3, 3, (3, 2)])[-1].receptive_field == 7
    weight = np.ones((1, 1, 3, 3), np.float32)
    assert analysis.conv_matrix(weight, (4, 4), padding=1, dense=True).shape == (16, 16)


def layers_and_models(rng: np.random.Generator) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False, rng=0), nn.BatchNorm2d(8),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x = rng.standard_normal((1, 3, 8, 8), dtype=np.float32)
    assert_type(model.eval(), nn.Sequential)
    assert model(x).shape == (1, 2)
    assert_type(nn.fuse(model), nn.Sequential)
    assert analysis.summary(model, (1, 3, 8, 8), quiet=True) is not None
    net = models.resnet18(num_classes=3, rng=0)
    assert_type(net, models.ResNet)
    assert_type(models.mobilenet_v2(num_classes=3, rng=0, width_mult=0.25), models.MobileNetV2)


def rejected_by_mypy(rng: np.random.Generator) -> None:
    """Calls that raise at run time and that mypy must flag statically as well."""
    x64 = np.zeros((1, 1, 4, 4))  # float64
    w = np.ones((1, 1, 3, 3), np.float32)
    for call in (lambda: cnnfast.conv2d(x64, w),  # type: ignore[arg-type]
                 lambda: cnnfast.relu(x64),  # type: ignore[arg-type]
                 lambda: cnnfast.conv2d(w, w, groups="1"),  # type: ignore[arg-type]
                 lambda: cnnfast.set_num_threads("2")):  # type: ignore[arg-type]
        try:
            call()
        except (TypeError, ValueError):
            continue
        raise AssertionError("expected TypeError or ValueError")


def main() -> None:
    rng = np.random.default_rng(0)
    operators(rng)
    pooling_and_normalization(rng)
    runtime_and_analysis()
    layers_and_models(rng)
    rejected_by_mypy(rng)


if __name__ == "__main__":
    main()
