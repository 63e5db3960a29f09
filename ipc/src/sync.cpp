// The cross-process locks and signals of sync.hpp: their waits.
//
// Memory ordering, once for all of them. A waiter announces itself (a
// waiters count or bit) and then reads the state word; a waker changes the
// state word and then reads the announcement; both with seq_cst (or an RMW
// that is part of the same total order), so at least one of them sees the
// other: either the waker sees the waiter and wakes it, or the waiter sees
// the change and does not sleep. The sleep itself is futex_wait(word, seen),
// which the kernel compares atomically, so a change between the waiter's
// last look and its sleep ends the sleep at once. Lock acquisitions are
// acquire and releases are release, so the data a lock guards is ordered.

#include <corelet/ipc/sync.hpp>
#include <corelet/sched/futex.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace corelet::ipc {

using namespace std::chrono_literals;

namespace {

// How often a waiter on a Mutex looks whether its holder still exists.
constexpr auto kHolderCheck = 200ms;

std::atomic<std::uint32_t> g_pid{0};

int to_wake_count(std::uint32_t n) noexcept { return n > INT_MAX ? INT_MAX : static_cast<int>(n); }

// Decrements a waiters count when the wait ends, however it ends.
struct Leave {
  std::atomic<std::uint32_t>& n;
  ~Leave() { n.fetch_sub(1, std::memory_order_relaxed); }
};

}  // namespace

namespace detail {

std::uint32_t self_pid() noexcept {
  std::uint32_t p = g_pid.load(std::memory_order_relaxed);
  if (p) return p;
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, [] { g_pid.store(0, std::memory_order_relaxed); }); });
  p = static_cast<std::uint32_t>(::getpid());
  g_pid.store(p, std::memory_order_relaxed);
  return p;
}

bool process_gone(std::uint32_t pid) noexcept {
  if (pid == 0) return true;
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // No such entry (or no /proc): ask the kernel directly.
    return ::kill(static_cast<pid_t>(pid), 0) < 0 && errno == ESRCH;
  }
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // "pid (comm) S ...": the state follows the last ')'. A zombie (Z) or a
  // dead task (X) has ended; only its parent's wait is still to come.
  const char* close_paren = std::strrchr(buf, ')');
  if (!close_paren || close_paren[1] != ' ') return false;
  const char state = close_paren[2];
  return state == 'Z' || state == 'X';
}

}  // namespace detail

namespace {
// The calling thread's id, cached: gettid is a system call, and RLock asks
// for it on every acquire and release. A forked child's thread has a new
// id: the child handler clears the forking thread's cache (the only thread
// there).
thread_local std::uint64_t tl_tid = 0;
}  // namespace

std::uint64_t this_owner() noexcept {
  if (const corelet::detail::Tasklet* t = corelet::primitive::current()) return (1ull << 63) | t->running.id;
  if (tl_tid == 0) {
    static std::once_flag once;
    std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, [] { tl_tid = 0; }); });
    tl_tid = static_cast<std::uint64_t>(::syscall(SYS_gettid));
  }
  return tl_tid;
}

// ---- Mutex ----

bool Mutex::lock_slow(Clock::time_point deadline) {
  const std::uint32_t me = detail::self_pid();
  for (;;) {
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    if ((v & kOwner) == 0) {
      // Free: take it, with the waiters mark (others may still sleep on it).
      if (word_.compare_exchange_weak(v, me | kWaiters, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
      continue;
    }
    if (!(v & kWaiters)) {
      if (!word_.compare_exchange_weak(v, v | kWaiters, std::memory_order_relaxed, std::memory_order_relaxed)) continue;
      v |= kWaiters;
    }
    const Clock::time_point now = deadline == Clock::time_point::min() ? deadline : Clock::now();
    if (now >= deadline) return false;
    const Clock::time_point slice = deadline - now > kHolderCheck ? now + kHolderCheck : deadline;
    // The holder is gone: the lock is ours, as a robust mutex's would be.
    if (futex_wait(word_, v, slice, "corelet::ipc::Mutex::lock", WaitKind::Sync) == FutexWait::TimedOut &&
        word_.load(std::memory_order_relaxed) == v && take_from_dead(v, true))
      return true;
  }
}

bool Mutex::take_from_dead(std::uint32_t seen, bool zombies_too) noexcept {
  const std::uint32_t holder = seen & kOwner;
  const std::uint32_t me = detail::self_pid();
  if (holder == 0 || holder == me) return false;
  const bool gone = zombies_too ? detail::process_gone(holder)
                                : ::kill(static_cast<pid_t>(holder), 0) < 0 && errno == ESRCH;
  if (!gone) return false;
  if (!word_.compare_exchange_strong(seen, me | (seen & kWaiters), std::memory_order_acquire,
                                     std::memory_order_relaxed))
    return false;
  deaths_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Mutex::unlock() {
  const std::uint32_t v = word_.exchange(0, std::memory_order_release);
  if ((v & kOwner) == 0) throw UsageError("corelet::ipc::Mutex::unlock: the mutex is not locked");
  if (v & kWaiters) futex_wake(word_, 1);
}

// ---- RecursiveMutex ----

bool RecursiveMutex::owned_by(std::uint64_t owner) const noexcept {
  // owner_ is ours only while this process holds m_ and wrote our token there;
  // nobody else writes it meanwhile, so the relaxed reads cannot mislead.
  return m_.holder() == detail::self_pid() && owner_.load(std::memory_order_relaxed) == owner;
}

bool RecursiveMutex::try_lock(std::uint64_t owner) noexcept {
  if (owned_by(owner)) {
    ++depth_;
    return true;
  }
  if (!m_.try_lock()) return false;
  owner_.store(owner, std::memory_order_relaxed);
  depth_ = 1;
  return true;
}

bool RecursiveMutex::try_lock_until(Clock::time_point deadline, std::uint64_t owner) {
  if (owned_by(owner)) {
    ++depth_;
    return true;
  }
  if (!m_.try_lock_until(deadline)) return false;
  owner_.store(owner, std::memory_order_relaxed);
  depth_ = 1;
  return true;
}

void RecursiveMutex::unlock(std::uint64_t owner) {
  if (!owned_by(owner)) throw UsageError("corelet::ipc::RecursiveMutex::unlock: not held by the caller");
  if (--depth_ == 0) {
    owner_.store(0, std::memory_order_relaxed);
    m_.unlock();
  }
}

std::uint32_t RecursiveMutex::release_all(std::uint64_t owner) {
  if (!owned_by(owner)) throw UsageError("corelet::ipc::RecursiveMutex: released by a caller that does not hold it");
  const std::uint32_t d = depth_;
  depth_ = 0;
  owner_.store(0, std::memory_order_relaxed);
  m_.unlock();
  return d;
}

bool RecursiveMutex::restore(std::uint32_t depth, Clock::time_point deadline, std::uint64_t owner) {
  if (!m_.try_lock_until(deadline)) return false;
  owner_.store(owner, std::memory_order_relaxed);
  depth_ = depth;
  return true;
}

// ---- Semaphore ----

bool Semaphore::acquire_slow(Clock::time_point deadline) {
  for (;;) {
    if (try_acquire()) return true;
    if (deadline == Clock::time_point::min() || Clock::now() >= deadline) return false;
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    Leave leave{waiters_};
    while (count_.load(std::memory_order_seq_cst) == 0)
      if (futex_wait(count_, 0, deadline, "corelet::ipc::Semaphore::acquire", WaitKind::Sync) == FutexWait::TimedOut)
        return try_acquire();
  }
}

void Semaphore::release(std::uint32_t n) {
  std::uint32_t c = count_.load(std::memory_order_relaxed);
  do {
    if (n > max_ - c)
      throw UsageError(max_ == UINT32_MAX ? "corelet::ipc::Semaphore::release: the count would overflow"
                                          : "corelet::ipc::Semaphore::release: released more times than acquired "
                                            "(a bounded semaphore cannot pass its initial value)");
  } while (!count_.compare_exchange_weak(c, c + n, std::memory_order_seq_cst, std::memory_order_relaxed));
  if (waiters_.load(std::memory_order_seq_cst)) futex_wake(count_, to_wake_count(n));
}

// ---- Event ----

void Event::set() noexcept {
  flag_.store(1, std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_seq_cst)) futex_wake(flag_);
}

bool Event::wait(Clock::time_point deadline) {
  if (is_set()) return true;
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  Leave leave{waiters_};
  while (flag_.load(std::memory_order_seq_cst) == 0)
    if (futex_wait(flag_, 0, deadline, "corelet::ipc::Event::wait", WaitKind::Sync) == FutexWait::TimedOut)
      return is_set();
  return true;
}

// ---- Condition ----

void Condition::notify(std::uint32_t n) noexcept {
  seq_.fetch_add(1, std::memory_order_seq_cst);
  if (waiters_.load(std::memory_order_seq_cst)) futex_wake(seq_, to_wake_count(n));
}

bool Condition::wait_from(std::uint32_t seen, Clock::time_point deadline) {
  Leave leave{waiters_};
  if (futex_wait(seq_, seen, deadline, "corelet::ipc::Condition::wait", WaitKind::Sync) == FutexWait::Woken)
    return true;
  return seq_.load(std::memory_order_seq_cst) != seen;
}

// ---- Barrier ----

Barrier::Barrier(std::uint32_t parties) : parties_(parties) {
  if (parties == 0) throw std::invalid_argument("corelet::ipc::Barrier: parties must be at least 1");
}

void Barrier::end_generation(bool broken) noexcept {
  const std::uint32_t g = gen_.load(std::memory_order_relaxed);
  ended_[g % 64] = (static_cast<std::uint64_t>(g) << 1) | (broken ? 1 : 0);
  count_ = 0;
  if (broken) broken_ = 1;
  // release: a waiter that sees the new generation sees ended_ too (it also
  // takes mu_ before reading it).
  gen_.store(g + 1, std::memory_order_release);
}

bool Barrier::ended_broken(std::uint32_t g) const noexcept {
  const std::uint64_t e = ended_[g % 64];
  // Overwritten (64 generations later): it ended long ago, and not broken
  // for this waiter, who was let go by its generation's end.
  return (e >> 1) == g && (e & 1);
}

std::uint32_t Barrier::wait(Clock::time_point deadline, const std::function<void()>& action) {
  const Arrival a = arrive(deadline);
  if (!a.last) return wait_passed(a, deadline);
  if (action) {
    try {
      action();
    } catch (...) {
      try {
        complete(a, false);
      } catch (const BrokenBarrier&) {  // reset meanwhile: the action's error is the one to report
      }
      throw;
    }
  }
  complete(a, true);
  return a.index;
}

Barrier::Arrival Barrier::arrive(Clock::time_point deadline) {
  for (;;) {
    mu_.lock();
    if (broken_) {
      mu_.unlock();
      throw BrokenBarrier();
    }
    const std::uint32_t gen = gen_.load(std::memory_order_relaxed);
    if (count_ >= parties_) {
      // The last party of this generation runs its action: wait for the
      // next generation and arrive there.
      mu_.unlock();
      if (futex_wait(gen_, gen, deadline, "corelet::ipc::Barrier::wait", WaitKind::Sync) == FutexWait::TimedOut &&
          gen_.load(std::memory_order_acquire) == gen) {
        abort();
        throw BrokenBarrier();
      }
      continue;
    }
    Arrival a;
    a.index = count_++;
    a.gen = gen;
    a.last = count_ == parties_;
    mu_.unlock();
    return a;
  }
}

void Barrier::complete(const Arrival& a, bool ok) {
  mu_.lock();
  if (gen_.load(std::memory_order_relaxed) != a.gen) {  // reset or aborted while the action ran
    mu_.unlock();
    throw BrokenBarrier();
  }
  end_generation(!ok);
  mu_.unlock();
  futex_wake(gen_);
}

std::uint32_t Barrier::wait_passed(const Arrival& a, Clock::time_point deadline) {
  for (;;) {
    FutexWait w;
    try {
      w = futex_wait(gen_, a.gen, deadline, "corelet::ipc::Barrier::wait", WaitKind::Sync);
    } catch (...) {  // Cancelled: the others would wait for ever for us
      abort();
      throw;
    }
    mu_.lock();
    if (gen_.load(std::memory_order_relaxed) != a.gen) {
      const bool broke = ended_broken(a.gen);
      mu_.unlock();
      if (broke) throw BrokenBarrier();
      return a.index;
    }
    if (w == FutexWait::TimedOut) {
      end_generation(true);
      mu_.unlock();
      futex_wake(gen_);
      throw BrokenBarrier();
    }
    mu_.unlock();
  }
}

void Barrier::abort() {
  mu_.lock();
  if (count_ > 0) end_generation(true);
  broken_ = 1;
  mu_.unlock();
  futex_wake(gen_);
}

void Barrier::reset() {
  mu_.lock();
  if (count_ > 0) end_generation(true);
  broken_ = 0;
  mu_.unlock();
  futex_wake(gen_);
}

std::uint32_t Barrier::waiting() const {
  mu_.lock();
  const std::uint32_t n = count_ < parties_ ? count_ : 0;
  mu_.unlock();
  return n;
}

bool Barrier::broken() const {
  mu_.lock();
  const bool b = broken_ != 0;
  mu_.unlock();
  return b;
}

}  // namespace corelet::ipc
