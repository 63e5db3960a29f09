// primes_cluster — the ThreadingX seed's CPU-bound test on every core: count
// the primes up to 400,000 with a basic sieve, four times, spread over the
// workers with Pool::map. Compare the time with --workers 1.
//
//   primes_cluster [--workers N] [--limit L] [--times T]
#include <corelet/corelet.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

std::size_t count_primes(std::size_t limit) {
  std::vector<unsigned char> composite(limit + 1, 0);
  std::size_t n = 0;
  for (std::size_t i = 2; i <= limit; ++i) {
    if (composite[i]) continue;
    ++n;
    for (std::size_t j = i * i; j <= limit; j += i) composite[j] = 1;
  }
  return n;
}
CORELET_REMOTE(count_primes);

}  // namespace

int main(int argc, char** argv) {
  corelet::Config cfg;
  std::size_t limit = 400'000;
  int times = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--workers") == 0) cfg.workers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--limit") == 0) limit = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--times") == 0) times = std::atoi(argv[i + 1]);
  }
  return corelet::run(cfg, [&] {
    corelet::Pool pool;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::size_t> counts = pool.map(count_primes, std::vector<std::size_t>(static_cast<std::size_t>(times), limit), 1);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (std::size_t c : counts) std::printf("primes up to %zu: %zu\n", limit, c);
    std::printf("%d sieves on %d workers in %.1f ms\n", times, corelet::num_workers(), ms);
    return 0;
  });
}
