// The kernel tables, one per family, ordered best first. Dispatch takes the first entry whose
// tier is at most the active tier; tests and benchmarks iterate the same tables.
#pragma once

#include <cstdint>

#include "core/isa.h"
#include "kernels/deform/deform.h"
#include "kernels/depthwise/depthwise.h"
#include "kernels/direct/direct.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/gemm/gemm.h"
#include "kernels/pool/pool.h"
#include "kernels/stoch/stoch.h"

namespace cnnfast::kernels {

struct GemmKernel {
  const char* name;
  Isa isa;
  int mr, nr;
  // Cache blocking: a kc x mr micro-panel of packed A stays in L1 while the kc x nc block of
  // packed B streams from L2, and the mc x kc block of A waits in L2 (see gemm_block). mc is a
  // multiple of mr and nc of nr.
  int64_t mc, kc, nc;
  GemmUkernelFn ukernel;
  GemmPackFn pack;
  GemmPackRowsFn pack_rows;
  GemmPackRunsFn pack_runs;
  GemmUkernelSegmentsFn ukernel_segments;
  GemmPackTapMajorFn pack_tap_major;  // nullptr: reorder the weights, then pack them
};

// All GEMM kernels compiled into this build, best first; *count receives the length.
const GemmKernel* gemm_kernels(int* count);
// The best GEMM kernel that runs on `isa` (the scalar one always does).
const GemmKernel& gemm_kernel_for(Isa isa);

// The elementwise kernels for `isa` (every tier has an entry).
const ElementwiseKernel& elementwise_kernel_for(Isa isa);

// The pooling kernels for `isa` (every tier has an entry).
const PoolKernel& pool_kernel_for(Isa isa);

// The stochastic pooling kernels for `isa` (every tier has an entry).
const StochKernel& stoch_kernel_for(Isa isa);

// The depthwise convolution kernels for `isa` (every tier has an entry).
const DepthwiseKernel& depthwise_kernel_for(Isa isa);

// The direct convolution kernels for `isa` (every tier has an entry).
const DirectKernel& direct_kernel_for(Isa isa);

// The deformable convolution kernels for `isa` (every tier has an entry).
const DeformKernel& deform_kernel_for(Isa isa);

}  // namespace cnnfast::kernels
