// Activations applied outside the micro-kernels (the GEMM driver's exp-based epilogues, the
// direct algorithms' output rows): the active tier's elementwise kernel, in place.
#include "ops/activation.h"

#include "core/isa.h"
#include "kernels/registry.h"

namespace cnnfast::ops {

void activate(float* x, int64_t n, kernels::Activation act, float alpha) {
  if (act == kernels::Activation::none) return;
  kernels::elementwise_kernel_for(active_isa())
      .scale_shift(n, x, {0.0f, 0.0f, 1.0f, 0.0f}, act, alpha, x);
}

}  // namespace cnnfast::ops
