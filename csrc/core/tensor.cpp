// TensorView helpers used by op validation and by the bindings.
#include "core/tensor.h"

#include <utility>

namespace cnnfast {
namespace {

// First and one-past-last element offsets the view touches.
std::pair<int64_t, int64_t> extent(const TensorView& v) {
  int64_t lo = 0, hi = 0;
  for (int d = 0; d < v.ndim; ++d) {
    if (v.shape[d] == 0) return {0, 0};
    const int64_t span = (v.shape[d] - 1) * v.strides[d];
    (span < 0 ? lo : hi) += span;
  }
  return {lo, hi + 1};
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "(";
  for (int d = 0; d < ndim; ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  if (ndim == 1) s += ",";
  return s + ")";
}

bool TensorView::may_overlap(const TensorView& other) const {
  const auto [lo_a, hi_a] = extent(*this);
  const auto [lo_b, hi_b] = extent(other);
  if (lo_a == hi_a || lo_b == hi_b) return false;
  const float* a0 = data + lo_a;
  const float* a1 = data + hi_a;
  const float* b0 = other.data + lo_b;
  const float* b1 = other.data + hi_b;
  return a0 < b1 && b0 < a1;
}

bool TensorView::is_contiguous() const {
  int64_t expected = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

}  // namespace cnnfast
