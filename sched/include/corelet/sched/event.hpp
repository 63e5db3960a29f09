#pragma once
// corelet/sched/event.hpp — Event: a flag tasklets can wait for (threading.Event).
//
// wait(): parks until the flag is set; returns at once if it is. wait_for /
// wait_until: return the flag (false on timeout). Cancellation: throws Cancelled.
// set() wakes every waiter; clear() resets the flag.

#include <corelet/sched/primitive.hpp>

#include <cstddef>

namespace corelet {

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void set() noexcept {
    flag_ = true;
    primitive::wake_all(waiters_);
  }
  void clear() noexcept { flag_ = false; }
  bool is_set() const noexcept { return flag_; }

  void wait() { wait_until(Clock::time_point::max()); }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(primitive::deadline_after(d));
  }
  bool wait_until(Clock::time_point tp) {
    if (flag_) return true;
    // Woken by set() means true even if clear() ran before this tasklet did,
    // as with threading.Event.
    return primitive::wait_on(waiters_, "Event::wait", this, tp) || flag_;
  }

  std::size_t waiting() const noexcept { return waiters_.size(); }

  // The non-blocking core (primitive.hpp), for other kinds of tasklet (the
  // Python binding's stackless ones): is_set() tries now; enlist(w) makes w
  // (its tasklet set) wait for set() (w.state Done).
  void enlist(primitive::Waiter& w) noexcept {
    primitive::wait_in(waiters_, w);
  }
  bool waiters_are_here() const noexcept { return primitive::waiters_are_here(waiters_); }

 private:
  bool flag_ = false;
  primitive::WaitQueue waiters_;
};

}  // namespace corelet
