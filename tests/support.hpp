#pragma once
// Shared test support: a fixture whose TearDown checks that no tasklet control
// block outlived the test (so every test is also a leak check), and helpers.

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <string>

namespace corelet_test {

using namespace std::chrono_literals;

class CoreletTest : public ::testing::Test {
 protected:
  void SetUp() override { before_ = corelet::detail::tasklet_objects_alive(); }
  void TearDown() override {
    EXPECT_EQ(corelet::detail::tasklet_objects_alive(), before_) << "tasklet control blocks leaked";
  }

 private:
  std::size_t before_ = 0;
};

template <class Param>
class CoreletTestP : public CoreletTest, public ::testing::WithParamInterface<Param> {};

// Sets *flag when destroyed: shows that a cancelled tasklet's stack was unwound.
struct Sentinel {
  bool* flag;
  ~Sentinel() { *flag = true; }
};

// Microseconds since t0 (integers print readably in gtest failure messages).
inline std::int64_t elapsed_us(corelet::Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::microseconds>(corelet::Clock::now() - t0).count();
}
constexpr std::int64_t us(std::chrono::microseconds d) { return d.count(); }

// Runs f and expects a UsageError whose message names `call`.
template <class F>
void expect_usage_error(F&& f, const std::string& call) {
  try {
    f();
    ADD_FAILURE() << "no UsageError; expected one naming " << call;
  } catch (const corelet::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(call), std::string::npos) << "what(): " << e.what();
  }
}

// A test name from a call name: "Mutex::try_lock_for" -> "Mutex_try_lock_for".
inline std::string test_name(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
    else if (out.empty() || out.back() != '_') out += '_';
  }
  return out;
}

// The two timed forms of a wait — `for_form(20ms)` then `until_form(now +
// 20ms)` — run one after the other in the calling tasklet: what each returned
// and how long it waited.
struct TimedWaits {
  bool r_for = true;
  bool r_until = true;
  std::int64_t us_for = 0;
  std::int64_t us_until = 0;
};
template <class For, class Until>
TimedWaits timed_waits(For&& for_form, Until&& until_form) {
  TimedWaits w;
  auto t0 = corelet::Clock::now();
  w.r_for = for_form(20ms);
  w.us_for = elapsed_us(t0);
  t0 = corelet::Clock::now();
  w.r_until = until_form(t0 + 20ms);
  w.us_until = elapsed_us(t0);
  return w;
}
// Both forms gave up (false) and neither before its 20 ms (a timeout never
// fires early: a lower bound cannot flake).
inline void expect_both_timed_out(const TimedWaits& w) {
  EXPECT_FALSE(w.r_for);
  EXPECT_FALSE(w.r_until);
  EXPECT_GE(w.us_for, us(20ms));
  EXPECT_GE(w.us_until, us(20ms));
}

// Cancels t and joins it: true if the join rethrew Cancelled.
template <class T>
bool cancel_and_join(corelet::Task<T>& t) {
  t.cancel();
  try {
    t.join();
  } catch (const corelet::Cancelled&) {
    return true;
  }
  return false;
}

// Yields n times: lets every other ready tasklet make n steps of progress.
inline void yield_n(int n) {
  for (int i = 0; i < n; ++i) corelet::this_tasklet::yield();
}

}  // namespace corelet_test
