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
}

}  // namespace cnnfast::python
