// conv_transpose2d: validate -> output shape -> choose algorithm -> drivers.
// "gemm_col2im": per image, group and block of input rows, cols = Wᵀ x (one GEMM: ocg*kh*kw x
// pixels in NCHW, pixels x kh*kw*ocg in NHWC), then every output row adds the columns of the
// taps that land on it (a gather, parallel over output rows: no races), then bias and activation.
// "phase": the outputs oh = rh + qh*stride_h (and likewise w) of one phase (rh, rw) receive only
// the taps i = rh + pad_top (mod stride_h): a dense stride-1 convolution of x with those taps.
// Output position of input (ih, iw) and tap (i, j): oh = ih*stride_h - pad_top + i*dilation_h.
#include "ops/conv_transpose2d.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "core/errors.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/gemm.h"

namespace cnnfast::ops {
namespace {

// The columns of one block stay below this (L2-sized blocks of input rows).
constexpr int64_t kColumnBytes = int64_t(2) << 20;
// NCHW blocks of at most this many input pixels compute the columns transposed (pixels x
// (oc, i, j)), with the weight as the GEMM's B. As A (Wᵀ, one row per (oc, i, j)) it is packed
// from columns whose k steps lie a whole weight row apart (8-16 KiB on DCGAN's 512->256 and
// 256->128 layers), and few pixels left the micro-tiles half empty; the gather then reads the
// few columns at a stride.
constexpr int64_t kTransposedColumnsMaxPixels = 64;

struct Geometry {
  int64_t n, c_in, h, w, c_out, icg, ocg, kh, kw, oh, ow;
  int64_t taps() const { return kh * kw; }
};

std::string hw(const ConvTransposeParams& p, int64_t h, int64_t w) {
  if (p.conv.conv1d) return std::to_string(w);
  return "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
}

std::string op_name(const ConvTransposeParams& p) {
  return p.conv.conv1d ? "conv_transpose1d" : "conv_transpose2d";
}

Geometry geometry(const TensorView& x, const TensorView& w, const ConvTransposeParams& p) {
  const Conv2dParams& c = p.conv;
  Geometry g;
  g.n = x.shape[0];
  g.c_in = c.nhwc ? x.shape[3] : x.shape[1];
  g.h = c.nhwc ? x.shape[1] : x.shape[2];
  g.w = c.nhwc ? x.shape[2] : x.shape[3];
  g.icg = c.groups > 0 ? g.c_in / c.groups : 0;
  g.ocg = w.shape[1];
  g.c_out = g.ocg * c.groups;
  g.kh = w.shape[2];
  g.kw = w.shape[3];
  g.oh = (g.h - 1) * c.stride_h - c.pad_top - c.pad_bottom + c.dilation_h * (g.kh - 1) +
         p.output_padding_h + 1;
  g.ow = (g.w - 1) * c.stride_w - c.pad_left - c.pad_right + c.dilation_w * (g.kw - 1) +
         p.output_padding_w + 1;
  return g;
}

// NCHW: cols[(oc*kh + i)*kw + j][(ih - r0)*W + iw] for input rows [r0, r1) of one group, added
// into the group's output planes y_g (ocg planes of OH x OW).
void gather_nchw(const float* cols, const Geometry& g, const Conv2dParams& c, int64_t r0,
                 int64_t r1, float* y_g) {
  const int64_t block = (r1 - r0) * g.w;
  // Output rows the block reaches.
  const int64_t first = std::max<int64_t>(0, r0 * c.stride_h - c.pad_top);
  const int64_t last =
      std::min<int64_t>(g.oh, (r1 - 1) * c.stride_h - c.pad_top + c.dilation_h * (g.kh - 1) + 1);
  if (first >= last) return;
  // Per kernel column j, the input columns [lo, hi) whose outputs iw*stride_w + offset lie in
  // [0, OW) (inside_range's question asked backwards): the same for every output row, so found
  // once here (per row and plane they cost a fifth of DCGAN's 256->128 layer).
  struct Column {
    int64_t offset, lo, hi;
  };
  std::vector<Column> columns(size_t(g.kw));
  for (int64_t j = 0; j < g.kw; ++j) {
    const int64_t offset = j * c.dilation_w - c.pad_left;
    const auto [lo, hi] = inside_range(offset, c.stride_w, g.ow, g.w);
    columns[size_t(j)] = {offset, lo, hi};
  }
  parallel_for(g.ocg * (last - first), [&](int64_t task, int) {
    const int64_t oc = task / (last - first), oh = first + task % (last - first);
    float* row = y_g + (oc * g.oh + oh) * g.ow;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t ih = transposed_source(oh, c.pad_top, i, c.dilation_h, c.stride_h, r0, r1);
      if (ih < 0) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* src = cols + ((oc * g.kh + i) * g.kw + j) * block + (ih - r0) * g.w;
        const Column& col = columns[size_t(j)];
        for (int64_t iw = col.lo; iw < col.hi; ++iw) row[iw * c.stride_w + col.offset] += src[iw];
      }
    }
  });
}

// NHWC: cols[(ih - r0)*W + iw][(i*kw + j)*ocg + oc], added into y's channels of group grp.
void gather_nhwc(const float* cols, const Geometry& g, const Conv2dParams& c, int64_t r0,
                 int64_t r1, int64_t n, int64_t grp, float* y) {
  const int64_t width = g.taps() * g.ocg;
  const int64_t first = std::max<int64_t>(0, r0 * c.stride_h - c.pad_top);
  const int64_t last =
      std::min<int64_t>(g.oh, (r1 - 1) * c.stride_h - c.pad_top + c.dilation_h * (g.kh - 1) + 1);
  if (first >= last) return;
  parallel_for(last - first, [&](int64_t task, int) {
    const int64_t oh = first + task;
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      float* dst = y + ((n * g.oh + oh) * g.ow + ow) * g.c_out + grp * g.ocg;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = transposed_source(oh, c.pad_top, i, c.dilation_h, c.stride_h, r0, r1);
        if (ih < 0) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t iw = transposed_source(ow, c.pad_left, j, c.dilation_w, c.stride_w, 0, g.w);
          if (iw < 0) continue;
          const float* src = cols + ((ih - r0) * g.w + iw) * width + (i * g.kw + j) * g.ocg;
          for (int64_t oc = 0; oc < g.ocg; ++oc) dst[oc] += src[oc];
        }
      }
    }
  });
}

// One axis of one stride phase r: outputs o = r + q*stride for q < count receive the taps
// i = first_tap + t*stride (t < taps), tap t from input q + c0 - t where
// c0 = (r + pad_begin - first_tap) / stride. As a stride-1 correlation with the taps reversed
// (sub-kernel index u = taps - 1 - t), output q reads x from q - pad, pad = taps - 1 - c0
// (negative: the outputs start inside x).
struct PhaseAxis {
  int64_t first_tap, taps, pad, count;
};

PhaseAxis phase_axis(int64_t out, int64_t k, int64_t stride, int64_t pad_begin, int64_t r) {
  PhaseAxis a;
  a.first_tap = (r + pad_begin) % stride;
  a.taps = a.first_tap < k ? (k - a.first_tap + stride - 1) / stride : 0;
  a.count = r < out ? (out - r + stride - 1) / stride : 0;
  a.pad = a.taps - 1 - (r + pad_begin - a.first_tap) / stride;
  return a;
}

// One phase (rh, rw): its two axes, its GEMM reduction length k = icg*taps_h*taps_w, and where
// its packed sub-kernels start (per group ocg rows of k values, ld apart).
struct Phase {
  int64_t rh, rw;
  PhaseAxis h, w;
  int64_t k, ld, offset;
};

constexpr int kPartSlot = 2, kWeightsSlot = 3;

// Row stride of the packed sub-kernels: k, plus 16 floats when rows would lie a multiple of
// 256 bytes apart. With few pixels the GEMM reads them in place, mr rows at once; at k = 1024 or
// 2048 (UNet, DCGAN) those rows all fall in the same L1 sets.
int64_t padded_stride(int64_t k) { return k % 64 == 0 ? k + 16 : k; }

std::vector<Phase> plan_phases(const Geometry& g, const ConvTransposeParams& p) {
  const Conv2dParams& c = p.conv;
  std::vector<Phase> phases;
  int64_t offset = 0;
  for (int64_t rh = 0; rh < c.stride_h; ++rh) {
    for (int64_t rw = 0; rw < c.stride_w; ++rw) {
      Phase ph{rh,
               rw,
               phase_axis(g.oh, g.kh, c.stride_h, c.pad_top, rh),
               phase_axis(g.ow, g.kw, c.stride_w, c.pad_left, rw),
               0,
               0,
               offset};
      ph.k = g.icg * ph.h.taps * ph.w.taps;
      ph.ld = padded_stride(ph.k);
      offset += c.groups * g.ocg * ph.ld;
      phases.push_back(ph);
    }
  }
  return phases;
}

// The sub-kernels of every phase, tap-major like conv2d's weights: per group, (ocg, taps_h,
// taps_w, icg) with sub-kernel tap (u, v) = tap (first_tap_h + (taps_h - 1 - u)*stride_h, ...)
// of the transposed weight (C_in, ocg, kh, kw), rows ld apart.
void pack_phases(const float* w, const Geometry& g, const ConvTransposeParams& p,
                 const std::vector<Phase>& phases, float* packed) {
  const Conv2dParams& c = p.conv;
  // Where each tap (i, j) goes: its phase's block plus its sub-kernel position, and that phase's
  // row stride.
  const int64_t taps = g.kh * g.kw;
  std::vector<int64_t> tap_offset(static_cast<size_t>(taps)), tap_ld(static_cast<size_t>(taps));
  for (const Phase& ph : phases) {
    for (int64_t u = 0; u < ph.h.taps; ++u) {
      const int64_t i = ph.h.first_tap + (ph.h.taps - 1 - u) * c.stride_h;
      for (int64_t v = 0; v < ph.w.taps; ++v) {
        const int64_t j = ph.w.first_tap + (ph.w.taps - 1 - v) * c.stride_w;
        tap_offset[size_t(i * g.kw + j)] = ph.offset + (u * ph.w.taps + v) * g.icg;
        tap_ld[size_t(i * g.kw + j)] = ph.ld;
      }
    }
  }
  // A transpose in kBlock x kBlock tiles: kBlock input channels' runs of kBlock (oc, tap) values
  // copied whole into `tile` (one cache line each), then written out as kBlock-channel runs.
  // Strided single reads straight from w (rows ocg*kh*kw apart: 8 KiB on the UNet and DCGAN
  // layers, all in one L1 set) took a third of the UNet 1024 layer (perf).
  constexpr int64_t kBlock = 16;
  const int64_t row = g.ocg * taps;  // one input channel's weights
  float tile[kBlock][kBlock];
  for (int64_t grp = 0; grp < c.groups; ++grp) {
    for (int64_t c0 = 0; c0 < g.icg; c0 += kBlock) {
      const int64_t channels = std::min(kBlock, g.icg - c0);
      const float* src = w + (grp * g.icg + c0) * row;
      for (int64_t col0 = 0; col0 < row; col0 += kBlock) {
        const int64_t width = std::min(kBlock, row - col0);
        for (int64_t ci = 0; ci < channels; ++ci) {
          const float* line = src + ci * row + col0;
          if (width == kBlock) {  // a fixed-size copy the compiler keeps inline (no memmove)
            for (int64_t v = 0; v < kBlock; ++v) tile[ci][v] = line[v];
          } else {
            for (int64_t v = 0; v < width; ++v) tile[ci][v] = line[v];
          }
        }
        for (int64_t col = 0; col < width; ++col) {
          const int64_t oc = (col0 + col) / taps, t = (col0 + col) % taps;
          float* dst = packed + tap_offset[size_t(t)] + (grp * g.ocg + oc) * tap_ld[size_t(t)] + c0;
          for (int64_t ci = 0; ci < channels; ++ci) dst[ci] = tile[ci][col];
        }
      }
    }
  }
}

// "phase": per image, phase and group, the phase's outputs (ocg x pixels in NCHW, pixels x ocg
// in NHWC, bias and activation fused in the GEMM epilogue) into `part`, then stored at stride
// steps into y. A phase that no tap reaches holds act(bias) (the GEMM with K = 0).
void phase_driver(const TensorView& x, const TensorView& w, const TensorView* bias,
                  const ConvTransposeParams& p, const Geometry& g, float* y) {
  const Conv2dParams& c = p.conv;
  const std::vector<Phase> phases = plan_phases(g, p);
  const Phase& last = phases.back();
  // The calling thread's workspace slots that conv2d uses for its columns and weights (conv2d
  // does not run inside this op; the GEMM driver uses slots 0 and 1): a fresh buffer of the
  // packed weights page-faulted on every call cost as much as packing them.
  float* packed = static_cast<float*>(thread_workspace(
      kWeightsSlot, sizeof(float) * size_t(last.offset + c.groups * g.ocg * last.ld)));
  pack_phases(w.data, g, p, phases, packed);
  // Blocks of phase rows whose outputs stay in L2 until they are stored (kPartBytes), but with
  // at least kMinPartPixels pixels so each GEMM stays wide. Whole phases of unet.128 (4 MiB
  // each) made the strided stores miss the cache and ran 1.5x slower than gemm_col2im.
  constexpr int64_t kPartBytes = int64_t(256) << 10, kMinPartPixels = 256, kTasksPerThread = 4;
  int64_t part_size = 1;
  std::vector<int64_t> block_rows;
  for (const Phase& ph : phases) {
    const int64_t row = std::max<int64_t>(1, ph.w.count * g.ocg);
    int64_t rows = std::max(kPartBytes / int64_t(sizeof(float)) / row,
                            (kMinPartPixels + ph.w.count - 1) / std::max<int64_t>(1, ph.w.count));
    rows = std::clamp<int64_t>(rows, 1, std::max<int64_t>(1, ph.h.count));
    block_rows.push_back(rows);
    part_size = std::max(part_size, rows * row);
  }
  std::vector<float> zeros(size_t(std::max<int64_t>(g.icg, 1)), 0.0f);
  // The tasks: (image, phase, first row of a block).
  struct Task {
    int64_t n;
    size_t phase;
    int64_t q0;
  };
  std::vector<Task> tasks;
  for (int64_t n = 0; n < g.n; ++n) {
    for (size_t index = 0; index < phases.size(); ++index) {
      for (int64_t q0 = 0; q0 < phases[index].h.count; q0 += block_rows[index]) {
        if (phases[index].w.count > 0) tasks.push_back({n, index, q0});
      }
    }
  }
  auto run = [&](int64_t task_index, int) {
    const Task& task = tasks[size_t(task_index)];
    const Phase& ph = phases[task.phase];
    const PhaseAxis &ah = ph.h, &aw = ph.w;
    const int64_t n = task.n, q0 = task.q0, k = ph.k;
    const int64_t rows = std::min(block_rows[task.phase], ah.count - q0), pixels = rows * aw.count;
    // This thread's buffer (the calling thread's when the tasks run one after another).
    float* part =
        static_cast<float*>(thread_workspace(kPartSlot, sizeof(float) * size_t(part_size)));
    const float* x_n = x.data + n * g.c_in * g.h * g.w;
    // Rows [q0, q0 + rows) of the phase as a stride-1 convolution of image n: its outputs
    // start q0 rows further into x (pads may be negative).
    Conv2dGeometry sg{1, g.c_in, g.h, g.w, g.c_out, ah.taps, aw.taps, rows, aw.count, g.icg, g.ocg};
    Conv2dParams sp = c;
    sp.stride_h = sp.stride_w = sp.dilation_h = sp.dilation_w = 1;
    sp.pad_top = ah.pad - q0;
    sp.pad_left = aw.pad;
    sp.pad_bottom = sp.pad_right = 0;  // unused: the output size is given
    for (int64_t grp = 0; grp < c.groups; ++grp) {
      const float* w_g = packed + ph.offset + grp * g.ocg * ph.ld;
      const float* b = bias ? bias->data + grp * g.ocg : nullptr;
      const std::unique_ptr<PanelSource> panels = im2col_panels(x_n, sg, sp, grp, zeros.data());
      if (c.nhwc) {
        sgemm(pixels, g.ocg, k, *panels, {w_g, 1, ph.ld}, part, g.ocg,
              {nullptr, b, c.activation, c.negative_slope});
        float* y_n = y + n * g.oh * g.ow * g.c_out + grp * g.ocg;
        parallel_for(rows, [&](int64_t r, int) {
          float* dst = y_n + ((ph.rh + (q0 + r) * c.stride_h) * g.ow + ph.rw) * g.c_out;
          const float* src = part + r * aw.count * g.ocg;
          for (int64_t qw = 0; qw < aw.count; ++qw) {
            std::memcpy(dst + qw * c.stride_w * g.c_out, src + qw * g.ocg,
                        sizeof(float) * size_t(g.ocg));
          }
        });
      } else {
        sgemm(g.ocg, pixels, k, {w_g, ph.ld, 1}, *panels, part, pixels,
              {b, nullptr, c.activation, c.negative_slope});
        float* y_g = y + ((n * g.c_out + grp * g.ocg) * g.oh + ph.rh) * g.ow + ph.rw;
        parallel_for(g.ocg * rows, [&](int64_t t, int) {
          const int64_t oc = t / rows, r = t % rows;
          float* dst = y_g + (oc * g.oh + (q0 + r) * c.stride_h) * g.ow;
          const float* src = part + oc * pixels + r * aw.count;
          for (int64_t qw = 0; qw < aw.count; ++qw) dst[qw * c.stride_w] = src[qw];
        });
      }
    }
  };
  // One parallel region over the tasks when there are enough to share out evenly (their GEMMs
  // and stores then run serially inside, as nested calls do); otherwise the tasks run in turn,
  // each GEMM and store split over the threads.
  const int64_t count = int64_t(tasks.size());
  if (count >= kTasksPerThread * get_num_threads()) {
    parallel_for(count, run);
  } else {
    for (int64_t t = 0; t < count; ++t) run(t, 0);
  }
}

}  // namespace

std::vector<int64_t> conv_transpose2d_output_shape(const TensorView& x, const TensorView& w,
                                                   const TensorView* bias,
                                                   const ConvTransposeParams& p) {
  const Conv2dParams& c = p.conv;
  const std::string op = op_name(p) + ": ";
  if (x.ndim != 4)
    throw ValueError(op + "x must be " + (c.conv1d ? "3" : "4") + "-D, got shape " + x.shape_str());
  if (w.ndim != 4) {
    throw ValueError(
        op + "weight must be " +
        (c.conv1d ? "3-D (C_in, C_out/groups, k)" : "4-D (C_in, C_out/groups, kh, kw)") +
        ", got shape " + w.shape_str());
  }
  if (c.groups < 1) throw ValueError(op + "groups must be >= 1, got " + std::to_string(c.groups));
  if (c.stride_h < 1 || c.stride_w < 1) {
    throw ValueError(op + "stride must be >= 1, got " + hw(p, c.stride_h, c.stride_w));
  }
  if (c.dilation_h < 1 || c.dilation_w < 1) {
    throw ValueError(op + "dilation must be >= 1, got " + hw(p, c.dilation_h, c.dilation_w));
  }
  if (c.pad_top < 0 || c.pad_bottom < 0 || c.pad_left < 0 || c.pad_right < 0) {
    throw ValueError(op + "padding must be >= 0");
  }
  if (p.output_padding_h < 0 || p.output_padding_w < 0 ||
      (p.output_padding_h >= c.stride_h && p.output_padding_h >= c.dilation_h) ||
      (p.output_padding_w >= c.stride_w && p.output_padding_w >= c.dilation_w)) {
    throw ValueError(op + "output_padding " + hw(p, p.output_padding_h, p.output_padding_w) +
                     " must be >= 0 and smaller than stride " + hw(p, c.stride_h, c.stride_w) +
                     " or dilation " + hw(p, c.dilation_h, c.dilation_w));
  }
  if (p.algo == ConvTransposeAlgo::phase && (c.dilation_h != 1 || c.dilation_w != 1)) {
    throw ValueError(op + "algo='phase' needs dilation 1, got " +
                     hw(p, c.dilation_h, c.dilation_w));
  }
  const Geometry g = geometry(x, w, p);
  if (g.c_in % c.groups != 0) {
    throw ValueError(op + "groups=" + std::to_string(c.groups) +
                     " must divide C_in=" + std::to_string(g.c_in) + " of x " + x.shape_str());
  }
  if (w.shape[0] != g.c_in) {
    throw ValueError(op + "weight " + w.shape_str() + " expects " + std::to_string(w.shape[0]) +
                     " input channels (weight is (C_in, C_out/groups, kh, kw)), but x " +
                     x.shape_str() + " has " + std::to_string(g.c_in));
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != g.c_out)) {
    throw ValueError(op + "bias must have shape (" + std::to_string(g.c_out) + ",), got " +
                     bias->shape_str());
  }
  if (g.kh < 1 || g.kw < 1 || g.oh < 1 || g.ow < 1) {
    throw ValueError(op + "the output size " + hw(p, g.oh, g.ow) + " of x " + x.shape_str() +
                     " with weight " + w.shape_str() + " is not positive; reduce the padding");
  }
  checked_mul(checked_mul(g.n, g.c_out, "output"), checked_mul(g.oh, g.ow, "output"), "output");
  if (c.nhwc) return {g.n, g.oh, g.ow, g.c_out};
  return {g.n, g.c_out, g.oh, g.ow};
}

std::vector<std::string> conv_transpose2d_algorithms() { return {"auto", "gemm_col2im", "phase"}; }

ConvTransposeAlgo parse_conv_transpose2d_algo(const std::string& name, const char* op) {
  if (name == "auto") return ConvTransposeAlgo::automatic;
  if (name == "gemm_col2im") return ConvTransposeAlgo::gemm_col2im;
  if (name == "phase") return ConvTransposeAlgo::phase;
  throw ValueError(std::string(op) + ": unknown algo '" + name +
                   "'; expected one of auto, gemm_col2im, phase");
}

namespace {

// Below these, "phase" beats "gemm_col2im" only when the input channels are few (see below).
constexpr int64_t kPhaseMinPixels = 256, kPhaseMinGroupChannels = 16, kCol2imMinGroupInputs = 64;

// "phase" needs dilation 1, and pays for a pass over the weights (its sub-kernels) per call,
// which a layer with few input pixels does not repay; "gemm_col2im" pays an overlap-add of
// its columns, and its GEMM's reduction is only C_in/groups long. Measured against each other
// in one process (python -m cnnfast bench conv_transpose2d --threads 1, AVX-512, a loaded
// machine): phase won by 1.1-1.35x where taps overlap (kernel > stride) on 256+ input pixels per
// image (DCGAN 128->64 at batch 1 and 8, the 3x3/2) and by 1.8-2.5x on the FCN layers (21 input
// channels: col2im's GEMM has K = 21); it lost by 1.1-2.3x on the DCGAN 512->256 and 256->128
// layers (16-64 input pixels), by 1.1-1.4x on UNet's 2x2/2 (kernel == stride: col2im's gather
// is a plain copy) and by 3.4x with 3 output channels (DCGAN 64->3: its GEMMs are 3 rows).
ConvTransposeAlgo choose_algo(const Geometry& g, const ConvTransposeParams& p) {
  if (p.algo != ConvTransposeAlgo::automatic) return p.algo;
  const Conv2dParams& c = p.conv;
  const bool dilated = c.dilation_h != 1 || c.dilation_w != 1;
  const bool overlap = g.kh > c.stride_h || g.kw > c.stride_w;
  const bool enough_pixels = g.h * g.w >= kPhaseMinPixels || g.icg < kCol2imMinGroupInputs;
  if (!dilated && overlap && enough_pixels && g.ocg >= kPhaseMinGroupChannels) {
    return ConvTransposeAlgo::phase;
  }
  return ConvTransposeAlgo::gemm_col2im;
}

void col2im_driver(const TensorView& x, const TensorView& w, const TensorView* bias,
                   const ConvTransposeParams& p, const Geometry& g, float* y) {
  const Conv2dParams& c = p.conv;
  const int64_t out_total = g.n * g.c_out * g.oh * g.ow;
  std::memset(y, 0, sizeof(float) * size_t(out_total));
  const int64_t m = g.ocg * g.taps();  // columns per input pixel
  if (x.numel() > 0 && m > 0) {
    const int64_t rows_per_block = std::clamp<int64_t>(
        kColumnBytes / int64_t(sizeof(float)) / std::max<int64_t>(1, m * g.w), 1, g.h);
    // Room for colsᵀ behind the columns when blocks are small enough to compute them transposed.
    const bool transposed = !c.nhwc && rows_per_block * g.w <= kTransposedColumnsMaxPixels;
    AlignedBuffer cols_buffer(sizeof(float) * size_t(m * rows_per_block * g.w) *
                              (transposed ? 2 : 1));
    float* cols = static_cast<float*>(cols_buffer.data());
    // NHWC needs the weights as (icg, (i, j, oc)) per group: reordered once.
    std::vector<float> w_nhwc;
    if (c.nhwc) {
      w_nhwc.resize(size_t(g.c_in * m));
      for (int64_t ci = 0; ci < g.c_in; ++ci) {
        for (int64_t oc = 0; oc < g.ocg; ++oc) {
          for (int64_t t = 0; t < g.taps(); ++t) {
            w_nhwc[size_t(ci * m + t * g.ocg + oc)] = w.data[(ci * g.ocg + oc) * g.taps() + t];
          }
        }
      }
    }
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t grp = 0; grp < c.groups; ++grp) {
        for (int64_t r0 = 0; r0 < g.h; r0 += rows_per_block) {
          const int64_t r1 = std::min(g.h, r0 + rows_per_block), block = (r1 - r0) * g.w;
          if (c.nhwc) {
            const float* x_block = x.data + ((n * g.h + r0) * g.w) * g.c_in + grp * g.icg;
            sgemm(block, m, g.icg, {x_block, g.c_in, 1}, {w_nhwc.data() + grp * g.icg * m, m, 1},
                  cols, m, kNoEpilogue);
            gather_nhwc(cols, g, c, r0, r1, n, grp, y);
          } else {
            const float* x_block = x.data + ((n * g.c_in + grp * g.icg) * g.h + r0) * g.w;
            const float* w_g = w.data + grp * g.icg * m;  // rows (C_in, ocg*taps)
            float* y_g = y + (n * g.c_out + grp * g.ocg) * g.oh * g.ow;
            if (transposed) {
              // colsᵀ = xᵀ W_g (pixels x m): the weight is B, packed from whole rows; then
              // transposed (the gather reading colsᵀ m floats apart ran 20 % of the layer).
              float* cols_t = cols + m * block;
              sgemm(block, m, g.icg, {x_block, 1, g.h * g.w}, {w_g, m, 1}, cols_t, m, kNoEpilogue);
              transpose_matrix(cols_t, block, m, cols);
            } else {
              // cols = W_gᵀ x: A = W_gᵀ, element (row, k) = w_g[k*m + row].
              sgemm(m, block, g.icg, {w_g, 1, m}, {x_block, g.h * g.w, 1}, cols, block,
                    kNoEpilogue);
            }
            gather_nchw(cols, g, c, r0, r1, y_g);
          }
        }
      }
    }
  }
  // Bias and activation: one pass.
  const auto& kern = kernels::elementwise_kernel_for(active_isa());
  const int64_t pixels = g.oh * g.ow;
  if (c.nhwc) {
    std::vector<float> zeros(size_t(g.c_out), 0.0f), ones(size_t(g.c_out), 1.0f);
    std::vector<float> shift(size_t(g.c_out), 0.0f);
    if (bias) std::copy(bias->data, bias->data + g.c_out, shift.begin());
    parallel_for(g.n * g.oh, [&](int64_t task, int) {
      float* rows = y + task * g.ow * g.c_out;
      kern.scale_shift_rows(g.ow, g.c_out, rows, zeros.data(), zeros.data(), ones.data(),
                            shift.data(), c.activation, c.negative_slope, rows);
    });
  } else {
    parallel_for(g.n * g.c_out, [&](int64_t plane, int) {
      float* out = y + plane * pixels;
      const kernels::ChannelAffine affine{0.0f, 0.0f, 1.0f,
                                          bias ? bias->data[plane % g.c_out] : 0.0f};
      kern.scale_shift(pixels, out, affine, c.activation, c.negative_slope, out);
    });
  }
}

}  // namespace

void conv_transpose2d(const TensorView& x, const TensorView& w, const TensorView* bias,
                      const ConvTransposeParams& p, float* y) {
  const Geometry g = geometry(x, w, p);
  if (g.n * g.c_out * g.oh * g.ow == 0) return;
  if (choose_algo(g, p) == ConvTransposeAlgo::phase) {
    phase_driver(x, w, bias, p, g, y);
  } else {
    col2im_driver(x, w, bias, p, g, y);
  }
}

}  // namespace cnnfast::ops
