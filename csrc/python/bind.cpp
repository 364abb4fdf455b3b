// Array conversion shared by the op bindings.
#include "python/bind.h"

#include <utility>

#include "core/errors.h"
#include "core/workspace.h"

namespace cnnfast::python {

TensorView view_of(const py::array& arr_in, const char* op, const char* arg, bool writable,
                   py::object* keep_alive) {
  py::array arr = arr_in;
  if (!py::isinstance<py::array_t<float>>(arr) || arr.dtype().kind() != 'f' ||
      arr.itemsize() != 4) {
    const std::string dtype = py::str(arr.dtype());
    throw TypeError(std::string(op) + ": " + arg + " has dtype " + dtype +
                    "; cnnfast computes in float32 only (no silent conversion): pass " + arg +
                    ".astype(numpy.float32)");
  }
  if (arr.ndim() > kMaxDims) {
    throw ValueError(std::string(op) + ": " + arg + " has " + std::to_string(arr.ndim()) +
                     " dimensions; at most " + std::to_string(kMaxDims) + " are supported");
  }
  if (writable && !arr.writeable()) {
    throw ValueError(std::string(op) + ": " + arg + " is read-only");
  }
  const bool aligned = reinterpret_cast<uintptr_t>(arr.data()) % alignof(float) == 0;
  bool whole_elements = true;
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) whole_elements &= arr.strides(d) % 4 == 0;
  if (!aligned || !whole_elements) {
    const std::string why =
        !aligned ? " data is not aligned to 4 bytes" : " strides are not whole float32 elements";
    if (writable) {
      throw ValueError(std::string(op) + ": " + arg + why +
                       "; pass an aligned, "
                       "contiguous array");
    }
    // The one documented copy: odd alignment or strides (e.g. a field of a packed record).
    arr = py::module_::import("numpy").attr("array")(arr, py::arg("dtype") = "float32",
                                                     py::arg("order") = "C");
    *keep_alive = arr;
  }
  TensorView v;
  v.data = static_cast<float*>(const_cast<void*>(arr.data()));
  v.ndim = int(arr.ndim());
  for (int d = 0; d < v.ndim; ++d) {
    v.shape[d] = arr.shape(d);
    v.strides[d] = arr.strides(d) / 4;
  }
  return v;
}

TensorView view_of_out(const py::object& out, const char* op) {
  if (!py::isinstance<py::array>(out)) {
    throw TypeError(std::string(op) + ": out must be a numpy.ndarray, got " +
                    std::string(py::str(out.get_type().attr("__name__"))));
  }
  const py::array arr = out.cast<py::array>();
  if (!arr.dtype().is(py::dtype::of<float>())) {
    throw ValueError(std::string(op) + ": out has dtype " + std::string(py::str(arr.dtype())) +
                     "; it must be float32");
  }
  return view_of(arr, op, "out", true, nullptr);
}

py::array_t<float> new_array(const std::vector<int64_t>& shape, TensorView* view) {
  // pybind11 multiplies the strides out unchecked (signed overflow, found by UBSan under the
  // argument fuzzer): every size is checked here first, for every op's output.
  int64_t bytes = int64_t(sizeof(float));
  for (const int64_t d : shape) {
    if (d < 0) {
      std::string s;
      for (const int64_t v : shape) s += (s.empty() ? "" : ", ") + std::to_string(v);
      throw ValueError("output shape (" + s + ") has a negative size");
    }
    bytes = checked_mul(bytes, d, "output bytes");
  }
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::array_t<float> arr(dims);
  *view = view_of(arr, "cnnfast", "output", true, nullptr);
  return arr;
}

kernels::Activation parse_activation(const py::object& name, const char* op) {
  using kernels::Activation;
  if (name.is_none()) return Activation::none;
  const std::string s = py::str(name);
  static const std::pair<const char*, Activation> kNames[] = {
      {"relu", Activation::relu},
      {"relu6", Activation::relu6},
      {"leaky_relu", Activation::leaky_relu},
      {"hardswish", Activation::hardswish},
      {"sigmoid", Activation::sigmoid},
      {"tanh", Activation::tanh},
      {"silu", Activation::silu}};
  for (const auto& [key, act] : kNames) {
    if (s == key) return act;
  }
  throw ValueError(std::string(op) + ": unknown activation '" + s +
                   "'; expected None, relu, relu6, leaky_relu, sigmoid, tanh, silu or hardswish");
}

}  // namespace cnnfast::python
