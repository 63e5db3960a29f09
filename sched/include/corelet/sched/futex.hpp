#pragma once
// corelet/sched/futex.hpp — waiting on a 32-bit word that other processes (or
// threads) change: the one wait under corelet's cross-process primitives
// (<corelet/ipc/sync.hpp>, <corelet/ipc/queue.hpp>). Part of the extension API
// (<corelet/sched/primitive.hpp> has the in-process half: docs/architecture.md).
//
//   // waiter                                   // waker, in any process
//   std::uint32_t seen = word.load();           word.fetch_add(1);
//   if (!ready()) corelet::futex_wait(word, seen);   corelet::futex_wake(word);
//
// The word must be in memory shared with the wakers (MAP_SHARED, or ordinary
// memory of this process); its address keys the wait, as futex(2) does for a
// shared (not process-private) futex.
//
// How the wait is done:
// - Outside a tasklet (a plain thread, or code before run()): the thread blocks
//   in futex(2).
// - In a fiber tasklet: only the tasklet parks. With io_uring and a kernel that
//   has IORING_OP_FUTEX_WAIT (Linux 6.7+), the wait is an operation on the
//   scheduler's ring. Otherwise (the epoll backend, older kernels) a proxy
//   thread of this process blocks in futex_waitv(2) for it and wakes the
//   scheduler through its wakeup path (a thread per concurrently waiting
//   tasklet; Linux < 5.16 without futex_waitv re-checks every 50 ms for
//   cancellation). Either way the wakeup is the waker's futex_wake itself,
//   never a poll, and a parked tasklet costs no CPU.
// - In a stackless tasklet: UsageError (it waits through a fiber, as every
//   parking C++ call does; see the Python binding's FiberOp).

#include <corelet/sched/primitive.hpp>

#include <atomic>
#include <climits>
#include <cstdint>

namespace corelet {

enum class FutexWait : std::uint8_t {
  Woken,     // a futex_wake came, the word differed from `expected`, or a spurious wakeup
  TimedOut,  // the deadline passed first
};

// futex_wait — returns at once (Woken) if word != expected; else waits until
// a futex_wake on the word, the deadline, or — in a tasklet — cancellation
// (throws Cancelled; a wake that came at the same moment is not lost: the
// caller's next look at the word sees it). Spurious wakeups happen: callers
// re-check their condition in a loop. `what` names the wait in deadlock and
// stall reports, `kind` is what accounting files it under.
// Outside a tasklet, the thread's hooks (set_futex_thread_hooks) run around
// the wait, and a signal that interrupts it runs their `interrupted`, which
// may throw; then Woken.
FutexWait futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     Clock::time_point deadline = Clock::time_point::max(),
                     const char* what = "corelet::futex_wait", WaitKind kind = WaitKind::Sync);

// futex_wake — wakes up to n waiters of the word, in any process. Call it
// after the change it announces is visible (a release store or RMW on the
// word, or on data ordered before it). Never blocks; any thread.
void futex_wake(const std::atomic<std::uint32_t>& word, int n = INT_MAX) noexcept;

// FutexThreadHooks — what this thread does around its waits outside a
// tasklet (the Python binding releases the GIL in before() and takes it back
// in after(), and raises KeyboardInterrupt from interrupted()):
// - before(): right before the thread spins or blocks;
// - after(): right after, also when the wait ends by a signal or a timeout;
// - interrupted(): after after(), when a signal interrupted the wait (EINTR);
//   it may throw to end the wait;
// - spin: how many times futex_spin looks at a word (a pause between looks;
//   0: never spin).
// Any pointer may be null. The hooks object must outlive the thread's waits.
struct FutexThreadHooks {
  void (*before)() = nullptr;
  void (*after)() = nullptr;
  void (*interrupted)() = nullptr;
  unsigned spin = 0;
};
// set_futex_thread_hooks — for this thread (nullptr: none).
void set_futex_thread_hooks(const FutexThreadHooks* hooks) noexcept;

// futex_spin — outside a tasklet: looks at the word up to `spin` times (the
// hooks' spin, between their before() and after(); kDefaultFutexSpin for a
// thread without hooks) and returns true as soon as it differs from
// `expected`. In a tasklet, which must not hold its thread, false at once. A primitive calls it before it
// registers as a waiter, where a change microseconds away is likely (a busy
// producer's next message): the waker then skips its futex_wake.
bool futex_spin(const std::atomic<std::uint32_t>& word, std::uint32_t expected);
// A thread without hooks does not spin: on a VM whose two vCPUs may share a
// physical CPU, a spinner can keep the very side it waits for from running
// (perf/RESULTS.md: a thread ping-pong took 4.6 µs without a spin, 12 µs with
// 100 pauses and 202 µs with 4,000).
inline constexpr unsigned kDefaultFutexSpin = 0;

namespace detail {
// Which mechanism a tasklet's futex_wait uses on this thread's scheduler:
// "io_uring" or "proxy thread" (tests and docs; nullptr outside a run).
const char* futex_wait_mechanism() noexcept;
}  // namespace detail

}  // namespace corelet
