// Stress: echo traffic on hundreds of connections while a chaos tasklet
// cancels clients at random and every call runs under a short random timeout.
// Checks that every exchange that completes returns exactly its bytes (a late
// completion landing in a reused stack would corrupt them), that cancellations
// and timeouts end only the tasklet concerned, and that no fd leaks. Both
// backends; fixed seed; label `stress`.
#include "../io_support.hpp"

#include <random>
#include <vector>

using namespace corelet_test;
using corelet::TcpListener;
using corelet::TcpStream;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int kClients = 100;
#elif defined(__SANITIZE_THREAD__)
constexpr int kClients = 50;  // TSan's slowdown: with more, most rounds end in their timeout
#else
constexpr int kClients = 400;
#endif
constexpr int kRounds = 30;

struct Counts {
  long exchanges = 0, timeouts = 0, cancelled = 0, resets = 0;
};

}  // namespace

using IoStress = IoTest;
CORELET_IO_BACKENDS(IoStress);

TEST_P(IoStress, EchoUnderRandomCancellationAndTimeouts) {
  Counts n;
  const int fds_before = open_fds();
  run_io([&] {
    TcpListener l = TcpListener::bind("127.0.0.1:0", {.backlog = 4096});
    const auto addr = l.local_address();
    std::vector<corelet::Task<void>> conns;
    auto server = corelet::spawn([&] {
      for (;;) {
        TcpStream c;
        try {
          c = l.accept();
        } catch (const std::system_error&) {
          break;  // the listener was closed
        }
        conns.push_back(corelet::spawn({.stack_size = 16 * 1024}, [c = std::move(c)]() mutable {
          char buf[2048];
          try {
            while (std::size_t k = c.read(buf, sizeof buf)) c.write_all(buf, k);
          } catch (const std::system_error&) {
            // a client that timed out or was cancelled may close mid-message
          }
        }));
      }
    });
    std::vector<corelet::Task<void>> clients;
    for (int i = 0; i < kClients; ++i)
      clients.push_back(corelet::spawn({.stack_size = 32 * 1024}, [&, i] {
        std::mt19937 rng(1000 + i);
        TcpStream s = TcpStream::connect(addr);
        for (int r = 0; r < kRounds; ++r) {
          // A message whose bytes say who sent it and when.
          char out[1500], back[1500];
          const std::size_t len = 1 + rng() % sizeof out;
          for (std::size_t k = 0; k < len; ++k) out[k] = static_cast<char>(i * 131 + r * 7 + k);
          const auto timeout = std::chrono::microseconds(1000 + rng() % 40000);
          try {
            s.write_all(out, len, timeout);
            if (!s.read_exact(back, len, timeout)) return;
            ASSERT_EQ(std::memcmp(out, back, len), 0) << "client " << i << " round " << r;
            ++n.exchanges;
          } catch (const std::system_error& e) {
            if (e.code() != std::errc::timed_out) {
              ++n.resets;
              return;
            }
            // The stream is now out of step (bytes may still be in flight):
            // start afresh on a new connection.
            ++n.timeouts;
            s = TcpStream::connect(addr);
          }
        }
      }));
    // Chaos: cancel a client now and then.
    std::mt19937 rng(42);
    for (int k = 0; k < kClients / 4; ++k) {
      corelet::this_tasklet::sleep_for(std::chrono::microseconds(rng() % 500));
      clients[rng() % kClients].cancel();
    }
    for (auto& c : clients) {
      try {
        c.join();
      } catch (const corelet::Cancelled&) {
        ++n.cancelled;
      }
    }
    l.close();
    server.join();
    for (auto& c : conns) c.join();
  });
  EXPECT_GT(n.exchanges, kClients * kRounds / 10);  // progress despite the chaos
  EXPECT_GT(n.cancelled, 0);
  EXPECT_EQ(n.resets, 0);
  EXPECT_EQ(open_fds(), fds_before);
  std::printf("exchanges %ld, timeouts %ld, cancelled %ld\n", n.exchanges, n.timeouts, n.cancelled);
}
