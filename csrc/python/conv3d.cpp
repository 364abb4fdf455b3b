// Binding of cnnfast.conv3d and cnnfast.conv_transpose3d (docstrings and argument normalisation
// in python/cnnfast/conv3d.py: padding forms, padding modes, layouts, output_size arrive here
// resolved).
#include "ops/conv3d.h"

#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "core/errors.h"
#include "python/bind.h"
#include "python/conv_params.h"

namespace cnnfast::python {
namespace {

// The resolved stride, (front, back, top, bottom, left, right) padding, dilation, activation and
// layout as an ops::Conv3dParams.
ops::Conv3dParams conv3d_params(const std::array<int64_t, 3>& stride,
                                const std::array<int64_t, 6>& padding,
                                const std::array<int64_t, 3>& dilation, int64_t groups,
                                const py::object& activation, float negative_slope, bool ndhwc,
                                const char* op) {
  ops::Conv3dParams p;
  p.stride_d = stride[0];
  p.stride_h = stride[1];
  p.stride_w = stride[2];
  p.pad_front = padding[0];
  p.pad_back = padding[1];
  p.pad_top = padding[2];
  p.pad_bottom = padding[3];
  p.pad_left = padding[4];
  p.pad_right = padding[5];
  p.dilation_d = dilation[0];
  p.dilation_h = dilation[1];
  p.dilation_w = dilation[2];
  p.groups = groups;
  p.activation = parse_activation(activation, op);
  p.negative_slope = negative_slope;
  p.ndhwc = ndhwc;
  return p;
}

}  // namespace

void bind_conv3d(py::module_& m) {
  m.def("conv3d_algorithms", &ops::conv3d_algorithms);
  m.def(
      "conv3d",
      [](const py::array& x, const py::array& weight, const py::object& bias,
         std::array<int64_t, 3> stride, std::array<int64_t, 6> padding,
         std::array<int64_t, 3> dilation, int64_t groups, const py::object& activation,
         float negative_slope, bool ndhwc, const std::string& algo,
         const py::object& out) -> py::object {
        const char* op = "conv3d";
        ops::Conv3dParams p =
            conv3d_params(stride, padding, dilation, groups, activation, negative_slope, ndhwc, op);
        p.algo = ops::parse_conv3d_algo(algo);
        return run_conv(
            x, weight, bias, out, op,
            [&](const TensorView& vx, const TensorView& vw, const TensorView* pb) {
              return ops::conv3d_output_shape(vx, vw, pb, p);
            },
            [&](const TensorView& vx, const TensorView& vw, const TensorView* pb, float* y) {
              ops::conv3d(vx, vw, pb, p, y);
            });
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("activation"),
      py::arg("negative_slope"), py::arg("ndhwc"), py::arg("algo"), py::arg("out"));
  m.def(
      "conv_transpose3d",
      [](const py::array& x, const py::array& weight, const py::object& bias,
         std::array<int64_t, 3> stride, std::array<int64_t, 6> padding,
         std::array<int64_t, 3> output_padding, int64_t groups, std::array<int64_t, 3> dilation,
         const py::object& activation, float negative_slope, bool ndhwc,
         const py::object& out) -> py::object {
        const char* op = "conv_transpose3d";
        ops::ConvTranspose3dParams p;
        p.conv =
            conv3d_params(stride, padding, dilation, groups, activation, negative_slope, ndhwc, op);
        p.output_padding_d = output_padding[0];
        p.output_padding_h = output_padding[1];
        p.output_padding_w = output_padding[2];
        return run_conv(
            x, weight, bias, out, op,
            [&](const TensorView& vx, const TensorView& vw, const TensorView* pb) {
              return ops::conv_transpose3d_output_shape(vx, vw, pb, p);
            },
            [&](const TensorView& vx, const TensorView& vw, const TensorView* pb, float* y) {
              ops::conv_transpose3d(vx, vw, pb, p, y);
            });
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"), py::arg("stride"),
      py::arg("padding"), py::arg("output_padding"), py::arg("groups"), py::arg("dilation"),
      py::arg("activation"), py::arg("negative_slope"), py::arg("ndhwc"), py::arg("out"));
}

}  // namespace cnnfast::python
