// cnnfast.matmul: validate -> output shape -> SGEMM. Strided (non-contiguous, transposed,
// negative-stride) inputs are packed straight from their strides: no copy is made.
#include "ops/matmul.h"

#include "core/errors.h"
#include "core/workspace.h"
#include "ops/gemm.h"

namespace cnnfast::ops {

std::vector<int64_t> matmul_output_shape(const TensorView& a, const TensorView& b) {
  if (a.ndim != 2 || b.ndim != 2) {
    throw ValueError("matmul: expected 2-D arrays, got a with shape " + a.shape_str() +
                     " and b with shape " + b.shape_str());
  }
  if (a.shape[1] != b.shape[0]) {
    throw ValueError("matmul: inner dimensions differ: a has shape " + a.shape_str() +
                     " and b has shape " + b.shape_str() + " (a.shape[1] must equal b.shape[0])");
  }
  checked_mul(checked_mul(a.shape[0], b.shape[1], "matmul output"), 4, "matmul output bytes");
  return {a.shape[0], b.shape[1]};
}

void check_matmul_out(const TensorView& out, const TensorView& a, const TensorView& b) {
  const std::vector<int64_t> want = matmul_output_shape(a, b);
  if (out.ndim != 2 || out.shape[0] != want[0] || out.shape[1] != want[1]) {
    throw ValueError("matmul: out has shape " + out.shape_str() + " but a " + a.shape_str() +
                     " @ b " + b.shape_str() + " needs (" + std::to_string(want[0]) + ", " +
                     std::to_string(want[1]) + ")");
  }
  const bool unit_cols = out.shape[1] <= 1 || out.strides[1] == 1;
  const bool rows_apart = out.shape[0] <= 1 || out.strides[0] >= out.shape[1];
  if (!unit_cols || !rows_apart) {
    throw ValueError(
        "matmul: out must have contiguous rows (unit column stride, rows not "
        "overlapping); got shape " +
        out.shape_str() + " with element strides (" + std::to_string(out.strides[0]) + ", " +
        std::to_string(out.strides[1]) + ")");
  }
  if (out.may_overlap(a) || out.may_overlap(b)) {
    throw ValueError("matmul: out overlaps an input (a " + a.shape_str() + ", b " + b.shape_str() +
                     "); pass a separate array");
  }
}

void matmul(const TensorView& a, const TensorView& b, TensorView& out) {
  const int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1];
  const int64_t ldc = m > 1 ? out.strides[0] : n;
  sgemm(m, n, k, {a.data, a.strides[0], a.strides[1]}, {b.data, b.strides[0], b.strides[1]},
        out.data, ldc, kNoEpilogue);
}

}  // namespace cnnfast::ops
