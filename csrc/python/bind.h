// Shared binding helpers: NumPy array -> TensorView (dtype checked, never converted), output
// allocation. Included by each op's binding file.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm/gemm.h"

namespace cnnfast::python {

namespace py = pybind11;

// A view of `arr`, which must be a float32 ndarray (TypeError naming `op` and `arg` otherwise).
// Arrays whose byte strides are not whole elements (rare: structured-array fields) are copied
// into `keep_alive` first, the one copy documented for odd strides.
TensorView view_of(const py::array& arr, const char* op, const char* arg, bool writable,
                   py::object* keep_alive);

// A view of a caller's out= array: a writable float32 ndarray (ValueError naming `op`).
TensorView view_of_out(const py::object& out, const char* op);

// A new C-contiguous float32 array of `shape` and its view.
py::array_t<float> new_array(const std::vector<int64_t>& shape, TensorView* view);

// The activation named by a Python value (None or a name); ValueError naming `op` otherwise.
kernels::Activation parse_activation(const py::object& name, const char* op);

}  // namespace cnnfast::python
