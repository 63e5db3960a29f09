// mutex_bench — contended mutex hand-off between two tasklets.
//
// Both tasklets loop `lock; yield; unlock; yield`. The yield while holding the
// lock lets the other tasklet run into lock() and park; the yield after unlock
// lets the woken waiter take the lock before the unlocker asks again. So the
// lock changes hands on every acquisition whether the mutex hands ownership to
// the waiter (corelet) or lets it race for it (Boost.Fiber), and both runtimes
// do the same switches. One iteration of the measuring tasklet = two hand-offs
// (A to B, B to A), two parks in lock, four yields.

#include "bench_support.hpp"

#include <corelet/corelet.hpp>

#include <benchmark/benchmark.h>

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/mutex.hpp>
#include <boost/fiber/operations.hpp>

namespace {

void corelet_mutex(benchmark::State& state) {
  corelet::run([&] {
    corelet::Mutex m;
    bool stop = false;
    auto other = corelet::spawn([&] {
      while (!stop) {
        m.lock();
        corelet::this_tasklet::yield();
        m.unlock();
        corelet::this_tasklet::yield();
      }
    });
    for (auto _ : state) {
      m.lock();
      corelet::this_tasklet::yield();
      m.unlock();
      corelet::this_tasklet::yield();
    }
    stop = true;
    other.join();
  });
}

void boost_fiber_mutex(benchmark::State& state) {
  boost::fibers::mutex m;
  bool stop = false;
  boost::fibers::fiber other([&] {
    while (!stop) {
      m.lock();
      boost::this_fiber::yield();
      m.unlock();
      boost::this_fiber::yield();
    }
  });
  for (auto _ : state) {
    m.lock();
    boost::this_fiber::yield();
    m.unlock();
    boost::this_fiber::yield();
  }
  stop = true;
  other.join();
}

}  // namespace

BENCHMARK(corelet_mutex)->Name("mutex_hand_off/corelet");
BENCHMARK(boost_fiber_mutex)->Name("mutex_hand_off/boost_fiber");

CORELET_BENCH_MAIN()
