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
  return perf::skynet_main("corelet", argc, argv, [](long size) {
    long sum = 0;
    corelet::run([&] { sum = skynet(0, size); });
    return sum;
  });
}
