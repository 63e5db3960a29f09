// The timer heap: parked tasklets with a deadline, earliest first. A tasklet
// knows its place in it (heap_index), so unpark removes it in O(log n).

#include "scheduler.hpp"

namespace corelet::detail {

void Scheduler::timer_push(Tasklet* t) {
  timers_.push_back(t);  // may throw: t is not in the heap then
  t->heap_index = timers_.size() - 1;
  timer_sift_up(t->heap_index);
}

void Scheduler::timer_remove(Tasklet* t) noexcept {
  const std::size_t i = t->heap_index;
  Tasklet* last = timers_.back();
  timers_.pop_back();
  t->heap_index = Tasklet::npos;
  if (last == t) return;
  timers_[i] = last;
  last->heap_index = i;
  timer_sift_up(i);
  timer_sift_down(last->heap_index);
}

void Scheduler::timer_sift_up(std::size_t i) noexcept {
  Tasklet* t = timers_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!(t->deadline < timers_[parent]->deadline)) break;
    timers_[i] = timers_[parent];
    timers_[i]->heap_index = i;
    i = parent;
  }
  timers_[i] = t;
  t->heap_index = i;
}

void Scheduler::timer_sift_down(std::size_t i) noexcept {
  const std::size_t n = timers_.size();
  Tasklet* t = timers_[i];
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timers_[c + 1]->deadline < timers_[c]->deadline) ++c;
    if (!(timers_[c]->deadline < t->deadline)) break;
    timers_[i] = timers_[c];
    timers_[i]->heap_index = i;
    i = c;
  }
  timers_[i] = t;
  t->heap_index = i;
}

void Scheduler::fire_timers(Clock::time_point now) noexcept {
  while (!timers_.empty() && timers_.front()->deadline <= now) unpark(timers_.front(), Wake::Timeout);
}

}  // namespace corelet::detail
