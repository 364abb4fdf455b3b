// cpuid + xgetbv detection of the SIMD tiers. A feature counts only when the CPU reports it AND
// the OS has enabled saving the wider registers (XCR0), otherwise the first AVX instruction
// faults. Compiled for the baseline ISA.
#include "core/isa.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#if defined(CNNFAST_X86)
#include <cpuid.h>
#endif

namespace cnnfast {
namespace {

#if defined(CNNFAST_X86)
uint64_t read_xcr0() {
  uint32_t eax, edx;
  // xgetbv with ecx=0, written as bytes-free inline asm so no -mxsave flag is needed.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

Isa detect() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::scalar;
  const bool osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), fma = ecx & (1u << 12);
  if (!osxsave || !avx) return Isa::scalar;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_state) return Isa::scalar;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return Isa::scalar;
  const bool avx2 = ebx & (1u << 5);
  const bool avx512 = (ebx & (1u << 16)) && (ebx & (1u << 17)) &&  // F, DQ
                      (ebx & (1u << 30)) && (ebx & (1u << 31));    // BW, VL
  if (avx2 && fma && avx512 && zmm_state) return Isa::avx512;
  if (avx2 && fma) return Isa::avx2;
  return Isa::scalar;
}
#else
Isa detect() { return Isa::scalar; }
#endif

std::atomic<int> g_cap{int(Isa::avx512)};

}  // namespace

Isa detected_isa() {
  static const Isa detected = detect();
  return detected;
}

Isa max_isa() { return Isa(g_cap.load(std::memory_order_relaxed)); }

void set_max_isa(Isa cap) { g_cap.store(int(cap), std::memory_order_relaxed); }

Isa active_isa() {
  const Isa d = detected_isa(), cap = max_isa();
  return int(d) < int(cap) ? d : cap;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

bool parse_isa(const char* name, Isa* out) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

}  // namespace cnnfast
