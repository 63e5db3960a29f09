#pragma once
// corelet/ipc/robust_mutex.hpp — RobustMutex: a process-shared, robust pthread
// mutex for short critical sections in shared memory, and the one place where
// a holder that died is dealt with.
//
//   struct InShm { corelet::ipc::RobustMutex mu; std::uint64_t n; };
//   { std::lock_guard g(p->mu); ++p->n; }       // any process, any thread
//
// A pthread mutex is owned by a thread, so it must never be held across a
// park: a tasklet that parked holding it would block its own thread's next
// locker. Hold it only around a few loads and stores; the cross-process
// locks that a tasklet may hold while it parks are in <corelet/ipc/sync.hpp>.
//
// A holder killed while holding it (EOWNERDEAD) hands it to the next locker,
// which makes it consistent and goes on: the data it guards is whatever the
// dead holder left, so writers update it in an order that leaves it valid at
// every step (counters last). owner_deaths() counts these hand-overs.

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace corelet::ipc {

class RobustMutex {
 public:
  RobustMutex() noexcept;
  ~RobustMutex();
  RobustMutex(const RobustMutex&) = delete;
  RobustMutex& operator=(const RobustMutex&) = delete;

  // lock — blocks the calling thread (after a short spin: the sections it
  // guards are a few hundred nanoseconds). Returns true if the previous
  // holder died holding it. Throws std::system_error on a corrupt mutex.
  bool lock();
  // try_lock — true if taken (a dead holder's mutex too), false if held.
  bool try_lock();
  void unlock() noexcept;

  std::uint32_t owner_deaths() const noexcept { return deaths_.load(std::memory_order_relaxed); }

 private:
  bool taken(int rc, const char* what);

  pthread_mutex_t m_;
  // Relaxed: a statistic, updated by the holder.
  std::atomic<std::uint32_t> deaths_{0};
  std::uint32_t pad_ = 0;
};

// It lives in shared memory: the same layout in every process that maps it.
static_assert(std::is_standard_layout_v<RobustMutex>);
static_assert(sizeof(RobustMutex) == sizeof(pthread_mutex_t) + 8);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

}  // namespace corelet::ipc
