#pragma once
// corelet/sched/semaphore.hpp — Semaphore and BoundedSemaphore for tasklets.
//
// acquire(): takes one unit, parking while none is free. Units released while
// tasklets wait go straight to the longest waiter (FIFO, no barging).
// Timeouts: try_acquire_for/until return false. Cancellation: throws Cancelled,
// no unit taken. Blocking forms need a tasklet (UsageError otherwise).
// BoundedSemaphore::release beyond the initial value throws UsageError, as
// Python's raises ValueError.

#include <corelet/sched/primitive.hpp>

#include <cstddef>
#include <string>

namespace corelet {

class Semaphore {
 public:
  explicit Semaphore(std::size_t initial = 1) : count_(initial) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  void acquire() { acquire_until(Clock::time_point::max(), "Semaphore::acquire"); }
  bool try_acquire() noexcept {
    if (count_ == 0) return false;
    --count_;
    return true;
  }
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
    return acquire_until(primitive::deadline_after(d), "Semaphore::try_acquire_for");
  }
  bool try_acquire_until(Clock::time_point tp) { return acquire_until(tp, "Semaphore::try_acquire_until"); }

  // release — returns n units; wakes up to n waiters.
  void release(std::size_t n = 1) {
    for (; n > 0; --n)
      if (!primitive::wake_one(waiters_)) break;  // a woken waiter owns its unit
    count_ += n;
  }
  std::size_t value() const noexcept { return count_; }
  std::size_t waiting() const noexcept { return waiters_.size(); }

  // The non-blocking core (primitive.hpp), for other kinds of tasklet (the
  // Python binding's stackless ones): try_acquire() tries now; enlist(w)
  // makes w (its tasklet set) wait for a unit, which release() hands over
  // (w.state Done: the unit is the waiter's).
  void enlist(primitive::Waiter& w) noexcept {
    primitive::wait_in(waiters_, w);
  }
  bool waiters_are_here() const noexcept { return primitive::waiters_are_here(waiters_); }

 protected:
  bool acquire_until(Clock::time_point tp, const char* call) {
    primitive::require_tasklet(call);  // also when a unit is free: the contract says so
    if (count_ > 0) {
      --count_;
      return true;
    }
    return primitive::wait_on(waiters_, call, this, tp);
  }
  std::size_t count_;
  primitive::WaitQueue waiters_;
};

class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::size_t initial = 1) : Semaphore(initial), bound_(initial) {}
  void release(std::size_t n = 1) {
    // Units out = bound_ - count_; waiters hold none yet.
    if (n > bound_ - count_)
      throw UsageError("corelet: BoundedSemaphore::release: released more than acquired (bound " +
                       std::to_string(bound_) + ")");
    Semaphore::release(n);
  }

 private:
  std::size_t bound_;
};

}  // namespace corelet
