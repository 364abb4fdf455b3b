// cnnfast.separable_conv2d: MobileNet's depthwise-separable block (depthwise k x k, optional
// activation, pointwise 1 x 1) fused band by band. Called by the binding in python/conv2d.cpp.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {

// Validates the block (the depthwise part as conv2d does; the pointwise weight (C_out, C_mid, 1,
// 1) and bias) and returns the output shape in x's layout. `dw` holds the depthwise stride,
// padding, dilation, groups (= C_in), layout and the middle activation.
std::vector<int64_t> separable_output_shape(const TensorView& x, const TensorView& dw_weight,
                                            const TensorView* dw_bias, const TensorView& pw_weight,
                                            const TensorView* pw_bias, const Conv2dParams& dw);

// y = act(pointwise(mid_act(depthwise(x) + dw_bias)) + pw_bias), computed a band of output rows
// at a time: the band's depthwise result (at most kBandBytes) is consumed by the pointwise GEMM
// while still in cache, so the middle tensor is never written to memory whole.
void separable_conv2d(const TensorView& x, const TensorView& dw_weight, const TensorView* dw_bias,
                      const TensorView& pw_weight, const TensorView* pw_bias,
                      const Conv2dParams& dw, kernels::Activation act, float alpha, float* y);

}  // namespace cnnfast::ops
