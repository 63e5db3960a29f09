// RobustMutex (robust_mutex.hpp): the one set-up of a process-shared robust
// pthread mutex, and the one handling of a holder that died.

#include <corelet/ipc/robust_mutex.hpp>

#include <cerrno>
#include <system_error>

namespace corelet::ipc {

RobustMutex::RobustMutex() noexcept {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&m_, &a);
  pthread_mutexattr_destroy(&a);
}

RobustMutex::~RobustMutex() { pthread_mutex_destroy(&m_); }

// taken — a pthread result as "acquired". EOWNERDEAD: the holder died; the
// mutex is made consistent and counts as acquired (true), the death counted.
bool RobustMutex::taken(int rc, const char* what) {
  if (rc == 0) return true;
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&m_);
    deaths_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (rc == EBUSY) return false;
  throw std::system_error(rc, std::generic_category(), what);
}

bool RobustMutex::lock() {
  const std::uint32_t deaths = deaths_.load(std::memory_order_relaxed);
  // The sections are a few hundred nanoseconds: try a while before letting
  // the kernel put us to sleep (a contended robust mutex costs two system
  // calls, and the other side usually leaves it sooner than that).
  for (int i = 0; i < 200; ++i) {
    if (taken(pthread_mutex_trylock(&m_), "corelet::ipc::RobustMutex::lock"))
      return deaths_.load(std::memory_order_relaxed) != deaths;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  taken(pthread_mutex_lock(&m_), "corelet::ipc::RobustMutex::lock");
  return deaths_.load(std::memory_order_relaxed) != deaths;
}

bool RobustMutex::try_lock() { return taken(pthread_mutex_trylock(&m_), "corelet::ipc::RobustMutex::try_lock"); }

void RobustMutex::unlock() noexcept { pthread_mutex_unlock(&m_); }

}  // namespace corelet::ipc
