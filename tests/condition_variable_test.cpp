// Tests for <corelet/sched/condition_variable.hpp>: ConditionVariable.
//
// The "blocked wait is cancelled" check is a TEST_P over every wait form
// crossed with the two places a cancellation can hit: while parked on the
// condition variable, and while re-acquiring the lock after a notification.

#include "support.hpp"

#include <corelet/corelet.hpp>

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace corelet_test;
using corelet::Clock;
using corelet::ConditionVariable;
using corelet::Mutex;
using corelet::RecursiveMutex;
namespace this_tasklet = corelet::this_tasklet;

class ConditionVariableTest : public CoreletTest {};

TEST_F(ConditionVariableTest, NotifyOneWakesTheLongestWaiterFirst) {
  Mutex m;
  ConditionVariable cv;
  std::vector<int> arrivals;
  std::vector<int> woken;
  std::vector<std::size_t> waiting_seen;
  std::vector<std::size_t> woken_count_seen;
  corelet::run([&] {
    std::vector<corelet::Task<void>> waiters;
    constexpr int kWaiters = 3;
    for (int i = 0; i < kWaiters; ++i)
      waiters.push_back(corelet::spawn([&, i] {
        yield_n(kWaiters - i);  // arrive in the reverse of the spawn order
        std::unique_lock lk(m);
        arrivals.push_back(i);
        cv.wait(lk);
        woken.push_back(i);
      }));
    yield_n(kWaiters + 2);
    waiting_seen.push_back(cv.waiting());
    for (int i = 0; i < kWaiters; ++i) {
      cv.notify_one();
      yield_n(2);
      waiting_seen.push_back(cv.waiting());
      woken_count_seen.push_back(woken.size());
    }
    for (auto& w : waiters) w.join();
  });
  EXPECT_EQ(waiting_seen, (std::vector<std::size_t>{3, 2, 1, 0}));
  EXPECT_EQ(woken_count_seen, (std::vector<std::size_t>{1, 2, 3}));  // exactly one per notify
  EXPECT_EQ(woken, arrivals);
  EXPECT_EQ(arrivals, (std::vector<int>{2, 1, 0}));
}

TEST_F(ConditionVariableTest, NotifyAllWakesEveryWaiter) {
  Mutex m;
  ConditionVariable cv;
  bool go = false;
  int woken = 0;
  std::size_t waiting_before = 0;
  std::size_t waiting_after = 1;
  corelet::run([&] {
    std::vector<corelet::Task<void>> waiters;
    for (int i = 0; i < 4; ++i)
      waiters.push_back(corelet::spawn([&] {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return go; });
        ++woken;
      }));
    yield_n(2);
    waiting_before = cv.waiting();
    {
      std::lock_guard lk(m);
      go = true;
    }
    cv.notify_all();
    waiting_after = cv.waiting();
    for (auto& w : waiters) w.join();
  });
  EXPECT_EQ(waiting_before, 4u);
  EXPECT_EQ(waiting_after, 0u);
  EXPECT_EQ(woken, 4);
}

// A notification with nobody waiting is not remembered.
TEST_F(ConditionVariableTest, NotifyWithoutWaitersIsLost) {
  Mutex m;
  ConditionVariable cv;
  std::cv_status st = std::cv_status::no_timeout;
  corelet::run([&] {
    cv.notify_one();
    cv.notify_all();
    std::unique_lock lk(m);
    st = cv.wait_for(lk, 10ms);
  });
  EXPECT_EQ(st, std::cv_status::timeout);
}

TEST_F(ConditionVariableTest, TimedWaitTimesOutWithTheLockHeld) {
  Mutex m;
  ConditionVariable cv;
  std::cv_status st_for = std::cv_status::no_timeout;
  std::cv_status st_until = std::cv_status::no_timeout;
  std::int64_t waited_for = 0;
  std::int64_t waited_until = 0;
  bool held_after_for = false;
  bool held_after_until = false;
  bool pred_result = true;
  std::int64_t waited_pred = 0;
  corelet::run([&] {
    std::unique_lock lk(m);
    auto t0 = Clock::now();
    st_for = cv.wait_for(lk, 20ms);
    waited_for = elapsed_us(t0);
    held_after_for = lk.owns_lock() && m.owner_id() == this_tasklet::id();
    t0 = Clock::now();
    st_until = cv.wait_until(lk, t0 + 20ms);
    waited_until = elapsed_us(t0);
    held_after_until = lk.owns_lock() && m.owner_id() == this_tasklet::id();
    t0 = Clock::now();
    pred_result = cv.wait_for(lk, 20ms, [] { return false; });
    waited_pred = elapsed_us(t0);
  });
  EXPECT_EQ(st_for, std::cv_status::timeout);
  EXPECT_EQ(st_until, std::cv_status::timeout);
  EXPECT_FALSE(pred_result);
  EXPECT_GE(waited_for, us(20ms));
  EXPECT_GE(waited_until, us(20ms));
  EXPECT_GE(waited_pred, us(20ms));
  EXPECT_TRUE(held_after_for);
  EXPECT_TRUE(held_after_until);
  EXPECT_FALSE(m.locked());
}

TEST_F(ConditionVariableTest, TimedWaitReturnsNoTimeoutWhenNotifiedBeforeDeadline) {
  Mutex m;
  ConditionVariable cv;
  bool flag = false;
  std::cv_status st = std::cv_status::timeout;
  bool pred_for = false;
  bool pred_until = false;
  corelet::run([&] {
    auto a = corelet::spawn([&] {
      std::unique_lock lk(m);
      st = cv.wait_for(lk, 1h);
    });
    auto b = corelet::spawn([&] {
      std::unique_lock lk(m);
      pred_for = cv.wait_for(lk, 1h, [&] { return flag; });
    });
    auto c = corelet::spawn([&] {
      std::unique_lock lk(m);
      pred_until = cv.wait_until(lk, Clock::now() + 1h, [&] { return flag; });
    });
    yield_n(2);
    EXPECT_EQ(cv.waiting(), 3u);
    cv.notify_all();  // b and c see flag == false and wait again
    yield_n(2);
    EXPECT_TRUE(a.done());
    EXPECT_EQ(cv.waiting(), 2u);
    {
      std::lock_guard lk(m);
      flag = true;
    }
    cv.notify_all();
    a.join();
    b.join();
    c.join();
  });
  EXPECT_EQ(st, std::cv_status::no_timeout);
  EXPECT_TRUE(pred_for);
  EXPECT_TRUE(pred_until);
}

// wait() re-acquires the lock before returning: a notifier that keeps holding
// the lock keeps the woken waiter inside wait().
TEST_F(ConditionVariableTest, WokenWaiterReacquiresTheLockBeforeReturning) {
  Mutex m;
  ConditionVariable cv;
  bool returned_while_notifier_held = true;
  bool returned = false;
  bool waiter_held_on_return = false;
  corelet::run([&] {
    auto w = corelet::spawn([&] {
      std::unique_lock lk(m);
      cv.wait(lk);
      returned = true;
      waiter_held_on_return = lk.owns_lock() && m.owner_id() == this_tasklet::id();
    });
    yield_n(2);
    m.lock();
    cv.notify_one();
    yield_n(3);
    returned_while_notifier_held = returned;
    m.unlock();
    w.join();
  });
  EXPECT_FALSE(returned_while_notifier_held);
  EXPECT_TRUE(returned);
  EXPECT_TRUE(waiter_held_on_return);
  EXPECT_FALSE(m.locked());
}

TEST_F(ConditionVariableTest, WorksWithRecursiveMutexHeldOnce) {
  RecursiveMutex m;
  ConditionVariable cv;
  int produced = 0;
  std::vector<int> consumed;
  corelet::run([&] {
    auto consumer = corelet::spawn([&] {
      for (int i = 0; i < 3; ++i) {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return produced > i; });
        consumed.push_back(produced);
      }
    });
    for (int i = 1; i <= 3; ++i) {
      yield_n(2);
      std::lock_guard lk(m);
      produced = i;
      cv.notify_one();
    }
    consumer.join();
  });
  EXPECT_EQ(consumed, (std::vector<int>{1, 2, 3}));
  EXPECT_FALSE(m.locked());
}

// A minimal BasicLockable that needs no tasklet, to reach the wait itself.
struct NullLock {
  void lock() {}
  void unlock() {}
};

TEST_F(ConditionVariableTest, WaitOutsideATaskletIsUsageError) {
  ConditionVariable cv;
  NullLock lk;
  const std::vector<std::function<void()>> calls = {
      [&] { cv.wait(lk); },
      [&] { cv.wait(lk, [] { return false; }); },
      [&] { (void)cv.wait_for(lk, 1s); },
      [&] { (void)cv.wait_until(lk, Clock::now() + 1s); },
      [&] { (void)cv.wait_for(lk, 1s, [] { return false; }); },
  };
  for (std::size_t i = 0; i < calls.size(); ++i) {
    SCOPED_TRACE(i);
    expect_usage_error(calls[i], "ConditionVariable::wait");
  }
  EXPECT_EQ(cv.waiting(), 0u);
}

// Waiting with a lock the tasklet does not hold is an error of the lock's
// unlock(); the condition variable must not keep the failed waiter queued.
TEST_F(ConditionVariableTest, WaitWithoutHoldingTheLockThrowsAndLeavesNoWaiter) {
  Mutex m;
  ConditionVariable cv;
  std::size_t waiting_after = 1;
  bool later_waiter_woken = false;
  corelet::run([&] {
    expect_usage_error([&] { cv.wait(m); }, "Mutex::unlock");
    waiting_after = cv.waiting();
    auto w = corelet::spawn([&] {
      std::unique_lock lk(m);
      later_waiter_woken = cv.wait_for(lk, 1h) == std::cv_status::no_timeout;
    });
    yield_n(2);
    cv.notify_one();  // must reach w, not the failed waiter's stale entry
    w.join();
  });
  EXPECT_EQ(waiting_after, 0u);
  EXPECT_TRUE(later_waiter_woken);
}

// ---------------------------------------------------------------------------
// Table: a wait is cancelled. It throws Cancelled with the lock re-acquired,
// its stack unwinds, and the condition variable goes on serving other waiters.

using Lock = std::unique_lock<Mutex>;

struct WaitCall {
  const char* name;
  std::function<void(ConditionVariable&, Lock&)> wait;
};
void PrintTo(const WaitCall& c, std::ostream* os) { *os << c.name; }

const WaitCall kWaitCalls[] = {
    {"wait", [](ConditionVariable& cv, Lock& lk) { cv.wait(lk); }},
    {"wait_pred", [](ConditionVariable& cv, Lock& lk) { cv.wait(lk, [] { return false; }); }},
    {"wait_for", [](ConditionVariable& cv, Lock& lk) { (void)cv.wait_for(lk, 1h); }},
    {"wait_for_pred",
     [](ConditionVariable& cv, Lock& lk) { (void)cv.wait_for(lk, 1h, [] { return false; }); }},
    {"wait_until", [](ConditionVariable& cv, Lock& lk) { (void)cv.wait_until(lk, Clock::now() + 1h); }},
    {"wait_until_pred", [](ConditionVariable& cv, Lock& lk) {
       (void)cv.wait_until(lk, Clock::now() + 1h, [] { return false; });
     }},
};

// Where the cancellation hits the waiter.
enum class Phase {
  Parked,       // parked on the condition variable
  Reacquiring,  // notified, parked on the mutex the notifier still holds
};

void PrintTo(Phase ph, std::ostream* os) { *os << (ph == Phase::Parked ? "Parked" : "Reacquiring"); }

using CancelParam = std::tuple<WaitCall, Phase>;

class ConditionVariableCancelTest : public CoreletTestP<CancelParam> {};

TEST_P(ConditionVariableCancelTest, ThrowsCancelledWithTheLockHeld) {
  const WaitCall& call = std::get<0>(GetParam());
  const Phase phase = std::get<1>(GetParam());
  Mutex m;
  ConditionVariable cv;
  bool flag = false;  // the bystander's predicate
  bool reached = false;
  bool returned = false;
  bool unwound = false;
  bool cancelled_thrown = false;
  bool held_in_catch = false;
  bool done_while_lock_held = true;
  std::size_t waiting_before = 0;
  std::size_t waiting_after = 0;
  bool bystander_woken = false;
  corelet::run([&] {
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      Lock lk(m);
      reached = true;
      try {
        call.wait(cv, lk);
        returned = true;
      } catch (const corelet::Cancelled&) {
        held_in_catch = lk.owns_lock() && m.owner_id() == this_tasklet::id();
        throw;
      }
    });
    auto bystander = corelet::spawn([&] {
      Lock lk(m);
      cv.wait(lk, [&] { return flag; });
      bystander_woken = true;
    });
    yield_n(3);
    EXPECT_TRUE(reached);
    waiting_before = cv.waiting();
    m.lock();
    if (phase == Phase::Reacquiring) {
      cv.notify_all();
      yield_n(3);  // both woken waiters now park on m, held here
    }
    victim.cancel();
    yield_n(3);  // the victim must not leave wait() without the lock
    done_while_lock_held = victim.done();
    m.unlock();
    try {
      victim.join();
    } catch (const corelet::Cancelled&) {
      cancelled_thrown = true;
    }
    yield_n(3);  // let the bystander settle back into its wait
    waiting_after = cv.waiting();
    m.lock();
    flag = true;
    cv.notify_one();  // must reach the bystander, not the cancelled victim
    m.unlock();
    bystander.join();
  });
  EXPECT_EQ(waiting_before, 2u);
  EXPECT_FALSE(done_while_lock_held);
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(held_in_catch);
  EXPECT_TRUE(unwound);
  EXPECT_EQ(waiting_after, 1u);
  EXPECT_TRUE(bystander_woken);
  EXPECT_FALSE(m.locked());
}

INSTANTIATE_TEST_SUITE_P(
    Calls, ConditionVariableCancelTest,
    ::testing::Combine(::testing::ValuesIn(kWaitCalls), ::testing::Values(Phase::Parked, Phase::Reacquiring)),
    [](const auto& p) {
      return test_name(std::string(std::get<0>(p.param).name) +
                       (std::get<1>(p.param) == Phase::Parked ? "_whileParked" : "_whileReacquiring"));
    });

}  // namespace
