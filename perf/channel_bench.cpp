// channel_bench — ping-pong over two rendezvous channels.
//
// The measuring tasklet sends a number on `ping` and receives it back on `pong`
// from an echo tasklet: one iteration is one round trip (two rendezvous, two
// switches). Boost.Fiber runs the same with unbuffered_channel, its rendezvous
// channel (default round_robin scheduler, one thread).

#include "bench_support.hpp"

#include <corelet/corelet.hpp>

#include <benchmark/benchmark.h>

#include <boost/fiber/fiber.hpp>
#include <boost/fiber/unbuffered_channel.hpp>

namespace {

void corelet_channel(benchmark::State& state) {
  corelet::run([&] {
    corelet::Channel<int> ping(0), pong(0);
    auto echo = corelet::spawn([&] {
      for (int v; (v = ping.recv()) >= 0;) pong.send(v);
    });
    int i = 0;
    for (auto _ : state) {
      ping.send(i);
      benchmark::DoNotOptimize(pong.recv());
      i = (i + 1) & 0xffff;
    }
    ping.send(-1);
    echo.join();
  });
}

void boost_fiber_channel(benchmark::State& state) {
  boost::fibers::unbuffered_channel<int> ping, pong;
  boost::fibers::fiber echo([&] {
    int v;
    while (ping.pop(v) == boost::fibers::channel_op_status::success && v >= 0) pong.push(v);
  });
  int i = 0;
  for (auto _ : state) {
    ping.push(i);
    benchmark::DoNotOptimize(pong.value_pop());
    i = (i + 1) & 0xffff;
  }
  ping.push(-1);
  echo.join();
}

}  // namespace

BENCHMARK(corelet_channel)->Name("channel_ping_pong/corelet");
BENCHMARK(boost_fiber_channel)->Name("channel_ping_pong/boost_fiber");

CORELET_BENCH_MAIN()
