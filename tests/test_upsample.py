"""cnnfast.upsample_nearest2d / upsample_bilinear2d and nn.Upsample: against the float64
references of reference.py (exact for nearest, and for bilinear on small integers with
power-of-two weights), PyTorch's F.interpolate when installed (non-integer scales, both
align_corners), and every bad argument."""

import numpy as np
import pytest

import cnnfast
import cnnfast.nn as nn
import reference

# (input H, W, size, scale_factor): integer and non-integer scales, down-sampling, one pixel.
CASES = [
    ((3, 5), None, 2),
    ((4, 4), None, (2, 3)),
    ((5, 7), (11, 3), None),
    ((6, 6), 13, None),
    ((1, 1), (4, 2), None),
    ((7, 5), None, 0.5),
    ((5, 6), None, 1.5),
    ((4, 3), (1, 1), None),
]


def ratios(shape, out, scale):
    if scale is None:
        return shape[0] / out[0], shape[1] / out[1]
    scales = scale if isinstance(scale, tuple) else (scale, scale)
    return 1 / scales[0], 1 / scales[1]


@pytest.mark.parametrize("shape, size, scale", CASES)
def test_nearest_against_reference(shape, size, scale):
    x = np.random.default_rng(0).standard_normal((2, 3) + shape).astype(np.float32)
    y = cnnfast.upsample_nearest2d(x, scale_factor=scale, size=size)
    out = y.shape[2:]
    if size is not None:
        assert out == ((size, size) if isinstance(size, int) else size)
    assert y.flags.c_contiguous and y.dtype == np.float32
    np.testing.assert_array_equal(y, reference.upsample_nearest2d(x, *out, *ratios(shape, out,
                                                                                   scale)))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape, size, scale", CASES)
def test_bilinear_against_reference(shape, size, scale, align_corners):
    x = np.random.default_rng(1).integers(-8, 9, (2, 3) + shape).astype(np.float32)
    y = cnnfast.upsample_bilinear2d(x, scale, size, align_corners)
    out = y.shape[2:]
    expected = reference.upsample_bilinear2d(x, *out, *ratios(shape, out, scale), align_corners)
    np.testing.assert_allclose(y, expected, atol=1e-5 * 8)
    if scale == 2 and not align_corners:  # weights 1/4, 3/4: exact in float32
        np.testing.assert_array_equal(y, expected)


def test_upsample_layer():
    x = np.random.default_rng(2).standard_normal((1, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(nn.Upsample(scale_factor=2)(x),
                                  cnnfast.upsample_nearest2d(x, 2))
    np.testing.assert_array_equal(nn.Upsample((5, 9), mode="bilinear", align_corners=True)(x),
                                  cnnfast.upsample_bilinear2d(x, size=(5, 9),
                                                              align_corners=True))
    assert nn.Upsample(scale_factor=2).state_dict() == {}


@pytest.mark.parametrize("call, error, message", [
    (lambda x: cnnfast.upsample_nearest2d(x.astype(np.float64), 2), TypeError,
     "x must be float32, got dtype float64"),
    (lambda x: cnnfast.upsample_nearest2d(x[0], 2), ValueError,
     r"x must be 4-D \(N, C, H, W\) with H, W >= 1, got shape \(2, 3, 4\)"),
    (lambda x: cnnfast.upsample_nearest2d(x), ValueError, "give exactly one of size and"),
    (lambda x: cnnfast.upsample_bilinear2d(x, 2, (4, 4)), ValueError,
     "give exactly one of size and"),
    (lambda x: cnnfast.upsample_nearest2d(x, size=(0, 3)), ValueError,
     r"size must be an int or \(out_h, out_w\)"),
    (lambda x: cnnfast.upsample_nearest2d(x, size=(2, 3, 4)), ValueError, "size must be"),
    (lambda x: cnnfast.upsample_nearest2d(x, -1.0), ValueError, "scale_factor must be a number"),
    (lambda x: cnnfast.upsample_bilinear2d(x, float("nan")), ValueError, "scale_factor must be"),
    (lambda x: cnnfast.upsample_nearest2d(x, 0.1), ValueError,
     r"maps input \(3, 4\) to an empty output \(0, 0\)"),
    (lambda x: cnnfast.upsample_bilinear2d(x, 2, align_corners=1), TypeError,
     "align_corners must be a bool"),
    (lambda x: cnnfast.upsample_nearest2d(x.tolist(), 2), TypeError,
     "x must be a numpy.ndarray, got list"),
    (lambda x: nn.Upsample(scale_factor=2, mode="bicubic"), ValueError,
     "mode must be 'nearest' or 'bilinear'"),
    (lambda x: nn.Upsample(scale_factor=2, align_corners=True), ValueError,
     "align_corners only applies to mode='bilinear'"),
    (lambda x: nn.Upsample(), ValueError, "give exactly one of size and scale_factor"),
])
def test_bad_arguments(call, error, message):
    x = np.zeros((1, 2, 3, 4), np.float32)
    with pytest.raises(error, match=message):
        call(x)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_against_torch(mode, align_corners):
    torch = pytest.importorskip("torch")
    if mode == "nearest" and align_corners:
        pytest.skip("align_corners applies to bilinear only")
    rng = np.random.default_rng(3)
    for shape, size, scale in CASES + [((9, 13), None, 1.7), ((10, 10), None, 0.3),
                                       ((3, 8), (7, 21), None), ((17, 5), None, (2.5, 3.25))]:
        x = rng.standard_normal((2, 3) + shape).astype(np.float32)
        kwargs = {"align_corners": align_corners} if mode == "bilinear" else {}
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(x), size=size, scale_factor=scale, mode=mode, **kwargs).numpy()
        if mode == "nearest":
            np.testing.assert_array_equal(cnnfast.upsample_nearest2d(x, scale, size), expected)
        else:
            np.testing.assert_allclose(cnnfast.upsample_bilinear2d(x, scale, size, align_corners),
                                       expected, atol=2e-6 * np.abs(x).max())
