// corelet/sched/task.hpp: run, spawn, Task<T>, this_tasklet, cancellation,
// deadlock reports, bad input.
#include "support.hpp"

#include <sys/resource.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corelet_test;
using corelet::Cancelled;
using corelet::UsageError;

namespace {

class TaskTest : public CoreletTest {};

TEST_F(TaskTest, RunReturnsMainsIntAndZeroForVoid) {
  EXPECT_EQ(corelet::run([] { return 42; }), 42);
  EXPECT_EQ(corelet::run([] {}), 0);
  EXPECT_EQ(corelet::run([](int a, int b) { return a * b; }, 6, 7), 42);
}

TEST_F(TaskTest, JoinReturnsValuesOfAnyType) {
  corelet::run([] {
    auto a = corelet::spawn([] { return std::string("hello"); });
    auto b = corelet::spawn([](int x) { return std::make_unique<int>(x); }, 5);
    auto c = corelet::spawn([] {});
    EXPECT_EQ(a.join(), "hello");
    EXPECT_EQ(*b.join(), 5);
    c.join();
    EXPECT_TRUE(c.done());
  });
}

TEST_F(TaskTest, ArgumentsAreCopiedIntoTheTasklet) {
  corelet::run([] {
    std::string s = "abc";
    auto t = corelet::spawn([](std::string v) { return v + "!"; }, s);
    s = "changed";
    EXPECT_EQ(t.join(), "abc!");
    int counter = 0;
    auto r = corelet::spawn([](int& c) { c = 7; }, std::ref(counter));
    r.join();
    EXPECT_EQ(counter, 7);
  });
}

TEST_F(TaskTest, YieldInterleavesRoundRobin) {
  std::vector<std::string> trace;
  corelet::run([&] {
    auto a = corelet::spawn([&] { for (int i = 0; i < 3; ++i) { trace.push_back("a" + std::to_string(i)); corelet::this_tasklet::yield(); } });
    auto b = corelet::spawn([&] { for (int i = 0; i < 3; ++i) { trace.push_back("b" + std::to_string(i)); corelet::this_tasklet::yield(); } });
    a.join();
    b.join();
  });
  EXPECT_EQ(trace, (std::vector<std::string>{"a0", "b0", "a1", "b1", "a2", "b2"}));
}

TEST_F(TaskTest, ExceptionPropagatesThroughJoin) {
  corelet::run([] {
    auto t = corelet::spawn([]() -> int { throw std::out_of_range("index 9"); });
    try {
      t.join();
      FAIL() << "join did not rethrow";
    } catch (const std::out_of_range& e) {
      EXPECT_STREQ(e.what(), "index 9");
    }
  });
}

TEST_F(TaskTest, MainExceptionPropagatesOutOfRunAndCancelsTheRest) {
  bool unwound = false;
  struct Guard { bool& f; ~Guard() { f = true; } };
  EXPECT_THROW(corelet::run([&] {
    auto t = corelet::spawn([&] {
      Guard g{unwound};
      corelet::Event never;
      never.wait();
    });
    corelet::this_tasklet::yield();
    throw std::runtime_error("main failed");
  }), std::runtime_error);
  EXPECT_TRUE(unwound);
}

TEST_F(TaskTest, RunWaitsForNonDetachedTasklets) {
  int finished = 0;
  corelet::run([&] {
    for (int i = 0; i < 10; ++i)
      corelet::spawn([&] { corelet::this_tasklet::sleep_for(1ms); ++finished; });  // handles dropped
  });
  EXPECT_EQ(finished, 10);
}

TEST_F(TaskTest, DetachedTaskletsStillAliveAtTheEndAreCancelled) {
  bool unwound = false;
  bool reached_end = false;
  struct Guard { bool& f; ~Guard() { f = true; } };
  corelet::run([&] {
    corelet::spawn([&] {
      Guard g{unwound};
      corelet::Event never;
      never.wait();
      reached_end = true;
    }).detach();
  });
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(reached_end);
}

TEST_F(TaskTest, NamesAndIds) {
  corelet::run([] {
    EXPECT_EQ(corelet::this_tasklet::name(), "main");
    const auto main_id = corelet::this_tasklet::id();
    EXPECT_NE(main_id, 0u);
    auto t = corelet::spawn({.name = "worker"}, [] { return corelet::this_tasklet::id(); });
    EXPECT_EQ(t.name(), "worker");
    const auto tid = t.id();
    EXPECT_NE(tid, main_id);
    EXPECT_EQ(t.join(), tid);
  });
  EXPECT_EQ(corelet::this_tasklet::id(), 0u);
}

TEST_F(TaskTest, CancelBeforeStartSkipsTheBody) {
  corelet::run([] {
    bool ran = false;
    auto t = corelet::spawn([&] { ran = true; });
    t.cancel();
    EXPECT_THROW(t.join(), Cancelled);
    EXPECT_FALSE(ran);
  });
}

TEST_F(TaskTest, CancelWhileSleepingUnwindsTheStack) {
  corelet::run([] {
    bool unwound = false;
    bool after = false;
    struct Guard { bool& f; ~Guard() { f = true; } };
    auto t = corelet::spawn([&] {
      Guard g{unwound};
      corelet::this_tasklet::sleep_for(std::chrono::hours(1));
      after = true;
    });
    corelet::this_tasklet::yield();  // t is now parked in sleep
    t.cancel();
    EXPECT_THROW(t.join(), Cancelled);
    EXPECT_TRUE(unwound);
    EXPECT_FALSE(after);
  });
}

TEST_F(TaskTest, CancelIsDeliveredOnceAndCanBeCaught) {
  corelet::run([] {
    auto t = corelet::spawn([] {
      int caught = 0;
      try {
        corelet::this_tasklet::sleep_for(std::chrono::hours(1));
      } catch (const Cancelled&) {
        ++caught;
      }
      corelet::this_tasklet::yield();  // blocks normally again
      return caught;
    });
    corelet::this_tasklet::yield();
    t.cancel();
    EXPECT_EQ(t.join(), 1);
  });
}

TEST_F(TaskTest, CancelOfARunningTaskletHitsItsNextBlockingCall) {
  corelet::run([] {
    corelet::Task<int> t;
    int steps = 0;
    t = corelet::spawn([&] {
      for (;;) {
        ++steps;
        corelet::this_tasklet::yield();
      }
      return 0;
    });
    corelet::this_tasklet::yield();
    corelet::this_tasklet::yield();
    t.cancel();
    EXPECT_THROW(t.join(), Cancelled);
    EXPECT_GE(steps, 1);
  });
}

TEST_F(TaskTest, CancellationPointThrowsOnlyWhenPending) {
  corelet::run([] {
    EXPECT_NO_THROW(corelet::this_tasklet::cancellation_point());
    auto t = corelet::spawn([] {
      long spins = 0;
      for (;;) {
        ++spins;
        if (spins % 1000 == 0) corelet::this_tasklet::cancellation_point();
        if (spins == 5000) corelet::this_tasklet::yield();
      }
    });
    corelet::this_tasklet::yield();
    t.cancel();
    EXPECT_THROW(t.join(), Cancelled);
  });
}

TEST_F(TaskTest, CancelledJoinerLeavesTheTaskJoinable) {
  corelet::run([] {
    corelet::Event go;
    auto inner = corelet::spawn([&] { go.wait(); return 3; });
    auto joiner = corelet::spawn([&] { return inner.join(); });
    corelet::this_tasklet::yield();
    joiner.cancel();
    EXPECT_THROW(joiner.join(), Cancelled);
    go.set();
    EXPECT_EQ(inner.join(), 3);
  });
}

TEST_F(TaskTest, WaitForTimesOutWithoutConsuming) {
  corelet::run([] {
    corelet::Event go;
    auto t = corelet::spawn([&] { go.wait(); return 1; });
    const auto start = corelet::Clock::now();
    EXPECT_FALSE(t.wait_for(5ms));
    EXPECT_GE(corelet::Clock::now() - start, 5ms);
    go.set();
    EXPECT_TRUE(t.wait_for(std::chrono::hours(1)));
    EXPECT_EQ(t.join(), 1);
  });
}

TEST_F(TaskTest, SleepUntilAPastTimeOnlyYields) {
  corelet::run([] {
    bool other_ran = false;
    auto t = corelet::spawn([&] { other_ran = true; });
    corelet::this_tasklet::sleep_until(corelet::Clock::now() - 1s);
    EXPECT_TRUE(other_ran);
    t.join();
  });
}

TEST_F(TaskTest, SleepersWakeInDeadlineOrder) {
  // Deadlines 2 ms apart, in another order than the sleepers start. A sleeper
  // that starts after its deadline only yields (see above), so a round shows
  // the timers' order only if every sleeper parked before its deadline; a
  // round where one did not (the thread was held back that long) is run again
  // with the deadlines further ahead.
  std::vector<int> order;
  bool all_parked_in_time = false;
  for (auto lead = 5ms; !all_parked_in_time && lead <= 5000ms; lead *= 10) {
    order.clear();
    all_parked_in_time = true;
    corelet::run([&] {
      const auto base = corelet::Clock::now() + lead;
      std::vector<corelet::Task<void>> ts;
      for (int i : {5, 1, 4, 2, 3})
        ts.push_back(corelet::spawn([&, i] {
          const auto deadline = base + i * 2ms;
          if (corelet::Clock::now() >= deadline) all_parked_in_time = false;
          corelet::this_tasklet::sleep_until(deadline);
          order.push_back(i);
        }));
      for (auto& t : ts) t.join();
    });
  }
  ASSERT_TRUE(all_parked_in_time) << "no round parked its five sleepers within 5 s";
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4, 5}));
}

// ---- bad input ----

TEST_F(TaskTest, BlockingCallsOutsideATaskletNameTheCall) {
  try {
    corelet::this_tasklet::yield();
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("this_tasklet::yield"), std::string::npos) << e.what();
  }
  EXPECT_THROW(corelet::this_tasklet::sleep_for(1ms), UsageError);
  try {
    corelet::spawn([] {});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("corelet::spawn"), std::string::npos) << e.what();
  }
}

TEST_F(TaskTest, JoinTwiceAndJoinDetachedAreErrors) {
  corelet::run([] {
    auto t = corelet::spawn([] { return 1; });
    EXPECT_EQ(t.join(), 1);
    EXPECT_THROW(t.join(), UsageError);
    auto d = corelet::spawn([] {});
    d.detach();
    EXPECT_THROW(d.join(), UsageError);
    EXPECT_THROW(d.detach(), UsageError);
    corelet::Task<int> empty;
    EXPECT_THROW(empty.join(), UsageError);
  });
}

TEST_F(TaskTest, SelfJoinIsAnError) {
  corelet::run([] {
    corelet::Task<void>* self = nullptr;
    bool threw = false;
    auto t = corelet::spawn([&] {
      corelet::this_tasklet::yield();
      try { self->join(); } catch (const UsageError&) { threw = true; }
    });
    self = &t;
    corelet::this_tasklet::yield();
    corelet::this_tasklet::yield();
    EXPECT_TRUE(threw);
  });
}

TEST_F(TaskTest, NestedRunIsAnError) {
  corelet::run([] { EXPECT_THROW(corelet::run([] {}), UsageError); });
}

struct BadStack {
  std::size_t size;
  const char* words;
};
class BadStackTest : public CoreletTestP<BadStack> {};

TEST_P(BadStackTest, SpawnRejectsTheSizeWithAClearMessage) {
  corelet::run([this] {
    try {
      corelet::spawn({.name = "x", .stack_size = GetParam().size}, [] {});
      FAIL() << "spawn accepted stack size " << GetParam().size;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(GetParam().words), std::string::npos) << e.what();
    }
  });
}
INSTANTIATE_TEST_SUITE_P(Sizes, BadStackTest,
                         ::testing::Values(BadStack{0, "stack size 0"}, BadStack{100, "below the minimum"},
                                           BadStack{std::size_t{1} << 40, "above the maximum"}));

TEST_F(TaskTest, LargeStackIsUsable) {
  corelet::run([] {
    auto t = corelet::spawn({.stack_size = 8 << 20}, [] {
      volatile char buf[4 << 20];
      buf[0] = 1;
      buf[sizeof buf - 1] = 2;
      return buf[0] + buf[sizeof buf - 1];
    });
    EXPECT_EQ(t.join(), 3);
  });
}

// ---- deadlock ----

TEST_F(TaskTest, DeadlockIsReportedWithEveryBlockedTasklet) {
  try {
    corelet::run([] {
      corelet::Channel<int> ch;
      corelet::Mutex m;
      m.lock();
      auto a = corelet::spawn({.name = "reader"}, [&] { ch.recv(); });
      auto b = corelet::spawn({.name = "locker"}, [&] { m.lock(); });
      a.join();
    });
    FAIL() << "no deadlock reported";
  } catch (const corelet::Deadlock& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("3 tasklets"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"main\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("Task::join of tasklet \"reader\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"reader\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("Channel::recv"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"locker\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("Mutex::lock"), std::string::npos) << msg;
  }
}

TEST_F(TaskTest, DeadlockedTaskletsAreUnwound) {
  int unwound = 0;
  struct Guard { int& n; ~Guard() { ++n; } };
  EXPECT_THROW(corelet::run([&] {
    corelet::Event e;
    auto a = corelet::spawn([&] { Guard g{unwound}; e.wait(); });
    Guard g{unwound};
    a.join();
  }), corelet::Deadlock);
  EXPECT_EQ(unwound, 2);
}

TEST_F(TaskTest, SleepingTaskletIsNotADeadlock) {
  EXPECT_NO_THROW(corelet::run([] {
    corelet::Channel<int> ch;
    auto t = corelet::spawn([&] { corelet::this_tasklet::sleep_for(2ms); ch.send(1); });
    EXPECT_EQ(ch.recv(), 1);
  }));
}

#if defined(__x86_64__)
TEST_F(TaskTest, EveryContextStartsWithTheSameFloatingPointStatus) {
  // Contexts whose saved MXCSR differ make each switch an order of magnitude
  // slower; run() raises the sticky inexact flag so that all carry it.
  _mm_setcsr(_mm_getcsr() & ~0x3fu);
  unsigned in_tasklet = 0;
  corelet::run([&] {
    auto t = corelet::spawn([&] { in_tasklet = _mm_getcsr(); });  // does no arithmetic itself
    t.join();
  });
  EXPECT_NE(in_tasklet & _MM_EXCEPT_INEXACT, 0u);
}
#endif

// ---- scale and idleness ----

TEST_F(TaskTest, AMillionTaskletsSpawnedAndJoined) {
#if defined(__SANITIZE_THREAD__)
  constexpr int kTotal = 100'000;  // TSan's spawn+join is ~100x slower: a million overruns the timeout
#else
  constexpr int kTotal = 1'000'000;
#endif
  constexpr int kBatch = 10'000;
  long long sum = 0;
  corelet::run([&] {
    std::vector<corelet::Task<int>> batch;
    batch.reserve(kBatch);
    for (int base = 0; base < kTotal; base += kBatch) {
      for (int i = 0; i < kBatch; ++i) batch.push_back(corelet::spawn([](int v) { return v; }, base + i));
      for (auto& t : batch) sum += t.join();
      batch.clear();
    }
  });
  EXPECT_EQ(sum, static_cast<long long>(kTotal) * (kTotal - 1) / 2);
}

TEST_F(TaskTest, AHundredThousandTaskletsParkedAtOnce) {
#if defined(__SANITIZE_THREAD__)
  constexpr int kN = 5'000;  // TSan counts every live fiber as a thread and dies past 8128 at once
#else
  constexpr int kN = 100'000;
#endif
  int woke = 0;
  corelet::run([&] {
    corelet::Event go;
    corelet::WaitGroup wg(kN);
    for (int i = 0; i < kN; ++i)
      corelet::spawn([&] { go.wait(); ++woke; wg.done(); }).detach();
    corelet::this_tasklet::yield();  // every one of them runs and parks
    EXPECT_EQ(woke, 0);
    go.set();
    wg.wait();
  });
  EXPECT_EQ(woke, kN);
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

TEST_F(TaskTest, IdleSchedulerSleepsInTheKernel) {
  // While the only tasklet sleeps 300 ms, the thread must use next to no CPU:
  // a spinning loop would burn the whole 300 ms.
  double cpu = 0;
  corelet::run([&] {
    const double before = cpu_seconds();
    corelet::this_tasklet::sleep_for(300ms);
    cpu = cpu_seconds() - before;
  });
  EXPECT_LT(cpu, 0.1) << "the idle scheduler used " << cpu << " s of CPU in 0.3 s";
}

}  // namespace
