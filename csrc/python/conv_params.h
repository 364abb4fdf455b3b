// The convolution bindings' shared argument block (conv2d, separable_conv2d, conv_transpose2d):
// the resolved stride, (top, bottom, left, right) padding, dilation, activation and layout as an
// ops::Conv2dParams. Included by those binding files only.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/errors.h"
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

// An optional float32 array argument: nullptr for None, else its view in *view.
inline const TensorView* optional_view(const py::object& value, const char* op, const char* arg,
                                       TensorView* view, py::object* keep) {
  if (value.is_none()) return nullptr;
  *view = view_of(value.cast<py::array>(), op, arg, false, keep);
  return view;
}

// The output of `shape`: a new array, or the caller's out= (its shape, C-contiguity, and no
// overlap with any of `inputs` checked), with its view in *vo.
inline py::object conv_result(const py::object& out, const std::vector<int64_t>& shape,
                              std::initializer_list<const TensorView*> inputs, const char* op,
                              TensorView* vo) {
  if (out.is_none()) return new_array(shape, vo);
  *vo = view_of_out(out, op);
  TensorView expected;
  expected.ndim = int(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) expected.shape[d] = shape[d];
  bool same = vo->ndim == expected.ndim;
  for (int d = 0; same && d < vo->ndim; ++d) same = vo->shape[d] == expected.shape[d];
  if (!same) {
    throw ValueError(std::string(op) + ": out has shape " + vo->shape_str() +
                     " but the result has shape " + expected.shape_str());
  }
  if (!vo->is_contiguous()) {
    throw ValueError(std::string(op) + ": out of shape " + vo->shape_str() +
                     " must be C-contiguous");
  }
  for (const TensorView* input : inputs) {
    if (input && vo->may_overlap(*input)) {
      throw ValueError(std::string(op) + ": out overlaps an input; pass a separate array");
    }
  }
  return out;
}

// The frame of a binding taking (x, weight, bias) and out=: views of the arrays, the output
// shape from shape_of(vx, vw, pb) (which validates), the result array, then run(vx, vw, pb, y)
// with the GIL released. conv_transpose2d, conv3d and conv_transpose3d share it.
template <class ShapeOf, class Run>
py::object run_conv(const py::array& x, const py::array& weight, const py::object& bias,
                    const py::object& out, const char* op, ShapeOf&& shape_of, Run&& run) {
  py::object keep_x, keep_w, keep_b;
  const TensorView vx = view_of(x, op, "x", false, &keep_x);
  const TensorView vw = view_of(weight, op, "weight", false, &keep_w);
  TensorView vb, vo;
  const TensorView* pb = optional_view(bias, op, "bias", &vb, &keep_b);
  const std::vector<int64_t> shape = shape_of(vx, vw, pb);
  py::object result = conv_result(out, shape, {&vx, &vw, pb}, op, &vo);
  {
    py::gil_scoped_release release;
    run(vx, vw, pb, vo.data);
  }
  return result;
}

}  // namespace cnnfast::python
