#pragma once
// corelet/sched/detail/loop_hook.hpp — how a layer above sched (ipc's cluster
// worker) takes part in a scheduler's loop. Not for applications.

#include <ctime>

namespace corelet::detail {

// LoopHook — called by the scheduler loop of the thread it is installed on,
// always from the loop's own context (never inside a tasklet), so it may make
// tasklets ready, start new ones and unpark waiters, but must not park.
class LoopHook {
 public:
  // poll — once per loop iteration (every batch of tasklet runs), before the
  // ready tasklets are picked: take inbound work, publish outbound work.
  virtual void poll() noexcept = 0;
  // prepare_sleep — the loop has nothing ready and is about to sleep on its
  // wake fd: announce the sleep to whoever may wake us and re-check for work.
  // Returns false if work arrived (the loop then does not sleep).
  virtual bool prepare_sleep() noexcept = 0;
  // sleep — after a true prepare_sleep(), when nothing but the hook and the
  // timers can wake the loop (no I/O in flight, no run_blocking job): sleep
  // the hook's own way until woken or `timeout` (relative; nullptr: none).
  // Returns false to let the loop sleep on its wake fd instead.
  virtual bool sleep(const struct timespec* timeout) noexcept = 0;
  // woke — the sleep prepared by a true prepare_sleep() is over.
  virtual void woke() noexcept = 0;
  // keeps_alive — while true, a loop with nothing ready waits for the hook's
  // work instead of reporting a deadlock.
  virtual bool keeps_alive() const noexcept = 0;

 protected:
  ~LoopHook() = default;
};

// set_next_run_hook — the next corelet::run on this thread installs `hook`
// and sleeps on `wake_fd` (a non-blocking eventfd owned by the caller, which
// others write to wake the loop) instead of an eventfd of its own. Both are
// consumed by that run; pass nullptr / -1 to clear.
void set_next_run_hook(LoopHook* hook, int wake_fd) noexcept;

// IdleGuard — brackets the blocking part of an idle scheduler's wait, on the
// scheduler's thread: the Python bindings release the GIL in before_sleep()
// (helper threads running Python then get it) and take it back, and look for
// pending signals, in after_sleep(). Both run on the loop's own context.
class IdleGuard {
 public:
  virtual void before_sleep() noexcept = 0;
  virtual void after_sleep() noexcept = 0;

 protected:
  ~IdleGuard() = default;
};

// set_idle_guard — installs `guard` on this thread (nullptr: none) for every
// scheduler run here until changed; returns the previous one.
IdleGuard* set_idle_guard(IdleGuard* guard) noexcept;

}  // namespace corelet::detail
