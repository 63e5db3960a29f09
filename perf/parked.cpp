// parked — N tasklets (default 1,000,000) parked at the same time on one Event.
//
// Main spawns N detached tasklets, each of which checks in on a WaitGroup and
// then parks in Event::wait. Main waits until all have checked in, so at that
// moment every one of them is parked, and reads the resident set
// (/proc/self/statm) there. It reads it also before the spawns and after them
// (tasklets queued, not yet run: a queued tasklet has its control block but no
// stack yet), which splits the cost per tasklet into control block and stack.
// Then it sets the Event and waits until all have ended. One line of output:
//   parked runtime=corelet tasklets=N stacks_in_use=N bytes_per_parked=...
//     bytes_per_queued=... stack_slots_mapped=... rss_parked_kib=... park_ms=... wake_ms=...
// stacks_in_use: tasklets that were running at once parked (a started tasklet
// owns its stack until it ends). stack_slots_mapped: address space the process
// gained while they parked, in units of one default stack plus its guard — a
// cross-check that the stacks are really there.
// Usage: parked [N]

#include "bench_support.hpp"

#include <corelet/corelet.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  perf::uniform_fp_status();
  const long n = argc > 1 ? std::atol(argv[1]) : 1000000;
  if (n <= 0) {
    std::fprintf(stderr, "usage: parked [N > 0]\n");
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };

  std::size_t rss_before = 0, rss_queued = 0, rss_parked = 0, vm_queued = 0, vm_parked = 0;
  long started = 0, ended = 0;
  double park_ms = 0, wake_ms = 0;
  corelet::run([&] {
    corelet::Event go;
    corelet::WaitGroup checked_in(n), finished(n);
    rss_before = perf::resident_bytes();
    const auto t0 = Clock::now();
    for (long i = 0; i < n; ++i)
      corelet::spawn([&] {
        ++started;
        checked_in.done();
        go.wait();
        ++ended;
        finished.done();
      }).detach();
    rss_queued = perf::resident_bytes();
    vm_queued = perf::mapped_bytes();
    checked_in.wait();  // every tasklet has run into go.wait() and parked
    const auto t1 = Clock::now();
    rss_parked = perf::resident_bytes();
    vm_parked = perf::mapped_bytes();
    go.set();
    finished.wait();
    wake_ms = ms(Clock::now() - t1);
    park_ms = ms(t1 - t0);
  });

  const double per_parked = static_cast<double>(rss_parked - rss_before) / static_cast<double>(n);
  const double per_queued = static_cast<double>(rss_queued - rss_before) / static_cast<double>(n);
  const double slots = static_cast<double>(vm_parked - vm_queued) /
                       static_cast<double>(corelet::core::kDefaultStackSize + corelet::core::kGuardSize);
  std::printf(
      "parked runtime=corelet tasklets=%ld stacks_in_use=%ld bytes_per_parked=%.0f bytes_per_queued=%.0f "
      "stack_slots_mapped=%.0f rss_parked_kib=%zu park_ms=%.1f wake_ms=%.1f\n",
      n, started, per_parked, per_queued, slots, rss_parked / 1024, park_ms, wake_ms);
  if (started != n || ended != n) {
    std::fprintf(stderr, "parked: %ld started, %ld ended, expected %ld\n", started, ended, n);
    return 1;
  }
  return 0;
}
