// cnnfast.batch_norm: validate -> per-channel statistics (training) -> scale/shift per channel ->
// one pass y = act(x * scale + shift). Layouts: channels-first x is (N, C, S) planes of S
// contiguous values; channels-last x is (R, C) rows (R = N * spatial). A channels-first input
// with S == 1 ((N, C) or all spatial sizes 1) is the rows case.
// Statistics are reduced per channel in a fixed order (blocks of fixed size, combined in double
// by Chan's formula), never split across threads: results do not depend on the thread count.
#include "ops/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "kernels/registry.h"

namespace cnnfast::ops {
namespace {

// Values per moments() call: its float lane sums stay short (accurate), and the block (16 KiB)
// is still in L1 for the kernel's second pass.
constexpr int64_t kMomentBlock = 4096;
// Channels-last statistics: channels per task (the unit threads share) and rows per
// moments_rows() call (its float column sums stay short).
constexpr int64_t kRowChannels = 64, kMomentRows = 256;
// Elements per task of the apply pass (64 KiB of x: large enough to hide the task overhead).
constexpr int64_t kApplyChunk = 16384;

struct Layout {
  int64_t n, c, s;  // channels-first (n, c, s); channels-last: rows = n * s, columns c
  bool rows;        // use the rows kernels
};

Layout layout_of(const TensorView& x, bool channels_last) {
  Layout l{x.shape[0], channels_last ? x.shape[x.ndim - 1] : x.shape[1], 1, channels_last};
  for (int d = channels_last ? 1 : 2; d < (channels_last ? x.ndim - 1 : x.ndim); ++d) {
    l.s *= x.shape[d];
  }
  if (l.s == 1) l.rows = true;  // (N, C, 1, ...) is (N, C) rows
  return l;
}

// Running (count, mean, m2) of one channel, combined block by block (Chan et al.).
struct Moments {
  double count = 0, mean = 0, m2 = 0;
  void add(double n, double mean_b, double m2_b) {
    const double total = count + n, delta = mean_b - mean;
    mean += delta * n / total;
    m2 += m2_b + delta * delta * count * n / total;
    count = total;
  }
};

void channel_moments(const TensorView& x, const Layout& l, std::vector<Moments>* out) {
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  std::vector<Moments>& m = *out;
  if (!l.rows) {
    parallel_for_elements(l.c, l.n * l.c * l.s, [&](int64_t c, int) {
      for (int64_t n = 0; n < l.n; ++n) {
        const float* plane = x.data + (n * l.c + c) * l.s;
        for (int64_t i = 0; i < l.s; i += kMomentBlock) {
          const int64_t len = std::min(kMomentBlock, l.s - i);
          double mean, m2;
          kern.moments(len, plane + i, &mean, &m2);
          m[size_t(c)].add(double(len), mean, m2);
        }
      }
    });
    return;
  }
  const int64_t rows = l.n * l.s;
  parallel_for_elements(
      (l.c + kRowChannels - 1) / kRowChannels, rows * l.c, [&](int64_t task, int) {
        const int64_t j0 = task * kRowChannels, width = std::min(kRowChannels, l.c - j0);
        float dmean[kRowChannels], m2[kRowChannels];
        for (int64_t p = 0; p < rows; p += kMomentRows) {
          const int64_t len = std::min(kMomentRows, rows - p);
          const float* block = x.data + p * l.c + j0;
          kern.moments_rows(len, width, l.c, block, dmean, m2);
          for (int64_t j = 0; j < width; ++j) {
            m[size_t(j0 + j)].add(double(len), double(block[j]) + double(dmean[j]), double(m2[j]));
          }
        }
      });
}

// Channel c's moments by two plain passes in double, for a channel whose blocked moments are
// not finite. Chan's combination and the kernels' shifted sums form inf - inf (NaN) from two
// infinities of one sign, where PyTorch's sum gives +-inf, and values near FLT_MAX overflow the
// shifted float sums. The plain passes follow IEEE as PyTorch does: mean +-inf (NaN when both
// signs or a NaN occur) and variance NaN for a channel holding a NaN or an infinity, finite
// moments otherwise. Serial: only such channels take this path.
Moments plain_channel_moments(const TensorView& x, const Layout& l, int64_t c) {
  auto for_each = [&](auto&& fn) {
    if (l.rows) {
      for (int64_t r = 0; r < l.n * l.s; ++r) fn(double(x.data[r * l.c + c]));
    } else {
      for (int64_t n = 0; n < l.n; ++n) {
        const float* plane = x.data + (n * l.c + c) * l.s;
        for (int64_t i = 0; i < l.s; ++i) fn(double(plane[i]));
      }
    }
  };
  Moments m;
  m.count = double(l.n * l.s);
  double sum = 0.0;
  for_each([&](double v) { sum += v; });
  m.mean = sum / m.count;
  for_each([&](double v) { m.m2 += (v - m.mean) * (v - m.mean); });
  return m;
}

// The per-channel maps as four arrays (the rows kernel's form).
struct Affines {
  std::vector<float> hi, lo, scale, shift;
  explicit Affines(int64_t c) : hi(size_t(c)), lo(size_t(c)), scale(size_t(c)), shift(size_t(c)) {}
  kernels::ChannelAffine operator[](int64_t c) const {
    return {hi[size_t(c)], lo[size_t(c)], scale[size_t(c)], shift[size_t(c)]};
  }
};

void apply(const TensorView& x, const Layout& l, const Affines& a, const BatchNormParams& p,
           float* y) {
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  if (!l.rows) {
    // One task per plane, or per chunk of a large plane.
    const int64_t chunks = (l.s + kApplyChunk - 1) / kApplyChunk;
    parallel_for_elements(l.n * l.c * chunks, 2 * l.n * l.c * l.s, [&](int64_t task, int) {
      const int64_t plane = task / chunks, i = task % chunks * kApplyChunk;
      const int64_t c = plane % l.c, offset = plane * l.s + i;
      kern.scale_shift(std::min(kApplyChunk, l.s - i), x.data + offset, a[c], p.activation,
                       p.negative_slope, y + offset);
    });
    return;
  }
  const int64_t rows = l.n * l.s, rows_per_task = std::max<int64_t>(1, kApplyChunk / l.c);
  parallel_for_elements(
      (rows + rows_per_task - 1) / rows_per_task, 2 * rows * l.c, [&](int64_t task, int) {
        const int64_t r0 = task * rows_per_task, count = std::min(rows_per_task, rows - r0);
        kern.scale_shift_rows(count, l.c, x.data + r0 * l.c, a.hi.data(), a.lo.data(),
                              a.scale.data(), a.shift.data(), p.activation, p.negative_slope,
                              y + r0 * l.c);
      });
}

void check_vector(const TensorView* v, const char* name, int64_t c, const TensorView& x) {
  if (v && (v->ndim != 1 || v->shape[0] != c)) {
    throw ValueError("batch_norm: " + std::string(name) + " must have shape (" + std::to_string(c) +
                     ",) for the " + std::to_string(c) + " channels of x " + x.shape_str() +
                     ", got " + v->shape_str());
  }
}

}  // namespace

void check_batch_norm(const TensorView& x, const TensorView* running_mean,
                      const TensorView* running_var, const TensorView* weight,
                      const TensorView* bias, const BatchNormParams& p, const TensorView& out) {
  if (x.ndim < 2) {
    throw ValueError("batch_norm: x must have at least 2 dimensions (N, C, ...), got shape " +
                     x.shape_str());
  }
  if (!(p.eps > 0.0)) throw ValueError("batch_norm: eps must be > 0, got " + std::to_string(p.eps));
  const Layout l = layout_of(x, p.channels_last);
  check_vector(running_mean, "running_mean", l.c, x);
  check_vector(running_var, "running_var", l.c, x);
  check_vector(weight, "weight", l.c, x);
  check_vector(bias, "bias", l.c, x);
  if (!p.training && (!running_mean || !running_var)) {
    throw ValueError("batch_norm: running_mean and running_var are required when training=False");
  }
  if (p.training && l.n * l.s <= 1 && x.numel() > 0) {
    throw ValueError("batch_norm: expected more than 1 value per channel when training, got x " +
                     x.shape_str());
  }
  if (!p.training && running_var) {
    for (int64_t c = 0; c < l.c; ++c) {
      if (running_var->data[c * running_var->strides[0]] < 0.0f) {
        throw ValueError("batch_norm: running_var must be >= 0, got " +
                         std::to_string(running_var->data[c * running_var->strides[0]]) +
                         " for channel " + std::to_string(c));
      }
    }
  }
  bool same = out.ndim == x.ndim;
  for (int d = 0; same && d < x.ndim; ++d) same = out.shape[d] == x.shape[d];
  if (!same) {
    throw ValueError("batch_norm: out has shape " + out.shape_str() + " but x has shape " +
                     x.shape_str());
  }
  if (out.numel() > 0 && !out.is_contiguous()) {
    throw ValueError("batch_norm: out of shape " + out.shape_str() + " must be C-contiguous");
  }
  if (out.data != x.data && out.may_overlap(x)) {
    throw ValueError(
        "batch_norm: out overlaps x without being x; pass x itself or a separate "
        "array");
  }
  for (const TensorView* v : {running_mean, running_var, weight, bias}) {
    if (v && out.may_overlap(*v)) {
      throw ValueError("batch_norm: out overlaps a parameter vector; pass a separate array");
    }
  }
  if (p.training) {
    for (const TensorView* v : {running_mean, running_var}) {
      if (v && (v->may_overlap(x) ||
                (v != running_mean && running_mean && v->may_overlap(*running_mean)))) {
        throw ValueError(
            "batch_norm: running_mean and running_var are updated in place and "
            "must not overlap x or each other");
      }
    }
  }
}

void batch_norm(const TensorView& x, TensorView* running_mean, TensorView* running_var,
                const TensorView* weight, const TensorView* bias, const BatchNormParams& p,
                TensorView& out) {
  const Layout l = layout_of(x, p.channels_last);
  if (l.c == 0) return;
  auto at = [](const TensorView* v, int64_t c, double fallback) {
    return v ? double(v->data[c * v->strides[0]]) : fallback;
  };
  std::vector<double> mean(size_t(l.c)), var(size_t(l.c));
  if (p.training && x.numel() > 0) {
    std::vector<Moments> m(size_t(l.c));
    channel_moments(x, l, &m);
    const double count = double(l.n * l.s);
    for (int64_t c = 0; c < l.c; ++c) {
      if (!std::isfinite(m[size_t(c)].mean) || !std::isfinite(m[size_t(c)].m2)) {
        m[size_t(c)] = plain_channel_moments(x, l, c);
      }
      mean[size_t(c)] = m[size_t(c)].mean;
      var[size_t(c)] = m[size_t(c)].m2 / count;  // biased: what the batch is normalised with
      float* rm = running_mean ? running_mean->data + c * running_mean->strides[0] : nullptr;
      float* rv = running_var ? running_var->data + c * running_var->strides[0] : nullptr;
      // PyTorch's update: the running variance takes the unbiased estimate.
      if (rm) *rm = float((1.0 - p.factor) * double(*rm) + p.factor * mean[size_t(c)]);
      if (rv) {
        *rv = float((1.0 - p.factor) * double(*rv) + p.factor * m[size_t(c)].m2 / (count - 1.0));
      }
    }
  } else {
    for (int64_t c = 0; c < l.c; ++c) {
      mean[size_t(c)] = at(running_mean, c, 0.0);
      var[size_t(c)] = at(running_var, c, 1.0);
    }
  }
  if (x.numel() == 0) return;
  Affines a(l.c);
  for (int64_t c = 0; c < l.c; ++c) {
    const size_t i = size_t(c);
    a.hi[i] = float(mean[i]);
    a.lo[i] = float(mean[i] - double(a.hi[i]));
    a.scale[i] = float(at(weight, c, 1.0) / std::sqrt(var[i] + p.eps));
    a.shift[i] = float(at(bias, c, 0.0));
  }
  apply(x, l, a, p, out.data);
}

void fold_batch_norm_vectors(const TensorView& w, const TensorView* bias, const TensorView* mean,
                             const TensorView* var, const TensorView* weight,
                             const TensorView* beta, double eps, std::vector<float>* scale,
                             std::vector<float>* shift) {
  const int64_t c = w.shape[0];
  const std::pair<const char*, const TensorView*> vectors[] = {
      {"running_mean", mean}, {"running_var", var}, {"bn_weight", weight}, {"bn_bias", beta}};
  for (const auto& [name, v] : vectors) {
    if (!v && (v == mean || v == var)) {
      throw ValueError(std::string("conv_bn_act: ") + name + " is required");
    }
    if (v && (v->ndim != 1 || v->shape[0] != c)) {
      throw ValueError(std::string("conv_bn_act: ") + name + " must have shape (" +
                       std::to_string(c) + ",) for the " + std::to_string(c) +
                       " output channels of weight " + w.shape_str() + ", got " + v->shape_str());
    }
  }
  if (!(eps > 0.0)) {
    throw ValueError("conv_bn_act: eps must be a number > 0, got " + std::to_string(eps));
  }
  auto at = [](const TensorView* v, int64_t i, double fallback) {
    return v ? double(v->data[i * v->strides[0]]) : fallback;
  };
  scale->resize(size_t(c));
  shift->resize(size_t(c));
  for (int64_t o = 0; o < c; ++o) {
    const double v = at(var, o, 1.0);
    if (v < 0.0) {
      throw ValueError("conv_bn_act: running_var must be >= 0, got " + std::to_string(v) +
                       " for channel " + std::to_string(o));
    }
    const double s = at(weight, o, 1.0) / std::sqrt(v + eps);
    (*scale)[size_t(o)] = float(s);
    (*shift)[size_t(o)] = float((at(bias, o, 0.0) - at(mean, o, 0.0)) * s + at(beta, o, 0.0));
  }
}

void activation(const TensorView& x, kernels::Activation act, float alpha, const TensorView& out,
                const char* op) {
  bool same = out.ndim == x.ndim;
  for (int d = 0; same && d < x.ndim; ++d) same = out.shape[d] == x.shape[d];
  if (!same) {
    throw ValueError(std::string(op) + ": out has shape " + out.shape_str() + " but x has shape " +
                     x.shape_str());
  }
  if (out.numel() > 0 && !out.is_contiguous()) {
    throw ValueError(std::string(op) + ": out of shape " + out.shape_str() +
                     " must be C-contiguous");
  }
  if (out.data != x.data && out.may_overlap(x)) {
    throw ValueError(std::string(op) +
                     ": out overlaps x without being x; pass x itself or a separate array");
  }
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  const int64_t n = x.numel();
  parallel_for_elements((n + kApplyChunk - 1) / kApplyChunk, 2 * n, [&](int64_t task, int) {
    const int64_t i = task * kApplyChunk;
    kern.scale_shift(std::min(kApplyChunk, n - i), x.data + i, {0.0f, 0.0f, 1.0f, 0.0f}, act, alpha,
                     out.data + i);
  });
}

}  // namespace cnnfast::ops
