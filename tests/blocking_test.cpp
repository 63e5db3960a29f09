// corelet/sched/blocking.hpp: run_blocking
#include "support.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

using namespace corelet_test;

namespace {

class BlockingTest : public CoreletTest {};

TEST_F(BlockingTest, RunsOnAnotherThreadAndReturnsTheValue) {
  corelet::run([] {
    const auto scheduler_thread = std::this_thread::get_id();
    auto [value, thread] = corelet::run_blocking([](int x) { return std::pair{x * 2, std::this_thread::get_id()}; }, 21);
    EXPECT_EQ(value, 42);
    EXPECT_NE(thread, scheduler_thread);
  });
}

TEST_F(BlockingTest, OtherTaskletsRunWhileTheCallBlocks) {
  corelet::run([] {
    // The helper waits until a tasklet has run on the scheduler: if the
    // scheduler's thread were blocked, this would never finish.
    std::mutex m;
    std::condition_variable cv;
    bool ticked = false;
    auto ticker = corelet::spawn([&] {
      corelet::this_tasklet::yield();
      std::lock_guard lk(m);
      ticked = true;
      cv.notify_all();
    });
    const bool saw = corelet::run_blocking([&] {
      std::unique_lock lk(m);
      return cv.wait_for(lk, std::chrono::seconds(30), [&] { return ticked; });
    });
    EXPECT_TRUE(saw);
    ticker.join();
  });
}

TEST_F(BlockingTest, ExceptionsAreRethrown) {
  corelet::run([] {
    EXPECT_THROW(corelet::run_blocking([] { throw std::logic_error("in helper"); }), std::logic_error);
  });
}

TEST_F(BlockingTest, ManyConcurrentCalls) {
  corelet::run([] {
    std::atomic<int> in_flight{0}, peak{0};
    // Each call stays until two calls have been in flight at once (all give
    // up 30 s after the start): the overlap is waited for, not left to the
    // timing of short sleeps. Calls serialized on one helper never overlap.
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    std::vector<corelet::Task<int>> ts;
    for (int i = 0; i < 32; ++i)
      ts.push_back(corelet::spawn([&, i] {
        return corelet::run_blocking([&, i] {
          const int now = ++in_flight;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {}
          while (peak.load() < 2 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
          --in_flight;
          return i;
        });
      }));
    int sum = 0;
    for (auto& t : ts) sum += t.join();
    EXPECT_EQ(sum, 31 * 32 / 2);
    EXPECT_GT(peak.load(), 1);  // calls overlapped on several helpers
  });
}

TEST_F(BlockingTest, CancellationRequestsStopAndWaitsForTheCall) {
  corelet::run([] {
    std::atomic<bool> started{false}, finished{false};
    auto t = corelet::spawn([&] {
      corelet::run_blocking([&](std::stop_token st) {
        started = true;
        while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
        finished = true;
      });
    });
    while (!started) corelet::this_tasklet::sleep_for(1ms);
    t.cancel();
    EXPECT_THROW(t.join(), corelet::Cancelled);
    EXPECT_TRUE(finished.load());  // the tasklet did not leave before the call returned
  });
}

TEST_F(BlockingTest, OutsideATaskletIsAUsageError) {
  EXPECT_THROW(corelet::run_blocking([] { return 1; }), corelet::UsageError);
}

}  // namespace
