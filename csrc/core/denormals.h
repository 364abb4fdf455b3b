// Flush-to-zero and denormals-are-zero for the computation of one op on one thread: parallel_for
// sets both MXCSR bits (FPCR.FZ on aarch64) in every thread that runs an op's tasks (the
// caller's included) and puts the caller's bits back when the tasks end. On this class of CPU a
// subnormal operand or result costs ~100x a normal one (bench/denormal.py: a 3x3 convolution of
// subnormal inputs ran 150-220x slower, PyTorch's likewise), so results that would be subnormal
// (|v| < 1.18e-38) are 0 and subnormal inputs read as 0. Nothing else of the caller's
// floating-point state changes.
#pragma once

#include <cstdint>

#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define CNNFAST_HAVE_MXCSR 1
#endif

namespace cnnfast {

// False when the environment had CNNFAST_FLUSH_DENORMALS=0 at the first call (IEEE subnormals,
// for callers who need them and accept the cost). Defined in parallel.cpp.
bool flush_denormals_enabled();

class ScopedFlushDenormals {
 public:
#if defined(CNNFAST_HAVE_MXCSR)
  static constexpr unsigned kBits = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  ScopedFlushDenormals() : saved_(_mm_getcsr() & kBits) {
    if (flush_denormals_enabled()) _mm_setcsr(_mm_getcsr() | kBits);
  }
  // Only the two mode bits are restored: exception flags raised meanwhile stay raised, as
  // they would without the guard.
  ~ScopedFlushDenormals() { _mm_setcsr((_mm_getcsr() & ~kBits) | saved_); }

 private:
  unsigned saved_;
#elif defined(__aarch64__)
  // FPCR.FZ (bit 24): subnormal inputs and results of single- and double-precision arithmetic
  // are zero (AArch64 has no separate DAZ bit; FZ covers both).
  static constexpr uint64_t kBits = uint64_t(1) << 24;
  ScopedFlushDenormals() : saved_(fpcr() & kBits) {
    if (flush_denormals_enabled()) set_fpcr(fpcr() | kBits);
  }
  ~ScopedFlushDenormals() { set_fpcr((fpcr() & ~kBits) | saved_); }

 private:
  static uint64_t fpcr() {
    uint64_t v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
  }
  static void set_fpcr(uint64_t v) { __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); }
  uint64_t saved_;
#else
  // Other architectures: IEEE subnormals (no guard yet). User-provided, so that a guard that
  // does nothing is not an unused variable (-Wunused-variable).
  ScopedFlushDenormals() {}
  ~ScopedFlushDenormals() {}
#endif

 public:
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;
};

}  // namespace cnnfast
