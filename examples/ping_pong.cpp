// ping_pong — two workers (two processes, two cores) bounce a message
// between their mailboxes; the pong side finds the ping side's mailbox by
// name. Prints the round-trip time.
//
//   ping_pong [ROUNDS]
#include <corelet/corelet.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

struct Ball {
  long hits;
  corelet::Address from;
};

// Runs on worker 1: returns every ball it gets, one hit more.
long pong(long rounds) {
  corelet::Mailbox<Ball> box;
  corelet::register_name("pong", box.address());
  for (long i = 0; i < rounds; ++i) {
    Ball b = box.recv();
    corelet::send(b.from, Ball{b.hits + 1, box.address()});
  }
  return rounds;
}
CORELET_REMOTE(pong);

}  // namespace

int main(int argc, char** argv) {
  const long rounds = argc > 1 ? std::atol(argv[1]) : 100'000;
  return corelet::run(corelet::Config{.workers = 2}, [rounds] {
    auto done = corelet::spawn_on(1, pong, rounds);
    corelet::Mailbox<Ball> box;
    corelet::Address peer;
    while (true) {  // wait until worker 1 has registered its mailbox
      if (auto a = corelet::whereis("pong")) {
        peer = *a;
        break;
      }
      corelet::this_tasklet::sleep_for(std::chrono::microseconds(100));
    }
    const auto t0 = std::chrono::steady_clock::now();
    Ball b{0, box.address()};
    for (long i = 0; i < rounds; ++i) {
      corelet::send(peer, Ball{b.hits + 1, box.address()});
      b = box.recv();
    }
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%ld round trips between worker 0 (pid %d) and worker 1 (pid %d): %ld hits, %.2f us each\n", rounds,
                corelet::worker_pid(0), corelet::worker_pid(1), b.hits, us / static_cast<double>(rounds));
    done.get();
    return b.hits == 2 * rounds ? 0 : 1;
  });
}
