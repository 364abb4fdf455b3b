// SGEMM driver: thread grid, cache blocking, packing and the micro-kernel loop.
// Layouts: packed A is ceil(mc/mr) panels of (kc x mr), packed B ceil(nc/nr) panels of (kc x nr),
// both in the calling thread's 64-byte-aligned workspace (see GemmPackFn in kernels/gemm/gemm.h).
#include "ops/gemm.h"

#include <algorithm>

#include "core/parallel.h"
#include "core/workspace.h"
#include "ops/activation.h"

namespace cnnfast::ops {
namespace {

using kernels::GemmEpilogue;
using kernels::GemmKernel;

// With at most this many micro-tiles across n, A is read in place (row-major, unit column stride)
// instead of packed: each A value then serves only a few tiles, and packing it cost 28-38 % of
// the time of (3136, 64, 576) and (12544, 32, 27) products (perf, avx512). Likewise B when m
// spans at most this many tiles (packing B was 30 % of (49, 512, 4608)). Measured interleaved in
// one process (avx512, 1 thread): in place gains 27 % on (3136, 64, 576), 30-40 % on
// (12544, 32, 27), 15 % on (49, 512, 4608); reading everything in place loses 20-30 % at 1024+.
constexpr int64_t kInPlaceMaxTiles = 4;

// A or B is read in place only when its rows do not lie a multiple of 4 KiB apart: then every
// row of a micro-panel falls in the same L1 set, which holds 8-12 lines (a (16, 4096, 512)
// product reading a 4096-wide weight in place ran 10-30 % slower than packing it; rows 12544
// floats apart, MobileNetV2's 112x112 planes, still gain 20 % in place; one process, avx512).
// For A: 1x1 convolutions on 7x7 outputs with 1024 input channels (the weight's rows 4 KiB
// apart) ran 11-12 % faster with A packed (2048 channels: the same either way).
bool spreads_over_sets(int64_t row_stride) { return row_stride % 1024 != 0; }

// Below this many flops per thread, starting a parallel region costs more than it saves
// (a 2-thread OpenMP fork/join is a few microseconds; 2 MFLOP is ~15 us on one core).
constexpr double kMinFlopsPerThread = 2e6;

struct Range {
  int64_t begin, end;
};

// Part `part` of `parts` of [0, total), cut at multiples of `align` so no extra edge tiles appear.
Range split(int64_t total, int64_t align, int parts, int part) {
  const int64_t blocks = (total + align - 1) / align;
  const int64_t b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
  return {std::min(total, b0 * align), std::min(total, b1 * align)};
}

// Threads cut C into a tm x tn grid. Each thread packs the A rows and B columns it needs, so A is
// packed tn times and B tm times in all: pick the grid that packs least, keeping every part at
// least one micro-tile wide.
void choose_grid(int64_t m, int64_t n, int64_t k, const GemmKernel& kern, int* tm, int* tn) {
  const double flops = 2.0 * double(m) * double(n) * double(k);
  int threads = int(std::min<double>(get_num_threads(), std::max(1.0, flops / kMinFlopsPerThread)));
  threads = threads_for(threads);
  *tm = 1;
  *tn = 1;
  double best = -1;
  for (int gm = 1; gm <= threads; ++gm) {
    if (threads % gm) continue;
    const int gn = threads / gm;
    if ((gm > 1 && m < int64_t(gm) * kern.mr) || (gn > 1 && n < int64_t(gn) * kern.nr)) continue;
    const double packed = double(m) * double(k) * gn + double(k) * double(n) * gm;
    if (best < 0 || packed < best) {
      best = packed;
      *tm = gm;
      *tn = gn;
    }
  }
}

// Packs the part of a rows x kc operand block that the micro-kernel cannot read in place: all of
// it, or with `in_place` only the partial last micro-panel (the kernel reads whole panels in
// place). Returns how many leading rows are read in place.
int64_t pack_block(const GemmKernel& kern, bool in_place, int64_t rows, int64_t kc,
                   const float* src, int64_t rs, int64_t cs, int r, float* packed) {
  const int64_t in_place_rows = in_place ? rows / r * r : 0;
  if (in_place_rows < rows) {
    kern.pack(rows - in_place_rows, kc, src + in_place_rows * rs, rs, cs, r,
              packed + in_place_rows * kc);
  }
  return in_place_rows;
}

// An operand as the driver sees it: a strided matrix, a source of packed panels, or panels
// packed ahead (PrepackedOperand).
struct Operand {
  MatrixRef ref;
  const PanelSource* source = nullptr;          // when set, ref is unused
  const PrepackedOperand* prepacked = nullptr;  // likewise
};

// Where the micro-kernels read one operand block from: the first in_place_rows panel rows in
// place from `block` (row stride as the operand's), the rest from `panels`.
struct OperandBlock {
  const float* block;
  const float* panels;
  int64_t in_place_rows;
};

// Packs rows [row0, row0 + rows) x [k0, k0 + kc) of an operand whose panel rows have stride
// `rs` and reduction stride `cs` (A: a.rs, a.cs; B^T: b.cs, b.rs) into `packed`, reading full
// panels in place when `in_place`; a prepacked operand needs neither.
OperandBlock pack_operand(const Operand& op, int64_t rs, int64_t cs, bool in_place, int64_t row0,
                          int64_t rows, int64_t k0, int64_t kc, int r, const GemmKernel& kern,
                          float* packed) {
  if (op.prepacked) {
    // row0 is a multiple of r: threads split at multiples of mr / nr, blocks are mc / nc wide.
    return {nullptr, op.prepacked->data + k0 * op.prepacked->rows_padded + row0 * kc, 0};
  }
  if (op.source) {
    op.source->pack(row0, rows, k0, kc, r, packed, kern);
    return {nullptr, packed, 0};
  }
  const float* block = op.ref.data + row0 * rs + k0 * cs;
  return {block, packed, pack_block(kern, in_place, rows, kc, block, rs, cs, r, packed)};
}

// The serial BLIS loops over one thread's sub-matrix C[rows, cols].
void gemm_block(Range rows, Range cols, int64_t k, Operand a_op, Operand b_op, float* c,
                int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  const MatrixRef a = a_op.ref, b = b_op.ref;
  const int64_t m = rows.end - rows.begin, n = cols.end - cols.begin;
  const int64_t kc_max = std::min(kern.kc, k);
  const int64_t nc_max = std::min(kern.nc, (n + kern.nr - 1) / kern.nr * kern.nr);
  const int64_t mc_max = std::min(kern.mc, (m + kern.mr - 1) / kern.mr * kern.mr);
  float* b_packed = b_op.prepacked
                        ? nullptr
                        : static_cast<float*>(thread_workspace(0, sizeof(float) * kc_max * nc_max));
  float* a_packed = a_op.prepacked
                        ? nullptr
                        : static_cast<float*>(thread_workspace(1, sizeof(float) * kc_max * mc_max));
  // Read an operand in place when the other one is narrow: each of its values serves few tiles.
  const bool a_plain = !a_op.source && !a_op.prepacked, b_plain = !b_op.source && !b_op.prepacked;
  const bool a_in_place = a_plain && a.cs == 1 && a.rs > 0 && n <= kInPlaceMaxTiles * kern.nr &&
                          spreads_over_sets(a.rs);
  const bool few_row_tiles = m <= kInPlaceMaxTiles * kern.mr;
  const bool b_in_place =
      b_plain && b.cs == 1 && b.rs > 0 && few_row_tiles && spreads_over_sets(b.rs);

  for (int64_t jc = cols.begin; jc < cols.end; jc += kern.nc) {
    const int64_t nc = std::min(kern.nc, cols.end - jc);
    for (int64_t pc = 0; pc < k; pc += kern.kc) {
      const int64_t kc = std::min(kern.kc, k - pc);
      const bool first = pc == 0, last = pc + kc == k;
      // The B block kc x nc is packed as B^T: row stride b.cs, column stride b.rs.
      const OperandBlock bb =
          pack_operand(b_op, b.cs, b.rs, b_in_place, jc, nc, pc, kc, kern.nr, kern, b_packed);
      for (int64_t ic = rows.begin; ic < rows.end; ic += kern.mc) {
        const int64_t mc = std::min(kern.mc, rows.end - ic);
        const OperandBlock ab =
            pack_operand(a_op, a.rs, a.cs, a_in_place, ic, mc, pc, kc, kern.mr, kern, a_packed);
        // One micro-tile: C[ic + ir, jc + jr] (+)= A panel ir x B panel jr.
        auto tile = [&](int64_t ir, int64_t jr) {
          const int m_tile = int(std::min<int64_t>(kern.mr, mc - ir));
          const int n_tile = int(std::min<int64_t>(kern.nr, nc - jr));
          const bool a_direct = ir < ab.in_place_rows, b_direct = jr < bb.in_place_rows;
          const float* a_tile = a_direct ? ab.block + ir * a.rs : ab.panels + ir * kc;
          const float* b_tile = b_direct ? bb.block + jr : bb.panels + jr * kc;
          GemmEpilogue tile_ep = ep;
          if (ep.bias_row) tile_ep.bias_row = ep.bias_row + ic + ir;
          if (ep.bias_col) tile_ep.bias_col = ep.bias_col + jc + jr;
          if (ep.scale_row) tile_ep.scale_row = ep.scale_row + ic + ir;
          if (ep.scale_col) tile_ep.scale_col = ep.scale_col + jc + jr;
          if (ep.addend) tile_ep.addend = ep.addend + (ic + ir) * ldc + jc + jr;
          float* c_tile = c + (ic + ir) * ldc + jc + jr;
          kern.ukernel(kc, a_tile, a_direct ? a.rs : 0, b_tile, b_direct ? b.rs : 0, c_tile, ldc,
                       m_tile, n_tile, !first, last ? &tile_ep : nullptr);
          if (last && !kernels::in_register_activation(ep.activation)) {
            // sigmoid, tanh, silu: on the tile just stored, while it is still in L1.
            for (int i = 0; i < m_tile; ++i)
              activate(c_tile + i * ldc, n_tile, ep.activation, ep.alpha);
          }
        };
        if (few_row_tiles) {
          // B micro-panel outer: it is read from L2 or memory once and serves the few A tiles.
          for (int64_t jr = 0; jr < nc; jr += kern.nr)
            for (int64_t ir = 0; ir < mc; ir += kern.mr) tile(ir, jr);
        } else {
          // A micro-panel outer: the A micro-panel (mr x kc: 14 KiB on avx512) stays in L1 while
          // the B block streams from L2. B outer kept a 32 KiB B micro-panel in the 48 KiB L1 next
          // to the streaming A panels: 10 % slower at 2048^3 and 5 % at 1024^3 (one process each,
          // alternating builds), but 10 % faster on (49, 512, 4608), whose B is read in place.
          for (int64_t ir = 0; ir < mc; ir += kern.mr)
            for (int64_t jr = 0; jr < nc; jr += kern.nr) tile(ir, jr);
        }
      }
    }
  }
}

// k == 0: the product is all zeros, so C = act(bias). One micro-kernel call per tile with
// k = 0 applies exactly the epilogue the kernels apply elsewhere.
void gemm_empty_k(int64_t m, int64_t n, float* c, int64_t ldc, const GemmEpilogue& ep,
                  const GemmKernel& kern) {
  alignas(64) static const float kNoPanel[1] = {0.0f};
  for (int64_t i = 0; i < m; i += kern.mr) {
    for (int64_t j = 0; j < n; j += kern.nr) {
      GemmEpilogue tile_ep = ep;
      if (ep.bias_row) tile_ep.bias_row = ep.bias_row + i;
      if (ep.bias_col) tile_ep.bias_col = ep.bias_col + j;
      if (ep.scale_row) tile_ep.scale_row = ep.scale_row + i;
      if (ep.scale_col) tile_ep.scale_col = ep.scale_col + j;
      if (ep.addend) tile_ep.addend = ep.addend + i * ldc + j;
      const int m_tile = int(std::min<int64_t>(kern.mr, m - i));
      const int n_tile = int(std::min<int64_t>(kern.nr, n - j));
      kern.ukernel(0, kNoPanel, 0, kNoPanel, 0, c + i * ldc + j, ldc, m_tile, n_tile, false,
                   &tile_ep);
      if (!kernels::in_register_activation(ep.activation)) {
        for (int r = 0; r < m_tile; ++r)
          activate(c + (i + r) * ldc + j, n_tile, ep.activation, ep.alpha);
      }
    }
  }
}

void run_sgemm(int64_t m, int64_t n, int64_t k, Operand a, Operand b, float* c, int64_t ldc,
               const GemmEpilogue& ep, const GemmKernel* kernel) {
  if (m <= 0 || n <= 0) return;
  const GemmKernel& kern = kernel ? *kernel : kernels::gemm_kernel_for(active_isa());
  if (k <= 0) {
    gemm_empty_k(m, n, c, ldc, ep, kern);
    return;
  }
  int tm, tn;
  choose_grid(m, n, k, kern, &tm, &tn);
  parallel_for(int64_t(tm) * tn, [&](int64_t task, int) {
    const Range rows = split(m, kern.mr, tm, int(task / tn));
    const Range cols = split(n, kern.nr, tn, int(task % tn));
    if (rows.begin < rows.end && cols.begin < cols.end) {
      gemm_block(rows, cols, k, a, b, c, ldc, ep, kern);
    }
  });
}

constexpr MatrixRef kNoMatrix{nullptr, 0, 0};

}  // namespace

int64_t prepacked_floats(int64_t rows, int64_t k, int r) { return (rows + r - 1) / r * r * k; }

void prepack_operand(MatrixRef src, int64_t rows, int64_t k, int r, const GemmKernel& kern,
                     float* dst) {
  const int64_t rows_padded = (rows + r - 1) / r * r;
  // One task per k block (a convolution packs its weights on every call: serially, a 9 MiB
  // weight kept a layer from running faster at 2 threads).
  parallel_for_elements((k + kern.kc - 1) / kern.kc, rows * k, [&](int64_t block, int) {
    const int64_t pc = block * kern.kc, kc = std::min(kern.kc, k - pc);
    kern.pack(rows, kc, src.data + pc * src.cs, src.rs, src.cs, r, dst + pc * rows_padded);
  });
}

void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc,
           const GemmEpilogue& ep, const GemmKernel* kernel) {
  run_sgemm(m, n, k, {a}, {b}, c, ldc, ep, kernel);
}

void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, const PanelSource& b, float* c,
           int64_t ldc, const GemmEpilogue& ep) {
  run_sgemm(m, n, k, {a}, {kNoMatrix, &b}, c, ldc, ep, nullptr);
}

void sgemm(int64_t m, int64_t n, int64_t k, const PanelSource& a, MatrixRef b, float* c,
           int64_t ldc, const GemmEpilogue& ep) {
  run_sgemm(m, n, k, {kNoMatrix, &a}, {b}, c, ldc, ep, nullptr);
}

void sgemm(int64_t m, int64_t n, int64_t k, const PrepackedOperand& a, MatrixRef b, float* c,
           int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  run_sgemm(m, n, k, {kNoMatrix, nullptr, &a}, {b}, c, ldc, ep, &kern);
}

void sgemm(int64_t m, int64_t n, int64_t k, const PrepackedOperand& a, const PanelSource& b,
           float* c, int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  run_sgemm(m, n, k, {kNoMatrix, nullptr, &a}, {kNoMatrix, &b}, c, ldc, ep, &kern);
}

void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, const PrepackedOperand& b, float* c,
           int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  run_sgemm(m, n, k, {a}, {kNoMatrix, nullptr, &b}, c, ldc, ep, &kern);
}

void sgemm(int64_t m, int64_t n, int64_t k, const PanelSource& a, const PrepackedOperand& b,
           float* c, int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  run_sgemm(m, n, k, {kNoMatrix, &a}, {kNoMatrix, nullptr, &b}, c, ldc, ep, &kern);
}

void sgemm(int64_t m, int64_t n, int64_t k, const PrepackedOperand& a, const PrepackedOperand& b,
           float* c, int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  run_sgemm(m, n, k, {kNoMatrix, nullptr, &a}, {kNoMatrix, nullptr, &b}, c, ldc, ep, &kern);
}

}  // namespace cnnfast::ops
