// cnnfast.separable_conv2d: validate -> output shape -> per image, per band of output rows: the
// depthwise algorithm into a band buffer, then the pointwise GEMM from it. Layouts: NHWC bands
// are (rows*OW x C_mid) matrices, NCHW bands (C_mid x rows*OW); the GEMM writes straight into
// y's rows (NHWC) or into each output plane's band (NCHW, row stride OH*OW).
#include "ops/separable.h"

#include <algorithm>
#include <string>

#include "core/errors.h"
#include "core/workspace.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

// The band's depthwise output stays below this: it is read back by the GEMM from L2 (2 MiB per
// core here), next to the GEMM's packed panels.
constexpr int64_t kBandBytes = int64_t(256) << 10;

}  // namespace

std::vector<int64_t> separable_output_shape(const TensorView& x, const TensorView& dw_weight,
                                            const TensorView* dw_bias, const TensorView& pw_weight,
                                            const TensorView* pw_bias, const Conv2dParams& dw) {
  std::vector<int64_t> shape = conv2d_output_shape(x, dw_weight, dw_bias, dw);
  const int64_t mid = dw_weight.shape[0];
  if (pw_weight.ndim != 4 || pw_weight.shape[1] != mid || pw_weight.shape[2] != 1 ||
      pw_weight.shape[3] != 1) {
    throw ValueError("separable_conv2d: pointwise_weight must be (C_out, " + std::to_string(mid) +
                     ", 1, 1) to follow depthwise_weight " + dw_weight.shape_str() + ", got " +
                     pw_weight.shape_str());
  }
  if (pw_bias && (pw_bias->ndim != 1 || pw_bias->shape[0] != pw_weight.shape[0])) {
    throw ValueError("separable_conv2d: pointwise_bias must have shape (" +
                     std::to_string(pw_weight.shape[0]) + ",), got " + pw_bias->shape_str());
  }
  shape[dw.nhwc ? 3 : 1] = pw_weight.shape[0];
  return shape;
}

void separable_conv2d(const TensorView& x, const TensorView& dw_weight, const TensorView* dw_bias,
                      const TensorView& pw_weight, const TensorView* pw_bias,
                      const Conv2dParams& dw, kernels::Activation act, float alpha, float* y) {
  const Conv2dGeometry g = conv2d_geometry(x, dw_weight, dw);
  const int64_t mid = g.c_out, c_out = pw_weight.shape[0], pixels = g.pixels();
  if (g.n == 0 || pixels == 0 || c_out == 0) return;
  const int64_t band_rows = std::clamp<int64_t>(
      kBandBytes / int64_t(sizeof(float)) / std::max<int64_t>(1, g.ow * mid), 1, g.oh);
  AlignedBuffer buffer(sizeof(float) * size_t(band_rows * g.ow * mid));
  float* band = static_cast<float*>(buffer.data());
  const kernels::GemmEpilogue ep =
      dw.nhwc ? kernels::GemmEpilogue{nullptr, pw_bias ? pw_bias->data : nullptr, act, alpha}
              : kernels::GemmEpilogue{pw_bias ? pw_bias->data : nullptr, nullptr, act, alpha};
  const int64_t in_image = g.c_in * g.h * g.w;
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t r0 = 0; r0 < g.oh; r0 += band_rows) {
      // The band as a depthwise convolution of its own: rows [r0, r1) of image n, its first
      // output row's window starting r0 * stride_h lower (pad_top may go negative).
      Conv2dGeometry gb = g;
      gb.n = 1;
      gb.oh = std::min(band_rows, g.oh - r0);
      Conv2dParams pb = dw;
      pb.pad_top = dw.pad_top - r0 * dw.stride_h;
      conv2d_depthwise(x.data + n * in_image, dw_weight.data, dw_bias ? dw_bias->data : nullptr, gb,
                       pb, band);
      const int64_t band_pixels = gb.oh * g.ow;
      if (dw.nhwc) {
        sgemm(band_pixels, c_out, mid, {band, mid, 1}, {pw_weight.data, 1, mid},
              y + (n * pixels + r0 * g.ow) * c_out, c_out, ep);
      } else {
        sgemm(c_out, band_pixels, mid, {pw_weight.data, mid, 1}, {band, band_pixels, 1},
              y + n * c_out * pixels + r0 * g.ow, pixels, ep);
      }
    }
  }
}

}  // namespace cnnfast::ops
