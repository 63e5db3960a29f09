// Stress: echo traffic on hundreds of connections while a chaos tasklet
// cancels clients at random and every call runs under a short random timeout.
// Checks that every exchange that completes returns exactly its bytes (a late
// completion landing in a reused stack would corrupt them), that cancellations
// and timeouts end only the tasklet concerned, and that no fd leaks. Both
// backends; fixed seed; label `stress`.
//
// How many exchanges complete before their timeout depends on the machine's
// load, so nothing asserts a number of them: every attempted exchange is
// accounted for (completed, timed out, or ended by its client's cancellation),
// and every completed one is intact.
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
  long attempted = 0;   // exchanges begun
  long exchanges = 0;   // completed, their bytes intact
  long corrupted = 0;   // completed with other bytes than were sent
  long timeouts = 0;    // ended by their timeout
  long interrupted = 0; // ended by the client's cancellation
  long resets = 0;      // failed otherwise
  long finished = 0;    // clients that ran all their rounds
  long cancelled = 0;   // clients whose join rethrew Cancelled
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
          // Short random timeouts, except for each client's first exchange,
          // which has all the time it needs: every client that is not
          // cancelled completes at least that one, however loaded the machine.
          const auto random_timeout = std::chrono::microseconds(1000 + rng() % 40000);
          const auto timeout = r == 0 ? std::chrono::microseconds(30s) : random_timeout;
          ++n.attempted;
          try {
            s.write_all(out, len, timeout);
            if (!s.read_exact(back, len, timeout)) {
              ++n.resets;  // the server never closes first: end of stream is a failure
              return;
            }
            if (std::memcmp(out, back, len) == 0) {
              ++n.exchanges;
            } else {
              ++n.corrupted;
              ADD_FAILURE() << "client " << i << " round " << r << ": the echo differs from what was sent";
            }
          } catch (const corelet::Cancelled&) {
            ++n.interrupted;  // this exchange ends here; join() rethrows
            throw;
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
        ++n.finished;
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
  // Every exchange begun ended one of the ways counted, and none other.
  EXPECT_EQ(n.exchanges + n.corrupted + n.timeouts + n.interrupted + n.resets, n.attempted);
  EXPECT_EQ(n.corrupted, 0);
  EXPECT_EQ(n.resets, 0);
  // Every client ran all its rounds or was cancelled (a cancellation may also
  // come before its first exchange, or between two), and only a cancellation
  // cut a client short.
  EXPECT_EQ(n.finished + n.cancelled, kClients);
  EXPECT_LE(n.interrupted, n.cancelled);
  EXPECT_LE(n.attempted, static_cast<long>(kClients) * kRounds);
  EXPECT_GE(n.attempted, n.finished * kRounds);
  EXPECT_GT(n.cancelled, 0);
  EXPECT_GE(n.exchanges, n.finished) << "a client that ran all its rounds completed its first exchange";
  EXPECT_EQ(open_fds(), fds_before);
  std::printf("attempted %ld: exchanges %ld, timeouts %ld, interrupted %ld; clients finished %ld, cancelled %ld\n",
              n.attempted, n.exchanges, n.timeouts, n.interrupted, n.finished, n.cancelled);
}
