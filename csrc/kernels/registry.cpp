// Kernel tables (best first) and the dispatch that picks from them. Compiled for the baseline ISA:
// it only stores pointers to the tier entry points, never calls them itself.
#include "kernels/registry.h"

#include <cstddef>

namespace cnnfast::kernels {
namespace {

// Blocking: the driver keeps a kc x mr micro-panel of A in L1 and streams the kc x nc block of B
// from L2, so kc*nc*4 bytes must stay well inside a 1-2 MiB L2: avx512's 1 MiB measured 3-4 %
// faster than 1.5 MiB at 1024^3 and 2048^3 (and 0.5-0.75 MiB no faster; a driver-level sweep,
// one process). mc*kc*4 bytes of A take a fraction of L2 (mc = 14*20 measured 4 % faster than
// 14*48). The B block also bounds a convolution's extra memory (under 2 MiB per thread).
const GemmKernel kGemmKernels[] = {
#if defined(CNNFAST_X86)
    {"avx512_14x32", Isa::avx512, 14, 32, 14 * 20, 256, 32 * 32, gemm_ukernel_avx512_14x32,
     gemm_pack_avx512, gemm_pack_rows_avx512, gemm_pack_runs_avx512,
     gemm_ukernel_segments_avx512_14x32, gemm_pack_tap_major_avx512},
    {"avx2_6x16", Isa::avx2, 6, 16, 6 * 96, 256, 16 * 96, gemm_ukernel_avx2_6x16, gemm_pack_avx2,
     gemm_pack_rows_avx2, gemm_pack_runs_avx2, gemm_ukernel_segments_avx2_6x16, nullptr},
#endif
    {"scalar_4x8", Isa::scalar, 4, 8, 4 * 64, 256, 8 * 256, gemm_ukernel_scalar_4x8,
     gemm_pack_scalar, gemm_pack_rows_scalar, gemm_pack_runs_scalar,
     gemm_ukernel_segments_scalar_4x8, nullptr},
};
constexpr int kNumGemmKernels = sizeof(kGemmKernels) / sizeof(kGemmKernels[0]);

#define CNNFAST_ELEMENTWISE_ENTRY(tier)                                              \
  {#tier,          Isa::tier,           scale_shift_##tier, scale_shift_rows_##tier, \
   moments_##tier, moments_rows_##tier, transpose_##tier}
const ElementwiseKernel kElementwiseKernels[] = {
#if defined(CNNFAST_X86)
    CNNFAST_ELEMENTWISE_ENTRY(avx512),
    CNNFAST_ELEMENTWISE_ENTRY(avx2),
#endif
    CNNFAST_ELEMENTWISE_ENTRY(scalar),
};
#undef CNNFAST_ELEMENTWISE_ENTRY

#define CNNFAST_POOL_ENTRY(tier, plane, flat, adaptive_rows, row_last, reduce_planes) \
  {#tier,                                                                          \
   Isa::tier,                                                                      \
   pool_max_##tier,                                                                \
   pool_sum_##tier,                                                                \
   pool_reduce_max_##tier,                                                         \
   pool_reduce_sum_##tier,                                                         \
   pool_taps_max_##tier,                                                           \
   pool_taps_sum_##tier,                                                           \
   pool_row_##tier,                                                                \
   plane,                                                                          \
   flat,                                                                           \
   adaptive_rows,                                                                  \
   row_last,                                                                       \
   reduce_planes}
const PoolKernel kPoolKernels[] = {
#if defined(CNNFAST_X86)
    CNNFAST_POOL_ENTRY(avx512, pool_plane_avx512, pool_flat_avx512, pool_adaptive_rows_avx512,
                       pool_row_last_avx512, pool_reduce_planes_avx512),
    CNNFAST_POOL_ENTRY(avx2, nullptr, nullptr, nullptr, nullptr, nullptr),
#endif
    CNNFAST_POOL_ENTRY(scalar, nullptr, nullptr, nullptr, nullptr, nullptr),
};
#undef CNNFAST_POOL_ENTRY

#define CNNFAST_STOCH_ENTRY(tier) \
  {#tier, Isa::tier, stoch_plane_##tier, stoch_row_##tier, stoch_max_bits_##tier}
const StochKernel kStochKernels[] = {
#if defined(CNNFAST_X86)
    CNNFAST_STOCH_ENTRY(avx512),
    CNNFAST_STOCH_ENTRY(avx2),
#endif
    CNNFAST_STOCH_ENTRY(scalar),
};
#undef CNNFAST_STOCH_ENTRY

#define CNNFAST_DEPTHWISE_ENTRY(tier) \
  {#tier, Isa::tier, dw_row_##tier, dw_pixel_##tier, dw_plane_##tier, dw_volume_##tier}
const DepthwiseKernel kDepthwiseKernels[] = {
#if defined(CNNFAST_X86)
    CNNFAST_DEPTHWISE_ENTRY(avx512),
    CNNFAST_DEPTHWISE_ENTRY(avx2),
#endif
    CNNFAST_DEPTHWISE_ENTRY(scalar),
};
#undef CNNFAST_DEPTHWISE_ENTRY

#define CNNFAST_DIRECT_ENTRY(tier) {#tier, Isa::tier, direct_planes_##tier}
const DirectKernel kDirectKernels[] = {
#if defined(CNNFAST_X86)
    CNNFAST_DIRECT_ENTRY(avx512),
    CNNFAST_DIRECT_ENTRY(avx2),
#endif
    CNNFAST_DIRECT_ENTRY(scalar),
};
#undef CNNFAST_DIRECT_ENTRY

#define CNNFAST_DEFORM_ENTRY(tier) {#tier, Isa::tier, deform_run_##tier, deform_plan_##tier}
const DeformKernel kDeformKernels[] = {
#if defined(CNNFAST_X86)
    CNNFAST_DEFORM_ENTRY(avx512),
    CNNFAST_DEFORM_ENTRY(avx2),
#endif
    CNNFAST_DEFORM_ENTRY(scalar),
};
#undef CNNFAST_DEFORM_ENTRY

// The first entry of a best-first table that runs on `isa`; the last (scalar) one always does.
template <class Kernel, std::size_t N>
const Kernel& best_for(const Kernel (&table)[N], Isa isa) {
  for (const Kernel& k : table) {
    if (int(k.isa) <= int(isa)) return k;
  }
  return table[N - 1];
}

}  // namespace

const GemmKernel* gemm_kernels(int* count) {
  *count = kNumGemmKernels;
  return kGemmKernels;
}

const GemmKernel& gemm_kernel_for(Isa isa) {
  for (const GemmKernel& k : kGemmKernels) {
    if (int(k.isa) <= int(isa)) return k;
  }
  return kGemmKernels[kNumGemmKernels - 1];
}

const ElementwiseKernel& elementwise_kernel_for(Isa isa) {
  return best_for(kElementwiseKernels, isa);
}

const PoolKernel& pool_kernel_for(Isa isa) { return best_for(kPoolKernels, isa); }

const StochKernel& stoch_kernel_for(Isa isa) { return best_for(kStochKernels, isa); }

const DepthwiseKernel& depthwise_kernel_for(Isa isa) { return best_for(kDepthwiseKernels, isa); }

const DirectKernel& direct_kernel_for(Isa isa) { return best_for(kDirectKernels, isa); }

const DeformKernel& deform_kernel_for(Isa isa) { return best_for(kDeformKernels, isa); }

}  // namespace cnnfast::kernels
