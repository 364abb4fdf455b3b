// Bindings of cnnfast.batch_norm and the standalone activations (docstrings, layouts and the
// num_batches_tracked update in python/cnnfast/functional.py and _batch_norm.py).
#include "ops/batch_norm.h"

#include <string>

#include "python/bind.h"

namespace cnnfast::python {
namespace {

// A view of an optional float32 vector argument (None: nullptr).
const TensorView* optional_view(const py::object& v, const char* arg, bool writable,
                                TensorView* view, py::object* keep) {
  if (v.is_none()) return nullptr;
  *view = view_of(v.cast<py::array>(), "batch_norm", arg, writable, keep);
  return view;
}

// The result array: a new one of x's shape, or the caller's out= (checked by the op).
py::object result_for(const TensorView& vx, const py::object& out, const char* op, TensorView* vo) {
  if (!out.is_none()) {
    *vo = view_of_out(out, op);
    return out;
  }
  return new_array(std::vector<int64_t>(vx.shape, vx.shape + vx.ndim), vo);
}

}  // namespace

void bind_batch_norm(py::module_& m) {
  m.def(
      "batch_norm",
      [](const py::array& x, const py::object& running_mean, const py::object& running_var,
         const py::object& weight, const py::object& bias, bool training, double factor, double eps,
         const py::object& activation, float negative_slope, bool channels_last,
         const py::object& out) -> py::object {
        ops::BatchNormParams p;
        p.channels_last = channels_last;
        p.training = training;
        p.factor = factor;
        p.eps = eps;
        p.activation = parse_activation(activation, "batch_norm");
        p.negative_slope = negative_slope;
        py::object keep[5];
        TensorView vx = view_of(x, "batch_norm", "x", false, &keep[0]);
        TensorView vm, vv, vw, vb, vo;
        // Running statistics are written in place in training mode: never through a copy.
        TensorView* pm = const_cast<TensorView*>(optional_view(
            running_mean, "running_mean", training, &vm, training ? nullptr : &keep[1]));
        TensorView* pv = const_cast<TensorView*>(optional_view(running_var, "running_var", training,
                                                               &vv, training ? nullptr : &keep[2]));
        const TensorView* pw = optional_view(weight, "weight", false, &vw, &keep[3]);
        const TensorView* pb = optional_view(bias, "bias", false, &vb, &keep[4]);
        py::object result = result_for(vx, out, "batch_norm", &vo);
        ops::check_batch_norm(vx, pm, pv, pw, pb, p, vo);
        {
          py::gil_scoped_release release;
          ops::batch_norm(vx, pm, pv, pw, pb, p, vo);
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("running_mean"), py::arg("running_var"), py::arg("weight"),
      py::arg("bias"), py::arg("training"), py::arg("factor"), py::arg("eps"),
      py::arg("activation"), py::arg("negative_slope"), py::arg("channels_last"), py::arg("out"));
  m.def(
      "activation",
      [](const py::array& x, const std::string& name, float negative_slope,
         const py::object& out) -> py::object {
        const kernels::Activation act = parse_activation(py::str(name), name.c_str());
        py::object keep;
        const TensorView vx = view_of(x, name.c_str(), "x", false, &keep);
        TensorView vo;
        py::object result = result_for(vx, out, name.c_str(), &vo);
        {
          py::gil_scoped_release release;
          ops::activation(vx, act, negative_slope, vo, name.c_str());
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("name"), py::arg("negative_slope"), py::arg("out"));
}

}  // namespace cnnfast::python
