// skynet_corelet — the skynet benchmark on corelet, one run per process.
//
// A tree of tasklets: each one with size > 1 spawns `div` (10) children over
// equal parts of its range, then joins them and returns the sum; a leaf returns
// its ordinal. With size 1,000,000 there are 1,000,000 leaves (1,111,111
// tasklets) and the sum is 499999500000. Prints the time of the whole tree
// (wall and CPU) and the process's peak RSS (getrusage), one line:
//   skynet runtime=corelet size=1000000 sum=499999500000 time_ms=... cpu_ms=... peak_rss_kib=...
// Usage: skynet_corelet [size]   (size a power of 10, default 1000000)

#include "bench_support.hpp"

#include <corelet/corelet.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr long kDiv = 10;

long skynet(long num, long size) {
  if (size == 1) return num;
  const long part = size / kDiv;
  std::array<corelet::Task<long>, kDiv> kids;
  for (long i = 0; i < kDiv; ++i) kids[i] = corelet::spawn(skynet, num + i * part, part);
  long sum = 0;
  for (auto& k : kids) sum += k.join();
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  perf::uniform_fp_status();
  const long size = argc > 1 ? std::atol(argv[1]) : 1000000;
  long sum = 0;
  const double c0 = perf::cpu_ms();
  const auto t0 = std::chrono::steady_clock::now();
  corelet::run([&] { sum = skynet(0, size); });
  const auto t1 = std::chrono::steady_clock::now();
  const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const double cpu = perf::cpu_ms() - c0;
  const long expect = size * (size - 1) / 2;
  std::printf("skynet runtime=corelet size=%ld sum=%ld time_ms=%.1f cpu_ms=%.1f peak_rss_kib=%ld\n",
              size, sum, ms, cpu, perf::peak_rss_kib());
  if (sum != expect) {
    std::fprintf(stderr, "skynet_corelet: wrong sum %ld, expected %ld\n", sum, expect);
    return 1;
  }
  return 0;
}
