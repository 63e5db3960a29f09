#pragma once
// corelet/sched/barrier.hpp — Barrier for a fixed number of tasklets
// (threading.Barrier).
//
// wait(): parks until `parties` tasklets have called it, then all go on. Returns
// an arrival index in [0, parties), different for each party; the last to
// arrive runs the completion action (if any) before the others are woken.
// The barrier breaks — every waiter and every later wait() throws BrokenBarrier
// until reset() — when a wait times out, a waiter is cancelled (it throws
// Cancelled itself), the action throws, or abort() is called.

#include <corelet/sched/primitive.hpp>

#include <cstddef>
#include <functional>

namespace corelet {

class Barrier {
 public:
  explicit Barrier(std::size_t parties, std::function<void()> action = {})
      : parties_(parties), action_(std::move(action)) {
    if (parties == 0) throw std::invalid_argument("corelet: Barrier needs at least one party");
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  std::size_t wait() { return wait_until(Clock::time_point::max()); }
  std::size_t arrive_and_wait() { return wait(); }
  template <class Rep, class Period>
  std::size_t wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(primitive::deadline_after(d));
  }
  std::size_t wait_until(Clock::time_point tp) {
    detail::Tasklet* t = primitive::require_tasklet("Barrier::wait");
    const Arrival a = arrive();
    if (a.last) {
      if (action_) {
        try {
          action_();
        } catch (...) {
          break_barrier();
          throw;
        }
      }
      pass();
      return a.index;
    }
    primitive::Waiter w;
    w.tasklet = t;
    t->waiters = &w;
    enlist(w);
    const primitive::Wake r = primitive::park("Barrier::wait", this, tp);
    if (r == primitive::Wake::Cancelled) {
      break_barrier();
      throw Cancelled{};
    }
    if (r == primitive::Wake::Timeout) {
      break_barrier();
      throw BrokenBarrier{};
    }
    if (w.state == primitive::Waiter::State::Closed) throw BrokenBarrier{};
    return a.index;
  }

  // The non-blocking core (primitive.hpp), for other kinds of tasklet (the
  // Python binding's stackless ones) and wait_until: arrive() counts the
  // caller in (BrokenBarrier if broken); the last to arrive runs the action
  // (abort() if it fails) and calls pass(), which wakes the others (state
  // Done); the others enlist a waiter (its tasklet set) and park. A waiter
  // that times out or is cancelled breaks the barrier (abort()); a broken
  // or reset barrier wakes its waiters with state Closed.
  struct Arrival {
    std::size_t index;  // in [0, parties)
    bool last;          // the caller completes the barrier
  };
  Arrival arrive() {
    if (broken_) throw BrokenBarrier{};
    const std::size_t index = count_++;
    return {index, count_ == parties_};
  }
  void pass() noexcept {
    count_ = 0;
    primitive::wake_all(waiters_);
  }
  void enlist(primitive::Waiter& w) noexcept {
    primitive::wait_in(waiters_, w);
  }
  bool waiters_are_here() const noexcept { return primitive::waiters_are_here(waiters_); }

  // abort — breaks the barrier: current and future waiters throw BrokenBarrier.
  void abort() noexcept { break_barrier(); }
  // reset — back to the empty, unbroken state; current waiters throw BrokenBarrier.
  void reset() noexcept {
    primitive::wake_all(waiters_, primitive::Waiter::State::Closed);
    count_ = 0;
    broken_ = false;
  }
  std::size_t parties() const noexcept { return parties_; }
  std::size_t n_waiting() const noexcept { return waiters_.size(); }
  bool broken() const noexcept { return broken_; }

 private:
  void break_barrier() noexcept {
    broken_ = true;
    count_ = 0;
    primitive::wake_all(waiters_, primitive::Waiter::State::Closed);
  }
  std::size_t parties_;
  std::size_t count_ = 0;
  bool broken_ = false;
  std::function<void()> action_;
  primitive::WaitQueue waiters_;
};

}  // namespace corelet
