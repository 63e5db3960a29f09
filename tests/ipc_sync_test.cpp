// corelet::ipc::Mutex, RecursiveMutex, Semaphore, Event, Condition, Barrier
// and RobustMutex across real forked processes, from threads and from
// tasklets on each reactor backend, with holders killed while they hold.

#include "ipc_support.hpp"

#include <corelet/ipc/mapping.hpp>
#include <corelet/ipc/sync.hpp>
#include <corelet/sched/task.hpp>
#include <corelet/sched/timer.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using corelet::Clock;
using corelet::ipc::Shared;
using corelet_test::fork_child;
using corelet_test::wait_child;
namespace ipc = corelet::ipc;

namespace {

class IpcSync : public corelet_test::IoTest {};
CORELET_IO_BACKENDS(IpcSync);

Clock::time_point in(std::chrono::milliseconds d) { return Clock::now() + d; }

struct Counter {
  ipc::Mutex m;
  std::uint64_t n = 0;
};

// ---- RobustMutex ----

TEST(IpcRobustMutex, HolderThatDiesHandsItOn) {
  auto m = Shared<ipc::RobustMutex>::make();
  const pid_t child = fork_child([&] {
    m->lock();
    ::raise(SIGKILL);
    return 0;
  });
  EXPECT_EQ(wait_child(child), "signal 9");
  EXPECT_TRUE(m->lock());  // true: the holder died
  EXPECT_EQ(m->owner_deaths(), 1u);
  m->unlock();
  EXPECT_FALSE(m->lock());
  m->unlock();
}

// ---- Mutex ----

TEST(IpcMutex, ThreadsAndProcessesCountUnderIt) {
  auto c = Shared<Counter>::make();
  constexpr int kEach = 2000;
  std::vector<pid_t> kids;
  for (int p = 0; p < 2; ++p)
    kids.push_back(fork_child([&] {
      std::vector<std::thread> ts;
      for (int t = 0; t < 2; ++t)
        ts.emplace_back([&] {
          for (int i = 0; i < kEach; ++i) {
            std::lock_guard g(c->m);
            ++c->n;
          }
        });
      for (auto& t : ts) t.join();
      return 0;
    }));
  for (int i = 0; i < kEach; ++i) {
    std::lock_guard g(c->m);
    ++c->n;
  }
  for (pid_t k : kids) EXPECT_EQ(wait_child(k), "exit 0");
  EXPECT_EQ(c->n, 5u * kEach);
  EXPECT_FALSE(c->m.locked());
}

TEST_P(IpcSync, MutexTaskletsAndProcesses) {
  auto c = Shared<Counter>::make();
  constexpr int kEach = 2000;
  const pid_t kid = fork_child([&] {
    for (int i = 0; i < 2 * kEach; ++i) {
      std::lock_guard g(c->m);
      ++c->n;
    }
    return 0;
  });
  run_io([&] {
    std::vector<corelet::Task<void>> ts;
    for (int t = 0; t < 4; ++t)
      ts.push_back(corelet::spawn([&] {
        for (int i = 0; i < kEach; ++i) {
          std::lock_guard g(c->m);
          ++c->n;
          if (i % 100 == 0) corelet::this_tasklet::yield();  // parked holding it: others park, not the thread
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(wait_child(kid), "exit 0");
  EXPECT_EQ(c->n, 6u * kEach);
}

// A tasklet that sleeps holding the mutex: another tasklet of the same
// thread waits for it by parking (a thread-owned lock would deadlock here).
TEST_P(IpcSync, MutexHeldAcrossAParkParksTheOtherTasklet) {
  auto m = Shared<ipc::Mutex>::make();
  std::vector<int> order;
  run_io([&] {
    auto a = corelet::spawn([&] {
      std::lock_guard g(*m);
      order.push_back(1);
      corelet::this_tasklet::sleep_for(10ms);
      order.push_back(2);
    });
    auto b = corelet::spawn([&] {
      std::lock_guard g(*m);
      order.push_back(3);
    });
    a.join();
    b.join();
  });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_P(IpcSync, MutexTimesOutAndCancels) {
  auto m = Shared<ipc::Mutex>::make();
  m->lock();  // this process holds it
  run_io([&] {
    EXPECT_FALSE(m->try_lock_for(20ms));
    EXPECT_FALSE(m->try_lock());
    auto t = corelet::spawn([&] { m->lock(); });
    corelet::this_tasklet::yield();
    t.cancel();
    EXPECT_THROW(t.join(), corelet::Cancelled);
  });
  m->unlock();
  EXPECT_TRUE(m->try_lock());
  m->unlock();
  EXPECT_THROW(m->unlock(), corelet::UsageError);
}

// A holder killed while it holds: the waiter takes it over (the child is
// not reaped first, so it is a zombie while the parent waits).
TEST_P(IpcSync, MutexHolderKilledWhileHolding) {
  auto m = Shared<ipc::Mutex>::make();
  auto ready = Shared<ipc::Event>::make();
  const pid_t kid = fork_child([&] {
    m->lock();
    ready->set();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(ready->wait(in(30s)));
  EXPECT_EQ(m->holder(), static_cast<std::uint32_t>(kid));
  run_io([&] {
    auto waiter = corelet::spawn([&] { return m->try_lock_for(30s); });
    corelet::this_tasklet::sleep_for(5ms);
    ::kill(kid, SIGKILL);
    EXPECT_TRUE(waiter.join());
  });
  EXPECT_EQ(m->owner_deaths(), 1u);
  EXPECT_EQ(m->holder(), corelet::ipc::detail::self_pid());
  m->unlock();
  EXPECT_EQ(wait_child(kid), "signal 9");
}

// ---- RecursiveMutex ----

TEST_P(IpcSync, RecursiveMutexOwnersAndDepth) {
  auto r = Shared<ipc::RecursiveMutex>::make();
  run_io([&] {
    r->lock();
    r->lock();
    EXPECT_TRUE(r->owned_by(ipc::this_owner()));
    auto other = corelet::spawn([&] {
      EXPECT_FALSE(r->try_lock());  // another tasklet is another owner
      EXPECT_THROW(r->unlock(), corelet::UsageError);
      r->lock();  // parks until the first owner lets go of both levels
      r->unlock();
    });
    corelet::this_tasklet::yield();
    r->unlock();
    EXPECT_TRUE(r->locked());
    EXPECT_EQ(r->release_all(ipc::this_owner()), 1u);
    other.join();
    EXPECT_TRUE(r->restore(3, Clock::time_point::max(), ipc::this_owner()));
    r->unlock();
    r->unlock();
    r->unlock();
    EXPECT_FALSE(r->locked());
  });
}

TEST(IpcRecursiveMutex, HolderKilledWhileHolding) {
  auto r = Shared<ipc::RecursiveMutex>::make();
  const pid_t kid = fork_child([&] {
    r->lock();
    r->lock();
    ::raise(SIGKILL);
    return 0;
  });
  EXPECT_EQ(wait_child(kid), "signal 9");
  EXPECT_TRUE(r->try_lock_until(in(30s), 42));
  EXPECT_TRUE(r->owned_by(42));
  r->unlock(42);
  EXPECT_FALSE(r->locked());
  EXPECT_EQ(r->owner_deaths(), 1u);
}

// ---- Semaphore ----

TEST_P(IpcSync, SemaphoreCountsUnitsAcrossProcesses) {
  auto s = Shared<ipc::Semaphore>::make(0u);
  constexpr int kUnits = 500;
  const pid_t kid = fork_child([&] {
    for (int i = 0; i < kUnits; ++i) s->release();
    return 0;
  });
  int got = 0;
  run_io([&] {
    std::vector<corelet::Task<void>> ts;
    for (int t = 0; t < 5; ++t)
      ts.push_back(corelet::spawn([&] {
        for (int i = 0; i < kUnits / 5; ++i)
          if (s->try_acquire_for(60s)) ++got;
      }));
    for (auto& t : ts) t.join();
    EXPECT_FALSE(s->try_acquire_for(10ms));
    auto c = corelet::spawn([&] { s->acquire(); });
    corelet::this_tasklet::yield();
    c.cancel();
    EXPECT_THROW(c.join(), corelet::Cancelled);
  });
  EXPECT_EQ(wait_child(kid), "exit 0");
  EXPECT_EQ(got, kUnits);
  EXPECT_EQ(s->value(), 0u);  // the cancelled acquire took nothing
}

TEST(IpcSemaphore, BoundedRefusesAReleasePastItsBound) {
  ipc::Semaphore s(2, true);
  EXPECT_THROW(s.release(), corelet::UsageError);
  EXPECT_TRUE(s.try_acquire());
  s.release();
  EXPECT_EQ(s.value(), 2u);
}

// ---- Event ----

TEST_P(IpcSync, EventWakesTaskletsOfAnotherProcess) {
  auto e = Shared<ipc::Event>::make();
  auto go = Shared<ipc::Event>::make();
  const pid_t kid = fork_child([&] {
    if (!go->wait(in(60s))) return 2;
    e->set();
    return 0;
  });
  run_io([&] {
    EXPECT_FALSE(e->wait(in(10ms)));
    std::vector<corelet::Task<bool>> ts;
    for (int i = 0; i < 10; ++i) ts.push_back(corelet::spawn([&] { return e->wait(in(60s)); }));
    corelet::this_tasklet::yield();
    go->set();
    for (auto& t : ts) EXPECT_TRUE(t.join());
  });
  EXPECT_EQ(wait_child(kid), "exit 0");
  e->clear();
  EXPECT_FALSE(e->is_set());
}

// ---- Condition ----

struct Box {
  ipc::Mutex m;
  ipc::Condition c;
  std::uint32_t items = 0;
  std::uint32_t taken = 0;
};

TEST_P(IpcSync, ConditionHandsItemsBetweenProcesses) {
  auto b = Shared<Box>::make();
  constexpr std::uint32_t kItems = 300;
  const pid_t kid = fork_child([&] {
    for (std::uint32_t i = 0; i < kItems; ++i) {
      std::unique_lock g(b->m);
      if (!b->c.wait(g, [&] { return b->items < 4; }, in(60s))) return 2;
      ++b->items;
      b->c.notify_all();
    }
    return 0;
  });
  run_io([&] {
    std::vector<corelet::Task<void>> ts;
    for (int t = 0; t < 3; ++t)
      ts.push_back(corelet::spawn([&] {
        for (;;) {
          std::unique_lock g(b->m);
          if (!b->c.wait(g, [&] { return b->items > 0 || b->taken == kItems; }, in(60s))) return;
          if (b->taken == kItems) return;
          --b->items;
          ++b->taken;
          b->c.notify_all();
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(wait_child(kid), "exit 0");
  EXPECT_EQ(b->taken, kItems);
  EXPECT_EQ(b->items, 0u);
}

TEST(IpcCondition, WaitTimesOut) {
  Box b;
  std::unique_lock g(b.m);
  const auto t0 = Clock::now();
  EXPECT_FALSE(b.c.wait(g, in(20ms)));
  EXPECT_GE(Clock::now() - t0, 20ms);
  EXPECT_TRUE(b.m.locked());  // locked again on return
}

// ---- Barrier ----

TEST_P(IpcSync, BarrierRoundsAcrossProcesses) {
  struct Rounds {
    ipc::Barrier b{3};
    std::atomic<std::uint32_t> index_sum[40] = {};
    std::atomic<std::uint32_t> actions{0};
  };
  auto r = Shared<Rounds>::make();
  constexpr int kRounds = 40;
  auto party = [&] {
    for (int i = 0; i < kRounds; ++i) {
      const std::uint32_t idx = r->b.wait(in(60s), [&] { r->actions.fetch_add(1); });
      r->index_sum[i].fetch_add(idx);
    }
    return 0;
  };
  const pid_t k1 = fork_child(party);
  const pid_t k2 = fork_child(party);
  run_io([&] { party(); });
  EXPECT_EQ(wait_child(k1), "exit 0");
  EXPECT_EQ(wait_child(k2), "exit 0");
  for (int i = 0; i < kRounds; ++i) EXPECT_EQ(r->index_sum[i].load(), 0u + 1u + 2u) << "round " << i;
  EXPECT_EQ(r->actions.load(), static_cast<std::uint32_t>(kRounds));
}

TEST_P(IpcSync, BarrierTimeoutResetAndAbort) {
  auto b = Shared<ipc::Barrier>::make(3u);
  run_io([&] {
    // A timeout breaks it for the others too.
    auto other = corelet::spawn([&] { b->wait(in(60s)); });
    corelet::this_tasklet::yield();
    EXPECT_THROW(b->wait(in(20ms)), corelet::BrokenBarrier);
    EXPECT_THROW(other.join(), corelet::BrokenBarrier);
    EXPECT_TRUE(b->broken());
    EXPECT_THROW(b->wait(in(60s)), corelet::BrokenBarrier);
    // reset: waiters now are let go with BrokenBarrier, later ones start afresh.
    b->reset();
    EXPECT_FALSE(b->broken());
    auto w1 = corelet::spawn([&] { b->wait(in(60s)); });
    corelet::this_tasklet::yield();
    EXPECT_EQ(b->waiting(), 1u);
    b->reset();
    EXPECT_THROW(w1.join(), corelet::BrokenBarrier);
    std::vector<corelet::Task<std::uint32_t>> ts;
    for (int i = 0; i < 3; ++i) ts.push_back(corelet::spawn([&] { return b->wait(in(60s)); }));
    std::set<std::uint32_t> idx;
    for (auto& t : ts) idx.insert(t.join());
    EXPECT_EQ(idx, (std::set<std::uint32_t>{0, 1, 2}));
    // abort.
    auto w2 = corelet::spawn([&] { b->wait(in(60s)); });
    corelet::this_tasklet::yield();
    b->abort();
    EXPECT_THROW(w2.join(), corelet::BrokenBarrier);
    // An action that throws breaks it; the thrower gets its exception.
    b->reset();
    auto w3 = corelet::spawn([&] { b->wait(in(60s)); });
    auto w4 = corelet::spawn([&] { b->wait(in(60s)); });
    corelet::this_tasklet::yield();
    EXPECT_THROW(b->wait(in(60s), [] { throw std::runtime_error("action"); }), std::runtime_error);
    EXPECT_THROW(w3.join(), corelet::BrokenBarrier);
    EXPECT_THROW(w4.join(), corelet::BrokenBarrier);
  });
}

TEST(IpcBarrier, ZeroPartiesIsRefused) { EXPECT_THROW(ipc::Barrier(0), std::invalid_argument); }

}  // namespace
