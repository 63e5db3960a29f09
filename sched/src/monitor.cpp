// The profiler's monitor thread (monitor.hpp).
//
// One per process while some scheduler runs: started by the first one to
// enroll, stopped and joined when the last one withdraws, so that a process
// between runs has no thread of ours (a cluster may only start in a process
// with one thread, and fork() copies only the caller). Each round it
// advances g_tick, asks a scheduler whose beat is older than its
// stall threshold for a report (SIGURG to its thread), and passes a dump
// request that arrived by signal on to every scheduler. Once every scheduler
// has slept for kDeepSleepAfter it stops ticking until one wakes.

#include "monitor.hpp"
#include "scheduler.hpp"

#include <corelet/core/sigsafe.hpp>

#include <execinfo.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace corelet::detail {

Tick g_tick;

namespace {

// Everything the monitor shares with schedulers and handlers, reset in a
// fork()ed child (the monitor thread does not exist there).
struct Registry {
  std::mutex mu;
  Beat* beats = nullptr;   // guarded by mu
  std::thread thread;      // the monitor, while beats is not empty; guarded by mu
  std::uint64_t gen = 0;   // a monitor whose generation is not this one ends; guarded by mu
  std::shared_ptr<pid_t> tid;  // where the monitor writes its thread id; guarded by mu
};
Registry* g_reg = new Registry;  // never freed (a fork()ed child drops it, see below)

// Set by the dump signal's handler, taken by the monitor (relaxed: the flag is
// the whole message; see g_wake for how the monitor learns of it in time).
std::atomic<bool> g_dump_requested{false};

// Wakes the monitor early (a dump signal, the last withdraw): a futex word,
// not an fd, so that nothing of ours stays open between runs. A waker
// changes the word after it set what the monitor is to see; the monitor reads
// the word before it looks, so a change in between makes its wait return at
// once (EAGAIN). Relaxed: a monitor that sees the new word but not yet the
// flag (weak memory) sees the flag one round later; nothing is lost.
std::atomic<std::uint32_t> g_wake{0};

void wake_monitor() noexcept {  // async-signal-safe
  g_wake.fetch_add(1, std::memory_order_relaxed);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&g_wake), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace

std::atomic<bool> g_monitor_deep{false};
void wake_deep_monitor() noexcept { wake_monitor(); }

namespace {

// Stall reports: at most kReportsPerSecond a second in the process.
constexpr int kReportsPerSecond = 10;

void on_dump_signal(int) {
  const int saved = errno;
  g_dump_requested.store(true, std::memory_order_relaxed);
  wake_monitor();
  errno = saved;
}

struct sigaction g_old_stall_action;

void on_stall_signal(int sig, siginfo_t* info, void* uctx) {
  const int saved = errno;
  // Ours come from pthread_kill in this process; anything else (a socket's
  // out-of-band data, another runtime's signal) goes to the handler that was
  // there before, without a look at our state.
  const bool ours = info && info->si_code == SI_TKILL && info->si_pid == ::getpid();
  if (!ours || !Scheduler::report_stall_here()) core::chain_signal(g_old_stall_action, sig, info, uctx);
  errno = saved;
}

int dump_signal_from_env() noexcept {
  const char* v = std::getenv("CORELET_DUMP_SIGNAL");
  if (!v || !*v) return SIGQUIT;
  if (!std::strcmp(v, "0") || !std::strcmp(v, "none")) return 0;
  const char* n = std::strncmp(v, "SIG", 3) == 0 ? v + 3 : v;
  if (!std::strcmp(n, "QUIT")) return SIGQUIT;
  if (!std::strcmp(n, "USR1")) return SIGUSR1;
  if (!std::strcmp(n, "USR2")) return SIGUSR2;
  std::fprintf(stderr, "corelet: CORELET_DUMP_SIGNAL=%s is not QUIT, USR1, USR2 or 0; using QUIT\n", v);
  return SIGQUIT;
}

// Once per process: the handlers. The dump signal's handler is installed only
// where the signal still has its default action (a program's own handler
// wins); the stall signal's handler passes signals that are not ours on.
void install_handlers_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    void* warm[2];
    (void)::backtrace(warm, 2);  // loads libgcc's unwinder now, not in a handler
    struct sigaction sa{};
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_stall_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    ::sigaction(kStallSignal, &sa, &g_old_stall_action);
    if (const int sig = dump_signal()) {
      struct sigaction old{};
      if (::sigaction(sig, nullptr, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
        struct sigaction d{};
        sigemptyset(&d.sa_mask);
        d.sa_handler = on_dump_signal;
        d.sa_flags = SA_RESTART;
        ::sigaction(sig, &d, nullptr);
      }
    }
  });
}

void monitor_main(Registry& r, std::uint64_t gen) {
  std::uint32_t tick = g_tick.value.load(std::memory_order_relaxed);
  auto window_start = std::chrono::steady_clock::now();
  int reports = 0;
  bool any_awake = true;
  int idle_rounds = 0;  // rounds in a row with every scheduler asleep
  constexpr int kDeepRounds = static_cast<int>(kDeepSleepAfter / kIdleTick);
  for (;;) {
    const auto period = any_awake ? kTick : kIdleTick;
    const timespec ts{0, static_cast<long>(std::chrono::nanoseconds(period).count())};
    const std::uint32_t seen = g_wake.load(std::memory_order_relaxed);
    idle_rounds = any_awake ? 0 : idle_rounds + 1;
    bool deep = false;
    if (idle_rounds >= kDeepRounds) {
      // Everyone has slept for a while: sleep until one wakes (see
      // monitor_note_awake for the pairing), unless one woke meanwhile.
      g_monitor_deep.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      std::lock_guard<std::mutex> lock(r.mu);
      if (r.gen != gen) return;
      deep = true;
      for (Beat* b = r.beats; b && deep; b = b->next) deep = b->idle.load(std::memory_order_relaxed);
    }
    if (!g_dump_requested.load(std::memory_order_relaxed))
      ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&g_wake), FUTEX_WAIT_PRIVATE, seen, deep ? nullptr : &ts,
                nullptr, 0);
    if (idle_rounds >= kDeepRounds) {
      g_monitor_deep.store(false, std::memory_order_relaxed);
      idle_rounds = 0;
    }
    g_tick.value.store(++tick, std::memory_order_relaxed);
    const bool dump = g_dump_requested.exchange(false, std::memory_order_relaxed);
    const auto now = std::chrono::steady_clock::now();
    if (now - window_start >= std::chrono::seconds(1)) {
      window_start = now;
      reports = 0;
    }
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.gen != gen) return;  // withdraw() stops us
    any_awake = false;
    for (Beat* b = r.beats; b; b = b->next) {
      if (dump) {
        b->dump_due.store(true, std::memory_order_relaxed);
        b->sched->wake_from_outside();
      }
      if (b->idle.load(std::memory_order_acquire)) continue;  // pairs with the release when it wakes
      any_awake = true;
      // The beat's tick is the one seen at the scheduler's last switch: it
      // has run without one for at least (tick - beat - 1) ticks.
      const std::uint32_t beat = b->tick.load(std::memory_order_relaxed);
      if (b->threshold_ticks && tick - beat > b->threshold_ticks && beat != b->reported &&
          reports < kReportsPerSecond) {
        b->reported = beat;
        ++reports;
        b->stall_due.store(true, std::memory_order_relaxed);
        ::pthread_kill(b->thread, kStallSignal);  // the thread is alive: it withdraws before it ends
      }
    }
  }
}

}  // namespace

void install_profile_handlers() { install_handlers_once(); }

int dump_signal() noexcept {
  static const int sig = dump_signal_from_env();
  return sig;
}

void enroll(Beat* b) {
  install_handlers_once();
  Registry& r = *g_reg;
  std::lock_guard<std::mutex> lock(r.mu);
  b->tick.store(g_tick.value.load(std::memory_order_relaxed), std::memory_order_relaxed);
  b->next = r.beats;
  r.beats = b;
  if (r.thread.joinable() && g_monitor_deep.load(std::memory_order_relaxed)) wake_monitor();  // a new beat to watch
  if (!r.thread.joinable()) {
    // A dump asked for while no scheduler ran (a worker that got the signal
    // before its scheduler started) is written by this one: the new monitor
    // finds g_dump_requested set in its first round.
    // The monitor takes no signal: they go to the program's own threads.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      const std::uint64_t gen = r.gen;
      auto tid = std::make_shared<pid_t>(0);
      r.thread = std::thread([&r, gen, tid] {
        *tid = ::gettid();  // read after join(): the join orders it
        monitor_main(r, gen);
      });
      r.tid = std::move(tid);
    } catch (...) {
      // No thread: no ticks and no stall reports; accounting still times waits.
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
}

void withdraw(Beat* b) noexcept {
  Registry& r = *g_reg;
  std::unique_lock<std::mutex> lock(r.mu);
  for (Beat** p = &r.beats; *p; p = &(*p)->next) {
    if (*p == b) {
      *p = b->next;
      break;
    }
  }
  if (r.beats || !r.thread.joinable()) return;
  // The last one: stop the monitor and wait until its thread is gone from
  // the process (pthread_join returns a moment before the kernel reaps it).
  ++r.gen;
  std::thread t = std::move(r.thread);
  const std::shared_ptr<pid_t> tid = std::move(r.tid);
  lock.unlock();
  wake_monitor();
  t.join();
  if (*tid > 0)
    while (::syscall(SYS_tgkill, ::getpid(), *tid, 0) == 0) std::this_thread::yield();
}

namespace {
// A fork()ed child has no monitor thread, and the registry's lock may have
// been held by it: the child starts afresh (its schedulers enroll anew).
[[maybe_unused]] const int g_atfork = [] {
  ::pthread_atfork([] { g_reg->mu.lock(); }, [] { g_reg->mu.unlock(); },
                   [] {
                     // The old one is dropped: its beats and its thread are the parent's.
                     g_reg = new Registry;
                   });
  return 0;
}();
}  // namespace

}  // namespace corelet::detail
