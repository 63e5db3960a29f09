// corelet/sched/timer.hpp
#include "support.hpp"

using namespace corelet_test;

namespace {

class TimerTest : public CoreletTest {};

TEST_F(TimerTest, FiresAfterTheInterval) {
  corelet::run([] {
    int calls = 0;
    const auto start = corelet::Clock::now();
    corelet::Clock::time_point fired_at;
    corelet::Timer t(5ms, [&] { ++calls; fired_at = corelet::Clock::now(); });
    t.start();
    t.join();
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(t.fired());
    EXPECT_GE(fired_at - start, 5ms);
  });
}

TEST_F(TimerTest, CancelBeforeFiringPreventsTheCall) {
  corelet::run([] {
    int calls = 0;
    corelet::Timer t(std::chrono::hours(1), [&] { ++calls; });
    t.start();
    corelet::this_tasklet::yield();
    EXPECT_TRUE(t.cancel());
    EXPECT_FALSE(t.cancel());
    t.join();
    EXPECT_EQ(calls, 0);
    EXPECT_TRUE(t.cancelled());
  });
}

TEST_F(TimerTest, CancelAfterFiringReturnsFalse) {
  corelet::run([] {
    int calls = 0;
    corelet::Timer t(0ms, [&] { ++calls; });
    t.start();
    t.join();
    EXPECT_FALSE(t.cancel());
    EXPECT_EQ(calls, 1);
  });
}

TEST_F(TimerTest, DestroyingAnArmedTimerCancelsIt) {
  int calls = 0;
  corelet::run([&] {
    {
      corelet::Timer t(2ms, [&] { ++calls; });
      t.start();
    }
    corelet::this_tasklet::sleep_for(10ms);
  });
  EXPECT_EQ(calls, 0);
}

TEST_F(TimerTest, TheFunctionMayBlockAndItsExceptionReachesJoin) {
  corelet::run([] {
    corelet::Timer t(1ms, [] {
      corelet::this_tasklet::sleep_for(1ms);
      throw std::runtime_error("timer body");
    });
    t.start();
    EXPECT_THROW(t.join(), std::runtime_error);
  });
}

TEST_F(TimerTest, MisuseIsAnError) {
  corelet::run([] {
    corelet::Timer t(1ms, [] {});
    EXPECT_THROW(t.join(), corelet::UsageError);
    t.start();
    EXPECT_THROW(t.start(), corelet::UsageError);
    t.join();
  });
  corelet::Timer outside(1ms, [] {});
  EXPECT_THROW(outside.start(), corelet::UsageError);
}

}  // namespace
