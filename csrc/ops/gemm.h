// The SGEMM driver every GEMM-based op calls: C = act(A * B + bias) on strided float32 operands.
// BLIS loop order (jc, pc, ic, jr, ir) over packed panels; threads split C into a grid of
// sub-matrices, never the K dimension, so results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "kernels/registry.h"

namespace cnnfast::ops {

// A strided matrix operand: element (i, j) at data[i*rs + j*cs] (strides in elements, any sign).
struct MatrixRef {
  const float* data;
  int64_t rs, cs;
};

// C[m x n] (row stride ldc, unit column stride) = act(A[m x k] * B[k x n] + bias).
// ep.bias_row has m entries (one per row of C), ep.bias_col n entries; either may be nullptr.
// k == 0 gives act(bias). `kernel` forces a table entry (tests, benchmarks); nullptr dispatches
// on the active ISA.
void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc,
           const kernels::GemmEpilogue& ep, const kernels::GemmKernel* kernel = nullptr);

// An epilogue that does nothing.
constexpr kernels::GemmEpilogue kNoEpilogue{nullptr, nullptr, kernels::Activation::none, 0.0f};

}  // namespace cnnfast::ops
