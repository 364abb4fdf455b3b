// Activations applied outside the micro-kernels: by the GEMM driver to each stored tile (the
// exp-based ones) and by direct algorithms to each output row. Vectorised (the elementwise
// kernels); the same definitions as the micro-kernels' in-register ones (NaN propagates).
#pragma once

#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace cnnfast::ops {

// x[i] = act(x[i]) for i in [0, n) (leaky_relu's slope is `alpha`).
void activate(float* x, int64_t n, kernels::Activation act, float alpha);

}  // namespace cnnfast::ops
