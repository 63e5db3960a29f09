#pragma once
// corelet/sched/detail/loop_hook.hpp — how a layer above sched (ipc's cluster
// worker) takes part in a scheduler's loop. Not for applications.

#include <corelet/sched/profile.hpp>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <string>

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
  // wake — called from any thread (the profiler's monitor, to have the loop
  // write a dump): the loop leaves the hook's sleep() soon. Async-signal-safe.
  virtual void wake() noexcept = 0;
  // add_stats — fills the cluster part of a worker's stats (worker id, ring
  // depths, message counts). On the loop's thread.
  virtual void add_stats(WorkerStats& s) const noexcept = 0;

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

namespace corelet::detail {

struct Tasklet;

// TaskletDescriber — lets the layer that made a stackless tasklet (the Python
// bindings) describe it in dumps and stall reports, installed per thread like
// the IdleGuard.
class TaskletDescriber {
 public:
  // stack — t's stack, one frame per line, innermost last (empty if none).
  // On the scheduler's thread, in a tasklet or the loop, never in a signal
  // handler; may use the Python C API (the thread holds the GIL there).
  virtual std::string stack(const Tasklet& t) = 0;
  // write_running_stack — writes the stack of the code this thread is running
  // now to fd. Called in a signal handler on the scheduler's thread while a
  // stackless tasklet runs: must be async-signal-safe.
  virtual void write_running_stack(int fd) noexcept = 0;

 protected:
  ~TaskletDescriber() = default;
};

// set_describer — installs `d` on this thread (nullptr: none); returns the
// previous one.
TaskletDescriber* set_describer(TaskletDescriber* d) noexcept;

// dump_signal — the signal that asks for a dump (CORELET_DUMP_SIGNAL;
// SIGQUIT by default), 0 for none. A cluster's supervisor passes it on, and
// installs the handlers (install_profile_handlers) before it forks, so that
// a worker that gets the signal before its scheduler starts is not killed.
int dump_signal() noexcept;
void install_profile_handlers();

// trace_message — with CORELET_TRACE, records a message sent to (out) or
// received from another worker as one end of a flow; `id` is the same at both
// ends. On a scheduler's thread; a no-op without a trace (one load: it is on
// every message's path).
// g_traces_open counts the schedulers of this process that write a trace.
// Relaxed: a scheduler opens its trace on its own thread before its loop
// runs, so it sees its own increment; another thread that misses it calls
// nothing, and its own scheduler has no trace to write to anyway.
extern std::atomic<std::uint32_t> g_traces_open;
void trace_message_now(bool out, std::uint64_t id, const char* name) noexcept;
inline void trace_message(bool out, std::uint64_t id, const char* name) noexcept {
  if (g_traces_open.load(std::memory_order_relaxed) != 0) trace_message_now(out, id, name);
}
// trace_file_begin / trace_file_end — a cluster's supervisor writes the
// trace file's opening and closing brackets around the workers' events.
void trace_file_begin() noexcept;
void trace_file_end() noexcept;

}  // namespace corelet::detail
