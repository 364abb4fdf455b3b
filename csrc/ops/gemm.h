// The SGEMM driver every GEMM-based op calls: C = act(A * B + bias) on strided float32 operands.
// BLIS loop order (jc, pc, ic, jr, ir) over packed panels; threads split C into a grid of
// sub-matrices, never the K dimension, so results do not depend on the thread count.
#pragma once

#include <cstdint>

#include "kernels/registry.h"

namespace cnnfast::ops {

// A strided matrix operand: element (i, j) at data[i*rs + j*cs] (strides in elements, any sign).
struct MatrixRef {
  const float* data;
  int64_t rs, cs;
};

// An operand that exists only implicitly (e.g. the im2col matrix of a convolution): the driver
// asks it for packed panels instead of packing a strided matrix.
class PanelSource {
 public:
  virtual ~PanelSource() = default;
  // Packs rows [row0, row0 + rows) and reduction indices [k0, k0 + kc) into ceil(rows / r)
  // panels in GemmPackFn's layout (dst[panel*r*kc + p*r + i], last panel zero-padded). "Rows"
  // are the panel rows: rows of A, or columns of B.
  // `kern` is the kernel the driver runs, whose pack_rows the source may use.
  virtual void pack(int64_t row0, int64_t rows, int64_t k0, int64_t kc, int r, float* dst,
                    const kernels::GemmKernel& kern) const = 0;
};

// An operand packed once ahead of many products (a layer's weights), in exactly the panels the
// driver would build for `kern`, so that it reads them in place and packs nothing. r = kern.mr
// for A, kern.nr for B; "rows" are panel rows (rows of A, columns of B). For each k block
// [pc, pc + kc) of the driver (kc = kern.kc, the last block shorter) the block holds
// rows_padded / r panels of kc x r back to back: element (row, p) at
// data[pc * rows_padded + (row / r) * r * kc + (p - pc) * r + row % r], rows past the end zero.
struct PrepackedOperand {
  const float* data;
  int64_t rows_padded;  // rows rounded up to a multiple of r
};

// Floats a prepacked operand of `rows` x `k` takes for panel width r.
int64_t prepacked_floats(int64_t rows, int64_t k, int r);
// Packs the rows x k operand whose element (row, p) is src.data[row*src.rs + p*src.cs] for
// `kern` into dst (prepacked_floats(rows, k, r) floats, 64-byte aligned).
void prepack_operand(MatrixRef src, int64_t rows, int64_t k, int r, const kernels::GemmKernel& kern,
                     float* dst);

// C[m x n] (row stride ldc, unit column stride) = act(A[m x k] * B[k x n] + bias).
// ep.bias_row has m entries (one per row of C), ep.bias_col n entries; either may be nullptr.
// k == 0 gives act(bias). `kernel` forces a table entry (tests, benchmarks); nullptr dispatches
// on the active ISA.
void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc,
           const kernels::GemmEpilogue& ep, const kernels::GemmKernel* kernel = nullptr);

// The same with B supplied as panels by `b` (its rows are the n columns of B), or A by `a`.
void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, const PanelSource& b, float* c,
           int64_t ldc, const kernels::GemmEpilogue& ep);
void sgemm(int64_t m, int64_t n, int64_t k, const PanelSource& a, MatrixRef b, float* c,
           int64_t ldc, const kernels::GemmEpilogue& ep);
// The same with one operand prepacked for `kern`, which must be the kernel that packed it.
void sgemm(int64_t m, int64_t n, int64_t k, const PrepackedOperand& a, MatrixRef b, float* c,
           int64_t ldc, const kernels::GemmEpilogue& ep, const kernels::GemmKernel& kern);
void sgemm(int64_t m, int64_t n, int64_t k, const PrepackedOperand& a, const PanelSource& b,
           float* c, int64_t ldc, const kernels::GemmEpilogue& ep, const kernels::GemmKernel& kern);
void sgemm(int64_t m, int64_t n, int64_t k, MatrixRef a, const PrepackedOperand& b, float* c,
           int64_t ldc, const kernels::GemmEpilogue& ep, const kernels::GemmKernel& kern);
void sgemm(int64_t m, int64_t n, int64_t k, const PanelSource& a, const PrepackedOperand& b,
           float* c, int64_t ldc, const kernels::GemmEpilogue& ep, const kernels::GemmKernel& kern);
void sgemm(int64_t m, int64_t n, int64_t k, const PrepackedOperand& a, const PrepackedOperand& b,
           float* c, int64_t ldc, const kernels::GemmEpilogue& ep, const kernels::GemmKernel& kern);

// An epilogue that does nothing.
constexpr kernels::GemmEpilogue kNoEpilogue{nullptr, nullptr, kernels::Activation::none, 0.0f};

}  // namespace cnnfast::ops
