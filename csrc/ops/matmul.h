// cnnfast.matmul: C = A @ B for 2-D float32 arrays, on the SGEMM driver.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "core/workspace.h"
#include "kernels/registry.h"

namespace cnnfast::ops {

// Validates the operands (ValueError naming both shapes) and returns the output shape {m, n}.
std::vector<int64_t> matmul_output_shape(const TensorView& a, const TensorView& b);
// Checks a caller-provided out= array against the expected shape and the inputs.
void check_matmul_out(const TensorView& out, const TensorView& a, const TensorView& b);
// out = a @ b. out has unit column stride (checked above).
void matmul(const TensorView& a, const TensorView& b, TensorView& out);

// A Linear layer's weight W (out_features x in_features) packed once as the GEMM's B = W^T
// for `kernel` (see PrepackedOperand): a call neither transposes nor packs it.
struct LinearPackedWeight {
  const kernels::GemmKernel* kernel;
  int64_t out_features, in_features, rows_padded;
  AlignedBuffer buffer;
};
std::unique_ptr<LinearPackedWeight> linear_prepack_weight(const TensorView& w);

// out (m x out_features) = x (m x in_features, any strides) @ W^T + bias, the bias added in the
// GEMM's epilogue. `packed` (may be nullptr) is used when it was made for the active kernel;
// otherwise W is packed as usual. Validates the shapes (ValueError naming them).
void linear(const TensorView& x, const TensorView& w, const TensorView* bias,
            const LinearPackedWeight* packed, TensorView& out);
std::vector<int64_t> linear_output_shape(const TensorView& x, const TensorView& w,
                                         const TensorView* bias, const LinearPackedWeight* packed);

}  // namespace cnnfast::ops
