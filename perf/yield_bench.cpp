// yield_bench — yield round trip between two tasklets.
//
// The measuring tasklet yields to a partner that does nothing but yield back:
// one iteration is one round trip (two switches, two trips through the ready
// queue). The same work runs on Boost.Fiber (default round_robin scheduler, one
// thread) in the same binary.
//
// yield_round_trip/corelet_no_accounting is the same with accounting and the
// stall detector off: the ratio of the two is their cost on this path.
//
// context_round_trip/boost_context is the floor: the same round trip on bare
// Boost.Context continuations, no scheduler at all.
//
// The *_mixed_mxcsr variants show the trap perf::uniform_fp_status avoids: the
// partner clears the floating-point status flags that the measuring context
// has set, as a tasklet that has done no double arithmetic would have them, so
// every switch loads a different MXCSR. Not a target; shown for scale.

#include "bench_support.hpp"

#include <corelet/corelet.hpp>

#include <benchmark/benchmark.h>

#include <boost/context/fiber.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>

#include <xmmintrin.h>

namespace {

void clear_fp_status() noexcept { _mm_setcsr(_mm_getcsr() & ~0x3fu); }

template <bool mixed, bool accounting = true>
void corelet_yield(benchmark::State& state) {
  corelet::set_accounting(accounting);
  corelet::run([&] {
    bool stop = false;
    auto partner = corelet::spawn([&] {
      if (mixed) clear_fp_status();
      while (!stop) corelet::this_tasklet::yield();
    });
    corelet::this_tasklet::yield();  // the partner has started: its stack is in place
    for (auto _ : state) corelet::this_tasklet::yield();
    stop = true;
    partner.join();
  });
  corelet::set_accounting(true);
}

template <bool mixed>
void boost_fiber_yield(benchmark::State& state) {
  bool stop = false;
  boost::fibers::fiber partner([&] {
    if (mixed) clear_fp_status();
    while (!stop) boost::this_fiber::yield();
  });
  boost::this_fiber::yield();
  for (auto _ : state) boost::this_fiber::yield();
  stop = true;
  partner.join();
}

template <bool mixed>
void boost_context_round_trip(benchmark::State& state) {
  namespace ctx = boost::context;
  bool stop = false;
  ctx::fiber partner([&](ctx::fiber&& back) {
    if (mixed) clear_fp_status();
    while (!stop) back = std::move(back).resume();
    return std::move(back);
  });
  partner = std::move(partner).resume();
  for (auto _ : state) partner = std::move(partner).resume();
  stop = true;
  partner = std::move(partner).resume();
}

}  // namespace

BENCHMARK(corelet_yield<false>)->Name("yield_round_trip/corelet");
// The same with accounting and stall detection off (profile.hpp): their cost.
BENCHMARK(corelet_yield<false, false>)->Name("yield_round_trip/corelet_no_accounting");
BENCHMARK(boost_fiber_yield<false>)->Name("yield_round_trip/boost_fiber");
BENCHMARK(corelet_yield<true>)->Name("yield_round_trip_mixed_mxcsr/corelet");
BENCHMARK(boost_fiber_yield<true>)->Name("yield_round_trip_mixed_mxcsr/boost_fiber");
BENCHMARK(boost_context_round_trip<false>)->Name("context_round_trip/boost_context");
BENCHMARK(boost_context_round_trip<true>)->Name("context_round_trip_mixed_mxcsr/boost_context");

CORELET_BENCH_MAIN()
