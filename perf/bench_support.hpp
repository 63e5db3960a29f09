#pragma once
// perf/bench_support.hpp — what the benchmark programs in perf/ share.

#include <sys/resource.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstdio>

namespace perf {

// uniform_fp_status — sets the (sticky) inexact flag in the calling thread's MXCSR.
// Why: Boost.Context saves MXCSR when a context leaves and loads the saved value
// of the context it enters; if the two values differ, a bare round trip costs
// ~225 ns instead of ~15 ns on this machine (yield_bench's *_mixed_mxcsr rows).
// A new context inherits the MXCSR of the one that created it, and almost any
// double arithmetic sets the inexact flag (Google Benchmark's timer does some at
// the start of every measured loop). Setting the flag first thing in main makes
// every context created afterwards carry it, and arithmetic that raises only
// inexact cannot change it again, so both runtimes are measured without the
// trap. See perf/README.md.
inline void uniform_fp_status() noexcept { _mm_setcsr(_mm_getcsr() | _MM_EXCEPT_INEXACT); }

// peak_rss_kib — the process's peak resident set (getrusage ru_maxrss), KiB.
inline long peak_rss_kib() noexcept {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// cpu_ms — user + system CPU time the process has used so far, milliseconds.
// On a shared machine it leaves out the time other processes had the CPU.
inline double cpu_ms() noexcept {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3;
  };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// resident_bytes — the process's resident set now (/proc/self/statm), bytes;
// 0 if it cannot be read.
inline std::size_t resident_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// mapped_bytes — the process's virtual size now (/proc/self/statm), bytes.
inline std::size_t mapped_bytes() noexcept {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0;
  const int n = std::fscanf(f, "%lu", &size);
  std::fclose(f);
  return n == 1 ? size * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// skynet_main — the main() of the skynet programs: times run(size) (which
// builds the tree and returns the sum of its leaves), prints one line with
// the time, CPU time and peak RSS, and fails on a wrong sum.
template <class Run>
int skynet_main(const char* runtime, int argc, char** argv, Run run) {
  uniform_fp_status();
  const long size = argc > 1 ? std::atol(argv[1]) : 1000000;
  const double c0 = cpu_ms();
  const auto t0 = std::chrono::steady_clock::now();
  const long sum = run(size);
  const auto t1 = std::chrono::steady_clock::now();
  const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const double cpu = cpu_ms() - c0;
  const long expect = size * (size - 1) / 2;
  std::printf("skynet runtime=%s size=%ld sum=%ld time_ms=%.1f cpu_ms=%.1f peak_rss_kib=%ld\n", runtime,
              size, sum, ms, cpu, peak_rss_kib());
  if (sum != expect) {
    std::fprintf(stderr, "skynet_%s: wrong sum %ld, expected %ld\n", runtime, sum, expect);
    return 1;
  }
  return 0;
}

}  // namespace perf

// The main() of every *_bench program (which includes <benchmark/benchmark.h>):
// uniform MXCSR first, then Google Benchmark.
#define CORELET_BENCH_MAIN()                                              \
  int main(int argc, char** argv) {                                       \
    perf::uniform_fp_status();                                            \
    ::benchmark::Initialize(&argc, argv);                                 \
    if (::benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;   \
    ::benchmark::RunSpecifiedBenchmarks();                                \
    ::benchmark::Shutdown();                                              \
    return 0;                                                             \
  }
