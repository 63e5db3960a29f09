#pragma once
// corelet/sched/timer.hpp — Timer: call a function after a delay, unless
// cancelled first (threading.Timer).
//
// start() spawns a tasklet that sleeps for the interval and then calls the
// function (which may block: it runs as a tasklet). cancel() before the call
// prevents it and returns true; after, it returns false. Destroying a started
// Timer cancels it if it has not fired. join() parks until the timer has fired
// or was cancelled, and rethrows the function's exception.

#include <corelet/sched/task.hpp>

#include <functional>
#include <memory>

namespace corelet {

class Timer {
 public:
  template <class Rep, class Period, class F>
  Timer(std::chrono::duration<Rep, Period> interval, F fn, SpawnOptions opts = {})
      : interval_(std::chrono::duration_cast<Clock::duration>(interval)),
        fn_(std::move(fn)),
        opts_(std::move(opts)) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() {
    if (task_.valid()) {
      cancel();
      task_.detach();
    }
  }

  // start — arms the timer; UsageError if already started or outside run().
  void start() {
    if (task_.valid() || state_->cancelled) throw UsageError("corelet: Timer::start: already started");
    task_ = spawn(std::move(opts_), [st = state_, d = interval_, fn = std::move(fn_)] {
      this_tasklet::sleep_for(d);
      if (st->cancelled) return;
      st->fired = true;
      fn();
    });
  }
  // cancel — prevents the call if it has not happened; true if it prevented it.
  bool cancel() noexcept {
    if (state_->fired || state_->cancelled) return false;
    state_->cancelled = true;
    task_.cancel();
    return true;
  }
  // join — parks until the timer fired (rethrowing the function's exception)
  // or was cancelled. Cancellation of the caller throws Cancelled; no timeout.
  void join() {
    if (!task_.valid()) throw UsageError("corelet: Timer::join: the timer was not started");
    try {
      task_.join();
    } catch (const Cancelled&) {
      if (!state_->cancelled) throw;
    }
  }
  bool fired() const noexcept { return state_->fired; }
  bool cancelled() const noexcept { return state_->cancelled; }

 private:
  struct State {
    bool fired = false;
    bool cancelled = false;
  };
  Clock::duration interval_;
  std::function<void()> fn_;
  SpawnOptions opts_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  Task<void> task_;
};

}  // namespace corelet
