// cnnfast's poolings over 1, 2 or 3 spatial axes: max, average and Lp with uniform windows
// (kernel, stride, padding, dilation, ceil_mode), their adaptive forms, and max_unpool. Called
// by the bindings in python/pool.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace cnnfast::ops {

enum class PoolMode { max, avg, lp };

// x is (N, C, *spatial) or, channels_last, (N, *spatial, C) with `dims` spatial axes (1-3).
// Per-axis arrays are indexed D, H, W: the last `dims` entries are used, the outer ones stay 1
// (0 for pads).
struct PoolParams {
  std::string op;  // the Python function, for messages
  int dims = 2;
  PoolMode mode = PoolMode::max;
  bool channels_last = false;
  int64_t kernel[3] = {1, 1, 1}, stride[3] = {1, 1, 1}, dilation[3] = {1, 1, 1};
  int64_t pad_begin[3] = {0, 0, 0}, pad_end[3] = {0, 0, 0};
  bool ceil_mode = false;
  bool count_include_pad = true;
  int64_t divisor_override = 0;  // 0: none
  float power = 0.0f;            // Lp pooling's p
  // adaptive pooling: the output size per axis (kernel/stride/padding unused)
  bool adaptive = false;
  int64_t output[3] = {1, 1, 1};
};

// The output shape (x's layout), or ValueError naming the op, the argument and the shapes.
std::vector<int64_t> pool_output_shape(const TensorView& x, const PoolParams& p);

// Checks a caller's out= (and indices array) against the output shape.
void check_pool_out(const TensorView& out, const TensorView& x, const PoolParams& p,
                    const char* what);

// y (and, when not nullptr, indices: flat positions within each channel's spatial volume) =
// pool(x).
void pool(const TensorView& x, const PoolParams& p, float* y, int64_t* indices);

// Spatial pyramid pooling (He et al.): y (N, C * sum(l^2)) holds, per image, the adaptive max
// or average pooling of the 4-D x (NCHW, or NHWC when channels_last) to l x l for each level in
// turn, each (C, l, l) flattened. Levels are >= 1 and at most H and W (the caller checks).
void spatial_pyramid_pool(const TensorView& x, const std::vector<int64_t>& levels, bool is_max,
                          bool channels_last, float* y);

// Stochastic pooling (Zeiler & Fergus), uniform windows from p (mode unused): training picks
// one element per window with probability a_i / sum(a) by a counter-based random draw keyed by
// `seed` and the output's NCHW flat index (the same result for any thread count and layout);
// evaluation gives sum(a_i^2) / sum(a). All-zero windows give 0 (index: the first tap inside).
// ValueError when x has a negative or NaN value.
void stochastic_pool(const TensorView& x, const PoolParams& p, bool training, uint64_t seed,
                     float* y, int64_t* indices);

// max_unpool: y (zero-filled by this call, spatial size `out_spatial`) receives x at the
// positions `indices` (same shape as x, flat within each channel's volume). ValueError for an
// index outside the output volume.
void max_unpool(const TensorView& x, const int64_t* indices, bool channels_last, int dims,
                const std::vector<int64_t>& out_spatial, float* y, const std::string& op);

}  // namespace cnnfast::ops
