// Tests for <corelet/sched/event.hpp>: Event (threading.Event).
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
using corelet::Event;
namespace this_tasklet = corelet::this_tasklet;

class EventTest : public CoreletTest {};

TEST_F(EventTest, StartsClearAndSetClearToggleTheFlag) {
  Event e;
  std::vector<bool> seen;
  seen.push_back(e.is_set());
  e.set();
  seen.push_back(e.is_set());
  e.set();  // idempotent
  seen.push_back(e.is_set());
  e.clear();
  seen.push_back(e.is_set());
  EXPECT_EQ(seen, (std::vector<bool>{false, true, true, false}));
}

TEST_F(EventTest, SetWakesEveryWaiter) {
  Event e;
  int woken = 0;
  int woken_before_set = -1;
  corelet::run([&] {
    std::vector<corelet::Task<void>> waiters;
    for (int i = 0; i < 4; ++i)
      waiters.push_back(corelet::spawn([&] {
        e.wait();
        ++woken;
      }));
    yield_n(3);
    woken_before_set = woken;
    e.set();
    for (auto& w : waiters) w.join();
  });
  EXPECT_EQ(woken_before_set, 0);
  EXPECT_EQ(woken, 4);
  EXPECT_TRUE(e.is_set());
}

TEST_F(EventTest, WaitOnASetEventReturnsAtOnce) {
  Event e;
  bool other_ran_first = true;
  bool other_ran = false;
  std::vector<bool> results;
  corelet::run([&] {
    e.set();
    auto other = corelet::spawn([&] { other_ran = true; });
    e.wait();  // does not park, so `other` has not run yet
    results.push_back(e.wait_for(0ms));
    results.push_back(e.wait_until(Clock::now() - 1s));
    results.push_back(e.wait_for(1h));
    other_ran_first = other_ran;
    other.join();
  });
  EXPECT_FALSE(other_ran_first);
  EXPECT_EQ(results, (std::vector<bool>{true, true, true}));
}

TEST_F(EventTest, TimedWaitReturnsFalseAfterTheTimeout) {
  Event e;
  TimedWaits w, cleared;
  corelet::run([&] {
    w = timed_waits([&](auto d) { return e.wait_for(d); }, [&](auto t) { return e.wait_until(t); });
    e.set();
    e.clear();  // a cleared event waits again
    cleared = timed_waits([&](auto d) { return e.wait_for(d); }, [&](auto t) { return e.wait_until(t); });
  });
  expect_both_timed_out(w);
  expect_both_timed_out(cleared);
}

TEST_F(EventTest, TimedWaitReturnsTrueWhenSetBeforeDeadline) {
  Event e;
  bool r_for = false;
  bool r_until = false;
  corelet::run([&] {
    auto a = corelet::spawn([&] { r_for = e.wait_for(1h); });
    auto b = corelet::spawn([&] { r_until = e.wait_until(Clock::now() + 1h); });
    yield_n(2);
    EXPECT_FALSE(a.done());
    EXPECT_FALSE(b.done());
    e.set();
    a.join();
    b.join();
  });
  EXPECT_TRUE(r_for);
  EXPECT_TRUE(r_until);
}

// As with threading.Event: a waiter woken by set() returns true even if the
// flag was cleared again before the waiter ran.
TEST_F(EventTest, WokenWaiterSeesTrueEvenIfClearedBeforeItRan) {
  Event e;
  bool r_for = false;
  bool plain_returned = false;
  corelet::run([&] {
    auto a = corelet::spawn([&] { r_for = e.wait_for(1h); });
    auto b = corelet::spawn([&] {
      e.wait();
      plain_returned = true;
    });
    yield_n(2);
    e.set();
    e.clear();
    a.join();
    b.join();
    EXPECT_FALSE(e.is_set());
  });
  EXPECT_TRUE(r_for);
  EXPECT_TRUE(plain_returned);
}

TEST_F(EventTest, ReusableAfterClear) {
  Event e;
  std::vector<int> rounds;
  corelet::run([&] {
    for (int round = 0; round < 3; ++round) {
      auto w = corelet::spawn([&, round] {
        e.wait();
        rounds.push_back(round);
      });
      yield_n(2);
      EXPECT_FALSE(w.done());
      e.set();
      w.join();
      e.clear();
    }
  });
  EXPECT_EQ(rounds, (std::vector<int>{0, 1, 2}));
}

// ---------------------------------------------------------------------------
// Tables over the wait forms.

struct WaitCall {
  const char* name;
  std::function<bool(Event&)> wait;
};
void PrintTo(const WaitCall& c, std::ostream* os) { *os << c.name; }

const WaitCall kWaitCalls[] = {
    {"Event::wait", [](Event& e) { e.wait(); return true; }},
    {"Event::wait_for", [](Event& e) { return e.wait_for(1h); }},
    {"Event::wait_until", [](Event& e) { return e.wait_until(Clock::now() + 1h); }},
};

class EventWaitTableTest : public CoreletTestP<WaitCall> {};

// Outside any tasklet, a wait on a clear event is a UsageError naming the call.
TEST_P(EventWaitTableTest, OutsideATaskletIsUsageError) {
  Event e;
  try {
    (void)GetParam().wait(e);
    ADD_FAILURE() << "no UsageError";
  } catch (const corelet::UsageError& err) {
    EXPECT_NE(std::string(err.what()).find("Event::wait"), std::string::npos) << err.what();
  }
}

// A parked wait is cancelled: it throws Cancelled, its stack unwinds, and the
// event still wakes its other waiters.
TEST_P(EventWaitTableTest, BlockedWaitThrowsCancelled) {
  Event e;
  bool reached = false;
  bool returned = false;
  bool unwound = false;
  bool cancelled_thrown = false;
  bool bystander_result = false;
  bool bystander_done_before_set = true;
  corelet::run([&] {
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      reached = true;
      (void)GetParam().wait(e);
      returned = true;
    });
    auto bystander = corelet::spawn([&] { bystander_result = GetParam().wait(e); });
    yield_n(3);
    cancelled_thrown = cancel_and_join(victim);
    bystander_done_before_set = bystander.done();
    e.set();
    bystander.join();
  });
  EXPECT_TRUE(reached);
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(bystander_done_before_set);
  EXPECT_TRUE(bystander_result);
}

INSTANTIATE_TEST_SUITE_P(Calls, EventWaitTableTest, ::testing::ValuesIn(kWaitCalls),
                         [](const auto& p) { return test_name(p.param.name); });

}  // namespace
