// cnnfast.batch_norm and the standalone activations: per-channel scale + shift + activation over
// channels-first (N, C, *) or channels-last (N, *, C) float32 arrays, with batch statistics in
// training mode. Called by the bindings in python/batch_norm.cpp.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "kernels/gemm/gemm.h"

namespace cnnfast::ops {

struct BatchNormParams {
  bool channels_last = false;
  bool training = false;
  // Weight of the batch statistic in the running-statistics update (momentum, or
  // 1 / num_batches_tracked for the cumulative average): new = (1 - f) * old + f * batch.
  double factor = 0.1;
  double eps = 1e-5;
  kernels::Activation activation = kernels::Activation::none;
  float negative_slope = 0.01f;
};

// Checks every argument (ValueError naming it and the shapes). running_mean / running_var /
// weight / bias may be nullptr (running statistics only in training). `out` is the array to
// write: x's shape, contiguous, not overlapping any input except x itself (in place).
void check_batch_norm(const TensorView& x, const TensorView* running_mean,
                      const TensorView* running_var, const TensorView* weight,
                      const TensorView* bias, const BatchNormParams& p, const TensorView& out);

// out = act((x - mean) / sqrt(var + eps) * weight + bias), with the running statistics (or, when
// training, the batch's, which also update the running ones in place).
void batch_norm(const TensorView& x, TensorView* running_mean, TensorView* running_var,
                const TensorView* weight, const TensorView* bias, const BatchNormParams& p,
                TensorView& out);

// A batch norm (mean, var, weight, beta, eps; weight/beta may be nullptr) folded into the
// convolution with weight `w` (output channels on axis 0) and `bias` (may be nullptr): fills
// scale[o] = weight[o] / sqrt(var[o] + eps) and shift[o] = (bias[o] - mean[o]) * scale[o] +
// beta[o], computed in double. ValueError (naming conv_bn_act) for wrong lengths, var < 0 or
// eps <= 0.
void fold_batch_norm_vectors(const TensorView& w, const TensorView* bias, const TensorView* mean,
                             const TensorView* var, const TensorView* weight,
                             const TensorView* beta, double eps, std::vector<float>* scale,
                             std::vector<float>* shift);

// out = act(x) elementwise (out may be x). `op` names the function in errors.
void activation(const TensorView& x, kernels::Activation act, float alpha, const TensorView& out,
                const char* op);

}  // namespace cnnfast::ops
