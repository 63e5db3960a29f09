// corelet::run's frame around the loop: one Scheduler on this thread, SIGPIPE
// blocked, the floating-point status made uniform, a deadlock reported.

#include "scheduler.hpp"

#include <corelet/core/overflow.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
#include <pthread.h>
#include <signal.h>

#include <utility>

namespace corelet::detail {

// uniform_fp_status — raises the sticky "inexact" flag in this thread's MXCSR
// before any fiber exists. Boost.Context saves MXCSR when a context leaves and
// loads the entered context's saved value; when the two differ the load costs
// more than the whole switch (~190 ns against ~12 ns measured here). A new
// fiber inherits its creator's MXCSR, and the first double operation of any
// context sets "inexact"; with the flag set from the start every context
// carries the same value. Only fetestexcept(FE_INEXACT) can tell.
static void uniform_fp_status() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | _MM_EXCEPT_INEXACT);
#endif
}

namespace {
// While run() runs, SIGPIPE is blocked on its thread: a write to a closed pipe
// or socket fails with EPIPE (one tasklet's error) instead of killing the
// process, as Rust's runtime and Go (for fds other than 1 and 2) arrange. A
// SIGPIPE left pending by such a write is consumed at the end, unless one was
// pending already, and the thread's mask is restored.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigset_t pending;
    was_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    ok_ = ::pthread_sigmask(SIG_BLOCK, &block, &old_) == 0;
  }
  ~SigpipeBlocked() {
    if (!ok_) return;
    if (!was_pending_ && !sigismember(&old_, SIGPIPE)) {
      sigset_t only;
      sigemptyset(&only);
      sigaddset(&only, SIGPIPE);
      const timespec zero{0, 0};
      while (::sigtimedwait(&only, nullptr, &zero) == SIGPIPE) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
  bool ok_ = false;
};
}  // namespace

namespace {
thread_local LoopHook* tl_next_hook = nullptr;
thread_local int tl_next_wake_fd = -1;
}  // namespace

void set_next_run_hook(LoopHook* hook, int wake_fd) noexcept {
  tl_next_hook = hook;
  tl_next_wake_fd = wake_fd;
}

void run_main(Tasklet* main) {
  if (this_scheduler()) throw UsageError("corelet: corelet::run called inside corelet::run on the same thread");
  core::install_overflow_handler();
  uniform_fp_status();
  SigpipeBlocked no_sigpipe;
  LoopHook* hook = std::exchange(tl_next_hook, nullptr);
  Scheduler sched(hook, std::exchange(tl_next_wake_fd, -1));
  set_this_scheduler(&sched);
  main->is_main = true;
  if (main->name.empty()) main->name = "main";
  try {
    sched.add(main);
    sched.run_loop();
  } catch (...) {
    set_this_scheduler(nullptr);
    throw;
  }
  set_this_scheduler(nullptr);
  if (!sched.deadlock_report().empty()) throw Deadlock(sched.deadlock_report());
}

}  // namespace corelet::detail
