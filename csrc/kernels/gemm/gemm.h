// The SGEMM micro-kernel contract, shared by every ISA tier.
// A micro-kernel computes one mr x nr tile of row-major C from a packed A micro-panel (k steps of
// mr values: a[p*mr + i]) and a packed B micro-panel (k steps of nr values: b[p*nr + j]), both
// 64-byte aligned and zero-padded to full mr / nr by the packer. Only the m x n corner of C
// (m <= mr, n <= nr) is read or written: edge tiles are masked, never padded in C.
// Called by the driver in ops/gemm.cpp through the table in kernels/registry.cpp.
#pragma once

#include <cstdint>

namespace cnnfast::kernels {

// Activations of the epilogue. The micro-kernels apply none..hardswish while the tile is still in
// registers; sigmoid, tanh and silu (which need exp) they leave to the driver, which applies
// them to each tile right after it is stored, while it is still in L1 (ops/gemm.cpp).
enum class Activation : int32_t {
  none = 0,
  relu,
  relu6,
  leaky_relu,
  hardswish,
  sigmoid,
  tanh,
  silu
};
// Whether the micro-kernels apply `act` themselves.
inline bool in_register_activation(Activation act) { return act <= Activation::hardswish; }

// Epilogue of one tile, applied after the last K block: C = act(C * scale + bias + addend).
// bias_row[i] is added to tile row i, bias_col[j] to tile column j; scale_row / scale_col
// multiply them likewise (a batch norm folded into a convolution: one scale per output
// channel, no pass over the weights); addend is a matrix with C's row stride (ldc) whose
// element (i, j) is added to C's (ResNet's shortcut, fused into the last convolution of a
// block). Any of them may be nullptr.
struct GemmEpilogue {
  const float* bias_row;
  const float* bias_col;
  Activation activation;
  float alpha;  // negative slope of leaky_relu
  const float* scale_row = nullptr;
  const float* scale_col = nullptr;
  const float* addend = nullptr;
};

// C[0:m, 0:n] = (accumulate ? C : 0) + A * B, then *ep if ep != nullptr.
// lda == 0: a is a packed micro-panel. lda > 0: a is row-major A itself (element (i, p) at
// a[i*lda + p]) and m == mr. Likewise ldb == 0: b is a packed micro-panel; ldb > 0: b is B
// itself (element (p, j) at b[p*ldb + j]) and n == nr. Products with small n (or small m) read
// A (or B) in place: packing costs as much as the multiply when each value serves one or two
// tiles.
using GemmUkernelFn = void (*)(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                               float* c, int64_t ldc, int m, int n, bool accumulate,
                               const GemmEpilogue* ep);

// The same tile with A read in place in `segments` runs, one after another into the same
// accumulators: run s is k[s] steps whose element (i, p) is a[s][i*lda + p]; b is one packed
// micro-panel of k[0] + k[1] + ... steps. A convolution's k block that spans several kernel taps
// is one call, summed exactly as the packed GEMM sums the same block. Reads every row of A the
// kernel computes (up to mr, even when m is smaller): the caller's A has them (a padded image).
using GemmUkernelSegmentsFn = void (*)(int segments, const float* const* a, const int64_t* k,
                                       int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                       int n, bool accumulate, const GemmEpilogue* ep);

// Packs `rows` x k of a strided source (element (i, p) at src[i*rs + p*cs]) into
// ceil(rows / r) micro-panels of r x k, each stored p-major (dst[panel*r*k + p*r + i]), the
// last panel zero-padded to r rows. Packs A with r = mr, and B (as B^T: rs = B's column stride,
// cs = B's row stride) with r = nr.
using GemmPackFn = void (*)(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs,
                            int r, float* dst);

// The largest mr or nr of any micro-kernel: callers size row-pointer arrays by it.
constexpr int kMaxPanelRows = 64;

// Packs one panel (GemmPackFn's layout, r rows) from `valid` row pointers rows[i], each row
// unit-stride in k; rows valid..r-1 are zero-filled. For operands whose rows lie at irregular
// addresses (the pixels of an implicit im2col matrix).
using GemmPackRowsFn = void (*)(int valid, int64_t k, const float* const* rows, int r, float* dst);

// Packs one panel of a convolution's weights, r rows from row0 of one group, in
// prepack_operand's layout of their tap-major order, in one pass over the OIHW values: rows
// i < valid are w + i*icg*taps, each icg x taps values [c][t]; panel column k = t*icg + c. k
// block pc (kc wide, the last K - pc) of the panel is at dst + pc*rows_padded + row0*min(kc,
// K - pc); rows valid..r-1 are zero. r is at most 32.
using GemmPackTapMajorFn = void (*)(int valid, const float* w, int64_t icg, int64_t taps,
                                    int64_t kc, int r, int64_t rows_padded, int64_t row0,
                                    float* dst);

// One stretch of a panel row that reads the source: columns [col, col + count) take the values
// src, src + step, ... (offsets in elements from the row's base). Columns no run covers are zero.
struct PanelRun {
  int32_t col, count;
  int64_t src;
};

// Packs k rows of one panel (r wide, row p at dst + p*r) from runs: row p's column run.col + v
// is base[p*row_stride + run.src + v*step] for every run and v < run.count, and every other
// column is 0. The runs of one row do not overlap. For operands whose panel rows are a few
// strided stretches of a source row (an NCHW image's im2col rows: pixels of one output row are
// one stretch, padding is zeros).
using GemmPackRunsFn = void (*)(int64_t k, const float* base, int64_t row_stride, int64_t step,
                                const PanelRun* runs, int nruns, int r, float* dst);

void gemm_ukernel_scalar_4x8(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, int m, int n, bool accumulate,
                             const GemmEpilogue* ep);
void gemm_ukernel_segments_scalar_4x8(int segments, const float* const* a, const int64_t* k,
                                      int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                      int n, bool accumulate, const GemmEpilogue* ep);
void gemm_pack_scalar(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                      float* dst);
void gemm_pack_rows_scalar(int valid, int64_t k, const float* const* rows, int r, float* dst);
void gemm_pack_runs_scalar(int64_t k, const float* base, int64_t row_stride, int64_t step,
                           const PanelRun* runs, int nruns, int r, float* dst);
#if defined(CNNFAST_X86)
void gemm_pack_rows_avx2(int valid, int64_t k, const float* const* rows, int r, float* dst);
void gemm_pack_rows_avx512(int valid, int64_t k, const float* const* rows, int r, float* dst);
void gemm_pack_runs_avx2(int64_t k, const float* base, int64_t row_stride, int64_t step,
                         const PanelRun* runs, int nruns, int r, float* dst);
void gemm_pack_runs_avx512(int64_t k, const float* base, int64_t row_stride, int64_t step,
                           const PanelRun* runs, int nruns, int r, float* dst);
void gemm_ukernel_avx2_6x16(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                            float* c, int64_t ldc, int m, int n, bool accumulate,
                            const GemmEpilogue* ep);
void gemm_ukernel_segments_avx2_6x16(int segments, const float* const* a, const int64_t* k,
                                     int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                     int n, bool accumulate, const GemmEpilogue* ep);
void gemm_pack_avx2(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                    float* dst);
void gemm_ukernel_avx512_14x32(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                               float* c, int64_t ldc, int m, int n, bool accumulate,
                               const GemmEpilogue* ep);
void gemm_ukernel_segments_avx512_14x32(int segments, const float* const* a, const int64_t* k,
                                        int64_t lda, const float* b, float* c, int64_t ldc, int m,
                                        int n, bool accumulate, const GemmEpilogue* ep);
void gemm_pack_avx512(int64_t rows, int64_t k, const float* src, int64_t rs, int64_t cs, int r,
                      float* dst);
void gemm_pack_tap_major_avx512(int valid, const float* w, int64_t icg, int64_t taps, int64_t kc,
                                int r, int64_t rows_padded, int64_t row0, float* dst);
#endif

}  // namespace cnnfast::kernels
