#pragma once
// corelet/sched/mutex.hpp — Mutex and RecursiveMutex for tasklets.
//
// Both park the waiting tasklet, never the thread, and hand ownership to waiters
// in FIFO order on unlock (no barging, no starvation). They satisfy the C++
// Lockable / TimedLockable requirements, so std::lock_guard, std::unique_lock
// and std::scoped_lock work with them. Owned by tasklets of one scheduler.
//
// lock(): parks until owned. Cancellation: throws Cancelled, not owning.
// try_lock_for / try_lock_until: false on timeout, not owning.
// unlock(): UsageError if the calling tasklet is not the owner.
// Every call except unlock's owner check needs a tasklet (UsageError otherwise).

#include <corelet/sched/primitive.hpp>

#include <cstddef>

namespace corelet {

class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() { acquire(Clock::time_point::max(), "Mutex::lock"); }
  bool try_lock() {
    detail::Tasklet* t = primitive::require_tasklet("Mutex::try_lock");
    if (owner_) return false;
    owner_ = t;
    return true;
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return acquire(primitive::deadline_after(d), "Mutex::try_lock_for");
  }
  bool try_lock_until(Clock::time_point tp) { return acquire(tp, "Mutex::try_lock_until"); }

  void unlock() {
    detail::Tasklet* t = primitive::current();
    if (owner_ == nullptr || owner_ != t)
      throw UsageError("corelet: Mutex::unlock: the calling tasklet does not own this mutex");
    hand_off();
  }

  bool locked() const noexcept { return owner_ != nullptr; }
  // The owner's tasklet id, 0 if unlocked.
  std::uint64_t owner_id() const noexcept { return owner_ ? owner_->running.id : 0; }

 private:
  friend class RecursiveMutex;
  bool acquire(Clock::time_point deadline, const char* call) {
    detail::Tasklet* t = primitive::require_tasklet(call);
    if (!owner_) {
      owner_ = t;
      return true;
    }
    if (owner_ == t)
      throw UsageError(std::string("corelet: ") + call +
                       ": the calling tasklet already owns this mutex (use RecursiveMutex)");
    // unlock() makes the first waiter the owner before waking it.
    return primitive::wait_on(waiters_, call, this, deadline);
  }
  void hand_off() noexcept {
    if (primitive::Waiter* w = waiters_.pop_front()) {
      owner_ = w->tasklet;
      w->state = primitive::Waiter::State::Done;
      primitive::unpark(w->tasklet);
    } else {
      owner_ = nullptr;
    }
  }
  detail::Tasklet* owner_ = nullptr;
  primitive::WaitQueue waiters_;
};

// RecursiveMutex — the owner may lock again; it is released after as many
// unlocks as locks.
class RecursiveMutex {
 public:
  void lock() { acquire(Clock::time_point::max(), "RecursiveMutex::lock"); }
  bool try_lock() {
    detail::Tasklet* t = primitive::require_tasklet("RecursiveMutex::try_lock");
    if (m_.owner_ == t) { ++depth_; return true; }
    if (!m_.try_lock()) return false;
    depth_ = 1;
    return true;
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return acquire(primitive::deadline_after(d), "RecursiveMutex::try_lock_for");
  }
  bool try_lock_until(Clock::time_point tp) { return acquire(tp, "RecursiveMutex::try_lock_until"); }
  void unlock() {
    if (m_.owner_ == nullptr || m_.owner_ != primitive::current())
      throw UsageError("corelet: RecursiveMutex::unlock: the calling tasklet does not own this mutex");
    if (--depth_ == 0) m_.hand_off();
  }
  bool locked() const noexcept { return m_.locked(); }
  std::size_t depth() const noexcept { return depth_; }

 private:
  bool acquire(Clock::time_point deadline, const char* call) {
    detail::Tasklet* t = primitive::require_tasklet(call);
    if (m_.owner_ == t) { ++depth_; return true; }
    if (!m_.acquire(deadline, call)) return false;
    depth_ = 1;
    return true;
  }
  Mutex m_;
  std::size_t depth_ = 0;
};

}  // namespace corelet
