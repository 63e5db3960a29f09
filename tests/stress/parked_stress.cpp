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
// one is due, wake in deadline order. Whether they all parked in time is
// measured, not assumed: a round in which the first deadline came before the
// last sleeper parked (the machine held the thread back) is run again with
// the deadlines further ahead.
struct SleepersRound {
  int out_of_order = 0;
  int woke = 0;
  int asleep_at_first_wake = -1;
  bool all_parked_in_time = true;
};

SleepersRound sleepers_round(int sleepers, std::chrono::milliseconds lead) {
  SleepersRound r;
  int asleep = 0;
  corelet::run([&] {
    corelet::Event go;
    corelet::Clock::time_point base;
    long long last = -1;
    int started = 0;
    for (int i = 0; i < sleepers; ++i) {
      // A fixed permutation of deadlines (multiplicative hash), 1 us apart.
      const long long slot = (static_cast<long long>(i) * 7919) % sleepers;
      corelet::spawn({.stack_size = 16 * 1024}, [&, slot] {
        ++started;
        go.wait();
        ++asleep;
        if (corelet::Clock::now() >= base) r.all_parked_in_time = false;  // the first deadline has passed
        corelet::this_tasklet::sleep_until(base + std::chrono::microseconds(slot));
        if (r.asleep_at_first_wake < 0) r.asleep_at_first_wake = asleep;
        if (slot < last) ++r.out_of_order;
        last = slot;
        ++r.woke;
      }).detach();
    }
    while (started < sleepers) corelet::this_tasklet::yield();
    base = corelet::Clock::now() + lead;  // normally far beyond the time it takes all of them to park
    go.set();
    while (r.woke < sleepers) corelet::this_tasklet::sleep_for(1ms);
  });
  return r;
}

TEST_F(ParkedStress, ManySleepersWakeInDeadlineOrder) {
  constexpr int kSleepers = kParked / 10;
  SleepersRound r;
  for (auto lead = 1000ms; lead <= 64000ms; lead *= 8) {
    r = sleepers_round(kSleepers, lead);
    if (r.all_parked_in_time) break;
  }
  ASSERT_TRUE(r.all_parked_in_time) << "no round parked every sleeper before the first deadline, 64 s ahead";
  EXPECT_EQ(r.asleep_at_first_wake, kSleepers);
  EXPECT_EQ(r.woke, kSleepers);
  EXPECT_EQ(r.out_of_order, 0);
}

}  // namespace
