#pragma once
// corelet/sched/condition_variable.hpp — ConditionVariable for tasklets.
//
// Works with any lock whose lock()/unlock() are tasklet-aware (Mutex,
// RecursiveMutex held once, through std::unique_lock). wait() releases the lock,
// parks the tasklet, and re-acquires the lock before returning — also when it
// throws. Timeouts: wait_for/wait_until return std::cv_status::timeout (or the
// predicate's value). Cancellation: throws Cancelled with the lock re-acquired.
// Notification is FIFO; there are no spurious wakeups, but use the predicate
// forms anyway: another tasklet may run between notify and the wake-up.

#include <corelet/sched/primitive.hpp>

#include <condition_variable>

namespace corelet {

class ConditionVariable {
 public:
  ConditionVariable() = default;
  ConditionVariable(const ConditionVariable&) = delete;
  ConditionVariable& operator=(const ConditionVariable&) = delete;

  template <class Lock>
  void wait(Lock& lk) { wait_until(lk, Clock::time_point::max()); }
  template <class Lock, class Pred>
  void wait(Lock& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  template <class Lock>
  std::cv_status wait_until(Lock& lk, Clock::time_point tp) {
    detail::Tasklet* t = primitive::require_tasklet("ConditionVariable::wait");
    primitive::Waiter w;
    primitive::enlist(w, t, waiters_);
    try {
      lk.unlock();
    } catch (...) {  // not holding the lock: leave no waiter behind
      waiters_.remove(&w);
      t->waiters = nullptr;
      throw;
    }
    primitive::Wake r;
    try {
      r = primitive::park("ConditionVariable::wait", this, tp);
    } catch (...) {  // could not park (no memory for the timer): our waiter is unlinked
      relock(lk);
      throw;
    }
    if (relock(lk)) r = primitive::Wake::Cancelled;
    if (r == primitive::Wake::Cancelled) throw Cancelled{};
    return r == primitive::Wake::Timeout ? std::cv_status::timeout : std::cv_status::no_timeout;
  }
  template <class Lock, class Pred>
  bool wait_until(Lock& lk, Clock::time_point tp, Pred pred) {
    while (!pred())
      if (wait_until(lk, tp) == std::cv_status::timeout) return pred();
    return true;
  }
  template <class Lock, class Rep, class Period>
  std::cv_status wait_for(Lock& lk, std::chrono::duration<Rep, Period> d) {
    return wait_until(lk, primitive::deadline_after(d));
  }
  template <class Lock, class Rep, class Period, class Pred>
  bool wait_for(Lock& lk, std::chrono::duration<Rep, Period> d, Pred pred) {
    return wait_until(lk, primitive::deadline_after(d), std::move(pred));
  }

  // notify_one / notify_all — wake the longest waiter / every waiter. Callable
  // from any tasklet, with or without the lock.
  void notify_one() noexcept { primitive::wake_one(waiters_); }
  void notify_all() noexcept { primitive::wake_all(waiters_); }
  std::size_t waiting() const noexcept { return waiters_.size(); }

 private:
  // Re-acquires the lock even if cancelled while parked on it; true if a
  // cancellation arrived then, to be delivered with the lock held.
  template <class Lock>
  static bool relock(Lock& lk) {
    bool cancelled = false;
    for (;;) {
      try {
        lk.lock();
        return cancelled;
      } catch (const Cancelled&) {
        cancelled = true;
      }
    }
  }
  primitive::WaitQueue waiters_;
};

}  // namespace corelet
