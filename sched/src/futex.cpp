// futex_wait / futex_wake (futex.hpp): the thread wait, the tasklet wait's
// dispatch to the reactor, and the reactor's default: a proxy thread.

#include <corelet/sched/futex.hpp>
#include <corelet/sched/detail/blocking.hpp>

#include "reactor.hpp"
#include "scheduler.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace corelet {
namespace {

thread_local const FutexThreadHooks* tl_hooks = nullptr;

std::uint32_t* addr(const std::atomic<std::uint32_t>& w) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free,
                "a futex word is a plain 32-bit word");
  return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&w));
}

// An absolute CLOCK_MONOTONIC time (steady_clock is CLOCK_MONOTONIC on Linux).
timespec to_timespec(Clock::time_point t) noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// One FUTEX_WAIT_BITSET on a shared word until the absolute deadline
// (max: none): 0, or -errno (ETIMEDOUT, EAGAIN: the word differed, EINTR).
long wait_until(std::uint32_t* w, std::uint32_t expected, Clock::time_point deadline, int op_flags) noexcept {
  timespec ts{};
  const timespec* tp = nullptr;
  if (deadline != Clock::time_point::max()) {
    ts = to_timespec(deadline);
    tp = &ts;
  }
  const long r = ::syscall(SYS_futex, w, FUTEX_WAIT_BITSET | op_flags, expected, tp, nullptr, FUTEX_BITSET_MATCH_ANY);
  return r < 0 ? -errno : 0;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

FutexWait thread_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, Clock::time_point deadline) {
  const FutexThreadHooks* h = tl_hooks;
  if (!h) {
    const long r = wait_until(addr(word), expected, deadline, 0);
    return r == -ETIMEDOUT ? FutexWait::TimedOut : FutexWait::Woken;
  }
  if (h->before) h->before();
  const long r = wait_until(addr(word), expected, deadline, 0);
  if (h->after) h->after();
  if (r == -ETIMEDOUT) return FutexWait::TimedOut;
  if (r == -EINTR && h->interrupted) h->interrupted();  // may throw
  return FutexWait::Woken;
}

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449  // the same number on every architecture that has it
#endif

// The proxy's wait: on the shared word and on the job's private cancel word
// at once (futex_waitv, Linux 5.16), so that a cancellation is exact too.
// 0 (woken or the word differed), -ETIMEDOUT or -ECANCELED.
long proxy_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, Clock::time_point deadline,
                const std::atomic<std::uint32_t>& cancel) noexcept {
  static std::atomic<bool> no_waitv{false};
  for (;;) {
    // acquire: pairs with the canceller's release store (nothing else is
    // read through it; the order only makes the flag seen promptly).
    if (cancel.load(std::memory_order_acquire)) return -ECANCELED;
    if (word.load(std::memory_order_acquire) != expected) return 0;
    if (Clock::now() >= deadline) return -ETIMEDOUT;
    if (!no_waitv.load(std::memory_order_relaxed)) {
      futex_waitv v[2] = {};
      v[0].val = expected;
      v[0].uaddr = reinterpret_cast<std::uintptr_t>(addr(word));
      v[0].flags = FUTEX_32;
      v[1].val = 0;
      v[1].uaddr = reinterpret_cast<std::uintptr_t>(addr(cancel));
      v[1].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
      timespec ts{};
      const timespec* tp = nullptr;
      if (deadline != Clock::time_point::max()) {
        ts = to_timespec(deadline);
        tp = &ts;
      }
      const long r = ::syscall(SYS_futex_waitv, v, 2, 0, tp, CLOCK_MONOTONIC);
      if (r == 0) return 0;  // the word's wake
      if (r == 1) continue;  // the cancel word's: the loop reports it
      const int err = errno;
      if (err == ETIMEDOUT) return -ETIMEDOUT;
      if (err != ENOSYS) continue;  // EAGAIN (a value differed), EINTR: look again
      no_waitv.store(true, std::memory_order_relaxed);
    }
    // No futex_waitv (Linux < 5.16): the word alone, looking at the cancel
    // word every 50 ms.
    const Clock::time_point slice = std::min(deadline, Clock::now() + std::chrono::milliseconds(50));
    const long r = wait_until(addr(word), expected, slice, 0);
    if (r == 0) return 0;
  }
}

struct WordJob final : detail::BlockingJob {
  const std::atomic<std::uint32_t>* word = nullptr;
  std::uint32_t expected = 0;
  Clock::time_point deadline;
  std::atomic<std::uint32_t> cancel{0};
  long result = 0;
  void execute() noexcept override { result = proxy_wait(*word, expected, deadline, cancel); }
};

}  // namespace

void set_futex_thread_hooks(const FutexThreadHooks* hooks) noexcept { tl_hooks = hooks; }

bool futex_spin(const std::atomic<std::uint32_t>& word, std::uint32_t expected) {
  if (primitive::current()) return false;
  const FutexThreadHooks* h = tl_hooks;
  const unsigned spin = h ? h->spin : kDefaultFutexSpin;
  if (spin == 0) return false;
  if (h && h->before) h->before();
  bool moved = false;
  for (unsigned i = 0; i < spin && !moved; ++i) {
    cpu_relax();
    moved = word.load(std::memory_order_acquire) != expected;  // acquire: as in futex_wait
  }
  if (h && h->after) h->after();
  return moved;
}

void futex_wake(const std::atomic<std::uint32_t>& word, int n) noexcept {
  ::syscall(SYS_futex, addr(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

FutexWait futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, Clock::time_point deadline,
                     const char* what, WaitKind kind) {
  // acquire: what the waker wrote before changing the word is visible to a
  // caller that sees the change.
  if (word.load(std::memory_order_acquire) != expected) return FutexWait::Woken;
  detail::Tasklet* t = primitive::current();
  if (!t) return thread_wait(word, expected, deadline);
  if (t->stackless)
    throw UsageError(std::string("corelet: ") + what + ": a stackless tasklet cannot park in a C++ call; wait through a fiber");
  if (t->cancel_pending) {  // as every blocking call: a pending cancellation ends it first
    t->cancel_pending = false;
    throw Cancelled{};
  }
  if (Clock::now() >= deadline) return FutexWait::TimedOut;
  const long rc = detail::this_scheduler()->reactor().wait_word(word, expected, deadline, what, kind);
  return rc == -ETIMEDOUT ? FutexWait::TimedOut : FutexWait::Woken;
}

namespace detail {

const char* futex_wait_mechanism() noexcept {
  Scheduler* s = this_scheduler();
  if (!s) return nullptr;
  try {
    return s->reactor().word_wait_mechanism();
  } catch (...) {
    return nullptr;
  }
}

long Reactor::wait_word(const std::atomic<std::uint32_t>& word, std::uint32_t expected, Clock::time_point deadline,
                        const char* what, WaitKind kind) {
  WordJob job;
  job.word = &word;
  job.expected = expected;
  job.deadline = deadline;
  submit_job(job, what, JobPool::Waits);  // may throw: nothing is outstanding then
  bool cancelled = false;
  while (!job.finished) {
    if (primitive::park(what, &job, Clock::time_point::max(), kind) == Wake::Cancelled && !cancelled) {
      cancelled = true;
      // release: pairs with proxy_wait's acquire load; the wake ends its
      // futex_waitv (or the 50 ms slice does).
      job.cancel.store(1, std::memory_order_release);
      ::syscall(SYS_futex, addr(job.cancel), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }
  if (cancelled) {
    if (job.result == -ECANCELED) throw Cancelled{};
    sched_.current()->cancel_pending = true;  // it ended anyway: the next blocking call reports it
  }
  return job.result == -ECANCELED ? 0 : job.result;
}

}  // namespace detail
}  // namespace corelet
