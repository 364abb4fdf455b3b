// Stochastic pooling kernel contract (ops::stochastic_pool): the outputs of one NCHW plane or of
// one NHWC output row, training draws or evaluation averages, in float32 with the draw of
// output o (its NCHW flat position) from SplitMix64(key ^ o). One generic source
// (stoch_impl.h) per tier; the AVX2 and AVX-512 tiers replace its block of 16 outputs with
// intrinsics (8 and 16 lanes). Every tier gives bitwise the same values and indices.
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace cnnfast::kernels {

// The most taps a window may have (ops::stochastic_pool rejects larger kernels).
constexpr int kStochMaxTaps = 1024;

// The draws' key, SplitMix64's output function of the seed. For the op (baseline code) only:
// the tiers use stoch_impl.h's own copy, since an inline function that a tier's unit emitted
// could be the one the linker keeps for every caller.
inline uint64_t stoch_key(uint64_t seed) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// One call's 2-D geometry (no dilation): sizes, kernel, stride, begin padding (end padding
// only shows in out_h/out_w). key = SplitMix64(seed).
struct StochGeometry {
  int64_t c = 1, in_h = 1, in_w = 1, out_h = 1, out_w = 1;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0;
  bool training = true;
  uint64_t key = 0;
};

// NCHW: every output of plane `plane` (= n * C + c): x its input (in_h * in_w), y and idx its
// outputs (idx may be nullptr: flat positions within the plane). Returns a value above
// 0x7f800000 (+inf's bit pattern) when a negative value, -0.0 or a NaN was among the inputs
// read, else one at most that (the caller then looks for the first offender).
using StochPlaneFn = uint32_t (*)(const StochGeometry& g, int64_t plane, const float* x, float* y,
                                  int64_t* idx);

// NHWC: output row oh of image n, every pixel and channel: x the image (in_h * in_w * c), y and
// idx (may be nullptr) the row's out_w * c outputs. Returns as StochPlaneFn.
using StochRowFn = uint32_t (*)(const StochGeometry& g, int64_t n, int64_t oh, const float* x,
                                float* y, int64_t* idx);

// The largest bit pattern of x[0..n) (the check of inputs that no window reads).
using StochMaxBitsFn = uint32_t (*)(int64_t n, const float* x);

struct StochKernel {
  const char* name;
  Isa isa;
  StochPlaneFn plane;
  StochRowFn row;
  StochMaxBitsFn max_bits;
};

#define CNNFAST_DECLARE_STOCH(tier)                                                            \
  uint32_t stoch_plane_##tier(const StochGeometry& g, int64_t plane, const float* x, float* y, \
                              int64_t* idx);                                                   \
  uint32_t stoch_row_##tier(const StochGeometry& g, int64_t n, int64_t oh, const float* x,     \
                            float* y, int64_t* idx);                                           \
  uint32_t stoch_max_bits_##tier(int64_t n, const float* x);

CNNFAST_DECLARE_STOCH(scalar)
#if defined(CNNFAST_X86)
CNNFAST_DECLARE_STOCH(avx2)
CNNFAST_DECLARE_STOCH(avx512)
#endif
#undef CNNFAST_DECLARE_STOCH

}  // namespace cnnfast::kernels
