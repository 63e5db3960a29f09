#pragma once
// Internal: one timeout spread over several I/O calls (write_all, read_exact,
// connect to each address of a name).

#include <corelet/sched/detail/tasklet.hpp>
#include <corelet/sched/io.hpp>

namespace corelet {

class Deadline {
 public:
  explicit Deadline(io::Timeout t)
      : at_(t.is_none() ? Clock::time_point::max() : detail::deadline_after(t.duration())) {}
  bool expired() const { return at_ != Clock::time_point::max() && Clock::now() >= at_; }
  // What is left of the timeout (zero once it has passed: the call only polls).
  io::Timeout remaining() const {
    if (at_ == Clock::time_point::max()) return io::no_timeout;
    const auto left = at_ - Clock::now();
    return left > left.zero() ? io::Timeout(left) : io::Timeout(std::chrono::nanoseconds::zero());
  }

 private:
  Clock::time_point at_;
};

}  // namespace corelet
