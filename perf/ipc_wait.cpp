// perf/ipc_wait.cpp — what a wait on a cross-process primitive costs.
//
//   ipc_wait [--rounds N] [--pings N] [--idle-ms N] [--msgs N]
//
// Each round measures, side by side:
//   wake latency: a ping-pong of small messages over two ipc::Queues between
//     this process and a forked echo process (a plain thread there). On our
//     side the receiver is (a) a plain thread blocked in get, (b) a fiber
//     tasklet parked in get on the io_uring backend (IORING_OP_FUTEX_WAIT),
//     (c) the same on the epoll backend (a proxy thread's futex_waitv). The
//     round trip's median, in microseconds.
//   idle cost: a process whose tasklets are parked in get on an empty queue,
//     measured from outside over --idle-ms after 1.5 s of settling (past the
//     monitor's deep-sleep delay: the steady state): its CPU time (all its threads: the scheduler, the
//     monitor, any proxy) as a share of one core; beside it, the same process
//     with its tasklet asleep on a timer (what an idle scheduler costs).
//   throughput: 256-byte messages from a producer process (a plain thread) to
//     a consumer thread, messages per second; the consumer as a plain thread
//     is (no spin before it sleeps), and with a 4,000-pause spin (the futex
//     thread hooks' spin, as the Python binding sets it); pinned to two CPUs,
//     and with the spin unpinned (as perf/py_processing.py runs).
// Medians over the rounds are printed last, with every round's figures.

#include <corelet/ipc/mapping.hpp>
#include <corelet/ipc/queue.hpp>
#include <corelet/sched/futex.hpp>
#include <corelet/sched/io.hpp>
#include <corelet/sched/profile.hpp>
#include <corelet/sched/task.hpp>

#include "bench_support.hpp"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using corelet::Clock;
using corelet::ipc::Queue;
using corelet::ipc::Shared;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Pair {
  Shared<Queue> to_echo = Shared<Queue>::make(1u << 16);
  Shared<Queue> from_echo = Shared<Queue>::make(1u << 16);
};

// pin — the calling thread to CPU `cpu` of the affinity mask (the echo on
// the first, we on the second: every wakeup crosses cores, as between two
// cluster workers; unpinned, the two would share a core in some rounds and
// not in others, and the rounds would not compare).
void pin(int nth) {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return;
  int seen = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    if (seen++ == nth) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      ::sched_setaffinity(0, sizeof one, &one);
      return;
    }
  }
}

// unpin — every CPU of the process's original mask again.
cpu_set_t g_mask;
void unpin() { ::sched_setaffinity(0, sizeof g_mask, &g_mask); }

pid_t start_echo(Pair& p) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    pin(0);
    try {
      for (;;) {
        auto m = p.to_echo->get();
        if (!m) continue;
        p.from_echo->put(m->bytes.data(), m->bytes.size());
      }
    } catch (...) {
    }
    ::_exit(0);
  }
  return pid;
}

void stop(pid_t pid, Pair& p) {
  p.to_echo->close();
  int st = 0;
  ::waitpid(pid, &st, 0);
}

// The median round trip in microseconds, of `pings` pings, measured by `recv`.
template <class Body>
double ping_pong(int pings, Body&& body) {
  Pair p;
  const pid_t pid = start_echo(p);
  std::vector<double> rtt;
  rtt.reserve(static_cast<std::size_t>(pings));
  body(p, pings, rtt);
  stop(pid, p);
  return median(rtt);
}

void pings_here(Pair& p, int pings, std::vector<double>& rtt) {
  const char msg[16] = "ping";
  for (int i = 0; i < pings + 50; ++i) {
    const auto t0 = Clock::now();
    p.to_echo->put(msg, sizeof msg);
    auto m = p.from_echo->get();
    const auto t1 = Clock::now();
    if (!m) std::abort();
    if (i >= 50) rtt.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());  // 50 warm-up
  }
}

double thread_rtt(int pings) { return ping_pong(pings, pings_here); }

double tasklet_rtt(int pings, const char* backend) {
  ::setenv("CORELET_IO", backend, 1);
  const double r = ping_pong(pings, [](Pair& p, int n, std::vector<double>& rtt) {
    corelet::run([&] { pings_here(p, n, rtt); });
  });
  ::unsetenv("CORELET_IO");
  return r;
}

// The CPU time all of process pid's threads have used, in ms, from each
// thread's /proc schedstat (nanoseconds; getrusage counts in scheduler ticks,
// too coarse for a process that uses a few ms a second).
double process_cpu_ms(pid_t pid) {
  double ns = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const std::string path = dir + "/" + e->d_name + "/schedstat";
      if (FILE* f = std::fopen(path.c_str(), "r")) {
        unsigned long long run = 0;
        if (std::fscanf(f, "%llu", &run) == 1) ns += static_cast<double>(run);
        std::fclose(f);
      }
    }
    ::closedir(d);
  }
  return ns / 1e6;
}

// The share of a core used by a process whose two tasklets are parked in get
// on an empty queue (on_queue), or asleep on a timer (the baseline: a
// scheduler with nothing to do), measured from outside (this process reads
// the child's schedstat, so nothing wakes the child) over idle_ms, after
// 1.5 s of settling: past the monitor's deep-sleep delay (1 s), the steady
// state. All its threads count: the scheduler, the monitor, any proxy.
double idle_share(int idle_ms, const char* backend, bool on_queue = true, bool accounting = true) {
  auto q = Shared<Queue>::make(4096u);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("CORELET_IO", backend, 1);
    corelet::set_accounting(accounting);  // off: no monitor thread
    corelet::run([&] {
      auto waiter = corelet::spawn([&] { (void)q->get(); });
      try {
        if (on_queue) (void)q->get();
        else corelet::this_tasklet::sleep_for(std::chrono::hours(1));
      } catch (...) {
      }
      try {
        waiter.join();
      } catch (...) {
      }
    });
    ::_exit(0);
  }
  ::usleep(1500 * 1000);
  const double c0 = process_cpu_ms(pid);
  const auto t0 = Clock::now();
  ::usleep(static_cast<useconds_t>(idle_ms) * 1000);
  const double c1 = process_cpu_ms(pid);
  const double wall = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (c0 <= 0) std::fprintf(stderr, "ipc_wait: cannot read the CPU time of process %d\n", static_cast<int>(pid));
  if (std::getenv("IPC_WAIT_VERBOSE")) std::fprintf(stderr, "idle: %.3f ms -> %.3f ms over %.0f ms\n", c0, c1, wall);
  q->close();
  if (!on_queue) ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return (c1 - c0) / wall;
}

// spin: how long the consumer thread looks before it sleeps (futex thread
// hooks; 0 is a plain thread's default).
double throughput(int msgs, unsigned spin, bool pinned) {
  if (!pinned) unpin();
  corelet::FutexThreadHooks hooks;
  hooks.spin = spin;
  corelet::set_futex_thread_hooks(&hooks);
  auto q = Shared<Queue>::make(1u << 22);
  const pid_t pid = ::fork();
  char msg[256];
  std::memset(msg, 'x', sizeof msg);
  if (pid == 0) {
    if (pinned) pin(0);
    for (int i = 0; i < msgs; ++i) q->put(msg, sizeof msg);
    ::_exit(0);
  }
  const auto t0 = Clock::now();
  std::size_t bytes = 0;
  for (int i = 0; i < msgs; ++i)
    q->get_with([&](std::uint8_t, std::span<const std::byte> a, std::span<const std::byte> b) {
      bytes += a.size() + b.size();
    });
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  int st = 0;
  ::waitpid(pid, &st, 0);
  corelet::set_futex_thread_hooks(nullptr);
  if (!pinned) pin(1);
  if (bytes != static_cast<std::size_t>(msgs) * sizeof msg) std::abort();
  return msgs / s;
}

}  // namespace

int main(int argc, char** argv) {
  perf::uniform_fp_status();
  ::sched_getaffinity(0, sizeof g_mask, &g_mask);
  pin(1);
  int rounds = 5, pings = 2000, idle_ms = 2000, msgs = 500000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--rounds") rounds = v;
    else if (a == "--pings") pings = v;
    else if (a == "--idle-ms") idle_ms = v;
    else if (a == "--msgs") msgs = v;
    else {
      std::fprintf(stderr, "usage: ipc_wait [--rounds N] [--pings N] [--idle-ms N] [--msgs N]\n");
      return 2;
    }
  }
  std::vector<double> th, tu, te, ru, re, iu, ie, it, ina, tp, tps, tpu;
  for (int r = 0; r < rounds; ++r) {
    th.push_back(thread_rtt(pings));
    tu.push_back(tasklet_rtt(pings, "io_uring"));
    te.push_back(tasklet_rtt(pings, "epoll"));
    ru.push_back(tu.back() / th.back());
    re.push_back(te.back() / th.back());
    iu.push_back(idle_share(idle_ms, "io_uring") * 100);
    ie.push_back(idle_share(idle_ms, "epoll") * 100);
    it.push_back(idle_share(idle_ms, "io_uring", false) * 100);
    ina.push_back(idle_share(idle_ms, "io_uring", true, false) * 100);
    tp.push_back(throughput(msgs, 0, true));
    tps.push_back(throughput(msgs, 4000, true));
    tpu.push_back(throughput(msgs, 4000, false));
    std::printf("round %d: rtt thread %.1f us, tasklet io_uring %.1f us (%.2fx), tasklet epoll %.1f us (%.2fx); "
                "idle %.3f%% (io_uring) %.3f%% (epoll) of a core, %.3f%% asleep on a timer, %.3f%% without accounting "
                "(no monitor); %.0f msgs/s of 256 B (%.0f with a 4000-pause spin, %.0f so and unpinned)\n",
                r + 1, th.back(), tu.back(), ru.back(), te.back(), re.back(), iu.back(), ie.back(), it.back(),
                ina.back(), tp.back(), tps.back(), tpu.back());
    std::fflush(stdout);
  }
  std::printf("median: rtt thread %.1f us, tasklet io_uring %.1f us (ratio %.2fx), tasklet epoll %.1f us (ratio %.2fx); "
              "idle %.3f%% (io_uring) %.3f%% (epoll) of a core, %.3f%% asleep on a timer, %.3f%% without accounting "
              "(no monitor); %.0f msgs/s of 256 B (%.0f with a 4000-pause spin, %.0f so and unpinned)\n",
              median(th), median(tu), median(ru), median(te), median(re), median(iu), median(ie), median(it),
              median(ina), median(tp), median(tps), median(tpu));
  std::printf("(ratios: the median of each round's ratio to the thread's round trip)\n");
  return 0;
}
