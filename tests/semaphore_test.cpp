// Tests for <corelet/sched/semaphore.hpp>: Semaphore and BoundedSemaphore.
//
// Behaviour shared by both (counting, FIFO hand-off, no barging, timeouts) is a
// TYPED_TEST; cancellation and "outside a tasklet" are TEST_Ps over tables of
// (type, call).

#include "support.hpp"

#include <corelet/corelet.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace {

using namespace corelet_test;
using corelet::BoundedSemaphore;
using corelet::Clock;
using corelet::Semaphore;
namespace this_tasklet = corelet::this_tasklet;

// ---------------------------------------------------------------------------
// Behaviour common to Semaphore and BoundedSemaphore.

template <class S>
class SemaphoreTypesTest : public CoreletTest {};
using SemaphoreTypes = ::testing::Types<Semaphore, BoundedSemaphore>;
TYPED_TEST_SUITE(SemaphoreTypesTest, SemaphoreTypes);

TYPED_TEST(SemaphoreTypesTest, CountsUnits) {
  TypeParam s(3);
  std::vector<std::size_t> values;
  std::vector<bool> took;
  values.push_back(s.value());
  for (int i = 0; i < 4; ++i) took.push_back(s.try_acquire());
  values.push_back(s.value());
  corelet::run([&] {
    s.release();
    values.push_back(s.value());
    s.acquire();  // a free unit: does not park
    values.push_back(s.value());
    s.release(3);
    values.push_back(s.value());
  });
  EXPECT_EQ(took, (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(values, (std::vector<std::size_t>{3, 0, 1, 0, 3}));
}

TYPED_TEST(SemaphoreTypesTest, LimitsConcurrencyToTheCount) {
  TypeParam s(2);
  int inside = 0;
  int max_inside = 0;
  int completed = 0;
  corelet::run([&] {
    std::vector<corelet::Task<void>> tasks;
    for (int w = 0; w < 6; ++w)
      tasks.push_back(corelet::spawn([&] {
        for (int r = 0; r < 5; ++r) {
          s.acquire();
          max_inside = std::max(max_inside, ++inside);
          this_tasklet::yield();
          --inside;
          ++completed;
          s.release();
        }
      }));
    for (auto& t : tasks) t.join();
  });
  EXPECT_EQ(max_inside, 2);  // never more than 2, and 2 did run at once
  EXPECT_EQ(completed, 30);
  EXPECT_EQ(s.value(), 2u);
}

TYPED_TEST(SemaphoreTypesTest, ReleaseWakesWaitersInArrivalOrder) {
  TypeParam s(3);
  std::vector<int> arrivals;
  std::vector<int> acquired;
  std::vector<std::size_t> waiting_seen;
  std::vector<std::size_t> acquired_seen;
  std::vector<std::size_t> value_seen;
  corelet::run([&] {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s.try_acquire());
    std::vector<corelet::Task<void>> waiters;
    constexpr int kWaiters = 3;
    for (int i = 0; i < kWaiters; ++i)
      waiters.push_back(corelet::spawn([&, i] {
        yield_n(kWaiters - i);  // arrive in the reverse of the spawn order
        arrivals.push_back(i);
        s.acquire();
        acquired.push_back(i);
      }));
    yield_n(kWaiters + 2);
    waiting_seen.push_back(s.waiting());
    s.release(2);  // two units: the two longest waiters, in order
    yield_n(2);
    waiting_seen.push_back(s.waiting());
    acquired_seen.push_back(acquired.size());
    value_seen.push_back(s.value());
    s.release();
    yield_n(2);
    waiting_seen.push_back(s.waiting());
    acquired_seen.push_back(acquired.size());
    value_seen.push_back(s.value());
    for (auto& w : waiters) w.join();
    s.release(3);  // give back the waiters' units
  });
  EXPECT_EQ(waiting_seen, (std::vector<std::size_t>{3, 1, 0}));
  EXPECT_EQ(acquired_seen, (std::vector<std::size_t>{2, 3}));
  EXPECT_EQ(value_seen, (std::vector<std::size_t>{0, 0}));  // units went to waiters, not the count
  EXPECT_EQ(acquired, arrivals);
  EXPECT_EQ(arrivals, (std::vector<int>{2, 1, 0}));
  EXPECT_EQ(s.value(), 3u);
}

// A unit released while a tasklet waits belongs to that waiter: the releasing
// tasklet cannot take it back before the waiter runs.
TYPED_TEST(SemaphoreTypesTest, NoBargingPastAWaiter) {
  TypeParam s(1);
  bool barged = true;
  bool waiter_got = false;
  corelet::run([&] {
    s.acquire();
    auto w = corelet::spawn([&] {
      s.acquire();
      waiter_got = true;
      s.release();
    });
    yield_n(2);
    s.release();
    barged = s.try_acquire();
    w.join();
  });
  EXPECT_FALSE(barged);
  EXPECT_TRUE(waiter_got);
  EXPECT_EQ(s.value(), 1u);
}

TYPED_TEST(SemaphoreTypesTest, TimedAcquireTimesOutWithoutTakingAUnit) {
  TypeParam s(1);
  TimedWaits w;
  bool got_past = true;
  std::size_t waiting_after = 1;
  corelet::run([&] {
    s.acquire();
    w = timed_waits([&](auto d) { return s.try_acquire_for(d); }, [&](auto t) { return s.try_acquire_until(t); });
    got_past = s.try_acquire_until(Clock::now() - 1s);
    waiting_after = s.waiting();
    s.release();  // the timed-out calls hold nothing: this is the only unit out
  });
  expect_both_timed_out(w);
  EXPECT_FALSE(got_past);
  EXPECT_EQ(waiting_after, 0u);
  EXPECT_EQ(s.value(), 1u);
}

TYPED_TEST(SemaphoreTypesTest, TimedAcquireSucceedsWhenReleasedBeforeDeadline) {
  TypeParam s(2);
  bool got_for = false;
  bool got_until = false;
  corelet::run([&] {
    s.acquire();
    s.acquire();
    auto a = corelet::spawn([&] { got_for = s.try_acquire_for(1h); });
    auto b = corelet::spawn([&] { got_until = s.try_acquire_until(Clock::now() + 1h); });
    yield_n(2);
    EXPECT_EQ(s.waiting(), 2u);
    s.release(2);
    a.join();
    b.join();
    s.release(2);
  });
  EXPECT_TRUE(got_for);
  EXPECT_TRUE(got_until);
  EXPECT_EQ(s.value(), 2u);
}

// ---------------------------------------------------------------------------
// Semaphore / BoundedSemaphore specifics.

class SemaphoreTest : public CoreletTest {};

TEST_F(SemaphoreTest, UnboundedReleaseRaisesTheCountPastTheInitialValue) {
  Semaphore s(0);
  s.release();
  s.release(4);
  EXPECT_EQ(s.value(), 5u);
  int took = 0;
  while (s.try_acquire()) ++took;
  EXPECT_EQ(took, 5);
  EXPECT_EQ(s.value(), 0u);
}

TEST_F(SemaphoreTest, BoundedSemaphoreOverReleaseIsUsageError) {
  BoundedSemaphore s(2);
  std::vector<std::size_t> values;
  expect_usage_error([&] { s.release(); }, "BoundedSemaphore::release");
  values.push_back(s.value());
  corelet::run([&] {
    s.acquire();
    expect_usage_error([&] { s.release(2); }, "BoundedSemaphore::release");  // only one is out
    values.push_back(s.value());
    s.release();
    values.push_back(s.value());
    expect_usage_error([&] { s.release(); }, "BoundedSemaphore::release");
    values.push_back(s.value());
  });
  EXPECT_EQ(values, (std::vector<std::size_t>{2, 1, 2, 2}));
}

// ---------------------------------------------------------------------------
// Table: blocking calls outside any tasklet are UsageErrors naming the call —
// whether or not a unit is free ("Blocking forms need a tasklet").

struct OutsideCase {
  const char* call;
  const char* situation;
  std::function<void()> body;
};
void PrintTo(const OutsideCase& c, std::ostream* os) { *os << c.call << " (" << c.situation << ")"; }

const OutsideCase kOutsideCases[] = {
    {"Semaphore::acquire", "empty", [] { Semaphore s(0); s.acquire(); }},
    {"Semaphore::try_acquire_for", "empty", [] { Semaphore s(0); (void)s.try_acquire_for(1s); }},
    {"Semaphore::try_acquire_until", "empty",
     [] { Semaphore s(0); (void)s.try_acquire_until(Clock::now() + 1s); }},
    {"Semaphore::acquire", "unit_free", [] { Semaphore s(1); s.acquire(); }},
    {"Semaphore::try_acquire_for", "unit_free", [] { Semaphore s(1); (void)s.try_acquire_for(1s); }},
    {"Semaphore::try_acquire_until", "unit_free",
     [] { Semaphore s(1); (void)s.try_acquire_until(Clock::now() + 1s); }},
    {"Semaphore::acquire", "bounded_unit_free", [] { BoundedSemaphore s(1); s.acquire(); }},
};

class SemaphoreOutsideTaskletTest : public CoreletTestP<OutsideCase> {};

TEST_P(SemaphoreOutsideTaskletTest, IsUsageErrorNamingTheCall) {
  expect_usage_error(GetParam().body, GetParam().call);
}

INSTANTIATE_TEST_SUITE_P(Calls, SemaphoreOutsideTaskletTest, ::testing::ValuesIn(kOutsideCases),
                         [](const auto& p) {
                           return test_name(p.param.call) + "_" + p.param.situation;
                         });

// try_acquire never blocks: it works anywhere.
TEST_F(SemaphoreTest, TryAcquireWorksOutsideATasklet) {
  Semaphore s(1);
  EXPECT_TRUE(s.try_acquire());
  EXPECT_FALSE(s.try_acquire());
  EXPECT_EQ(s.value(), 0u);
}

// ---------------------------------------------------------------------------
// Table: an acquire parked on an empty semaphore is cancelled. It throws
// Cancelled, its stack unwinds, it takes no unit, and the next release goes to
// the next waiter.

template <class S>
void cancel_blocked_acquire(const std::function<bool(S&)>& call) {
  S s(1);
  bool reached = false;
  bool returned = false;
  bool unwound = false;
  bool cancelled_thrown = false;
  bool second_got = false;
  std::size_t waiting_before = 0;
  std::size_t waiting_after = 0;
  std::size_t value_after_cancel = 1;
  std::size_t value_after_release = 1;
  corelet::run([&] {
    s.acquire();
    auto victim = corelet::spawn([&] {
      Sentinel guard{&unwound};
      reached = true;
      (void)call(s);
      returned = true;
    });
    auto second = corelet::spawn([&] {
      s.acquire();
      second_got = true;
      s.release();
    });
    yield_n(3);
    waiting_before = s.waiting();
    cancelled_thrown = cancel_and_join(victim);
    waiting_after = s.waiting();
    value_after_cancel = s.value();
    s.release();  // must go to `second`
    value_after_release = s.value();
    second.join();
  });
  EXPECT_TRUE(reached);
  EXPECT_EQ(waiting_before, 2u);
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(unwound);
  EXPECT_EQ(waiting_after, 1u);
  EXPECT_EQ(value_after_cancel, 0u);
  EXPECT_EQ(value_after_release, 0u);
  EXPECT_TRUE(second_got);
  EXPECT_EQ(s.value(), 1u);
  EXPECT_EQ(s.waiting(), 0u);
}

struct CancelCase {
  const char* call;
  std::function<void()> body;
};
void PrintTo(const CancelCase& c, std::ostream* os) { *os << c.call; }

template <class S>
void cancel_acquire() {
  cancel_blocked_acquire<S>([](S& s) { s.acquire(); return true; });
}
template <class S>
void cancel_try_acquire_for() {
  cancel_blocked_acquire<S>([](S& s) { return s.try_acquire_for(1h); });
}
template <class S>
void cancel_try_acquire_until() {
  cancel_blocked_acquire<S>([](S& s) { return s.try_acquire_until(Clock::now() + 1h); });
}

const CancelCase kCancelCases[] = {
    {"Semaphore::acquire", cancel_acquire<Semaphore>},
    {"Semaphore::try_acquire_for", cancel_try_acquire_for<Semaphore>},
    {"Semaphore::try_acquire_until", cancel_try_acquire_until<Semaphore>},
    {"BoundedSemaphore::acquire", cancel_acquire<BoundedSemaphore>},
    {"BoundedSemaphore::try_acquire_for", cancel_try_acquire_for<BoundedSemaphore>},
    {"BoundedSemaphore::try_acquire_until", cancel_try_acquire_until<BoundedSemaphore>},
};

class SemaphoreCancelTest : public CoreletTestP<CancelCase> {};

TEST_P(SemaphoreCancelTest, BlockedCallThrowsCancelledAndTakesNoUnit) { GetParam().body(); }

INSTANTIATE_TEST_SUITE_P(Calls, SemaphoreCancelTest, ::testing::ValuesIn(kCancelCases),
                         [](const auto& p) { return test_name(p.param.call); });

}  // namespace
