// Tests for <corelet/sched/wait_group.hpp>: WaitGroup (Go's sync.WaitGroup).
//
// The "blocked wait is cancelled" and "outside a tasklet" checks are TEST_Ps
// over the three wait forms.

#include "support.hpp"

#include <corelet/corelet.hpp>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace {

using namespace corelet_test;
using corelet::Clock;
using corelet::WaitGroup;
namespace this_tasklet = corelet::this_tasklet;

class WaitGroupTest : public CoreletTest {};

TEST_F(WaitGroupTest, CountsAddAndDone) {
  WaitGroup wg(2);
  std::vector<std::int64_t> counts;
  counts.push_back(wg.count());
  wg.add(3);
  counts.push_back(wg.count());
  wg.done();
  counts.push_back(wg.count());
  wg.add(-4);
  counts.push_back(wg.count());
  EXPECT_EQ(counts, (std::vector<std::int64_t>{2, 5, 4, 0}));
}

TEST_F(WaitGroupTest, WaitReturnsWhenTheCounterReachesZero) {
  WaitGroup wg;
  constexpr int kWorkers = 4;
  int finished = 0;
  int finished_when_wait_returned = -1;
  corelet::run([&] {
    wg.add(kWorkers);
    std::vector<corelet::Task<void>> workers;
    for (int i = 0; i < kWorkers; ++i)
      workers.push_back(corelet::spawn([&, i] {
        yield_n(i + 1);  // finish at different times
        ++finished;
        wg.done();
      }));
    wg.wait();
    finished_when_wait_returned = finished;
    for (auto& w : workers) w.join();
  });
  EXPECT_EQ(finished_when_wait_returned, kWorkers);
  EXPECT_EQ(wg.count(), 0);
}

TEST_F(WaitGroupTest, EveryWaiterIsWoken) {
  WaitGroup wg(1);
  int woken = 0;
  int woken_before_done = -1;
  corelet::run([&] {
    std::vector<corelet::Task<void>> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.push_back(corelet::spawn([&] {
        wg.wait();
        ++woken;
      }));
    yield_n(3);
    woken_before_done = woken;
    wg.done();
    for (auto& w : waiters) w.join();
  });
  EXPECT_EQ(woken_before_done, 0);
  EXPECT_EQ(woken, 3);
}

TEST_F(WaitGroupTest, WaitAtZeroReturnsAtOnce) {
  WaitGroup wg;
  bool other_ran_first = true;
  bool other_ran = false;
  std::vector<bool> results;
  corelet::run([&] {
    auto other = corelet::spawn([&] { other_ran = true; });
    wg.wait();  // does not park
    results.push_back(wg.wait_for(0ms));
    results.push_back(wg.wait_until(Clock::now() - 1s));
    other_ran_first = other_ran;
    other.join();
  });
  EXPECT_FALSE(other_ran_first);
  EXPECT_EQ(results, (std::vector<bool>{true, true}));
}

TEST_F(WaitGroupTest, TimedWaitReturnsFalseAfterTheTimeout) {
  WaitGroup wg(1);
  TimedWaits w;
  std::int64_t count_after = 0;
  corelet::run([&] {
    w = timed_waits([&](auto d) { return wg.wait_for(d); }, [&](auto t) { return wg.wait_until(t); });
    count_after = wg.count();
    wg.done();
  });
  expect_both_timed_out(w);
  EXPECT_EQ(count_after, 1);
}

TEST_F(WaitGroupTest, TimedWaitReturnsTrueWhenDoneBeforeDeadline) {
  WaitGroup wg(2);
  bool r_for = false;
  bool r_until = false;
  corelet::run([&] {
    auto a = corelet::spawn([&] { r_for = wg.wait_for(1h); });
    auto b = corelet::spawn([&] { r_until = wg.wait_until(Clock::now() + 1h); });
    yield_n(2);
    wg.done();
    yield_n(2);
    EXPECT_FALSE(a.done());  // one still outstanding
    wg.done();
    a.join();
    b.join();
  });
  EXPECT_TRUE(r_for);
  EXPECT_TRUE(r_until);
}

TEST_F(WaitGroupTest, ReusableAfterReachingZero) {
  WaitGroup wg;
  std::vector<int> rounds;
  corelet::run([&] {
    for (int round = 0; round < 3; ++round) {
      wg.add(2);
      auto w1 = corelet::spawn([&] { yield_n(2); wg.done(); });
      auto w2 = corelet::spawn([&] { yield_n(1); wg.done(); });
      wg.wait();
      rounds.push_back(round);
      EXPECT_EQ(wg.count(), 0);
      w1.join();
      w2.join();
    }
  });
  EXPECT_EQ(rounds, (std::vector<int>{0, 1, 2}));
}

TEST_F(WaitGroupTest, CounterBelowZeroIsUsageError) {
  WaitGroup wg;
  expect_usage_error([&] { wg.done(); }, "WaitGroup");
  EXPECT_EQ(wg.count(), 0);
  wg.add(1);
  expect_usage_error([&] { wg.add(-2); }, "WaitGroup");
  EXPECT_EQ(wg.count(), 1);  // the failed add changed nothing
  wg.done();
  EXPECT_EQ(wg.count(), 0);
  expect_usage_error([] { WaitGroup bad(-1); }, "WaitGroup");
}

// ---------------------------------------------------------------------------
// Tables over the wait forms.

struct WaitCall {
  const char* name;
  std::function<bool(WaitGroup&)> wait;
};
void PrintTo(const WaitCall& c, std::ostream* os) { *os << c.name; }

const WaitCall kWaitCalls[] = {
    {"WaitGroup::wait", [](WaitGroup& wg) { wg.wait(); return true; }},
    {"WaitGroup::wait_for", [](WaitGroup& wg) { return wg.wait_for(1h); }},
    {"WaitGroup::wait_until", [](WaitGroup& wg) { return wg.wait_until(Clock::now() + 1h); }},
};

class WaitGroupWaitTableTest : public CoreletTestP<WaitCall> {};

TEST_P(WaitGroupWaitTableTest, OutsideATaskletIsUsageError) {
  WaitGroup wg(1);
  expect_usage_error([&] { (void)GetParam().wait(wg); }, "WaitGroup::wait");
  EXPECT_EQ(wg.count(), 1);
}

// A parked wait is cancelled: it throws Cancelled, its stack unwinds, the
// counter is untouched, and the other waiters are still woken at zero.
TEST_P(WaitGroupWaitTableTest, BlockedWaitThrowsCancelled) {
  WaitGroup wg(1);
  bool reached = false;
  bool returned = false;
  bool unwound = false;
  bool cancelled_thrown = false;
  bool bystander_result = false;
  bool bystander_done_before = true;
  std::int64_t count_after_cancel = -1;
  corelet::run([&] {
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      reached = true;
      (void)GetParam().wait(wg);
      returned = true;
    });
    auto bystander = corelet::spawn([&] { bystander_result = GetParam().wait(wg); });
    yield_n(3);
    cancelled_thrown = cancel_and_join(victim);
    count_after_cancel = wg.count();
    bystander_done_before = bystander.done();
    wg.done();
    bystander.join();
  });
  EXPECT_TRUE(reached);
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(unwound);
  EXPECT_EQ(count_after_cancel, 1);
  EXPECT_FALSE(bystander_done_before);
  EXPECT_TRUE(bystander_result);
  EXPECT_EQ(wg.count(), 0);
}

INSTANTIATE_TEST_SUITE_P(Calls, WaitGroupWaitTableTest, ::testing::ValuesIn(kWaitCalls),
                         [](const auto& p) { return test_name(p.param.name); });

}  // namespace
