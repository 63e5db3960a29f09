// Stress tests of the cluster (label: stress). Fixed seeds, bounded sizes.
//
// AllPairsMessages: every worker sends kMessages mailbox messages to every
// other worker at once, each carrying its sender, a sequence number and a
// checksum of its contents; every receiver checks order and checksums.
// KillMidPoolMap: SIGKILL a worker in the middle of a Pool::map, 100 times:
// the map must fail with WorkerLost every time (the death is an event the
// supervisor sees, not a timeout: the 30 s bound only tells "detected" from
// "never", whatever the load), and the pool must go on with the replacement.

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include "cluster_support.hpp"

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using corelet::Config;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t kMessages = 1'000'000;  // per ordered pair
#else
constexpr std::uint64_t kMessages = 10'000'000;
#endif

using namespace cluster_support;

struct Msg {
  std::int32_t from;
  std::uint32_t pad;
  std::uint64_t seq;
  std::uint64_t value;
  std::uint64_t check;
};

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

struct PairReport {
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t bad_checksum = 0;
};

// On every worker: receive kMessages from each other worker while sending
// kMessages to each of them.
PairReport exchange(int workers) {
  const int me = corelet::this_worker();
  corelet::Mailbox<Msg> inbox;
  corelet::register_name("stress-" + std::to_string(me), inbox.address());
  std::vector<corelet::Task<void>> senders;
  for (int to = 0; to < workers; ++to) {
    if (to == me) continue;
    senders.push_back(corelet::spawn([to, me] {
      corelet::Address a;
      for (;;) {
        if (auto found = corelet::whereis("stress-" + std::to_string(to))) {
          a = *found;
          break;
        }
        corelet::this_tasklet::sleep_for(100us);
      }
      for (std::uint64_t seq = 0; seq < kMessages; ++seq) {
        const std::uint64_t value = mix(seq * 31 + static_cast<std::uint64_t>(me));
        corelet::send(a, Msg{me, 0, seq, value, mix(value ^ seq)});
      }
    }));
  }
  PairReport r;
  std::vector<std::uint64_t> next(static_cast<std::size_t>(workers), 0);
  const std::uint64_t want = kMessages * static_cast<std::uint64_t>(workers - 1);
  while (r.received < want) {
    Msg m = inbox.recv();
    ++r.received;
    if (m.seq != next[static_cast<std::size_t>(m.from)]) ++r.out_of_order;
    next[static_cast<std::size_t>(m.from)] = m.seq + 1;
    if (m.value != mix(m.seq * 31 + static_cast<std::uint64_t>(m.from)) || m.check != mix(m.value ^ m.seq))
      ++r.bad_checksum;
  }
  for (auto& s : senders) s.join();
  return r;
}
CORELET_REMOTE(exchange);

TEST(ClusterStress, AllPairsExchangeMessagesInOrderIntact) {
  EXPECT_EQ(corelet::run(Config{},
                         [] {
                           const int n = corelet::num_workers();
                           std::vector<corelet::Future<PairReport>> fs;
                           for (int w = 0; w < n; ++w) fs.push_back(corelet::spawn_on(w, exchange, n));
                           for (int w = 0; w < n; ++w) {
                             PairReport r = fs[static_cast<std::size_t>(w)].get();
                             EXPECT_EQ(r.received, kMessages * static_cast<std::uint64_t>(n - 1)) << "worker " << w;
                             EXPECT_EQ(r.out_of_order, 0u) << "worker " << w;
                             EXPECT_EQ(r.bad_checksum, 0u) << "worker " << w;
                           }
                           return status();
                         }),
            0);
}

long spin_square(long x) {
  const auto until = std::chrono::steady_clock::now() + 100us;
  while (std::chrono::steady_clock::now() < until) {
  }
  return x * x;
}
CORELET_REMOTE(spin_square);

TEST(ClusterStress, KillAWorkerMidPoolMapAHundredTimes) {
  EXPECT_EQ(corelet::run(Config{.workers = 2, .quiet = true},
                         [] {
                           corelet::Pool pool;
                           int lost = 0;
                           std::int64_t worst_ms = 0;
                           for (int round = 0; round < 100; ++round) {
                             while (!corelet::worker_alive(1)) corelet::this_tasklet::sleep_for(200us);
                             const auto ms = kill_during_map(pool, spin_square, std::vector<long>(4000, round),
                                                             std::chrono::milliseconds(3));
                             if (ms >= 0) ++lost;
                             worst_ms = std::max<std::int64_t>(worst_ms, ms);
                             auto after = pool.map(spin_square, std::vector<long>(50, 3), 1);
                             EXPECT_EQ(after, std::vector<long>(50, 9)) << "round " << round;
                           }
                           EXPECT_EQ(lost, 100);
                           EXPECT_LT(worst_ms, 30000) << "WorkerLost took " << worst_ms << " ms";
                           std::printf("KillAWorkerMidPoolMap: 100 kills, WorkerLost after at most %lld ms\n",
                                       static_cast<long long>(worst_ms));
                           return status();
                         }),
            0);
}

}  // namespace
