// cnnfast.matmul: C = A @ B for 2-D float32 arrays, on the SGEMM driver.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace cnnfast::ops {

// Validates the operands (ValueError naming both shapes) and returns the output shape {m, n}.
std::vector<int64_t> matmul_output_shape(const TensorView& a, const TensorView& b);
// Checks a caller-provided out= array against the expected shape and the inputs.
void check_matmul_out(const TensorView& out, const TensorView& a, const TensorView& b);
// out = a @ b. out has unit column stride (checked above).
void matmul(const TensorView& a, const TensorView& b, TensorView& out);

}  // namespace cnnfast::ops
