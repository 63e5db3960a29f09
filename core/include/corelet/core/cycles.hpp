#pragma once
// corelet/core/cycles.hpp — a cheap monotonic counter for accounting and spin
// deadlines: the time-stamp counter on x86 (invariant on x86-64 hosts; ~10x
// cheaper than clock_gettime), steady_clock nanoseconds elsewhere.

#include <chrono>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace corelet::core {

#if defined(__x86_64__) || defined(__i386__)
inline std::uint64_t cycles() noexcept { return __rdtsc(); }
inline void cpu_relax() noexcept { __builtin_ia32_pause(); }
#else
inline std::uint64_t cycles() noexcept {
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}
inline void cpu_relax() noexcept {}
#endif

// cycles_per_us — cycles() ticks per microsecond, measured once per process
// (a 200 µs spin at the first call). Never zero.
std::uint64_t cycles_per_us() noexcept;

// cycles_to_ns — a cycles() difference in nanoseconds.
std::uint64_t cycles_to_ns(std::uint64_t c) noexcept;

}  // namespace corelet::core
