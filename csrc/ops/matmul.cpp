// cnnfast.matmul: validate -> output shape -> SGEMM. Strided (non-contiguous, transposed,
// negative-stride) inputs are packed straight from their strides: no copy is made.
#include "ops/matmul.h"

#include "core/errors.h"
#include "core/isa.h"
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

std::vector<int64_t> linear_output_shape(const TensorView& x, const TensorView& w,
                                         const TensorView* bias, const LinearPackedWeight* packed) {
  if (x.ndim != 2 || w.ndim != 2 || x.shape[1] != w.shape[1]) {
    throw ValueError(
        "linear: expected x (m, in_features) and weight (out_features, in_features), "
        "got x with shape " +
        x.shape_str() + " and weight with shape " + w.shape_str());
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != w.shape[0])) {
    throw ValueError("linear: bias must have shape (" + std::to_string(w.shape[0]) + ",), got " +
                     bias->shape_str());
  }
  if (packed && (packed->out_features != w.shape[0] || packed->in_features != w.shape[1])) {
    throw ValueError("linear: the packed weight was made for another weight shape than " +
                     w.shape_str());
  }
  checked_mul(checked_mul(x.shape[0], w.shape[0], "linear output"), 4, "linear output bytes");
  return {x.shape[0], w.shape[0]};
}

std::unique_ptr<LinearPackedWeight> linear_prepack_weight(const TensorView& w) {
  const kernels::GemmKernel& kern = kernels::gemm_kernel_for(active_isa());
  const int64_t n = w.shape[0], k = w.shape[1], r = kern.nr;
  auto packed = std::make_unique<LinearPackedWeight>();
  packed->kernel = &kern;
  packed->out_features = n;
  packed->in_features = k;
  packed->rows_padded = (n + r - 1) / r * r;
  packed->buffer = AlignedBuffer(
      size_t(checked_mul(prepacked_floats(n, k, kern.nr), 4, "packed linear weight")));
  // B^T = W: panel row j (an output feature) is W's row j.
  prepack_operand({w.data, w.strides[0], w.strides[1]}, n, k, kern.nr, kern,
                  static_cast<float*>(packed->buffer.data()));
  return packed;
}

void linear(const TensorView& x, const TensorView& w, const TensorView* bias,
            const LinearPackedWeight* packed, TensorView& out) {
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[0];
  if (m == 0 || n == 0) return;
  kernels::GemmEpilogue ep = kNoEpilogue;
  ep.bias_col = bias ? bias->data : nullptr;
  const MatrixRef a{x.data, x.strides[0], x.strides[1]};
  if (packed && packed->kernel == &kernels::gemm_kernel_for(active_isa())) {
    const PrepackedOperand b{static_cast<const float*>(packed->buffer.data()), packed->rows_padded};
    sgemm(m, n, k, a, b, out.data, n, ep, *packed->kernel);
  } else {
    sgemm(m, n, k, a, {w.data, w.strides[1], w.strides[0]}, out.data, n, ep);  // B = W^T
  }
}

}  // namespace cnnfast::ops
