// The profiler's monitor thread sleeps without ticking once every scheduler
// has slept for a while, and a scheduler that wakes brings it back: stall
// detection works again at once.

#include "support.hpp"

#include <corelet/corelet.hpp>

#include "../sched/src/monitor.hpp"  // the accounting tick

#include <chrono>

using namespace std::chrono_literals;
using corelet::Clock;

namespace {

std::uint32_t tick_now() { return corelet::detail::g_tick.value.load(std::memory_order_relaxed); }

void spin_for(std::chrono::milliseconds d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

class MonitorTest : public corelet_test::CoreletTest {
 protected:
  void SetUp() override {
    CoreletTest::SetUp();
    corelet::set_accounting(true);
    corelet::set_stall_threshold(20ms);
  }
};

// Asleep for 3 s: at 20 ms a tick the monitor would tick 150 times; it stops
// after kDeepSleepAfter (1 s: 50 ticks). A loaded machine can only make it
// tick less.
TEST_F(MonitorTest, StopsTickingWhileEverySchedulerSleeps) {
  std::uint32_t ticked = 0;
  corelet::run([&] {
    corelet::this_tasklet::sleep_for(50ms);
    const std::uint32_t before = tick_now();
    corelet::this_tasklet::sleep_for(3s);
    ticked = tick_now() - before;
  });
  EXPECT_LT(ticked, 100u) << "the monitor went on ticking while the scheduler slept";
}

// After a deep sleep, a hog is reported as ever: the wakeup woke the monitor.
TEST_F(MonitorTest, AStallAfterADeepSleepIsReported) {
  std::uint64_t stalls = 0;
  corelet::run([&] {
    corelet::this_tasklet::sleep_for(1500ms);  // past kDeepSleepAfter
    const auto give_up = Clock::now() + 30s;
    while (corelet::stats(false).worker.stalls == 0 && Clock::now() < give_up) spin_for(1ms);
    stalls = corelet::stats(false).worker.stalls;
  });
  EXPECT_EQ(stalls, 1u);
}

}  // namespace
