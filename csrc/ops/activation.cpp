// Scalar activations for the driver's tile epilogue and the direct algorithms.
#include "ops/activation.h"

#include <cmath>

namespace cnnfast::ops {

void activate(float* x, int64_t n, kernels::Activation act, float alpha) {
  using kernels::Activation;
  // Comparisons are written so that NaN is returned unchanged.
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    switch (act) {
      case Activation::none:
        break;
      case Activation::relu:
        x[i] = v < 0.0f ? 0.0f : v;
        break;
      case Activation::relu6:
        x[i] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
        break;
      case Activation::leaky_relu:
        x[i] = v < 0.0f ? v * alpha : v;
        break;
      case Activation::hardswish: {
        const float t = v + 3.0f;
        x[i] = v * (t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t)) * (1.0f / 6.0f);
        break;
      }
      case Activation::sigmoid:
        x[i] = 1.0f / (1.0f + std::exp(-v));
        break;
      case Activation::tanh:
        x[i] = std::tanh(v);
        break;
      case Activation::silu:
        x[i] = v / (1.0f + std::exp(-v));
        break;
    }
  }
}

}  // namespace cnnfast::ops
