// Bindings of the poolings (argument normalisation, docstrings and layouts in
// python/cnnfast/pooling.py: kernel, stride, padding and dilation arrive here resolved).
#include "ops/pool.h"

#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "core/errors.h"
#include "python/bind.h"

namespace cnnfast::python {
namespace {

using Triple = std::array<int64_t, 3>;

ops::PoolMode parse_mode(const std::string& mode) {
  if (mode == "max") return ops::PoolMode::max;
  if (mode == "avg") return ops::PoolMode::avg;
  return ops::PoolMode::lp;
}

// A new int64 array for the indices.
py::object index_array(const std::vector<int64_t>& shape, int64_t** data) {
  py::array_t<int64_t> arr(std::vector<py::ssize_t>(shape.begin(), shape.end()));
  *data = arr.mutable_data();
  return std::move(arr);
}

// The shared frame of the pooling bindings: view x, the output (new or the caller's out=,
// checked) and the indices (when asked for), then `compute` with the GIL released.
template <class Compute>
py::object run_pool(const py::array& x, const ops::PoolParams& p, bool return_indices,
                    const py::object& out, Compute compute) {
  py::object keep;
  const TensorView vx = view_of(x, p.op.c_str(), "x", false, &keep);
  const std::vector<int64_t> shape = ops::pool_output_shape(vx, p);
  TensorView vo;
  py::object result;
  if (out.is_none()) {
    result = new_array(shape, &vo);
  } else {
    vo = view_of_out(out, p.op.c_str());
    ops::check_pool_out(vo, vx, p, "out");
    result = out;
  }
  int64_t* indices = nullptr;
  py::object index_result;
  if (return_indices) index_result = index_array(shape, &indices);
  {
    py::gil_scoped_release release;
    compute(vx, vo.data, indices);
  }
  if (return_indices) return py::make_tuple(result, index_result);
  return result;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "pool",
      [](const py::array& x, const std::string& op, int dims, const std::string& mode,
         bool adaptive, Triple kernel, Triple stride, Triple pad_begin, Triple pad_end,
         Triple dilation, Triple output, bool ceil_mode, bool count_include_pad,
         int64_t divisor_override, float power, bool channels_last, bool return_indices,
         const py::object& out) -> py::object {
        ops::PoolParams p;
        p.op = op;
        p.dims = dims;
        p.mode = parse_mode(mode);
        p.adaptive = adaptive;
        for (int i = 0; i < 3; ++i) {
          p.kernel[i] = kernel[size_t(i)];
          p.stride[i] = stride[size_t(i)];
          p.pad_begin[i] = pad_begin[size_t(i)];
          p.pad_end[i] = pad_end[size_t(i)];
          p.dilation[i] = dilation[size_t(i)];
          p.output[i] = output[size_t(i)];
        }
        p.ceil_mode = ceil_mode;
        p.count_include_pad = count_include_pad;
        p.divisor_override = divisor_override;
        p.power = power;
        p.channels_last = channels_last;
        return run_pool(x, p, return_indices, out,
                        [&p](const TensorView& vx, float* y, int64_t* indices) {
                          ops::pool(vx, p, y, indices);
                        });
      },
      py::arg("x").noconvert(), py::arg("op"), py::arg("dims"), py::arg("mode"),
      py::arg("adaptive"), py::arg("kernel"), py::arg("stride"), py::arg("pad_begin"),
      py::arg("pad_end"), py::arg("dilation"), py::arg("output"), py::arg("ceil_mode"),
      py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("power"),
      py::arg("channels_last"), py::arg("return_indices"), py::arg("out"));
  m.def(
      "spatial_pyramid_pool",
      [](const py::array& x, const std::vector<int64_t>& levels, bool is_max,
         bool channels_last) -> py::object {
        const char* op = "spatial_pyramid_pool2d";
        py::object keep;
        const TensorView vx = view_of(x, op, "x", false, &keep);
        int64_t cells = 0;
        for (const int64_t l : levels) cells += l * l;
        TensorView vy;
        py::array result = new_array({vx.shape[0], vx.shape[channels_last ? 3 : 1] * cells}, &vy);
        {
          py::gil_scoped_release release;
          ops::spatial_pyramid_pool(vx, levels, is_max, channels_last, vy.data);
        }
        return std::move(result);
      },
      py::arg("x").noconvert(), py::arg("levels"), py::arg("is_max"), py::arg("channels_last"));
  m.def(
      "stochastic_pool",
      [](const py::array& x, const std::string& op, Triple kernel, Triple stride, Triple pad_begin,
         Triple pad_end, bool channels_last, bool training, uint64_t seed, bool return_indices,
         const py::object& out) -> py::object {
        ops::PoolParams p;
        p.op = op;
        p.dims = 2;
        for (int i = 0; i < 3; ++i) {
          p.kernel[i] = kernel[size_t(i)];
          p.stride[i] = stride[size_t(i)];
          p.pad_begin[i] = pad_begin[size_t(i)];
          p.pad_end[i] = pad_end[size_t(i)];
        }
        p.channels_last = channels_last;
        return run_pool(x, p, return_indices, out,
                        [&p, training, seed](const TensorView& vx, float* y, int64_t* indices) {
                          ops::stochastic_pool(vx, p, training, seed, y, indices);
                        });
      },
      py::arg("x").noconvert(), py::arg("op"), py::arg("kernel"), py::arg("stride"),
      py::arg("pad_begin"), py::arg("pad_end"), py::arg("channels_last"), py::arg("training"),
      py::arg("seed"), py::arg("return_indices"), py::arg("out"));
  m.def(
      "max_unpool",
      [](const py::array& x, const py::array_t<int64_t, py::array::c_style>& indices,
         bool channels_last, int dims, const std::vector<int64_t>& out_spatial,
         const std::string& op) -> py::object {
        py::object keep;
        const TensorView vx = view_of(x, op.c_str(), "x", false, &keep);
        if (!vx.is_contiguous()) throw ValueError(op + ": x must be C-contiguous");
        std::vector<int64_t> shape(vx.shape, vx.shape + vx.ndim);
        if (indices.ndim() != vx.ndim) {
          throw ValueError(op + ": indices must have the shape of x " + vx.shape_str());
        }
        for (int d = 0; d < vx.ndim; ++d) {
          if (indices.shape(d) != vx.shape[d]) {
            throw ValueError(op + ": indices must have the shape of x " + vx.shape_str());
          }
        }
        for (int i = 0; i < dims; ++i)
          shape[size_t((channels_last ? 1 : 2) + i)] = out_spatial[size_t(i)];
        TensorView vo;
        py::array_t<float> result = new_array(shape, &vo);
        const int64_t* idx = indices.data();
        {
          py::gil_scoped_release release;
          ops::max_unpool(vx, idx, channels_last, dims, out_spatial, vo.data, op);
        }
        return std::move(result);
      },
      py::arg("x").noconvert(), py::arg("indices").noconvert(), py::arg("channels_last"),
      py::arg("dims"), py::arg("out_spatial"), py::arg("op"));
}

}  // namespace cnnfast::python
