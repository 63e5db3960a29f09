// fixed_work — N channel round trips between two tasklets, then N lock,
// unlock and yield turns of two tasklets on one Mutex, under corelet::run: a
// fixed amount of work whose instruction count (valgrind --tool=callgrind)
// compares two builds of the scheduler where wall-clock time is too noisy.
// The count per N is the difference between two runs with different N.
//
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null build/release/perf/fixed_work 20000
#include <corelet/corelet.hpp>
#include <cstdlib>
#include <cstdio>
int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  long sum = 0;
  corelet::run([&] {
    corelet::Channel<int> ping(0), pong(0);
    auto echo = corelet::spawn([&] {
      for (int v; (v = ping.recv()) >= 0;) pong.send(v);
    });
    for (int i = 0; i < n; ++i) {
      ping.send(i & 0xffff);
      sum += pong.recv();
    }
    ping.send(-1);
    echo.join();
    corelet::Mutex m;
    int shared = 0;
    auto other = corelet::spawn([&] {
      for (int i = 0; i < n; ++i) { m.lock(); ++shared; m.unlock(); corelet::this_tasklet::yield(); }
    });
    for (int i = 0; i < n; ++i) { m.lock(); ++shared; m.unlock(); corelet::this_tasklet::yield(); }
    other.join();
    sum += shared;
  });
  std::printf("%ld\n", sum);
}
