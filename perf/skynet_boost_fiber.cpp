// skynet_boost_fiber — the skynet benchmark on Boost.Fiber, one run per process.
//
// The same tree as skynet_corelet (spawn 10 children, join them, sum), on the
// default round_robin scheduler of one thread. Stacks: fixedsize_stack of
// 16 KiB, as in the figures measured on this machine before (Boost.Fiber
// allocates a fiber's stack when the fiber is created, and nearly every fiber of
// the tree exists at once). Prints the same line as skynet_corelet:
//   skynet runtime=boost_fiber size=... sum=... time_ms=... cpu_ms=... peak_rss_kib=...
// Usage: skynet_boost_fiber [size]   (size a power of 10, default 1000000)

#include "bench_support.hpp"

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/fixedsize_stack.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

namespace {

constexpr long kDiv = 10;
constexpr std::size_t kStackSize = 16 * 1024;

void skynet(long& out, long num, long size) {
  if (size == 1) {
    out = num;
    return;
  }
  const long part = size / kDiv;
  long results[kDiv];
  boost::fibers::fiber kids[kDiv];
  for (long i = 0; i < kDiv; ++i)
    kids[i] = boost::fibers::fiber(std::allocator_arg, boost::fibers::fixedsize_stack(kStackSize), skynet,
                                   std::ref(results[i]), num + i * part, part);
  long sum = 0;
  for (long i = 0; i < kDiv; ++i) {
    kids[i].join();
    sum += results[i];
  }
  out = sum;
}

}  // namespace

int main(int argc, char** argv) {
  return perf::skynet_main("boost_fiber", argc, argv, [](long size) {
    long sum = 0;
    // The root runs in its own fiber, as every node of the corelet tree does.
    boost::fibers::fiber root(std::allocator_arg, boost::fibers::fixedsize_stack(kStackSize), skynet,
                              std::ref(sum), 0L, size);
    root.join();
    return sum;
  });
}
