#pragma once
// corelet/core/overflow.hpp — naming the fiber whose stack overflowed.
//
// A fiber that runs past the bottom of its stack touches the guard below it and
// gets SIGSEGV. The handler runs on a per-thread alternate signal stack (the
// faulting stack has no room left), checks whether the address lies in the guard
// of the stack the thread is running on, and if so prints
//     corelet: tasklet "<name>" (#<id>) overflowed its <N> KiB stack
// and aborts. Any other fault is passed to the handler that was installed before
// (a sanitizer's, or the default action).

#include <corelet/core/stack.hpp>

#include <cstdint>

namespace corelet::core {

// RunningStack — what the handler reports. The owner of the running fiber (the
// scheduler) points tl_running_stack at it on every switch; nullptr on a thread's
// own stack. `name` must stay valid while the fiber can run.
struct RunningStack {
  Stack stack;
  const char* name = "";
  std::uint64_t id = 0;
};

extern thread_local constinit const RunningStack* tl_running_stack;

// install_overflow_handler — gives the calling thread an alternate signal stack
// (kept until the thread exits) and, once per process, installs the SIGSEGV and
// SIGBUS handler. Idempotent; safe to call from every thread that runs fibers.
void install_overflow_handler();

// format_overflow_message — the report line for `r`, written into buf (NUL
// terminated, truncated to n). Async-signal-safe. Returns the length written.
std::size_t format_overflow_message(const RunningStack& r, char* buf, std::size_t n) noexcept;

}  // namespace corelet::core
