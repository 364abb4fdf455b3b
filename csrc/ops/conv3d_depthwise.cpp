// conv3d's "depthwise" algorithm on NCDHW (one input channel per group, channel multiplier
// m = C_out / C_in): each output plane (image, channel, od) is the sum over the depth taps kd
// that land inside the volume, in kd order, of one 2-D depthwise plane (the tier's plane kernel
// on input plane id with the (kh, kw) weight slice kd), then bias and activation in one pass.
// Memory-bound: one task per output plane, planes stay in L1/L2. Called by ops/conv3d.cpp.
#include <algorithm>

#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/conv3d.h"

namespace cnnfast::ops {

void conv3d_depthwise_ncdhw(const float* x, const float* w, const float* bias,
                            const Conv3dGeometry& g, const Conv3dParams& p, float* y) {
  const auto& kern = kernels::depthwise_kernel_for(active_isa());
  const auto& epilogue = kernels::elementwise_kernel_for(active_isa());
  const int64_t mult = g.c_out / g.c_in, plane_taps = g.kh * g.kw;
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const kernels::DwPlaneShape shape{g.h,          g.w,          g.oh,       g.ow,
                                    g.kh,         g.kw,         p.stride_h, p.stride_w,
                                    p.dilation_h, p.dilation_w, p.pad_top,  p.pad_left};
  parallel_for(g.n * g.c_out * g.od, [&](int64_t task, int) {
    const int64_t od = task % g.od, oc = task / g.od % g.c_out, n = task / g.od / g.c_out;
    const float* volume = x + (n * g.c_in + oc / mult) * g.volume();
    const float* w_oc = w + oc * g.taps();
    float* out = y + task * out_plane;
    // The later depth taps' planes go through this thread's scratch plane, then are added.
    float* scratch = nullptr;
    bool first = true;
    for (int64_t kd = 0; kd < g.kd; ++kd) {
      const int64_t id = od * p.stride_d - p.pad_front + kd * p.dilation_d;
      if (id < 0 || id >= g.d) continue;
      const float* plane = volume + id * in_plane;
      const float* wk = w_oc + kd * plane_taps;
      if (first) {
        kern.plane(plane, wk, shape, out);
        first = false;
        continue;
      }
      if (!scratch) {
        scratch = static_cast<float*>(thread_workspace(0, sizeof(float) * size_t(out_plane)));
      }
      kern.plane(plane, wk, shape, scratch);
      for (int64_t i = 0; i < out_plane; ++i) out[i] += scratch[i];
    }
    if (first) std::fill(out, out + out_plane, 0.0f);  // every depth tap in the padding
    const kernels::ChannelAffine affine{0.0f, 0.0f, 1.0f, bias ? bias[oc] : 0.0f};
    epilogue.scale_shift(out_plane, out, affine, p.activation, p.negative_slope, out);
  });
}

}  // namespace cnnfast::ops
