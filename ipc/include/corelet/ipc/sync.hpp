#pragma once
// corelet/ipc/sync.hpp — locks and signals between processes: Mutex,
// RecursiveMutex, Semaphore, Event, Condition, Barrier.
//
//   auto m = corelet::ipc::Shared<corelet::ipc::Mutex>::make();  // before fork()
//   if (fork() == 0) { std::lock_guard g(*m); ... }                 // the child
//   std::lock_guard g(*m);                                          // the parent
//
// Each is a plain object that lives in memory shared by the processes that use
// it: in an ipc::Shared<T> (<corelet/ipc/mapping.hpp>), which forked children
// inherit, or anywhere else both map at the same offset. The layouts are fixed
// (static_asserts below) and contain no pointers, so a process may map the
// memory at any address.
//
// Every blocking call works in three contexts, by where it is called:
// - a plain thread: blocks the thread (futex(2));
// - a fiber tasklet: parks only the tasklet; the event itself wakes it (the
//   other side's futex_wake reaches it through io_uring or a proxy thread: see
//   <corelet/sched/futex.hpp>), and while it waits it costs no CPU. Cancelling
//   the tasklet ends the wait with corelet::Cancelled (nothing was taken);
// - a stackless tasklet: UsageError; it waits through a fiber.
// Deadlines are steady_clock time points (Clock::time_point::max(): none); a
// call that timed out took nothing and returns false.
//
// A process that dies holding a Mutex or RecursiveMutex (killed, or exited
// without unlocking) does not block the others for ever: a waiter looks at the
// holder every 200 ms while it waits, and takes the lock from a holder that is
// gone (owner_deaths() counts it), as a robust pthread mutex would. The data
// the lock guarded is as the dead holder left it. A Semaphore's units, an
// Event or a Barrier have no owner: a death changes nothing there (a barrier
// party that dies leaves the others waiting until their timeout).

#include <corelet/sched/primitive.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/ipc/robust_mutex.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <type_traits>

namespace corelet::ipc {

// The token that owns a RecursiveMutex for the caller: the running tasklet's
// id (top bit set), or the thread's id outside tasklets.
std::uint64_t this_owner() noexcept;

namespace detail {
// This process's id, cached (refreshed in a forked child).
std::uint32_t self_pid() noexcept;
// Whether process `pid` has ended (gone, or a zombie not yet reaped).
bool process_gone(std::uint32_t pid) noexcept;
}  // namespace detail

// Mutex — a lock one process (any of its threads or tasklets) holds at a time
// (BasicLockable / TimedLockable). Not recursive: locking it again from its
// holder deadlocks, as std::mutex does; unlock may come from any thread or
// tasklet of the holding process (a multiprocessing.Lock may be released by
// another thread).
class Mutex {
 public:
  Mutex() noexcept = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // lock — waits until it is free (parks a tasklet; blocks a thread). Throws
  // Cancelled if the tasklet is cancelled while it waits.
  void lock() { (void)try_lock_until(Clock::time_point::max()); }
  // try_lock — takes it if free, or if its holder is another process that
  // has ended and been reaped (as a robust mutex's trylock would); never
  // waits. (A waiting lock also takes it from a holder that is a zombie.)
  bool try_lock() noexcept {
    std::uint32_t seen = 0;
    return take_free(seen) || take_from_dead(seen, false);
  }
  // try_lock_until — lock(), giving up at the deadline (false).
  bool try_lock_until(Clock::time_point deadline) {
    std::uint32_t seen = 0;
    return take_free(seen) || lock_slow(deadline);
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return try_lock_until(corelet::primitive::deadline_after(d));
  }
  // unlock — UsageError if it is not locked.
  void unlock();
  bool locked() const noexcept { return (word_.load(std::memory_order_relaxed) & kOwner) != 0; }
  // The process holding it (0: free).
  std::uint32_t holder() const noexcept { return word_.load(std::memory_order_relaxed) & kOwner; }
  std::uint32_t owner_deaths() const noexcept { return deaths_.load(std::memory_order_relaxed); }

 private:
  friend class RecursiveMutex;
  static constexpr std::uint32_t kWaiters = 1u << 31;  // somebody may be in futex_wait
  static constexpr std::uint32_t kOwner = kWaiters - 1;
  // take_free — the fast path: 0 → our pid; else `seen` is the word found.
  bool take_free(std::uint32_t& seen) noexcept {
    // acquire: the holder's writes before its unlock (release) are visible.
    return word_.compare_exchange_strong(seen, detail::self_pid(), std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }
  bool lock_slow(Clock::time_point deadline);
  // take_from_dead — seen: the word as found; takes it if its holder is a
  // process other than ours that has ended: reaped (a kill(pid, 0) away), or
  // with zombies too (a read of /proc: only after a waiter's 200 ms look).
  bool take_from_dead(std::uint32_t seen, bool zombies_too) noexcept;

  // The word: the holder's pid (0: free) | kWaiters. Ordering: see try_lock
  // (acquire), unlock (release) and the argument at the top of sync.cpp.
  std::atomic<std::uint32_t> word_{0};
  // Relaxed: a statistic, bumped by the new holder.
  std::atomic<std::uint32_t> deaths_{0};
};

// RecursiveMutex — a lock that its owner (a thread or a tasklet: see
// this_owner(); the Python binding passes its own tokens) may take again;
// each lock needs its unlock. unlock by another owner is a UsageError.
class RecursiveMutex {
 public:
  RecursiveMutex() noexcept = default;
  RecursiveMutex(const RecursiveMutex&) = delete;
  RecursiveMutex& operator=(const RecursiveMutex&) = delete;

  void lock() { (void)try_lock_until(Clock::time_point::max(), this_owner()); }
  bool try_lock() noexcept { return try_lock(this_owner()); }
  void unlock() { unlock(this_owner()); }
  bool try_lock(std::uint64_t owner) noexcept;
  bool try_lock_until(Clock::time_point deadline, std::uint64_t owner = this_owner());
  void unlock(std::uint64_t owner);
  // release_all / restore — a Condition's wait on it: gives up every level
  // (returns how many), then takes them back.
  std::uint32_t release_all(std::uint64_t owner);
  bool restore(std::uint32_t depth, Clock::time_point deadline, std::uint64_t owner);
  bool owned_by(std::uint64_t owner) const noexcept;
  bool locked() const noexcept { return m_.locked(); }
  std::uint32_t owner_deaths() const noexcept { return m_.owner_deaths(); }

 private:
  Mutex m_;
  // The owning token and its depth: written by the owner while it holds m_,
  // read by others only to compare (relaxed; see owned_by).
  std::atomic<std::uint64_t> owner_{0};
  std::uint32_t depth_ = 0;
  std::uint32_t pad_ = 0;
};

// Semaphore — a counter of units: acquire takes one (waiting while there are
// none), release gives n back. With a bound (bounded = true), a release past
// the initial value is a UsageError (multiprocessing.BoundedSemaphore).
class Semaphore {
 public:
  explicit Semaphore(std::uint32_t initial = 1, bool bounded = false) noexcept
      : count_(initial), max_(bounded ? initial : UINT32_MAX) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  void acquire() { (void)try_acquire_until(Clock::time_point::max()); }
  bool try_acquire() noexcept {
    std::uint32_t c = count_.load(std::memory_order_relaxed);
    // acquire: the releaser's writes before its release are visible.
    while (c > 0)
      if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
    return false;
  }
  bool try_acquire_until(Clock::time_point deadline) { return try_acquire() || acquire_slow(deadline); }
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
    return try_acquire_until(corelet::primitive::deadline_after(d));
  }
  // release — n units back; UsageError past a bounded semaphore's bound.
  void release(std::uint32_t n = 1);
  std::uint32_t value() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  bool acquire_slow(Clock::time_point deadline);
  std::atomic<std::uint32_t> count_;
  std::atomic<std::uint32_t> waiters_{0};  // in acquire_slow
  std::uint32_t max_;
  std::uint32_t pad_ = 0;
};

// Event — a flag that set() raises and clear() lowers; wait() waits for it.
class Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void set() noexcept;
  void clear() noexcept { flag_.store(0, std::memory_order_relaxed); }
  bool is_set() const noexcept { return flag_.load(std::memory_order_acquire) != 0; }
  // wait — true once set, false at the deadline.
  bool wait(Clock::time_point deadline = Clock::time_point::max());

 private:
  std::atomic<std::uint32_t> flag_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

// Condition — waits for a notification, releasing a lock meanwhile (any
// BasicLockable: Mutex, RecursiveMutex, a RobustMutex, std::unique_lock...).
// Spurious wakeups happen: wait in a loop on the condition, or use the
// predicate form. notify() may wake more than n waiters when waits and
// notifications race (never fewer).
class Condition {
 public:
  Condition() noexcept = default;
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  // wait — unlocks `lock`, waits for a notify or the deadline, locks it
  // again (also when the wait throws Cancelled). False at the deadline.
  template <class Lock>
  bool wait(Lock& lock, Clock::time_point deadline = Clock::time_point::max()) {
    const std::uint32_t seen = prepare_wait();
    lock.unlock();
    bool notified;
    try {
      notified = wait_from(seen, deadline);
    } catch (...) {
      lock.lock();
      throw;
    }
    lock.lock();
    return notified;
  }
  template <class Lock, class Pred>
  bool wait(Lock& lock, Pred pred, Clock::time_point deadline = Clock::time_point::max()) {
    while (!pred())
      if (!wait(lock, deadline)) return pred();
    return true;
  }
  void notify(std::uint32_t n = 1) noexcept;
  void notify_all() noexcept { notify(UINT32_MAX); }

  // The two halves of wait(), for callers that release their lock their own
  // way (the Python binding): read the sequence before unlocking, then wait
  // for it to move. Every prepare_wait() is followed by one wait_from().
  std::uint32_t prepare_wait() noexcept {
    // seq_cst, and waiters_ is raised first: a notify that follows our
    // unlock sees the waiter and wakes it, or we see its bump.
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return seq_.load(std::memory_order_seq_cst);
  }
  bool wait_from(std::uint32_t seen, Clock::time_point deadline);

 private:
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::uint32_t> waiters_{0};
};

// Barrier — `parties` callers meet: each wait() returns when all have called
// it, with an index (0 .. parties-1, the order of arrival) different for
// each. A timeout, abort() or reset() while some wait breaks the barrier:
// they and every later wait() throw BrokenBarrier until reset().
class Barrier {
 public:
  explicit Barrier(std::uint32_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // wait — arrives and waits for the others; the last to arrive runs
  // `action` (if any) before anybody is let go, and an exception from it
  // breaks the barrier (the others get BrokenBarrier, the last one the
  // exception). Throws BrokenBarrier (also at the deadline, after breaking
  // it), or Cancelled (which breaks it too: the others would wait for ever).
  std::uint32_t wait(Clock::time_point deadline = Clock::time_point::max(),
                     const std::function<void()>& action = {});

  // wait() in its two halves, for callers that run the action their own way
  // (the Python binding runs it under the GIL, outside the fiber that waits):
  // arrive() counts the caller in (waiting, as wait() does, while the last
  // party of the previous generation still runs its action). The one that
  // arrives last gets `last` and must call complete() — after its action —
  // without waiting; the others call wait_passed().
  struct Arrival {
    std::uint32_t index = 0;
    std::uint32_t gen = 0;
    bool last = false;
  };
  Arrival arrive(Clock::time_point deadline = Clock::time_point::max());
  // complete — the last party lets the others go (ok) or, its action having
  // failed, breaks the barrier (!ok). BrokenBarrier if the barrier was reset
  // or aborted while the action ran.
  void complete(const Arrival& a, bool ok);
  // wait_passed — waits until the caller's generation ends: its index, or
  // BrokenBarrier if it broke (also at the deadline, which breaks it).
  std::uint32_t wait_passed(const Arrival& a, Clock::time_point deadline = Clock::time_point::max());
  void abort();
  // reset — back to empty and unbroken; parties waiting now get BrokenBarrier.
  void reset();
  std::uint32_t parties() const noexcept { return parties_; }
  std::uint32_t waiting() const;
  bool broken() const;

 private:
  // Under mu_: count_, broken_, ended_. gen_ is written under mu_ too and
  // waited on as a futex word (the generation: +1 when one passes or breaks).
  void end_generation(bool broken) noexcept;
  bool ended_broken(std::uint32_t gen) const noexcept;

  mutable RobustMutex mu_;
  std::uint32_t parties_;
  std::uint32_t count_ = 0;
  std::atomic<std::uint32_t> gen_{0};
  std::uint32_t broken_ = 0;
  // How each of the last 64 generations ended: the generation number << 1 |
  // broken. A waiter woken late looks its own generation up here.
  std::uint64_t ended_[64] = {};
};

static_assert(std::is_standard_layout_v<Mutex> && sizeof(Mutex) == 8);
static_assert(std::is_standard_layout_v<RecursiveMutex> && sizeof(RecursiveMutex) == 24);
static_assert(std::is_standard_layout_v<Semaphore> && sizeof(Semaphore) == 16);
static_assert(std::is_standard_layout_v<Event> && sizeof(Event) == 8);
static_assert(std::is_standard_layout_v<Condition> && sizeof(Condition) == 8);
static_assert(std::is_standard_layout_v<Barrier>);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace corelet::ipc
