// The convolution bindings' shared argument block (conv2d, separable_conv2d, conv_transpose2d):
// the resolved stride, (top, bottom, left, right) padding, dilation, activation and layout as an
// ops::Conv2dParams. Included by those binding files only.
#pragma once

#include <array>
#include <cstdint>

#include "ops/conv2d.h"
#include "python/bind.h"

namespace cnnfast::python {

inline ops::Conv2dParams conv_params(const std::array<int64_t, 2>& stride,
                                     const std::array<int64_t, 4>& padding,
                                     const std::array<int64_t, 2>& dilation, int64_t groups,
                                     const py::object& activation, float negative_slope, bool nhwc,
                                     const char* op) {
  ops::Conv2dParams p;
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_top = padding[0];
  p.pad_bottom = padding[1];
  p.pad_left = padding[2];
  p.pad_right = padding[3];
  p.dilation_h = dilation[0];
  p.dilation_w = dilation[1];
  p.groups = groups;
  p.activation = parse_activation(activation, op);
  p.negative_slope = negative_slope;
  p.nhwc = nhwc;
  return p;
}

}  // namespace cnnfast::python
