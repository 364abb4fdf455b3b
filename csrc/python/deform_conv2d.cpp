// Binding of cnnfast.deform_conv2d (argument normalisation and docstring in
// python/cnnfast/deform.py: padding forms and layouts arrive here resolved).
#include "ops/deform_conv2d.h"

#include <pybind11/stl.h>

#include <array>
#include <vector>

#include "python/bind.h"
#include "python/conv_params.h"

namespace cnnfast::python {

void bind_deform_conv2d(py::module_& m) {
  m.def(
      "deform_conv2d",
      [](const py::array& x, const py::array& offset, const py::array& weight,
         const py::object& bias, const py::object& mask, std::array<int64_t, 2> stride,
         std::array<int64_t, 4> padding, std::array<int64_t, 2> dilation,
         const py::object& activation, float negative_slope, bool nhwc, const py::object& out,
         bool weight_tap_major) -> py::object {
        const char* op = "deform_conv2d";
        ops::Conv2dParams p =
            conv_params(stride, padding, dilation, 1, activation, negative_slope, nhwc, op);
        p.weight_tap_major = weight_tap_major;  // packed once by nn.DeformConv2d
        py::object keep_x, keep_offset, keep_w, keep_b, keep_mask;
        const TensorView vx = view_of(x, op, "x", false, &keep_x);
        const TensorView v_offset = view_of(offset, op, "offset", false, &keep_offset);
        const TensorView vw = view_of(weight, op, "weight", false, &keep_w);
        TensorView vb, v_mask, vo;
        const TensorView* pb = optional_view(bias, op, "bias", &vb, &keep_b);
        const TensorView* pm = optional_view(mask, op, "mask", &v_mask, &keep_mask);
        const std::vector<int64_t> shape =
            ops::deform_conv2d_output_shape(vx, v_offset, vw, pb, pm, p);
        py::object result = conv_result(out, shape, {&vx, &v_offset, &vw, pb, pm}, op, &vo);
        {
          py::gil_scoped_release release;
          ops::deform_conv2d(vx, v_offset, vw, pb, pm, p, vo);
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("offset").noconvert(), py::arg("weight").noconvert(),
      py::arg("bias"), py::arg("mask"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
      py::arg("activation"), py::arg("negative_slope"), py::arg("nhwc"), py::arg("out"),
      py::arg("weight_tap_major") = false);
}

}  // namespace cnnfast::python
