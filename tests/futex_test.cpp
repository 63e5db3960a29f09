// corelet::futex_wait / futex_wake: a plain thread blocks, a tasklet parks
// alone (on io_uring's futex wait, or a proxy thread), across threads and
// forked processes, with timeouts and cancellation, on each reactor backend.

#include "io_support.hpp"

#include <corelet/sched/futex.hpp>
#include <corelet/sched/primitive.hpp>
#include <corelet/sched/task.hpp>
#include <corelet/sched/timer.hpp>

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using corelet::FutexWait;
using Word = std::atomic<std::uint32_t>;

namespace {

class Futex : public corelet_test::IoTest {};
CORELET_IO_BACKENDS(Futex);

// A word in memory shared with forked children.
struct SharedWords {
  Word* w;
  explicit SharedWords(std::size_t n = 4) {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    w = static_cast<Word*>(p);
    for (std::size_t i = 0; i < n; ++i) new (&w[i]) Word(0);
  }
  ~SharedWords() { ::munmap(w, 4096); }
};

TEST(FutexThread, DifferentValueReturnsAtOnce) {
  Word w{5};
  EXPECT_EQ(corelet::futex_wait(w, 4), FutexWait::Woken);
}

TEST(FutexThread, TimesOutWhenNothingChanges) {
  Word w{0};
  const auto t0 = corelet::Clock::now();
  EXPECT_EQ(corelet::futex_wait(w, 0, t0 + 20ms), FutexWait::TimedOut);
  EXPECT_GE(corelet::Clock::now() - t0, 20ms);
}

TEST(FutexThread, WokenByAnotherThread) {
  Word w{0};
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    w.store(1, std::memory_order_release);
    corelet::futex_wake(w);
  });
  while (w.load(std::memory_order_acquire) == 0) corelet::futex_wait(w, 0, corelet::Clock::now() + 30s);
  t.join();
  EXPECT_EQ(w.load(), 1u);
}

TEST(FutexThread, HooksRunAroundTheWaitAndOnSignal) {
  static std::atomic<int> checks{0}, befores{0}, afters{0};
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  struct sigaction old {};
  ::sigaction(SIGUSR2, &sa, &old);  // no SA_RESTART: the wait sees EINTR
  static corelet::FutexThreadHooks hooks;
  hooks.before = [] { ++befores; };
  hooks.after = [] { ++afters; };
  hooks.interrupted = [] {
    ++checks;
    throw std::runtime_error("interrupted");
  };
  hooks.spin = 100;
  corelet::set_futex_thread_hooks(&hooks);
  Word w{0};
  const pthread_t self = ::pthread_self();
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop.load()) {
      ::pthread_kill(self, SIGUSR2);
      std::this_thread::sleep_for(2ms);
    }
  });
  EXPECT_THROW(corelet::futex_wait(w, 0, corelet::Clock::now() + 30s), std::runtime_error);
  stop = true;
  t.join();
  corelet::set_futex_thread_hooks(nullptr);
  ::sigaction(SIGUSR2, &old, nullptr);
  EXPECT_EQ(checks.load(), 1);
  EXPECT_EQ(befores.load(), 1);
  EXPECT_EQ(afters.load(), 1);
}

TEST_P(Futex, UsesTheRingWhereTheKernelCan) {
  run_io([&] {
    const char* m = corelet::detail::futex_wait_mechanism();
    ASSERT_NE(m, nullptr);
    if (GetParam() == corelet::io::Backend::epoll) EXPECT_STREQ(m, "proxy thread");
    else EXPECT_TRUE(std::strcmp(m, "io_uring") == 0 || std::strcmp(m, "proxy thread") == 0) << m;
  });
}

// The waiting tasklet parks alone: another tasklet runs while it waits (the
// waker thread waits for that tasklet's mark before it wakes the word).
TEST_P(Futex, ParksOnlyTheTasklet) {
  Word w{0};
  std::atomic<bool> other_ran{false};
  std::thread waker;
  run_io([&] {
    waker = std::thread([&] {
      while (!other_ran.load()) std::this_thread::sleep_for(1ms);
      w.store(1, std::memory_order_release);
      corelet::futex_wake(w);
    });
    auto waiter = corelet::spawn([&] {
      while (w.load(std::memory_order_acquire) == 0)
        EXPECT_EQ(corelet::futex_wait(w, 0, corelet::Clock::now() + 60s), FutexWait::Woken);
      return w.load();
    });
    corelet::spawn([&] { other_ran = true; }).join();
    EXPECT_EQ(waiter.join(), 1u);
  });
  waker.join();
}

TEST_P(Futex, InPlainCodeATaskletsWaitBlocksTheThread) {
  Word w{0};
  std::thread waker;
  run_io([&] {
    bool other_ran = false;
    auto other = corelet::spawn([&] { other_ran = true; });
    ASSERT_NE(corelet::primitive::current(), nullptr);
    {
      corelet::primitive::PlainCode plain;
      EXPECT_EQ(corelet::primitive::current(), nullptr);
      {
        corelet::primitive::PlainCode nested;
        EXPECT_EQ(corelet::primitive::current(), nullptr);
      }
      EXPECT_EQ(corelet::primitive::current(), nullptr);
      waker = std::thread([&] {
        std::this_thread::sleep_for(2ms);
        w.store(1, std::memory_order_release);
        corelet::futex_wake(w);
      });
      while (w.load(std::memory_order_acquire) == 0)
        EXPECT_EQ(corelet::futex_wait(w, 0, corelet::Clock::now() + 60s), FutexWait::Woken);
      EXPECT_FALSE(other_ran);  // the thread waited: the scheduler ran nobody else
    }
    EXPECT_NE(corelet::primitive::current(), nullptr);
    other.join();
    EXPECT_TRUE(other_ran);
  });
  waker.join();
}

TEST_P(Futex, TimesOutInATasklet) {
  Word w{0};
  run_io([&] {
    const auto t0 = corelet::Clock::now();
    EXPECT_EQ(corelet::futex_wait(w, 0, t0 + 20ms), FutexWait::TimedOut);
    EXPECT_GE(corelet::Clock::now() - t0, 20ms);
    // An expired deadline: no wait at all.
    EXPECT_EQ(corelet::futex_wait(w, 0, corelet::Clock::now() - 1s), FutexWait::TimedOut);
  });
}

TEST_P(Futex, CancelledWaitThrowsAndLeavesNothingBehind) {
  Word w{0};
  run_io([&] {
    auto waiter = corelet::spawn([&] { corelet::futex_wait(w, 0); });
    corelet::this_tasklet::yield();  // the waiter parks
    waiter.cancel();
    EXPECT_THROW(waiter.join(), corelet::Cancelled);
    // A pending cancellation ends the next wait before it starts.
    auto again = corelet::spawn([&] {
      corelet::this_tasklet::yield();
      corelet::futex_wait(w, 0);
    });
    again.cancel();
    EXPECT_THROW(again.join(), corelet::Cancelled);
    // The word still works afterwards.
    auto third = corelet::spawn([&] {
      while (w.load() == 0) corelet::futex_wait(w, 0, corelet::Clock::now() + 60s);
    });
    corelet::this_tasklet::yield();
    w.store(1);
    corelet::futex_wake(w);
    third.join();
  });
}

TEST_P(Futex, OneWakeReachesEveryWaiter) {
  Word w{0};
  constexpr int kWaiters = 40;
  int woke = 0;
  run_io([&] {
    std::vector<corelet::Task<void>> ts;
    for (int i = 0; i < kWaiters; ++i)
      ts.push_back(corelet::spawn([&] {
        while (w.load(std::memory_order_acquire) == 0) corelet::futex_wait(w, 0, corelet::Clock::now() + 60s);
        ++woke;
      }));
    corelet::this_tasklet::yield();
    std::thread t([&] {
      w.store(1, std::memory_order_release);
      corelet::futex_wake(w);
    });
    for (auto& x : ts) x.join();
    t.join();
  });
  EXPECT_EQ(woke, kWaiters);
}

// Ping-pong with a forked process over two shared words: every wakeup comes
// from the other process's futex_wake (a lost one would hang until the
// generous deadline and fail).
TEST_P(Futex, PingPongWithAForkedProcess) {
  SharedWords sw;
  Word& ping = sw.w[0];
  Word& pong = sw.w[1];
  constexpr std::uint32_t kRounds = 200;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A plain thread in the child: the thread path of the same protocol.
    for (std::uint32_t i = 1; i <= kRounds; ++i) {
      while (ping.load(std::memory_order_acquire) < i)
        if (corelet::futex_wait(ping, i - 1, corelet::Clock::now() + 60s) == FutexWait::TimedOut) ::_exit(2);
      pong.store(i, std::memory_order_release);
      corelet::futex_wake(pong);
    }
    ::_exit(0);
  }
  std::uint32_t timeouts = 0;
  run_io([&] {
    for (std::uint32_t i = 1; i <= kRounds; ++i) {
      ping.store(i, std::memory_order_release);
      corelet::futex_wake(ping);
      while (pong.load(std::memory_order_acquire) < i)
        if (corelet::futex_wait(pong, i - 1, corelet::Clock::now() + 60s) == FutexWait::TimedOut) ++timeouts;
    }
  });
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(timeouts, 0u);
  EXPECT_EQ(pong.load(), kRounds);
}

}  // namespace
