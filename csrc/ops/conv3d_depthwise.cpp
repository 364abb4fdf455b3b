// conv3d's "depthwise" algorithm on NCDHW (one input channel per group, channel multiplier
// m = C_out / C_in): each output plane (image, channel, od) is one call of the tier's volume
// kernel, which sums the taps of the depth slices that land inside the volume in (kd, kh, kw)
// order from zero (AVX-512: output rows in 16-lane registers, several rows at once), then bias
// and activation in one pass. Memory-bound: one task per output plane, planes stay in L1/L2.
// Called by ops/conv3d.cpp.
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/registry.h"
#include "ops/conv3d.h"

namespace cnnfast::ops {

void conv3d_depthwise_ncdhw(const float* x, const float* w, const float* bias,
                            const Conv3dGeometry& g, const Conv3dParams& p, float* y) {
  const auto& kern = kernels::depthwise_kernel_for(active_isa());
  const auto& epilogue = kernels::elementwise_kernel_for(active_isa());
  const int64_t mult = g.c_out / g.c_in, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const kernels::DwPlaneShape shape{g.h,          g.w,          g.oh,       g.ow,
                                    g.kh,         g.kw,         p.stride_h, p.stride_w,
                                    p.dilation_h, p.dilation_w, p.pad_top,  p.pad_left};
  parallel_for(g.n * g.c_out * g.od, [&](int64_t task, int) {
    const int64_t od = task % g.od, oc = task / g.od % g.c_out, n = task / g.od / g.c_out;
    const float* volume = x + (n * g.c_in + oc / mult) * g.volume();
    // The input plane of each depth tap (nullptr: in the depth padding).
    std::vector<const float*> planes(size_t(g.kd), nullptr);
    for (int64_t kd = 0; kd < g.kd; ++kd) {
      const int64_t id = od * p.stride_d - p.pad_front + kd * p.dilation_d;
      if (id >= 0 && id < g.d) planes[size_t(kd)] = volume + id * in_plane;
    }
    float* out = y + task * out_plane;
    kern.volume(planes.data(), g.kd, w + oc * g.taps(), shape, out);
    const kernels::ChannelAffine affine{0.0f, 0.0f, 1.0f, bias ? bias[oc] : 0.0f};
    epilogue.scale_shift(out_plane, out, affine, p.activation, p.negative_slope, out);
  });
}

}  // namespace cnnfast::ops
