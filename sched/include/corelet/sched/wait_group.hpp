#pragma once
// corelet/sched/wait_group.hpp — WaitGroup: wait for a counted set of work
// (Go's sync.WaitGroup).
//
// add(n) raises the counter, done() lowers it; wait() parks until it is zero.
// wait_for/wait_until return false on timeout. Cancellation: throws Cancelled.
// A counter driven below zero throws UsageError.

#include <corelet/sched/primitive.hpp>

#include <cstdint>

namespace corelet {

class WaitGroup {
 public:
  explicit WaitGroup(std::int64_t initial = 0) { add(initial); }
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  void add(std::int64_t n = 1) {
    if (count_ + n < 0) throw UsageError("corelet: WaitGroup: counter would go below zero");
    count_ += n;
    if (count_ == 0) primitive::wake_all(waiters_);
  }
  void done() { add(-1); }
  void wait() { wait_until(Clock::time_point::max()); }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(primitive::deadline_after(d));
  }
  bool wait_until(Clock::time_point tp) {
    if (count_ == 0) return true;
    return primitive::wait_on(waiters_, "WaitGroup::wait", this, tp);
  }
  std::int64_t count() const noexcept { return count_; }

 private:
  std::int64_t count_ = 0;
  primitive::WaitQueue waiters_;
};

}  // namespace corelet
