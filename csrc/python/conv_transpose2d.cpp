// Binding of cnnfast.conv_transpose2d / conv_transpose1d (argument normalisation, output_size
// and docstrings in python/cnnfast/transposed.py).
#include "ops/conv_transpose2d.h"

#include <pybind11/stl.h>

#include <array>
#include <string>

#include "core/errors.h"
#include "python/bind.h"
#include "python/conv_params.h"

namespace cnnfast::python {

void bind_conv_transpose2d(py::module_& m) {
  m.def(
      "conv_transpose2d",
      [](const py::array& x, const py::array& weight, const py::object& bias,
         std::array<int64_t, 2> stride, std::array<int64_t, 4> padding,
         std::array<int64_t, 2> output_padding, int64_t groups, std::array<int64_t, 2> dilation,
         const py::object& activation, float negative_slope, bool nhwc, const py::object& out,
         bool conv1d, const std::string& algo) -> py::object {
        const char* op = conv1d ? "conv_transpose1d" : "conv_transpose2d";
        ops::ConvTransposeParams p;
        p.conv =
            conv_params(stride, padding, dilation, groups, activation, negative_slope, nhwc, op);
        p.conv.conv1d = conv1d;
        p.output_padding_h = output_padding[0];
        p.output_padding_w = output_padding[1];
        p.algo = ops::parse_conv_transpose2d_algo(algo, op);
        return run_conv(
            x, weight, bias, out, op,
            [&](const TensorView& vx, const TensorView& vw, const TensorView* pb) {
              return ops::conv_transpose2d_output_shape(vx, vw, pb, p);
            },
            [&](const TensorView& vx, const TensorView& vw, const TensorView* pb, float* y) {
              ops::conv_transpose2d(vx, vw, pb, p, y);
            });
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"), py::arg("stride"),
      py::arg("padding"), py::arg("output_padding"), py::arg("groups"), py::arg("dilation"),
      py::arg("activation"), py::arg("negative_slope"), py::arg("nhwc"), py::arg("out"),
      py::arg("conv1d") = false, py::arg("algo") = "auto");
  m.def("conv_transpose2d_algorithms", &ops::conv_transpose2d_algorithms);
}

}  // namespace cnnfast::python
