// cnnfast.deform_conv2d: torchvision.ops.deform_conv2d (v1, and v2 with a mask) on the CPU.
// x is NCHW or NHWC, weight OIHW in both; offset and mask have x's layout; the output too.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/conv2d.h"

namespace cnnfast::ops {

// Validates x, offset, weight, bias and mask (nullptr: none) with the convolution parameters p
// (p.groups is ignored: the groups are C_in / weight.shape[1], as torchvision infers them) and
// returns the output shape in x's layout. ValueError names the argument and the shapes.
std::vector<int64_t> deform_conv2d_output_shape(const TensorView& x, const TensorView& offset,
                                                const TensorView& weight, const TensorView* bias,
                                                const TensorView* mask, const Conv2dParams& p);

// out = act(deform_conv2d(x, offset, weight, mask) + bias) on C-contiguous arrays that
// deform_conv2d_output_shape accepted; out has the shape it returned.
void deform_conv2d(const TensorView& x, const TensorView& offset, const TensorView& weight,
                   const TensorView* bias, const TensorView* mask, const Conv2dParams& p,
                   TensorView& out);

}  // namespace cnnfast::ops
