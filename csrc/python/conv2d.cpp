// Binding of cnnfast.conv2d / conv1d (docstrings and argument normalisation in
// python/cnnfast/functional.py: padding forms, padding modes, layouts arrive here resolved).
#include "ops/conv2d.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "ops/batch_norm.h"
#include "ops/separable.h"
#include "python/bind.h"
#include "python/conv_params.h"

namespace cnnfast::python {
void bind_conv2d(py::module_& m) {
  m.def("conv2d_algorithms", &ops::conv2d_algorithms);
  m.def(
      "conv2d",
      [](const py::array& x, const py::array& weight, const py::object& bias,
         std::array<int64_t, 2> stride, std::array<int64_t, 4> padding,
         std::array<int64_t, 2> dilation, int64_t groups, const py::object& activation,
         float negative_slope, bool nhwc, const std::string& algo, const py::object& out,
         bool conv1d, const py::object& bn, const ops::Conv2dPackedWeight* packed,
         const py::object& residual) -> py::object {
        const char* op = conv1d ? "conv1d" : "conv2d";
        ops::Conv2dParams p =
            conv_params(stride, padding, dilation, groups, activation, negative_slope, nhwc, op);
        p.conv1d = conv1d;
        p.packed = packed;
        p.algo = ops::parse_conv2d_algo(algo, op);
        py::object keep_x, keep_w, keep_b;
        const TensorView vx = view_of(x, op, "x", false, &keep_x);
        const TensorView vw = view_of(weight, op, "weight", false, &keep_w);
        TensorView vb;
        const TensorView* pb = optional_view(bias, op, "bias", &vb, &keep_b);
        // conv_bn_act: bn = (running_mean, running_var, bn_weight, bn_bias, eps), folded into a
        // per-channel scale and a new bias for the epilogue (the weights are not rewritten).
        std::vector<float> bn_scale, bn_bias;
        TensorView v_bn_bias;
        const std::vector<int64_t> shape = ops::conv2d_output_shape(vx, vw, pb, p);
        if (!bn.is_none()) {
          const py::tuple t = bn.cast<py::tuple>();
          static const char* kNames[] = {"running_mean", "running_var", "bn_weight", "bn_bias"};
          py::object keep[4];
          TensorView v[4];
          const TensorView* pv[4] = {};
          for (int i = 0; i < 4; ++i) {
            if (t[size_t(i)].is_none()) continue;
            v[i] =
                view_of(t[size_t(i)].cast<py::array>(), "conv_bn_act", kNames[i], false, &keep[i]);
            pv[i] = &v[i];
          }
          ops::fold_batch_norm_vectors(vw, pb, pv[0], pv[1], pv[2], pv[3], t[4].cast<double>(),
                                       &bn_scale, &bn_bias);
          p.scale = bn_scale.data();
          v_bn_bias.data = bn_bias.data();
          v_bn_bias.ndim = 1;
          v_bn_bias.shape[0] = int64_t(bn_bias.size());
          v_bn_bias.strides[0] = 1;
          pb = &v_bn_bias;
        }
        TensorView vo;
        py::object result;
        if (out.is_none()) {
          result = new_array(shape, &vo);
        } else {
          vo = view_of_out(out, op);
          ops::check_conv2d_out(vo, vx, vw, pb, p);
          result = out;
        }
        py::object keep_r;
        if (!residual.is_none()) {
          const TensorView vr = view_of(residual.cast<py::array>(), op, "residual", false, &keep_r);
          if (std::vector<int64_t>(vr.shape, vr.shape + vr.ndim) != shape || !vr.is_contiguous()) {
            throw ValueError(std::string(op) +
                             ": residual must be a C-contiguous array of the "
                             "output's shape " +
                             vo.shape_str() + ", got shape " + vr.shape_str());
          }
          if (vr.may_overlap(vo)) {
            throw ValueError(std::string(op) + ": residual overlaps out; pass a separate array");
          }
          p.residual = vr.data;
        }
        {
          py::gil_scoped_release release;
          ops::conv2d(vx, vw, pb, p, vo);
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("activation"),
      py::arg("negative_slope"), py::arg("nhwc"), py::arg("algo"), py::arg("out"),
      py::arg("conv1d") = false, py::arg("bn") = py::none(), py::arg("packed") = nullptr,
      py::arg("residual") = py::none());
  // A layer's weight packed once for the GEMM kernel of the active ISA and one layout
  // (cnnfast.nn.Conv2d): conv2d(..., packed=) then neither reorders nor packs the weight.
  py::class_<ops::Conv2dPackedWeight>(m, "Conv2dPackedWeight")
      .def_property_readonly("kernel",
                             [](const ops::Conv2dPackedWeight& w) { return w.kernel->name; })
      .def_readonly("nhwc", &ops::Conv2dPackedWeight::nhwc)
      .def_property_readonly("nbytes",
                             [](const ops::Conv2dPackedWeight& w) { return w.buffer.size(); });
  m.def(
      "conv2d_prepack_weight",
      [](const py::array& weight, int64_t groups,
         bool nhwc) -> std::unique_ptr<ops::Conv2dPackedWeight> {
        const char* op = "conv2d_prepack_weight";
        py::object keep;
        const TensorView vw = view_of(weight, op, "weight", false, &keep);
        if (vw.ndim != 4 || groups < 1 || vw.shape[0] % groups != 0) {
          throw ValueError(std::string(op) +
                           ": weight must be 4-D (C_out, C_in/groups, kh, kw) with C_out "
                           "divisible by groups " +
                           std::to_string(groups) + ", got shape " + vw.shape_str());
        }
        py::gil_scoped_release release;
        return ops::conv2d_prepack_weight(vw, groups, nhwc);
      },
      py::arg("weight").noconvert(), py::arg("groups"), py::arg("nhwc"));
  // Whether conv2d on this NCHW x runs via NHWC copies (nn.Conv2d then packs its weight for NHWC).
  m.def(
      "conv2d_runs_via_nhwc",
      [](const py::array& x, const py::array& weight, std::array<int64_t, 2> stride,
         std::array<int64_t, 4> padding, std::array<int64_t, 2> dilation, int64_t groups) {
        const char* op = "conv2d";
        ops::Conv2dParams p =
            conv_params(stride, padding, dilation, groups, py::none(), 0.0f, false, op);
        py::object keep_x, keep_w;
        const TensorView vx = view_of(x, op, "x", false, &keep_x);
        const TensorView vw = view_of(weight, op, "weight", false, &keep_w);
        ops::conv2d_output_shape(vx, vw, nullptr, p);  // validates
        return ops::conv2d_runs_via_nhwc(vx, vw, p);
      },
      py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  // A tap-major copy of an OIHW weight (same shape, values in (o, i, j, c) order): what
  // cnnfast.nn.DeformConv2d packs once.
  m.def(
      "conv2d_pack_weight",
      [](const py::array& weight) -> py::object {
        py::object keep;
        const TensorView vw = view_of(weight, "conv2d_pack_weight", "weight", false, &keep);
        if (vw.ndim != 4) {
          throw ValueError(
              "conv2d_pack_weight: weight must be 4-D (C_out, C_in/groups, kh, kw), "
              "got shape " +
              vw.shape_str());
        }
        TensorView vo;
        py::array_t<float> packed =
            new_array({vw.shape[0], vw.shape[1], vw.shape[2], vw.shape[3]}, &vo);
        ops::Conv2dGeometry g{};
        g.c_out = vw.shape[0];
        g.icg = vw.shape[1];
        g.kh = vw.shape[2];
        g.kw = vw.shape[3];
        const float* src = ops::tap_major_weights(vw.data, g);
        std::copy(src, src + vo.numel(), vo.data);
        return std::move(packed);
      },
      py::arg("weight").noconvert());
}

void bind_separable(py::module_& m) {
  m.def(
      "separable_conv2d",
      [](const py::array& x, const py::array& dw_weight, const py::object& dw_bias,
         const py::array& pw_weight, const py::object& pw_bias, std::array<int64_t, 2> stride,
         std::array<int64_t, 4> padding, std::array<int64_t, 2> dilation,
         const py::object& activation, const py::object& mid_activation, float negative_slope,
         bool nhwc, const py::object& out) -> py::object {
        const char* op = "separable_conv2d";
        // The depthwise part's parameters; groups is C_in, set once x is viewed.
        ops::Conv2dParams p =
            conv_params(stride, padding, dilation, 1, mid_activation, negative_slope, nhwc, op);
        p.algo = ops::Conv2dAlgo::depthwise;
        py::object keep[5];
        const TensorView vx = view_of(x, op, "x", false, &keep[0]);
        const TensorView vdw = view_of(dw_weight, op, "depthwise_weight", false, &keep[1]);
        const TensorView vpw = view_of(pw_weight, op, "pointwise_weight", false, &keep[2]);
        p.groups = vx.ndim == 4 ? vx.shape[nhwc ? 3 : 1] : 1;
        TensorView vdb, vpb, vo;
        const TensorView* pdb = optional_view(dw_bias, op, "depthwise_bias", &vdb, &keep[3]);
        const TensorView* ppb = optional_view(pw_bias, op, "pointwise_bias", &vpb, &keep[4]);
        const kernels::Activation act = parse_activation(activation, op);
        const std::vector<int64_t> shape = ops::separable_output_shape(vx, vdw, pdb, vpw, ppb, p);
        py::object result = conv_result(out, shape, {&vx, &vdw, &vpw, pdb, ppb}, op, &vo);
        {
          py::gil_scoped_release release;
          ops::separable_conv2d(vx, vdw, pdb, vpw, ppb, p, act, negative_slope, vo.data);
        }
        return result;
      },
      py::arg("x").noconvert(), py::arg("dw_weight").noconvert(), py::arg("dw_bias"),
      py::arg("pw_weight").noconvert(), py::arg("pw_bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("activation"), py::arg("mid_activation"),
      py::arg("negative_slope"), py::arg("nhwc"), py::arg("out"));
}

}  // namespace cnnfast::python
