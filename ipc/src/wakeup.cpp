// Sleeping and waking a worker.
//
// Wakeups (Dekker). A worker about to sleep raises its `sleeping` flag, issues
// a seq_cst fence and re-checks every inbound ring; a producer publishes its
// frames (release), issues a seq_cst fence and then reads the flag. With both
// fences seq_cst, at least one side sees the other's store: either the sleeper
// finds the frames, or the producer finds the flag and wakes it — through the
// eventfd its reactor waits on, or with FUTEX_WAKE if it sleeps on the flag
// word itself (see Worker::sleep; the word says which). The same pairing guards a producer waiting for
// ring space (RingWriter::announce_waiting / RingReader::release_and_check_waiter).
//

#include "worker.hpp"

#include <corelet/sched/futex.hpp>

#include <corelet/core/cycles.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace corelet::ipc::detail {

// A worker's `sleeping` word:
//   0           awake;
//   kOnEventfd  asleep (or about to be) in its reactor or ppoll: wake it
//               through its eventfd;
//   kOnFutex    asleep in futex_wait on the word itself: FUTEX_WAKE;
//   kWakeDue    woken while awake (a freed ring, a peer's death): the next
//               prepare_sleep() consumes it and does not sleep.
// Producers move 1 or 2 to 0 (whoever does, wakes); wake() moves anything to
// kWakeDue; only the worker moves kWakeDue back to 0.
constexpr std::uint32_t kOnEventfd = 1;
constexpr std::uint32_t kOnFutex = 2;
constexpr std::uint32_t kWakeDue = 3;

namespace {
void write_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  ssize_t r = ::write(fd, &one, sizeof one);
  (void)r;  // EAGAIN only when the counter is saturated: a wakeup is pending anyway
}
}  // namespace

void wake(const Cluster& c, int w) noexcept {
  // Unconditional (the supervisor, a freed ring): w wakes wherever it sleeps,
  // and if it is awake its next prepare_sleep() does not sleep.
  WorkerSlot& s = c.slot(w);
  const std::uint32_t was = s.sleeping.exchange(kWakeDue, std::memory_order_seq_cst);
  if (was == kOnFutex) {
    corelet::futex_wake(s.sleeping, 1);
  } else {
    write_eventfd(s.event_fd);  // for a reactor sleep (a pending read, or poll)
  }
}

bool wake_if_sleeping(const Cluster& c, int w) noexcept {
  WorkerSlot& s = c.slot(w);
  std::uint32_t was = s.sleeping.load(std::memory_order_relaxed);
  while (was == kOnEventfd || was == kOnFutex) {
    if (s.sleeping.compare_exchange_weak(was, 0, std::memory_order_relaxed)) {
      if (was == kOnFutex) {
        corelet::futex_wake(s.sleeping, 1);
      } else {
        write_eventfd(s.event_fd);
      }
      return true;
    }
  }
  return false;
}

bool Worker::prepare_sleep() noexcept {
  // Spin a while after traffic: a busy peer's next message then costs no
  // wakeup. A worker that received nothing since it last slept sleeps at once
  // (an I/O-only worker never spins).
  const auto spin = c_.cfg.idle_spin;
  if (spin.count() > 0 && recent_rx_) {
    const std::uint64_t until = core::cycles() + static_cast<std::uint64_t>(spin.count()) * core::cycles_per_us();
    for (unsigned i = 1;; ++i) {
      if (inbound_pending() || c_.ctl->epoch.load(std::memory_order_relaxed) != seen_epoch_) return false;
      core::cpu_relax();  // one pause per look: a look costs a load per inbound ring
      if (i % 64 == 0 && core::cycles() >= until) break;
    }
  }
  recent_rx_ = false;
  auto& flag = c_.slot(id_).sleeping;
  std::uint32_t awake = 0;
  if (!flag.compare_exchange_strong(awake, kOnEventfd, std::memory_order_relaxed)) {
    flag.store(0, std::memory_order_relaxed);  // kWakeDue: consumed; go round the loop again
    return false;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // raise the flag, then re-check (Dekker)
  if (inbound_pending() || c_.ctl->epoch.load(std::memory_order_relaxed) != seen_epoch_) {
    woke();
    return false;
  }
  return true;
}

bool Worker::sleep(const struct timespec* timeout) noexcept {
  // Nothing but a message, a peer's death or a timer can wake us: wait on the
  // `sleeping` word itself (a futex in shared memory), cheaper to wake than
  // an eventfd read pending in io_uring. If the word is no longer kOnEventfd
  // a waker came first (it wrote the eventfd): do not sleep at all.
  auto& flag = c_.slot(id_).sleeping;
  std::uint32_t expected = kOnEventfd;
  if (!flag.compare_exchange_strong(expected, kOnFutex, std::memory_order_seq_cst)) return true;
  // Returns when woken, at the timeout, at once if the word is no longer
  // kOnFutex (EAGAIN), or on a signal: every case goes back to the loop.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&flag), FUTEX_WAIT, kOnFutex, timeout, nullptr, 0);
  return true;
}

void Worker::woke() noexcept {
  // Back to 0 from kOnEventfd / kOnFutex; a kWakeDue that arrived meanwhile
  // stays for the next prepare_sleep().
  auto& flag = c_.slot(id_).sleeping;
  std::uint32_t was = flag.load(std::memory_order_relaxed);
  while ((was == kOnEventfd || was == kOnFutex) && !flag.compare_exchange_weak(was, 0, std::memory_order_relaxed)) {
  }
}

void Worker::wake() noexcept { ipc::detail::wake(c_, id_); }

}  // namespace corelet::ipc::detail
