// spawn_bench — spawn + join of an empty tasklet.
//
// One iteration: create a tasklet whose body is empty, park in join until it
// has run and ended, drop it. That is one control block, one stack taken from
// and given back to the pool, two switches. The same on Boost.Fiber (default
// round_robin scheduler and default stack allocator, one thread).

#include "bench_support.hpp"

#include <corelet/corelet.hpp>

#include <benchmark/benchmark.h>

#include <boost/fiber/fiber.hpp>

namespace {

void corelet_spawn_join(benchmark::State& state) {
  corelet::run([&] {
    for (auto _ : state) corelet::spawn([] {}).join();
  });
}

void boost_fiber_spawn_join(benchmark::State& state) {
  for (auto _ : state) boost::fibers::fiber([] {}).join();
}

}  // namespace

BENCHMARK(corelet_spawn_join)->Name("spawn_join/corelet");
BENCHMARK(boost_fiber_spawn_join)->Name("spawn_join/boost_fiber");

CORELET_BENCH_MAIN()
