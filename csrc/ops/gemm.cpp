// SGEMM driver: thread grid, cache blocking, packing and the micro-kernel loop.
// Layouts: packed A is ceil(mc/mr) panels of (kc x mr), packed B ceil(nc/nr) panels of (kc x nr),
// both in the calling thread's 64-byte-aligned workspace (see GemmPackFn in kernels/gemm/gemm.h).
#include "ops/gemm.h"

#include <algorithm>

#include "core/parallel.h"
#include "core/workspace.h"

namespace cnnfast::ops {
namespace {

using kernels::GemmEpilogue;
using kernels::GemmKernel;

// With at most this many micro-tiles across n, A is read in place (row-major, unit column stride)
// instead of packed: each A value then serves only one or two tiles, and packing it cost 28-38 %
// of the time of (3136, 64, 576) and (12544, 32, 27) products (perf, avx512).
constexpr int64_t kDirectAMaxTiles = 2;

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

// The serial BLIS loops over one thread's sub-matrix C[rows, cols].
void gemm_block(Range rows, Range cols, int64_t k, MatrixRef a, MatrixRef b, float* c,
                int64_t ldc, const GemmEpilogue& ep, const GemmKernel& kern) {
  const int64_t kc_max = std::min(kern.kc, k);
  const int64_t nc_max = std::min(kern.nc, (cols.end - cols.begin + kern.nr - 1) / kern.nr * kern.nr);
  const int64_t mc_max = std::min(kern.mc, (rows.end - rows.begin + kern.mr - 1) / kern.mr * kern.mr);
  float* b_packed = static_cast<float*>(thread_workspace(0, sizeof(float) * kc_max * nc_max));
  float* a_packed = static_cast<float*>(thread_workspace(1, sizeof(float) * kc_max * mc_max));
  const bool direct_a = a.cs == 1 && a.rs > 0 &&
                        cols.end - cols.begin <= kDirectAMaxTiles * kern.nr;

  for (int64_t jc = cols.begin; jc < cols.end; jc += kern.nc) {
    const int64_t nc = std::min(kern.nc, cols.end - jc);
    for (int64_t pc = 0; pc < k; pc += kern.kc) {
      const int64_t kc = std::min(kern.kc, k - pc);
      const bool first = pc == 0, last = pc + kc == k;
      // B block kc x nc, packed as nc/nr panels: B^T has row stride b.cs and column stride b.rs.
      kern.pack(nc, kc, b.data + pc * b.rs + jc * b.cs, b.cs, b.rs, kern.nr, b_packed);
      for (int64_t ic = rows.begin; ic < rows.end; ic += kern.mc) {
        const int64_t mc = std::min(kern.mc, rows.end - ic);
        const float* a_block = a.data + ic * a.rs + pc * a.cs;
        // Direct mode packs only a partial last micro-panel (the kernel reads all mr rows).
        const int64_t full_rows = direct_a ? mc / kern.mr * kern.mr : 0;
        if (full_rows < mc) {
          kern.pack(mc - full_rows, kc, a_block + full_rows * a.rs, a.rs, a.cs, kern.mr,
                    a_packed + full_rows * kc);
        }
        for (int64_t jr = 0; jr < nc; jr += kern.nr) {
          const int n_tile = int(std::min<int64_t>(kern.nr, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += kern.mr) {
            const int m_tile = int(std::min<int64_t>(kern.mr, mc - ir));
            const bool in_place = ir < full_rows;
            float* c_tile = c + (ic + ir) * ldc + jc + jr;
            GemmEpilogue tile_ep = ep;
            if (ep.bias_row) tile_ep.bias_row = ep.bias_row + ic + ir;
            if (ep.bias_col) tile_ep.bias_col = ep.bias_col + jc + jr;
            kern.ukernel(kc, in_place ? a_block + ir * a.rs : a_packed + ir * kc,
                         in_place ? a.rs : 0, b_packed + jr * kc, c_tile, ldc, m_tile, n_tile,
                         !first, last ? &tile_ep : nullptr);
          }
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
      kern.ukernel(0, kNoPanel, 0, kNoPanel, c + i * ldc + j, ldc,
                   int(std::min<int64_t>(kern.mr, m - i)), int(std::min<int64_t>(kern.nr, n - j)),
                   false, &tile_ep);
    }
  }
}

}  // namespace

void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc,
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

}  // namespace cnnfast::ops
