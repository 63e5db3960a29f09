#pragma once
// corelet/sched/errors.hpp — the exceptions corelet throws.

#include <stdexcept>
#include <string>

namespace corelet {

// UsageError — the program used an API wrongly (a blocking call outside any
// tasklet, join of a detached task, unlocking a mutex it does not own, a bad
// stack size...). The message names the call.
class UsageError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Cancelled — thrown by a blocking call of a tasklet that was cancelled
// (Task::cancel). Let it propagate: it unwinds the tasklet's stack, running
// destructors, and join() of that task rethrows it. Cancellation is delivered
// once; a tasklet that catches it and goes on may block again normally.
class Cancelled : public std::exception {
 public:
  const char* what() const noexcept override { return "corelet: tasklet cancelled"; }
};

// Deadlock — thrown by corelet::run when no tasklet can ever run again while
// some are still blocked. The message lists every blocked tasklet and what it
// waits on.
class Deadlock : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ChannelClosed — send on a closed channel, or recv on a closed and drained one.
class ChannelClosed : public std::runtime_error {
 public:
  ChannelClosed() : std::runtime_error("corelet: channel closed") {}
  using std::runtime_error::runtime_error;
};

// BrokenBarrier — a Barrier was aborted or reset, or a wait on it timed out.
class BrokenBarrier : public std::runtime_error {
 public:
  BrokenBarrier() : std::runtime_error("corelet: barrier broken") {}
};

// QueueShutDown — put on a queue after shutdown() (ipc::Queue: close()), or
// get on one that was shut down and is empty (Python 3.13's queue.ShutDown).
class QueueShutDown : public std::runtime_error {
 public:
  QueueShutDown() : std::runtime_error("corelet: queue shut down") {}
  using std::runtime_error::runtime_error;
};

}  // namespace corelet
