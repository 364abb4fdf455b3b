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
         bool conv1d) -> py::object {
        const char* op = conv1d ? "conv_transpose1d" : "conv_transpose2d";
        ops::ConvTransposeParams p;
        p.conv =
            conv_params(stride, padding, dilation, groups, activation, negative_slope, nhwc, op);
        p.conv.conv1d = conv1d;
        p.output_padding_h = output_padding[0];
        p.output_padding_w = output_padding[1];
        py::object keep_x, keep_w, keep_b;
        const TensorView vx = view_of(x, op, "x", false, &keep_x);
        const TensorView vw = view_of(weight, op, "weight", false, &keep_w);
        TensorView vb;
        const TensorView* pb = nullptr;
        if (!bias.is_none()) {
          vb = view_of(bias.cast<py::array>(), op, "bias", false, &keep_b);
          pb = &vb;
        }
        const std::vector<int64_t> shape = ops::conv_transpose2d_output_shape(vx, vw, pb, p);
        TensorView vo;
        py::object result;
        if (out.is_none()) {
          result = new_array(shape, &vo);
        } else {
          vo = view_of_out(out, op);
          bool same = vo.ndim == 4;
          for (int d = 0; same && d < 4; ++d) same = vo.shape[d] == shape[size_t(d)];
          if (!same || !vo.is_contiguous()) {
            throw ValueError(std::string(op) + ": out has shape " + vo.shape_str() +
                             " but the result has shape (" + std::to_string(shape[0]) + ", " +
                             std::to_string(shape[1]) + ", " + std::to_string(shape[2]) + ", " +
                             std::to_string(shape[3]) + ") (or out is not C-contiguous)");
          }
          if (vo.may_overlap(vx) || vo.may_overlap(vw) || (pb && vo.may_overlap(*pb))) {
            throw ValueError(std::string(op) + ": out overlaps an input; pass a separate array");
          }
          result = out;
        }
        {
          py::gil_scoped_release release;
          ops::conv_transpose2d(vx, vw, pb, p, vo.data);
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"), py::arg("stride"),
      py::arg("padding"), py::arg("output_padding"), py::arg("groups"), py::arg("dilation"),
      py::arg("activation"), py::arg("negative_slope"), py::arg("nhwc"), py::arg("out"),
      py::arg("conv1d") = false);
}

}  // namespace cnnfast::python
