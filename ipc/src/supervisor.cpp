// corelet::run(Config, main): the supervisor. It maps the shared memory,
// forks the workers, watches them through pidfds and a signalfd, restarts or
// stops on a death, and stops the cluster on SIGINT/SIGTERM or when main ends.

#include "worker.hpp"

#include <corelet/core/stack.hpp>
#include <corelet/ipc/shared_memory.hpp>

#include <corelet/sched/errors.hpp>
#include <corelet/sched/io.hpp>
#include <corelet/sched/task.hpp>

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace corelet::ipc::detail {

namespace {

constexpr std::uint32_t kControlMagic = 0x434c5354;  // "CLST"
constexpr std::size_t kPage = 4096;

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

int count_threads() {
  DIR* d = ::opendir("/proc/self/task");
  if (!d) return 1;
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

// The shared mapping: control block, slots, rings. memfd: no name in any
// file system, gone when the last process holding the mapping is.
void map_cluster(Cluster& c) {
  const std::size_t head = round_up(sizeof(ControlBlock), kCacheLine);
  const std::size_t slots = round_up(sizeof(WorkerSlot) * static_cast<std::size_t>(c.n), kPage);
  c.ring_stride = round_up(ring_bytes(c.cfg.ring_bytes), kPage);
  const std::size_t rings_off = round_up(head + slots, kPage);
  c.size = rings_off + c.ring_stride * static_cast<std::size_t>(c.n) * static_cast<std::size_t>(c.n);
  const int fd = ::memfd_create("corelet-cluster", MFD_CLOEXEC);
  if (fd < 0) throw_errno("corelet: memfd_create");
  if (::fchmod(fd, 0600) < 0 || ::ftruncate(fd, static_cast<off_t>(c.size)) < 0) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "corelet: sizing the cluster's shared memory");
  }
  void* p = ::mmap(nullptr, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the memory
  if (p == MAP_FAILED) throw std::system_error(err, std::generic_category(), "corelet: mmap of the cluster");
  c.base = p;
  auto* bytes = static_cast<std::byte*>(p);
  c.ctl = new (bytes) ControlBlock;
  c.ctl->magic = kControlMagic;
  c.ctl->workers = c.n;
  c.slots = reinterpret_cast<WorkerSlot*>(bytes + head);
  for (int w = 0; w < c.n; ++w) new (&c.slots[w]) WorkerSlot;
  c.rings = bytes + rings_off;
  for (int a = 0; a < c.n; ++a)
    for (int b = 0; b < c.n; ++b)
      if (a != b) init_ring(c.ring(a, b), c.cfg.ring_bytes);
}

// Everything the supervisor owns, released on every way out.
struct Supervisor {
  Cluster c;
  std::vector<pid_t> pids;
  std::vector<int> pidfds;
  // Without pidfd_open (Linux < 5.3, a seccomp filter, valgrind) deaths come
  // as SIGCHLD through the signalfd, and every worker is polled with waitid.
  bool sigchld = false;
  int sigfd = -1;
  sigset_t old_mask{};
  bool mask_set = false;
  pid_t self = 0;

  ~Supervisor() {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGKILL);
    for (std::size_t w = 0; w < pids.size(); ++w)
      if (pids[w] > 0) ::waitpid(pids[w], nullptr, 0);
    for (int fd : pidfds)
      if (fd >= 0) ::close(fd);
    if (c.slots)
      for (int w = 0; w < c.n; ++w)
        if (c.slots[w].event_fd >= 0) ::close(c.slots[w].event_fd);
    if (sigfd >= 0) ::close(sigfd);
    if (mask_set) ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    if (c.base) ::munmap(c.base, c.size);
    g_cluster = nullptr;
  }
};

[[noreturn]] void worker_process(Supervisor& s, int id, std::function<int()>& main) {
  Cluster& c = s.c;
  int code = 0;
  try {
    Worker w(c, id);
    g_worker = &w;
    g_worker_id = id;
    corelet::detail::set_next_run_hook(&w, c.slot(id).event_fd);
    if (id == 0) {
      code = corelet::run([&]() -> int {
        (void)corelet::io::backend();  // the reactor now: its pending eventfd read is how this worker sleeps
        // main in a tasklet of its own, for Config::stack_size.
        auto t = corelet::spawn(SpawnOptions{.name = "main", .stack_size = c.cfg.stack_size}, [&]() -> int {
          w.main_started(corelet::primitive::current());
          struct Ended {
            Worker& w;
            ~Ended() { w.main_ended(); }
          } ended{w};
          return main();
        });
        return t.join();
      });
    } else {
      corelet::run([&] {
        (void)corelet::io::backend();
        w.serve();
      });
    }
  } catch (const Cancelled&) {
    code = 128 + SIGTERM;  // stopped before main finished; the supervisor decides the status
  } catch (...) {
    auto [type, msg] = current_exception_info();
    std::fprintf(stderr, "corelet: worker %d: %s: %s\n", id, type.c_str(), msg.c_str());
    code = 1;
  }
  if (c.cfg.hooks.exit) c.cfg.hooks.exit();
  std::fflush(nullptr);
  ::_exit(code & 0xff);
}

// fork_worker — starts worker w; `replacement`: it takes a dead one's place.
// The child waits for `go` before it runs anything, so that by then its pid
// is in its slot and (for a replacement) its Alive state is published: a
// peer that learns it is alive can always read its pid, and survivors know
// it is alive before it can write a frame to them (see worker.cpp). For the
// first workers `go` is given once all of them exist (release_worker).
void fork_worker(Supervisor& s, int w, std::function<int()>& main, bool replacement) {
  Cluster& c = s.c;
  WorkerSlot& slot = c.slot(w);
  if (replacement) slot.gen.fetch_add(1, std::memory_order_relaxed);
  const std::uint32_t gen = slot.gen.load(std::memory_order_relaxed);
  std::fflush(nullptr);  // unwritten stdio output would be written twice
  const Config::Hooks& hooks = c.cfg.hooks;
  if (hooks.prepare) hooks.prepare();
  const pid_t pid = ::fork();
  if (pid != 0 && hooks.parent) hooks.parent();
  if (pid < 0) throw_errno("corelet: fork of a worker");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // workers die with the supervisor
    if (::getppid() != s.self) ::_exit(1);
    if (hooks.child) hooks.child();
    ::close(s.sigfd);
    for (int fd : s.pidfds)
      if (fd >= 0) ::close(fd);
    // Ctrl-C reaches the whole process group: the supervisor handles it and
    // stops the workers in order (SIGKILL after the timeout), so a worker
    // ignores it.
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);  // likewise a service manager's SIGTERM to the whole group
    ::sigprocmask(SIG_SETMASK, &s.old_mask, nullptr);
    if (c.cfg.pin) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c.cpus[static_cast<std::size_t>(w) % c.cpus.size()], &set);
      ::sched_setaffinity(0, sizeof set, &set);
    }
    while (slot.go.load(std::memory_order_acquire) != gen) ::sched_yield();
    worker_process(s, w, main);
  }
  s.pids[w] = pid;
  slot.pid.store(pid, std::memory_order_relaxed);
  if (!s.sigchld) {
    s.pidfds[w] = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (s.pidfds[w] < 0) throw_errno("corelet: pidfd_open");
  }
  // A new process has acknowledged nothing yet: the supervisor must not count
  // its predecessor's acknowledgements (it acknowledges at start, after it
  // emptied its rings with the peers that are dead).
  slot.acked_epoch.store(0, std::memory_order_relaxed);
  if (replacement) {
    slot.sleeping.store(0, std::memory_order_relaxed);
    slot.state.store(static_cast<std::uint32_t>(SlotState::Alive), std::memory_order_relaxed);
    c.ctl->epoch.fetch_add(1, std::memory_order_release);  // publishes pid and state
    slot.go.store(gen, std::memory_order_release);
  }
}

// release_worker — lets a first worker start (see fork_worker).
void release_worker(Cluster& c, int w) {
  c.slot(w).go.store(c.slot(w).gen.load(std::memory_order_relaxed), std::memory_order_release);
}

}  // namespace

int run_cluster(const Config& cfg, std::function<int()> main) {
  if (g_cluster) throw UsageError("corelet::run(Config): called inside a cluster");
  if (corelet::primitive::current())
    throw UsageError("corelet::run(Config): called inside corelet::run; start the cluster from plain code");
  if (const int t = count_threads(); t > 1)
    throw UsageError("corelet::run(Config): this process already runs " + std::to_string(t) +
                     " threads; start the cluster before any thread (fork copies only the calling one)");
  if (cfg.workers < 0) throw std::invalid_argument("corelet::Config::workers must be >= 0");
  if (cfg.ring_bytes < 4096 || (cfg.ring_bytes & (cfg.ring_bytes - 1)) != 0 || cfg.ring_bytes > (std::size_t{1} << 31))
    throw std::invalid_argument("corelet::Config::ring_bytes must be a power of two from 4096 to 2^31");
  if (cfg.shutdown_timeout.count() < 0 || cfg.idle_spin.count() < 0)
    throw std::invalid_argument("corelet::Config: timeouts must not be negative");
  if (cfg.stack_size < core::kMinStackSize || cfg.stack_size > core::kMaxStackSize)
    throw std::invalid_argument("corelet::Config::stack_size is out of range (see core/stack.hpp)");

  ipc::detail::shared_arena_ready();  // SharedArray/SharedValue: the same memory in every worker
  Supervisor s;
  s.self = ::getpid();
  Cluster& c = s.c;
  c.cfg = cfg;
  c.cpus = allowed_cpus();
  c.n = cfg.workers > 0 ? cfg.workers : static_cast<int>(c.cpus.size());
  map_cluster(c);
  g_cluster = &c;
  for (int w = 0; w < c.n; ++w) {
    c.slot(w).event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c.slot(w).event_fd < 0) throw_errno("corelet: eventfd");
  }
  sigset_t stop_sigs;
  sigemptyset(&stop_sigs);
  sigaddset(&stop_sigs, SIGINT);
  sigaddset(&stop_sigs, SIGTERM);
  // The dump signal (profile.hpp): passed on to every worker when it is sent
  // to the supervisor alone (a terminal's Ctrl-\ reaches the workers itself).
  const int dump_sig = corelet::detail::dump_signal();
  if (dump_sig) {
    sigaddset(&stop_sigs, dump_sig);
    corelet::detail::install_profile_handlers();  // inherited by the workers
  }
  {
    const int probe = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
    if (probe >= 0) {
      ::close(probe);
    } else if (errno == ENOSYS || errno == EPERM) {
      s.sigchld = true;
      sigaddset(&stop_sigs, SIGCHLD);
    }
  }
  if (::sigprocmask(SIG_BLOCK, &stop_sigs, &s.old_mask) < 0) throw_errno("corelet: sigprocmask");
  s.mask_set = true;
  s.sigfd = ::signalfd(-1, &stop_sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s.sigfd < 0) throw_errno("corelet: signalfd");
  s.pids.assign(static_cast<std::size_t>(c.n), 0);
  s.pidfds.assign(static_cast<std::size_t>(c.n), -1);
  // Every slot is Alive at generation 1 before the first fork, so each
  // worker starts knowing all its peers.
  for (int w = 0; w < c.n; ++w) {
    c.slot(w).gen.store(1, std::memory_order_relaxed);
    c.slot(w).state.store(static_cast<std::uint32_t>(SlotState::Alive), std::memory_order_relaxed);
  }
  corelet::detail::trace_file_begin();  // CORELET_TRACE: the workers append to it
  for (int w = 0; w < c.n; ++w) fork_worker(s, w, main, false);
  for (int w = 0; w < c.n; ++w) release_worker(c, w);

  using SteadyClock = std::chrono::steady_clock;
  int status = -1;              // the run's result, once decided
  bool stopping = false;
  SteadyClock::time_point kill_at{};
  std::vector<std::uint64_t> restart_epoch(static_cast<std::size_t>(c.n), 0);  // 0: none pending
  int alive = c.n;

  auto wake_all = [&] {
    for (int w = 0; w < c.n; ++w)
      if (s.pids[w] > 0) wake(c, w);
  };
  auto begin_stop = [&](int result) {
    if (status < 0) status = result;
    if (stopping) return;
    stopping = true;
    c.ctl->shutdown.store(1, std::memory_order_relaxed);
    c.ctl->epoch.fetch_add(1, std::memory_order_release);
    wake_all();
    kill_at = SteadyClock::now() + cfg.shutdown_timeout;
    std::fill(restart_epoch.begin(), restart_epoch.end(), 0);
  };

  while (alive > 0) {
    std::vector<pollfd> fds;
    std::vector<int> who;
    fds.push_back({s.sigfd, POLLIN, 0});
    who.push_back(-1);
    for (int w = 0; w < c.n; ++w)
      if (s.pidfds[w] >= 0) {
        fds.push_back({s.pidfds[w], POLLIN, 0});
        who.push_back(w);
      }
    int timeout = -1;
    bool restarting = false;
    for (auto e : restart_epoch) restarting |= e != 0;
    if (restarting) timeout = 1;
    if (stopping) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - SteadyClock::now()).count();
      timeout = left > 0 ? static_cast<int>(std::min<long long>(left, 1000)) : 0;
      if (left <= 0) {
        for (int w = 0; w < c.n; ++w)
          if (s.pids[w] > 0) ::kill(s.pids[w], SIGKILL);
        timeout = -1;
      }
    }
    const int r = ::poll(fds.data(), fds.size(), timeout);
    if (r < 0 && errno != EINTR) throw_errno("corelet: poll in the supervisor");
    // The workers that ended, with how: from their pidfds, or (sigchld) from
    // a waitid of every worker after a SIGCHLD.
    std::vector<std::pair<int, siginfo_t>> ended;
    bool reap_all = false;
    for (std::size_t i = 0; r > 0 && i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      if (who[i] < 0) {
        signalfd_siginfo si;
        while (::read(s.sigfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
          if (static_cast<int>(si.ssi_signo) == SIGCHLD) {
            reap_all = true;
            continue;
          }
          if (dump_sig && static_cast<int>(si.ssi_signo) == dump_sig) {
            if (si.ssi_code == SI_USER || si.ssi_code == SI_QUEUE)
              for (int w = 0; w < c.n; ++w)
                if (s.pids[w] > 0) ::kill(s.pids[w], dump_sig);
            continue;
          }
          if (stopping) {  // a second signal: no more patience
            kill_at = SteadyClock::now();
          } else {
            begin_stop(128 + static_cast<int>(si.ssi_signo));
          }
        }
        continue;
      }
      const int w = who[i];
      siginfo_t info{};
      if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(s.pidfds[w]), &info, WEXITED) < 0) {
        if (errno == EINTR) continue;
        throw_errno("corelet: waitid");
      }
      ::close(s.pidfds[w]);
      s.pidfds[w] = -1;
      ended.emplace_back(w, info);
    }
    if (reap_all)
      for (int w = 0; w < c.n; ++w) {
        if (s.pids[w] <= 0) continue;
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(s.pids[w]), &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0)
          ended.emplace_back(w, info);
      }
    for (const auto& [w, info] : ended) {
      WorkerExit ex;
      ex.worker = w;
      ex.pid = s.pids[w];
      if (info.si_code == CLD_EXITED) {
        ex.exit_code = info.si_status;
      } else {
        ex.signal = info.si_status;
      }
      s.pids[w] = 0;
      --alive;
      WorkerSlot& slot = c.slot(w);
      slot.dead_pid.store(ex.pid, std::memory_order_relaxed);
      slot.dead_signal.store(ex.signal, std::memory_order_relaxed);
      slot.dead_code.store(ex.exit_code, std::memory_order_relaxed);
      slot.pid.store(0, std::memory_order_relaxed);
      slot.state.store(static_cast<std::uint32_t>(SlotState::Dead), std::memory_order_relaxed);
      const std::uint64_t epoch = c.ctl->epoch.fetch_add(1, std::memory_order_release) + 1;
      wake_all();
      if (stopping) {
        if (w == 0 && status < 0) status = ex.signal ? 128 + ex.signal : ex.exit_code;
        continue;
      }
      if (w == 0 && ex.signal == 0) {  // main ended: its status is the run's
        begin_stop(ex.exit_code);
        continue;
      }
      if (!cfg.quiet) std::fprintf(stderr, "corelet: %s\n", ex.describe().c_str());
      if (cfg.on_worker_exit) {
        try {
          cfg.on_worker_exit(ex);
        } catch (...) {
          auto [type, msg] = current_exception_info();
          std::fprintf(stderr, "corelet: Config::on_worker_exit threw %s: %s\n", type.c_str(), msg.c_str());
        }
      }
      if (w == 0) {
        begin_stop(128 + ex.signal);
      } else if (cfg.on_worker_death == OnWorkerDeath::shutdown) {
        begin_stop(1);
      } else {
        restart_epoch[w] = epoch;
      }
    }
    // Restarts: once every live worker has acknowledged the death (and so
    // emptied its rings with the dead one), the rings between the dead worker
    // and other dead ones are emptied here and the replacement is forked.
    for (int w = 0; w < c.n && !stopping; ++w) {
      if (restart_epoch[w] == 0) continue;
      bool acked = true;
      for (int k = 0; k < c.n; ++k)
        if (s.pids[k] > 0 && c.slot(k).acked_epoch.load(std::memory_order_acquire) < restart_epoch[w]) acked = false;
      if (!acked) continue;
      for (int k = 0; k < c.n; ++k)
        if (k != w && s.pids[k] == 0) {
          reset_ring(c.ring(w, k));
          reset_ring(c.ring(k, w));
        }
      restart_epoch[w] = 0;
      try {
        fork_worker(s, w, main, true);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "corelet: worker %d cannot be restarted (%s); stopping\n", w, e.what());
        begin_stop(1);
        continue;
      }
      ++alive;
      wake_all();
    }
  }
  corelet::detail::trace_file_end();
  return status < 0 ? 1 : status;
}

}  // namespace corelet::ipc::detail
