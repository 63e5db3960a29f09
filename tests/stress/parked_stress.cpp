// Stress: a million tasklets parked at the same time in one scheduler, all
// woken, with a checksum over what each saw. Label `stress`.
#include "support.hpp"

#include <fstream>

using namespace corelet_test;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int kParked = 100'000;  // ASan's shadow memory makes a million too heavy for CI
#elif defined(__SANITIZE_THREAD__)
// TSan counts every live fiber as a thread and dies past 8128 of them at once.
constexpr int kParked = 5'000;
#else
constexpr int kParked = 1'000'000;
#endif

class ParkedStress : public CoreletTest {};

TEST_F(ParkedStress, AMillionTaskletsParkedAtOnceAllWake) {
  long long checksum = 0;
  int parked_peak = 0;
  corelet::run([&] {
    corelet::Event go;
    corelet::WaitGroup done(kParked);
    int parked = 0;
    for (int i = 0; i < kParked; ++i)
      corelet::spawn({.stack_size = 16 * 1024}, [&, i] {
        ++parked;
        go.wait();
        checksum += i;
        done.done();
      }).detach();
    while (parked < kParked) corelet::this_tasklet::yield();
    parked_peak = parked;
    EXPECT_EQ(checksum, 0);  // nobody ran past the wait
    go.set();
    done.wait();
  });
  EXPECT_EQ(parked_peak, kParked);
  EXPECT_EQ(checksum, static_cast<long long>(kParked) * (kParked - 1) / 2);
}

// Timers: many sleepers with distinct deadlines, all parked before the first
// one is due, wake in deadline order.
TEST_F(ParkedStress, ManySleepersWakeInDeadlineOrder) {
  constexpr int kSleepers = kParked / 10;
  int out_of_order = 0;
  int woke = 0;
  int asleep = 0;
  int asleep_at_first_wake = -1;
  corelet::run([&] {
    corelet::Event go;
    corelet::Clock::time_point base;
    long long last = -1;
    int started = 0;
    for (int i = 0; i < kSleepers; ++i) {
      // A fixed permutation of deadlines (multiplicative hash), 1 us apart.
      const long long slot = (static_cast<long long>(i) * 7919) % kSleepers;
      corelet::spawn({.stack_size = 16 * 1024}, [&, slot] {
        ++started;
        go.wait();
        ++asleep;
        corelet::this_tasklet::sleep_until(base + std::chrono::microseconds(slot));
        if (asleep_at_first_wake < 0) asleep_at_first_wake = asleep;
        if (slot < last) ++out_of_order;
        last = slot;
        ++woke;
      }).detach();
    }
    while (started < kSleepers) corelet::this_tasklet::yield();
    base = corelet::Clock::now() + 1s;  // far beyond the time it takes all of them to park
    go.set();
    while (woke < kSleepers) corelet::this_tasklet::sleep_for(1ms);
  });
  EXPECT_EQ(asleep_at_first_wake, kSleepers);
  EXPECT_EQ(woke, kSleepers);
  EXPECT_EQ(out_of_order, 0);
}

}  // namespace
