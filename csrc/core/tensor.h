// A non-owning view of a float32 array as the binding hands it to an op: data pointer, shape
// and strides in elements (any sign, zero for broadcast axes). Ops validate views; they never
// see Python objects.
#pragma once

#include <cstdint>
#include <string>

namespace cnnfast {

constexpr int kMaxDims = 6;

struct TensorView {
  float* data = nullptr;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements

  int64_t numel() const;
  // "(2, 3, 4)", as NumPy prints shapes, for error messages.
  std::string shape_str() const;
  // Whether the byte ranges spanned by two views intersect (conservative: a shared bounding
  // range counts even if the elements interleave).
  bool may_overlap(const TensorView& other) const;
  bool is_contiguous() const;
};

}  // namespace cnnfast
