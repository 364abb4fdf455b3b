// Binding of cnnfast.matmul (docstring in python/cnnfast/functional.py).
#include "ops/matmul.h"

#include "core/errors.h"
#include "python/bind.h"

namespace cnnfast::python {

void bind_matmul(py::module_& m) {
  m.def(
      "matmul",
      [](const py::array& a, const py::array& b, const py::object& out) -> py::object {
        py::object keep_a, keep_b;
        const TensorView va = view_of(a, "matmul", "a", false, &keep_a);
        const TensorView vb = view_of(b, "matmul", "b", false, &keep_b);
        const std::vector<int64_t> shape = ops::matmul_output_shape(va, vb);
        TensorView vo;
        py::object result;
        if (out.is_none()) {
          result = new_array(shape, &vo);
        } else {
          vo = view_of_out(out, "matmul");
          ops::check_matmul_out(vo, va, vb);
          result = out;
        }
        {
          py::gil_scoped_release release;
          ops::matmul(va, vb, vo);
        }
        return result;
      },
      py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("out") = py::none());

  // cnnfast.nn.Linear: y = x @ W^T + bias with W packed once (linear_prepack_weight).
  py::class_<ops::LinearPackedWeight>(m, "LinearPackedWeight")
      .def_property_readonly("kernel",
                             [](const ops::LinearPackedWeight& w) { return w.kernel->name; })
      .def_property_readonly("nbytes",
                             [](const ops::LinearPackedWeight& w) { return w.buffer.size(); });
  m.def(
      "linear_prepack_weight",
      [](const py::array& weight) {
        py::object keep;
        const TensorView vw = view_of(weight, "linear_prepack_weight", "weight", false, &keep);
        if (vw.ndim != 2) {
          throw ValueError(
              "linear_prepack_weight: weight must be 2-D (out_features, "
              "in_features), got shape " +
              vw.shape_str());
        }
        py::gil_scoped_release release;
        return ops::linear_prepack_weight(vw);
      },
      py::arg("weight").noconvert());
  m.def(
      "linear",
      [](const py::array& x, const py::array& weight, const py::object& bias,
         const ops::LinearPackedWeight* packed) -> py::object {
        py::object keep_x, keep_w, keep_b;
        const TensorView vx = view_of(x, "linear", "x", false, &keep_x);
        const TensorView vw = view_of(weight, "linear", "weight", false, &keep_w);
        TensorView vb;
        const TensorView* pb = nullptr;
        if (!bias.is_none()) {
          vb = view_of(bias.cast<py::array>(), "linear", "bias", false, &keep_b);
          pb = &vb;
        }
        TensorView vo;
        py::object result = new_array(ops::linear_output_shape(vx, vw, pb, packed), &vo);
        {
          py::gil_scoped_release release;
          ops::linear(vx, vw, pb, packed, vo);
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"),
      py::arg("packed") = nullptr);
}

}  // namespace cnnfast::python
