// Tests for <corelet/sched/barrier.hpp>: Barrier (threading.Barrier).
//
// Generations are a TEST_P over the number of parties; "outside a tasklet" and
// "blocked wait is cancelled" are TEST_Ps over the wait forms.

#include "support.hpp"

#include <corelet/corelet.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <numeric>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace corelet_test;
using corelet::Barrier;
using corelet::BrokenBarrier;
using corelet::Clock;
namespace this_tasklet = corelet::this_tasklet;

// Calls b.wait() and reports how it ended.
enum class Outcome { Returned, Broken, Cancelled, Other };
void PrintTo(Outcome o, std::ostream* os) {
  const char* names[] = {"Returned", "Broken", "Cancelled", "Other"};
  *os << names[static_cast<int>(o)];
}
Outcome wait_outcome(const std::function<void()>& wait) {
  try {
    wait();
    return Outcome::Returned;
  } catch (const BrokenBarrier&) {
    return Outcome::Broken;
  } catch (const corelet::Cancelled&) {
    return Outcome::Cancelled;
  } catch (...) {
    return Outcome::Other;
  }
}

// ---------------------------------------------------------------------------
// Generations, over the number of parties.

class BarrierPartiesTest : public CoreletTestP<std::size_t> {};

TEST_P(BarrierPartiesTest, EveryGenerationReleasesAllWithArrivalIndices) {
  const std::size_t n = GetParam();
  constexpr int kGenerations = 3;
  // Per generation: who arrived in which order, which index each got, how many
  // had returned when the action ran, and who ran it.
  std::vector<std::vector<std::uint64_t>> arrivals(kGenerations);
  std::vector<std::vector<std::pair<std::uint64_t, std::size_t>>> results(kGenerations);
  std::vector<std::size_t> returned_when_action_ran;
  std::vector<std::size_t> waiting_when_action_ran;
  std::vector<std::uint64_t> action_runner;
  int generation_of_action = 0;
  Barrier* self = nullptr;
  Barrier b(n, [&] {
    returned_when_action_ran.push_back(results[generation_of_action].size());
    waiting_when_action_ran.push_back(self->n_waiting());
    action_runner.push_back(this_tasklet::id());
    ++generation_of_action;
  });
  self = &b;
  corelet::run([&] {
    std::vector<corelet::Task<void>> parties;
    for (std::size_t i = 0; i < n; ++i)
      parties.push_back(corelet::spawn([&, i] {
        for (int g = 0; g < kGenerations; ++g) {
          yield_n(static_cast<int>((i * 7 + g * 3) % (n + 1)));  // vary the arrival order
          arrivals[g].push_back(this_tasklet::id());
          const std::size_t index = b.wait();
          results[g].emplace_back(this_tasklet::id(), index);
        }
      }));
    for (auto& p : parties) p.join();
  });
  EXPECT_EQ(b.parties(), n);
  EXPECT_FALSE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0u);
  ASSERT_EQ(action_runner.size(), static_cast<std::size_t>(kGenerations));  // once per generation
  for (int g = 0; g < kGenerations; ++g) {
    SCOPED_TRACE("generation " + std::to_string(g));
    ASSERT_EQ(results[g].size(), n);
    ASSERT_EQ(arrivals[g].size(), n);
    // Each party's index is its position in the arrival order: all different,
    // covering [0, n).
    for (const auto& [id, index] : results[g]) {
      ASSERT_LT(index, n);
      EXPECT_EQ(arrivals[g][index], id);
    }
    // The last to arrive ran the action, before any party of the generation
    // returned, while the other n-1 were still parked.
    EXPECT_EQ(action_runner[g], arrivals[g].back());
    EXPECT_EQ(returned_when_action_ran[g], 0u);
    EXPECT_EQ(waiting_when_action_ran[g], n - 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Parties, BarrierPartiesTest, ::testing::Values(1, 2, 5),
                         [](const auto& p) { return std::to_string(p.param); });

class BarrierTest : public CoreletTest {};

TEST_F(BarrierTest, ZeroPartiesIsRejected) {
  try {
    Barrier b(0);
    ADD_FAILURE() << "Barrier(0) was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Barrier"), std::string::npos) << e.what();
  }
}

TEST_F(BarrierTest, NWaitingCountsParkedParties) {
  Barrier b(3);
  std::vector<std::size_t> seen;
  corelet::run([&] {
    seen.push_back(b.n_waiting());
    auto a = corelet::spawn([&] { b.wait(); });
    yield_n(2);
    seen.push_back(b.n_waiting());
    auto c = corelet::spawn([&] { b.wait(); });
    yield_n(2);
    seen.push_back(b.n_waiting());
    b.wait();
    seen.push_back(b.n_waiting());
    a.join();
    c.join();
  });
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 1, 2, 0}));
}

TEST_F(BarrierTest, TimedWaitTimeoutBreaksTheBarrier) {
  Barrier b(3);
  Outcome timed = Outcome::Returned;
  Outcome other = Outcome::Returned;
  Outcome later = Outcome::Returned;
  std::int64_t waited = 0;
  bool broken_after = false;
  corelet::run([&] {
    auto a = corelet::spawn([&] { other = wait_outcome([&] { b.wait(); }); });
    yield_n(2);
    const auto t0 = Clock::now();
    timed = wait_outcome([&] { b.wait_for(20ms); });
    waited = elapsed_us(t0);
    a.join();
    broken_after = b.broken();
    later = wait_outcome([&] { b.wait(); });  // broken until reset(): does not park
  });
  EXPECT_EQ(timed, Outcome::Broken);
  EXPECT_EQ(other, Outcome::Broken);
  EXPECT_EQ(later, Outcome::Broken);
  EXPECT_GE(waited, us(20ms));
  EXPECT_TRUE(broken_after);
}

TEST_F(BarrierTest, WaitUntilTimeoutBreaksTheBarrier) {
  Barrier b(2);
  Outcome timed = Outcome::Returned;
  std::int64_t waited = 0;
  corelet::run([&] {
    const auto t0 = Clock::now();
    timed = wait_outcome([&] { b.wait_until(t0 + 20ms); });
    waited = elapsed_us(t0);
  });
  EXPECT_EQ(timed, Outcome::Broken);
  EXPECT_GE(waited, us(20ms));
  EXPECT_TRUE(b.broken());
}

TEST_F(BarrierTest, TimedWaitReturnsAnIndexWhenAllArriveBeforeDeadline) {
  Barrier b(3);
  std::vector<std::size_t> indices;
  corelet::run([&] {
    auto a = corelet::spawn([&] { indices.push_back(b.wait_for(1h)); });
    auto c = corelet::spawn([&] { indices.push_back(b.wait_until(Clock::now() + 1h)); });
    yield_n(2);
    indices.push_back(b.arrive_and_wait());
    a.join();
    c.join();
  });
  std::sort(indices.begin(), indices.end());
  EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_FALSE(b.broken());
}

TEST_F(BarrierTest, AbortBreaksParkedAndLaterWaitsUntilReset) {
  Barrier b(3);
  std::vector<Outcome> parked(2, Outcome::Returned);
  Outcome later = Outcome::Returned;
  bool broken_after_abort = false;
  bool broken_after_reset = true;
  std::vector<std::size_t> indices_after_reset;
  corelet::run([&] {
    auto a = corelet::spawn([&] { parked[0] = wait_outcome([&] { b.wait(); }); });
    auto c = corelet::spawn([&] { parked[1] = wait_outcome([&] { b.wait_for(1h); }); });
    yield_n(2);
    b.abort();
    a.join();
    c.join();
    broken_after_abort = b.broken();
    later = wait_outcome([&] { b.wait(); });
    b.reset();
    broken_after_reset = b.broken();
    auto d = corelet::spawn([&] { indices_after_reset.push_back(b.wait()); });
    auto e = corelet::spawn([&] { indices_after_reset.push_back(b.wait()); });
    yield_n(2);
    indices_after_reset.push_back(b.wait());
    d.join();
    e.join();
  });
  EXPECT_EQ(parked, (std::vector<Outcome>{Outcome::Broken, Outcome::Broken}));
  EXPECT_EQ(later, Outcome::Broken);
  EXPECT_TRUE(broken_after_abort);
  EXPECT_FALSE(broken_after_reset);
  std::sort(indices_after_reset.begin(), indices_after_reset.end());
  EXPECT_EQ(indices_after_reset, (std::vector<std::size_t>{0, 1, 2}));
}

TEST_F(BarrierTest, ResetWakesParkedWaitersWithBrokenBarrierAndStaysUsable) {
  Barrier b(3);
  std::vector<Outcome> parked(2, Outcome::Returned);
  bool broken_after_reset = true;
  std::size_t waiting_after_reset = 1;
  std::vector<std::size_t> indices;
  corelet::run([&] {
    auto a = corelet::spawn([&] { parked[0] = wait_outcome([&] { b.wait(); }); });
    auto c = corelet::spawn([&] { parked[1] = wait_outcome([&] { b.wait(); }); });
    yield_n(2);
    b.reset();
    broken_after_reset = b.broken();
    waiting_after_reset = b.n_waiting();
    a.join();
    c.join();
    // The two arrivals before the reset do not count: a full new set is needed.
    auto d = corelet::spawn([&] { indices.push_back(b.wait()); });
    auto e = corelet::spawn([&] { indices.push_back(b.wait()); });
    yield_n(2);
    EXPECT_EQ(b.n_waiting(), 2u);
    indices.push_back(b.wait());
    d.join();
    e.join();
  });
  EXPECT_EQ(parked, (std::vector<Outcome>{Outcome::Broken, Outcome::Broken}));
  EXPECT_FALSE(broken_after_reset);
  EXPECT_EQ(waiting_after_reset, 0u);
  std::sort(indices.begin(), indices.end());
  EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2}));
}

TEST_F(BarrierTest, ThrowingActionBreaksTheBarrier) {
  Barrier b(2, [] { throw std::runtime_error("action failed"); });
  Outcome parked = Outcome::Returned;
  std::string last_error;
  corelet::run([&] {
    auto a = corelet::spawn([&] { parked = wait_outcome([&] { b.wait(); }); });
    yield_n(2);
    try {
      b.wait();
    } catch (const std::runtime_error& e) {
      last_error = e.what();
    }
    a.join();
  });
  EXPECT_EQ(last_error, "action failed");  // the last arrival gets the action's exception
  EXPECT_EQ(parked, Outcome::Broken);
  EXPECT_TRUE(b.broken());
}

// ---------------------------------------------------------------------------
// Tables over the wait forms.

struct WaitCall {
  const char* name;
  std::function<std::size_t(Barrier&)> wait;
};
void PrintTo(const WaitCall& c, std::ostream* os) { *os << c.name; }

const WaitCall kWaitCalls[] = {
    {"Barrier::wait", [](Barrier& b) { return b.wait(); }},
    {"Barrier::arrive_and_wait", [](Barrier& b) { return b.arrive_and_wait(); }},
    {"Barrier::wait_for", [](Barrier& b) { return b.wait_for(1h); }},
    {"Barrier::wait_until", [](Barrier& b) { return b.wait_until(Clock::now() + 1h); }},
};

class BarrierWaitTableTest : public CoreletTestP<WaitCall> {};

// Outside any tasklet every wait form is a UsageError naming Barrier::wait —
// even for one party, where the wait would not park.
TEST_P(BarrierWaitTableTest, OutsideATaskletIsUsageError) {
  for (std::size_t parties : {1u, 2u}) {
    SCOPED_TRACE(parties);
    Barrier b(parties);
    try {
      (void)GetParam().wait(b);
      ADD_FAILURE() << "no UsageError";
    } catch (const corelet::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("Barrier::wait"), std::string::npos) << e.what();
    }
    EXPECT_EQ(b.n_waiting(), 0u);
    EXPECT_FALSE(b.broken());
  }
}

// A parked wait is cancelled: it throws Cancelled, its stack unwinds, the
// barrier breaks (the other parked party gets BrokenBarrier), and reset()
// makes it usable again.
TEST_P(BarrierWaitTableTest, BlockedWaitThrowsCancelledAndBreaksTheBarrier) {
  Barrier b(3);
  bool reached = false;
  bool returned = false;
  bool unwound = false;
  bool cancelled_thrown = false;
  Outcome bystander = Outcome::Returned;
  bool broken_after = false;
  std::size_t waiting_after = 1;
  std::vector<std::size_t> indices_after_reset;
  corelet::run([&] {
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      reached = true;
      (void)GetParam().wait(b);
      returned = true;
    });
    auto other = corelet::spawn([&] { bystander = wait_outcome([&] { b.wait(); }); });
    yield_n(3);
    cancelled_thrown = cancel_and_join(victim);
    other.join();
    broken_after = b.broken();
    waiting_after = b.n_waiting();
    b.reset();
    auto d = corelet::spawn([&] { indices_after_reset.push_back(GetParam().wait(b)); });
    auto e = corelet::spawn([&] { indices_after_reset.push_back(b.wait()); });
    yield_n(2);
    indices_after_reset.push_back(b.wait());
    d.join();
    e.join();
  });
  EXPECT_TRUE(reached);
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(unwound);
  EXPECT_EQ(bystander, Outcome::Broken);
  EXPECT_TRUE(broken_after);
  EXPECT_EQ(waiting_after, 0u);
  std::sort(indices_after_reset.begin(), indices_after_reset.end());
  EXPECT_EQ(indices_after_reset, (std::vector<std::size_t>{0, 1, 2}));
}

INSTANTIATE_TEST_SUITE_P(Calls, BarrierWaitTableTest, ::testing::ValuesIn(kWaitCalls),
                         [](const auto& p) { return test_name(p.param.name); });

}  // namespace
