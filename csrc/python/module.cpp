// The extension module cnnfast._C: exception mapping, runtime controls (ISA cap, threads, build
// facts) and each op's bind_* function. Docstrings live in the Python package.
#include <omp.h>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/registry.h"
#include "python/bind.h"

namespace cnnfast::python {

void bind_matmul(py::module_& m);
void bind_conv2d(py::module_& m);
void bind_batch_norm(py::module_& m);
void bind_pool(py::module_& m);
void bind_separable(py::module_& m);
void bind_conv_transpose2d(py::module_& m);
void bind_deform_conv2d(py::module_& m);
void bind_conv3d(py::module_& m);

namespace {

py::dict build_info() {
  py::dict d;
  d["compiler"] = CNNFAST_COMPILER;
  d["build_type"] = CNNFAST_BUILD_TYPE;
  d["cxx_flags"] = CNNFAST_CXX_FLAGS;
#if defined(CNNFAST_X86)
  d["isa_flags"] =
      "scalar: baseline; avx2: -mavx2 -mfma; avx512: -mavx512f -mavx512bw "
      "-mavx512dq -mavx512vl -mfma -mprefer-vector-width=512";
#else
  d["isa_flags"] = "scalar: baseline";
#endif
  d["openmp"] = std::to_string(_OPENMP);
  return d;
}

Isa isa_from_name(const std::string& name) {
  Isa isa;
  if (!parse_isa(name.c_str(), &isa)) {
    throw ValueError("max_isa: unknown ISA tier '" + name + "'; expected scalar, avx2 or avx512");
  }
  return isa;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  get_num_threads();  // reads OMP_NUM_THREADS now and installs the fork handler

  m.def("detected_isa", [] { return isa_name(detected_isa()); });
  m.def("isa", [] { return isa_name(active_isa()); });
  m.def("get_max_isa", [] { return isa_name(max_isa()); });
  m.def("set_max_isa", [](const std::string& name) { set_max_isa(isa_from_name(name)); });
  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw ValueError("set_num_threads: n must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  });
  m.def("build_info", &build_info);
  m.def("gemm_kernel", [] { return kernels::gemm_kernel_for(active_isa()).name; });

  bind_matmul(m);
  bind_conv2d(m);
  bind_batch_norm(m);
  bind_pool(m);
  bind_separable(m);
  bind_conv_transpose2d(m);
  bind_deform_conv2d(m);
  bind_conv3d(m);
}

}  // namespace cnnfast::python
