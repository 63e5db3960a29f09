// What the loop does between tasklets: blocking jobs' completions coming back
// from helper threads, the reactor set up at the first I/O call, and the idle
// wait (the reactor, the loop hook's futex, or a ppoll on the wakeup eventfd)
// until the next timer, completion or wakeup.

#include "scheduler.hpp"
#include "reactor.hpp"
#include <corelet/sched/detail/blocking.hpp>

#include <corelet/core/cycles.hpp>

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>
#include <utility>

namespace corelet::detail {

void Scheduler::post_completion(BlockingJob* job) noexcept {
  // posting_ keeps this Scheduler alive until we are out of here: once the
  // job is in completions_, the loop may drain it, finish and return from
  // run(). The increment happens-before the enqueue (release), so a loop that
  // has dequeued the job sees it in ~Scheduler and waits for the decrement.
  posting_.fetch_add(1, std::memory_order_relaxed);
  completions_.enqueue(job);
  // Pairs with the fence in idle_wait (Dekker): either the loop sees this job in
  // completions_ after its fence, or we see sleeping_ == true after ours and
  // write the eventfd it sleeps on. Both fences are seq_cst, so the two stores
  // cannot both be missed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed)) {
    const std::uint64_t one = 1;
    ssize_t r = ::write(wake_fd_, &one, sizeof one);
    (void)r;  // EAGAIN only if the counter is saturated: it is non-zero, a wakeup is due anyway
  }
  posting_.fetch_sub(1, std::memory_order_release);  // our last touch of *this
}

void Scheduler::drain_completions() noexcept {
  BlockingJob* job;
  while (completions_.try_dequeue(job)) {
    --blocking_outstanding_;
    job->finished = true;
    unpark(job->waiter, Wake::Notified);
  }
}

void Scheduler::make_reactor_now() { reactor_ = make_reactor(*this, wake_fd_, &io_fallback_reason_); }

namespace {
thread_local IdleGuard* tl_idle_guard = nullptr;
}  // namespace

IdleGuard* set_idle_guard(IdleGuard* guard) noexcept { return std::exchange(tl_idle_guard, guard); }

void Scheduler::idle_wait() {
  timespec ts{};
  timespec* tsp = nullptr;
  if (!timers_.empty()) {
    auto d = timers_.front()->deadline - Clock::now();
    if (d <= d.zero()) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    tsp = &ts;
  }
  stacks_.trim();  // idle: give back the pages of cold stacks
  struct Asleep {  // the sleep's time is idle time, and the monitor knows we sleep
    Scheduler& s;
    std::uint64_t from = 0;
    std::uint64_t from_ns = 0;  // for the trace
    explicit Asleep(Scheduler& sched) noexcept : s(sched) {
      if (!s.accounting_) return;
      if (s.tracer_) from_ns = Tracer::now_ns();
      from = core::cycles();
      s.charge(from);
      s.beat_.idle.store(true, std::memory_order_relaxed);
    }
    ~Asleep() {
      if (!s.accounting_) return;
      // The fresh beat first, then awake (release; the monitor reads idle
      // with acquire, then the beat): it never sees the beat from before the
      // sleep on an awake scheduler, which would look like a long stall.
      s.refresh_beat();
      s.beat_.idle.store(false, std::memory_order_release);
      monitor_note_awake();
      const std::uint64_t to = core::cycles();
      s.idle_cycles_ += to - from;
      ++s.wakeups_;
      s.exclude(from, to);
      if (s.tracer_) s.tracer_->idle(from_ns, Tracer::now_ns());
    }
    Asleep(const Asleep&) = delete;
    Asleep& operator=(const Asleep&) = delete;
  } asleep(*this);
  struct Guard {  // the thread's IdleGuard, around everything that may block
    IdleGuard* g;
    explicit Guard(IdleGuard* guard) noexcept : g(guard) {
      if (g) g->before_sleep();
    }
    ~Guard() {
      if (g) g->after_sleep();
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
  } guard(tl_idle_guard);
  // Only a helper running one of our blocking jobs reads sleeping_ (see
  // post_completion): without one outstanding, no fence is needed.
  const bool helpers = blocking_outstanding_ != 0;
  if (helpers) {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // see post_completion
  }
  if (helpers && completions_.size_approx() != 0) {
    // A completion came in meanwhile: do not sleep.
  } else if (hook_ && !hook_->prepare_sleep()) {
    // The hook's work came in meanwhile: do not sleep.
  } else if (hook_ && !helpers && !(reactor_ && reactor_->in_flight()) && hook_->sleep(tsp)) {
    hook_->woke();  // slept the hook's way (a cluster worker: a futex)
  } else if (reactor_) {
    try {
      reactor_->wait(tsp);  // I/O completions, the eventfd or the next timer
    } catch (...) {
      sleeping_.store(false, std::memory_order_relaxed);
      if (hook_) hook_->woke();
      throw;
    }
    if (hook_) hook_->woke();
  } else {
    pollfd pfd{wake_fd_, POLLIN, 0};
    int r = ::ppoll(&pfd, 1, tsp, nullptr);
    if (hook_) hook_->woke();
    if (r < 0 && errno != EINTR) {
      sleeping_.store(false, std::memory_order_relaxed);
      throw std::system_error(errno, std::generic_category(), "corelet: ppoll in the idle scheduler");
    }
    if (r > 0 && (pfd.revents & POLLIN)) {
      std::uint64_t v;
      ssize_t n = ::read(wake_fd_, &v, sizeof v);  // one read resets the counter (one reader: us)
      (void)n;
    }
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

}  // namespace corelet::detail
