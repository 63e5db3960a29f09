// Tests for <corelet/sched/mutex.hpp>: Mutex and RecursiveMutex.
//
// Behaviour shared by both types (mutual exclusion, FIFO hand-off, timeouts,
// cancellation of a parked lock call) is a TYPED_TEST over both; the "blocked
// call is cancelled" and "called outside a tasklet" checks are TEST_Ps over
// tables of calls.

#include "support.hpp"

#include <corelet/corelet.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using namespace corelet_test;
using corelet::Clock;
using corelet::Mutex;
using corelet::RecursiveMutex;
namespace this_tasklet = corelet::this_tasklet;

// ---------------------------------------------------------------------------
// Behaviour common to Mutex and RecursiveMutex.

template <class M>
class LockableTest : public CoreletTest {};
using LockTypes = ::testing::Types<Mutex, RecursiveMutex>;
TYPED_TEST_SUITE(LockableTest, LockTypes);

TYPED_TEST(LockableTest, MutualExclusionAcrossYields) {
  TypeParam m;
  constexpr int kWorkers = 4;
  constexpr int kRounds = 25;
  int counter = 0;
  int inside = 0;
  int max_inside = 0;
  corelet::run([&] {
    std::vector<corelet::Task<void>> tasks;
    for (int w = 0; w < kWorkers; ++w)
      tasks.push_back(corelet::spawn([&] {
        for (int r = 0; r < kRounds; ++r) {
          std::lock_guard lk(m);
          max_inside = std::max(max_inside, ++inside);
          const int seen = counter;
          this_tasklet::yield();  // every other worker runs now and must park on m
          counter = seen + 1;     // a lost update would show in the final count
          --inside;
        }
      }));
    for (auto& t : tasks) t.join();
  });
  EXPECT_EQ(counter, kWorkers * kRounds);
  EXPECT_EQ(max_inside, 1);
  EXPECT_FALSE(m.locked());
}

TYPED_TEST(LockableTest, HandsOffToWaitersInArrivalOrder) {
  TypeParam m;
  std::vector<int> arrivals;  // the order in which the waiters called lock()
  std::vector<int> owners;    // the order in which they got the mutex
  bool try_lock_while_handed_off = true;
  corelet::run([&] {
    m.lock();
    std::vector<corelet::Task<void>> waiters;
    constexpr int kWaiters = 4;
    for (int i = 0; i < kWaiters; ++i)
      waiters.push_back(corelet::spawn([&, i] {
        yield_n(kWaiters - i);  // arrive in the reverse of the spawn order
        arrivals.push_back(i);
        m.lock();
        owners.push_back(i);
        this_tasklet::yield();
        m.unlock();
      }));
    yield_n(kWaiters + 2);  // every waiter is parked on m now
    EXPECT_EQ(arrivals.size(), static_cast<std::size_t>(kWaiters));
    EXPECT_TRUE(owners.empty());
    m.unlock();
    // Ownership went straight to the first waiter: the unlocking tasklet cannot
    // take it back (no barging).
    EXPECT_TRUE(m.locked());
    try_lock_while_handed_off = m.try_lock();
    for (auto& w : waiters) w.join();
  });
  EXPECT_FALSE(try_lock_while_handed_off);
  EXPECT_EQ(owners, arrivals);
  EXPECT_EQ(arrivals, (std::vector<int>{3, 2, 1, 0}));
  EXPECT_FALSE(m.locked());
}

TYPED_TEST(LockableTest, TryLockDoesNotParkWhenHeld) {
  TypeParam m;
  bool other_got = true;
  bool other_returned_before_owner_resumed = false;
  bool owner_resumed = false;
  corelet::run([&] {
    EXPECT_TRUE(m.try_lock());
    EXPECT_TRUE(m.locked());
    auto t = corelet::spawn([&] {
      other_got = m.try_lock();
      other_returned_before_owner_resumed = !owner_resumed;
    });
    t.join();
    owner_resumed = true;
    m.unlock();
  });
  EXPECT_FALSE(other_got);
  EXPECT_TRUE(other_returned_before_owner_resumed);
  EXPECT_FALSE(m.locked());
}

TYPED_TEST(LockableTest, TimedLockTimesOutWhileHeld) {
  TypeParam m;
  TimedWaits w;
  bool got_past = true;
  corelet::run([&] {
    m.lock();
    auto t = corelet::spawn([&] {
      w = timed_waits([&](auto d) { return m.try_lock_for(d); }, [&](auto t0) { return m.try_lock_until(t0); });
      got_past = m.try_lock_until(Clock::now() - 1s);
    });
    t.join();
    EXPECT_TRUE(m.locked());
    m.unlock();
  });
  expect_both_timed_out(w);
  EXPECT_FALSE(got_past);
  EXPECT_FALSE(m.locked());  // a timed-out call never takes the mutex later
}

TYPED_TEST(LockableTest, TimedLockSucceedsWhenReleasedBeforeDeadline) {
  TypeParam m;
  bool got_for = false;
  bool got_until = false;
  corelet::run([&] {
    m.lock();
    auto a = corelet::spawn([&] {
      got_for = m.try_lock_for(1h);
      if (got_for) m.unlock();
    });
    auto b = corelet::spawn([&] {
      got_until = m.try_lock_until(Clock::now() + 1h);
      if (got_until) m.unlock();
    });
    yield_n(3);
    EXPECT_FALSE(got_for);
    EXPECT_FALSE(got_until);
    m.unlock();
    a.join();
    b.join();
  });
  EXPECT_TRUE(got_for);
  EXPECT_TRUE(got_until);
  EXPECT_FALSE(m.locked());
}

TYPED_TEST(LockableTest, TimedOutWaiterLeavesTheQueue) {
  TypeParam m;
  bool timed_out_got = true;
  bool next_got = false;
  corelet::run([&] {
    m.lock();
    auto timed = corelet::spawn([&] { timed_out_got = m.try_lock_for(10ms); });
    auto next = corelet::spawn([&] {
      m.lock();
      next_got = true;
      m.unlock();
    });
    timed.join();  // returns once the timed waiter gave up
    EXPECT_FALSE(next_got);
    m.unlock();  // must go to `next`, the timed-out waiter is no longer queued
    next.join();
  });
  EXPECT_FALSE(timed_out_got);
  EXPECT_TRUE(next_got);
  EXPECT_FALSE(m.locked());
}

// A waiter cancelled after unlock() already handed it the mutex, but before it
// ran: lock() returns owning (the mutex is not lost), and the cancellation is
// delivered at its next blocking call.
TYPED_TEST(LockableTest, CancelAfterHandOffKeepsTheMutexConsistent) {
  TypeParam m;
  bool got = false;
  bool passed_next_yield = false;
  bool cancelled_thrown = false;
  corelet::run([&] {
    m.lock();
    auto w = corelet::spawn([&] {
      m.lock();
      got = true;
      m.unlock();
      this_tasklet::yield();  // the pending cancellation lands here
      passed_next_yield = true;
    });
    yield_n(2);
    m.unlock();  // hands off to w, which has not run yet
    cancelled_thrown = cancel_and_join(w);
  });
  EXPECT_TRUE(got);
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(passed_next_yield);
  EXPECT_FALSE(m.locked());
}

TYPED_TEST(LockableTest, WorksWithStdUniqueLockTimedConstructor) {
  TypeParam m;
  bool owned_when_held = true;
  bool owned_when_free = false;
  corelet::run([&] {
    m.lock();
    auto t = corelet::spawn([&] {
      std::unique_lock lk(m, 10ms);  // try_lock_for
      owned_when_held = lk.owns_lock();
    });
    t.join();
    m.unlock();
    auto u = corelet::spawn([&] {
      std::unique_lock lk(m, 10ms);
      owned_when_free = lk.owns_lock();
    });
    u.join();
  });
  EXPECT_FALSE(owned_when_held);
  EXPECT_TRUE(owned_when_free);
  EXPECT_FALSE(m.locked());
}

// ---------------------------------------------------------------------------
// Mutex only.

class MutexTest : public CoreletTest {};

TEST_F(MutexTest, OwnerIdIsTheLockingTasklet) {
  Mutex m;
  std::uint64_t owner_while_locked = 0;
  std::uint64_t self = 0;
  std::uint64_t owner_after_unlock = 1;
  corelet::run([&] {
    self = this_tasklet::id();
    m.lock();
    owner_while_locked = m.owner_id();
    m.unlock();
    owner_after_unlock = m.owner_id();
  });
  EXPECT_NE(self, 0u);
  EXPECT_EQ(owner_while_locked, self);
  EXPECT_EQ(owner_after_unlock, 0u);
}

TEST_F(MutexTest, LockingAgainByTheOwnerIsUsageError) {
  Mutex m;
  std::uint64_t owner_after = 0;
  std::uint64_t self = 0;
  corelet::run([&] {
    self = this_tasklet::id();
    m.lock();
    expect_usage_error([&] { m.lock(); }, "Mutex::lock");
    expect_usage_error([&] { (void)m.try_lock_for(1h); }, "Mutex::try_lock_for");
    expect_usage_error([&] { (void)m.try_lock_until(Clock::now() + 1h); }, "Mutex::try_lock_until");
    EXPECT_FALSE(m.try_lock());  // not recursive, and not an error either
    owner_after = m.owner_id();
    m.unlock();
  });
  EXPECT_EQ(owner_after, self);
  EXPECT_FALSE(m.locked());
}

TEST_F(MutexTest, UnlockByNonOwnerIsUsageErrorAndKeepsOwner) {
  Mutex m;
  std::uint64_t owner = 0;
  std::uint64_t owner_after = 0;
  corelet::run([&] {
    m.lock();
    owner = this_tasklet::id();
    auto t = corelet::spawn([&] {
      expect_usage_error([&] { m.unlock(); }, "Mutex::unlock");
      owner_after = m.owner_id();
    });
    t.join();
    m.unlock();
    // Unlocking an unlocked mutex is the same mistake.
    expect_usage_error([&] { m.unlock(); }, "Mutex::unlock");
  });
  EXPECT_EQ(owner_after, owner);
  EXPECT_FALSE(m.locked());
}

TEST_F(MutexTest, WorksWithStdScopedLockOverSeveralMutexes) {
  Mutex a;
  Mutex b;
  int counter = 0;
  int inside = 0;
  int max_inside = 0;
  corelet::run([&] {
    auto worker = [&] {
      for (int i = 0; i < 10; ++i) {
        std::scoped_lock lk(a, b);
        max_inside = std::max(max_inside, ++inside);
        this_tasklet::yield();
        ++counter;
        --inside;
      }
    };
    auto t1 = corelet::spawn(worker);
    auto t2 = corelet::spawn(worker);
    t1.join();
    t2.join();
  });
  EXPECT_EQ(counter, 20);
  EXPECT_EQ(max_inside, 1);
  EXPECT_FALSE(a.locked());
  EXPECT_FALSE(b.locked());
}

// ---------------------------------------------------------------------------
// RecursiveMutex only.

class RecursiveMutexTest : public CoreletTest {};

TEST_F(RecursiveMutexTest, DepthCountsNestedLocks) {
  RecursiveMutex m;
  std::vector<std::size_t> depths;
  std::vector<bool> other_got;
  corelet::run([&] {
    auto other_try = [&] {
      auto t = corelet::spawn([&] { return m.try_lock(); });
      other_got.push_back(t.join());
    };
    m.lock();
    depths.push_back(m.depth());
    EXPECT_TRUE(m.try_lock());
    depths.push_back(m.depth());
    EXPECT_TRUE(m.try_lock_for(1h));
    depths.push_back(m.depth());
    EXPECT_TRUE(m.try_lock_until(Clock::now() + 1h));
    depths.push_back(m.depth());
    other_try();
    m.unlock();
    m.unlock();
    m.unlock();
    depths.push_back(m.depth());
    EXPECT_TRUE(m.locked());
    other_try();
    m.unlock();
    depths.push_back(m.depth());
  });
  EXPECT_EQ(depths, (std::vector<std::size_t>{1, 2, 3, 4, 1, 0}));
  EXPECT_EQ(other_got, (std::vector<bool>{false, false}));
  EXPECT_FALSE(m.locked());
}

TEST_F(RecursiveMutexTest, HandedOffOnlyAfterAsManyUnlocksAsLocks) {
  RecursiveMutex m;
  bool waiter_got = false;
  std::vector<bool> got_seen;
  std::size_t waiter_depth = 0;
  corelet::run([&] {
    m.lock();
    m.lock();
    m.lock();
    auto w = corelet::spawn([&] {
      m.lock();
      waiter_got = true;
      waiter_depth = m.depth();
      m.unlock();
    });
    yield_n(2);
    got_seen.push_back(waiter_got);
    m.unlock();
    yield_n(2);
    got_seen.push_back(waiter_got);
    m.unlock();
    yield_n(2);
    got_seen.push_back(waiter_got);
    m.unlock();
    w.join();
    got_seen.push_back(waiter_got);
  });
  EXPECT_EQ(got_seen, (std::vector<bool>{false, false, false, true}));
  EXPECT_EQ(waiter_depth, 1u);
  EXPECT_FALSE(m.locked());
  EXPECT_EQ(m.depth(), 0u);
}

TEST_F(RecursiveMutexTest, UnlockNotOwnedIsUsageError) {
  RecursiveMutex m;
  std::size_t depth_after = 0;
  corelet::run([&] {
    expect_usage_error([&] { m.unlock(); }, "RecursiveMutex::unlock");  // never locked
    m.lock();
    m.lock();
    auto t = corelet::spawn([&] {
      expect_usage_error([&] { m.unlock(); }, "RecursiveMutex::unlock");  // owned by another
    });
    t.join();
    depth_after = m.depth();
    m.unlock();
    m.unlock();
    expect_usage_error([&] { m.unlock(); }, "RecursiveMutex::unlock");  // one unlock too many
  });
  EXPECT_EQ(depth_after, 2u);
  EXPECT_FALSE(m.locked());
  EXPECT_EQ(m.depth(), 0u);
}

// ---------------------------------------------------------------------------
// Table: every lock call outside any tasklet is a UsageError naming the call.

struct OutsideCase {
  const char* call;
  std::function<void()> body;
};
void PrintTo(const OutsideCase& c, std::ostream* os) { *os << c.call; }

const OutsideCase kOutsideCases[] = {
    {"Mutex::lock", [] { Mutex m; m.lock(); }},
    {"Mutex::try_lock", [] { Mutex m; (void)m.try_lock(); }},
    {"Mutex::try_lock_for", [] { Mutex m; (void)m.try_lock_for(1s); }},
    {"Mutex::try_lock_until", [] { Mutex m; (void)m.try_lock_until(Clock::now() + 1s); }},
    {"Mutex::unlock", [] { Mutex m; m.unlock(); }},
    {"RecursiveMutex::lock", [] { RecursiveMutex m; m.lock(); }},
    {"RecursiveMutex::try_lock", [] { RecursiveMutex m; (void)m.try_lock(); }},
    {"RecursiveMutex::try_lock_for", [] { RecursiveMutex m; (void)m.try_lock_for(1s); }},
    {"RecursiveMutex::try_lock_until", [] { RecursiveMutex m; (void)m.try_lock_until(Clock::now() + 1s); }},
    {"RecursiveMutex::unlock", [] { RecursiveMutex m; m.unlock(); }},
};

class MutexOutsideTaskletTest : public CoreletTestP<OutsideCase> {};

TEST_P(MutexOutsideTaskletTest, IsUsageErrorNamingTheCall) {
  expect_usage_error(GetParam().body, GetParam().call);
}

INSTANTIATE_TEST_SUITE_P(Calls, MutexOutsideTaskletTest, ::testing::ValuesIn(kOutsideCases),
                         [](const auto& p) { return test_name(p.param.call); });

// ---------------------------------------------------------------------------
// Table: a lock call parked on a held mutex is cancelled. It throws Cancelled,
// its stack unwinds, it does not own the mutex, and the next waiter gets it.

template <class M>
void cancel_blocked_lock(const std::function<bool(M&)>& call) {
  M m;
  bool reached = false;
  bool returned = false;
  bool unwound = false;
  bool second_got = false;
  bool locked_after_handoff = false;
  bool cancelled_thrown = false;
  corelet::run([&] {
    m.lock();
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      reached = true;
      (void)call(m);
      returned = true;
    });
    auto second = corelet::spawn([&] {
      m.lock();
      second_got = true;
      m.unlock();
    });
    yield_n(3);
    EXPECT_TRUE(reached);
    EXPECT_FALSE(returned);
    cancelled_thrown = cancel_and_join(victim);
    EXPECT_TRUE(unwound);
    EXPECT_FALSE(second_got);
    m.unlock();  // must go to `second`, not to the cancelled victim
    locked_after_handoff = m.locked();
    if constexpr (std::is_same_v<M, Mutex>) {
      EXPECT_EQ(m.owner_id(), second.id());
    }
    second.join();
  });
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(locked_after_handoff);
  EXPECT_TRUE(second_got);
  EXPECT_FALSE(m.locked());
}

struct CancelCase {
  const char* call;
  std::function<void()> body;
};
void PrintTo(const CancelCase& c, std::ostream* os) { *os << c.call; }

const CancelCase kCancelCases[] = {
    {"Mutex::lock", [] { cancel_blocked_lock<Mutex>([](Mutex& m) { m.lock(); return true; }); }},
    {"Mutex::try_lock_for", [] { cancel_blocked_lock<Mutex>([](Mutex& m) { return m.try_lock_for(1h); }); }},
    {"Mutex::try_lock_until",
     [] { cancel_blocked_lock<Mutex>([](Mutex& m) { return m.try_lock_until(Clock::now() + 1h); }); }},
    {"RecursiveMutex::lock",
     [] { cancel_blocked_lock<RecursiveMutex>([](RecursiveMutex& m) { m.lock(); return true; }); }},
    {"RecursiveMutex::try_lock_for",
     [] { cancel_blocked_lock<RecursiveMutex>([](RecursiveMutex& m) { return m.try_lock_for(1h); }); }},
    {"RecursiveMutex::try_lock_until", [] {
       cancel_blocked_lock<RecursiveMutex>(
           [](RecursiveMutex& m) { return m.try_lock_until(Clock::now() + 1h); });
     }},
};

class MutexCancelTest : public CoreletTestP<CancelCase> {};

TEST_P(MutexCancelTest, BlockedCallThrowsCancelledAndDoesNotOwn) { GetParam().body(); }

INSTANTIATE_TEST_SUITE_P(Calls, MutexCancelTest, ::testing::ValuesIn(kCancelCases),
                         [](const auto& p) { return test_name(p.param.call); });

}  // namespace
