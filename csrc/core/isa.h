// SIMD tier detection and the user's cap on it. Tiers are ordered scalar < avx2 < avx512; the
// active tier is min(detected, cap). Dispatch code (kernels/registry.cpp) asks active_isa() on
// every call, so a cap set from Python takes effect at once.
#pragma once

namespace cnnfast {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// The best tier this CPU and OS support (cpuid feature bits and xgetbv-enabled register state).
Isa detected_isa();
// The tier kernels run on now: min(detected_isa(), max_isa()).
Isa active_isa();
// The cap; avx512 (no cap) unless set_max_isa or CNNFAST_MAX_ISA lowered it.
Isa max_isa();
void set_max_isa(Isa cap);

const char* isa_name(Isa isa);
// Parses "scalar" / "avx2" / "avx512"; returns false for anything else.
bool parse_isa(const char* name, Isa* out);

}  // namespace cnnfast
