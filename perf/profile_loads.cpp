// profile_loads — the C++ half of perf/profile_loads.py: an I/O-bound and a
// CPU-bound load, each for a fixed time, on
//   one corelet scheduler (one core, however many tasklets),
//   one corelet scheduler per worker process (corelet::run(Config)),
//   std::thread (one thread per worker);
// and the per-tasklet time split that corelet::stats() gives for both loads
// sharing one scheduler. One JSON line per measurement on stdout.
//
//   profile_loads load io|cpu RUNTIME WORKERS SECONDS [TASKS]
//       RUNTIME: corelet | cluster | thread
//   profile_loads split SECONDS
//
// The I/O load: TASKS tasks, each in a loop "sleep 1 ms, write 64 bytes to a
// loopback TCP connection, read them back at its other end". A tasklet waits
// without holding a thread; a std::thread can only wait for one task at a
// time, so the threads take the tasks in turn.
// The CPU load: Beazley's count, in chunks of ~1 ms; a corelet tasklet
// yields between chunks.
// Throughput: operations (I/O rounds or count chunks) per second.

#include "macro_kernels.hpp"

#include <corelet/corelet.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kChunk = 2'000'000;  // count steps per CPU chunk (~1 ms here)
constexpr std::size_t kMsg = 64;

// A connected loopback TCP pair (blocking fds).
std::pair<int, int> tcp_pair() {
  const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 1) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("profile_loads: listen");
    std::exit(1);
  }
  const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("profile_loads: connect");
    std::exit(1);
  }
  const int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(l);
  const int one = 1;
  ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {c, s};
}

// ---- corelet tasklets -----------------------------------------------------

struct Counters {
  std::uint64_t ops = 0;
};

void io_tasklet(int a, int b, SteadyClock::time_point end, Counters& n) {
  char out[kMsg] = {1}, in[kMsg];
  while (SteadyClock::now() < end) {
    corelet::this_tasklet::sleep_for(1ms);
    corelet::io::write(a, out, sizeof out);
    for (std::size_t got = 0; got < kMsg;) got += corelet::io::read(b, in + got, kMsg - got);
    ++n.ops;
  }
}

void cpu_tasklet(SteadyClock::time_point end, Counters& n) {
  while (SteadyClock::now() < end) {
    corelet_perf::count_down(kChunk);
    ++n.ops;
    corelet::this_tasklet::yield();
  }
}

// Runs `tasks` I/O tasklets or `workers` CPU tasklets on this scheduler for
// `secs`; returns the operations done.
std::uint64_t corelet_load(bool io, int workers, int tasks, double secs) {
  Counters n;
  std::vector<std::pair<int, int>> fds;
  if (io)
    for (int i = 0; i < tasks; ++i) fds.push_back(tcp_pair());
  const auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(secs));
  std::vector<corelet::Task<void>> ts;
  if (io) {
    for (auto [a, b] : fds) ts.push_back(corelet::spawn({.name = "io"}, io_tasklet, a, b, end, std::ref(n)));
  } else {
    for (int i = 0; i < workers; ++i) ts.push_back(corelet::spawn({.name = "cpu"}, cpu_tasklet, end, std::ref(n)));
  }
  for (auto& t : ts) t.join();
  for (auto [a, b] : fds) {
    ::close(a);
    ::close(b);
  }
  return n.ops;
}

// The cluster's share: each worker runs its part of the load.
std::uint64_t cluster_part(int io, int tasks, double secs) { return corelet_load(io != 0, 1, tasks, secs); }
CORELET_REMOTE(cluster_part);

// ---- std::thread ----------------------------------------------------------

std::uint64_t thread_load(bool io, int workers, int tasks, double secs) {
  std::atomic<std::uint64_t> total{0};
  std::vector<std::vector<std::pair<int, int>>> mine(static_cast<std::size_t>(workers));
  if (io)
    for (int i = 0; i < tasks; ++i) mine[static_cast<std::size_t>(i % workers)].push_back(tcp_pair());
  const auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(secs));
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      std::uint64_t ops = 0;
      const auto& pairs = mine[static_cast<std::size_t>(w)];
      if (io) {
        // This thread's tasks, taken in turn: a blocked thread serves one.
        char out[kMsg] = {1}, in[kMsg];
        for (std::size_t k = 0; SteadyClock::now() < end && !pairs.empty(); k = (k + 1) % pairs.size()) {
          std::this_thread::sleep_for(1ms);
          if (::write(pairs[k].first, out, sizeof out) != static_cast<ssize_t>(sizeof out)) std::abort();
          for (std::size_t got = 0; got < kMsg;) {
            const ssize_t r = ::read(pairs[k].second, in + got, kMsg - got);
            if (r <= 0) std::abort();
            got += static_cast<std::size_t>(r);
          }
          ++ops;
        }
      } else {
        while (SteadyClock::now() < end) {
          corelet_perf::count_down(kChunk);
          ++ops;
        }
      }
      total += ops;
    });
  }
  for (auto& t : threads) t.join();
  for (auto& v : mine)
    for (auto [a, b] : v) {
      ::close(a);
      ::close(b);
    }
  return total.load();
}

// ---- the split ------------------------------------------------------------

void print_split(double secs) {
  corelet::run([&] {
    std::vector<std::pair<int, int>> fds;
    for (int i = 0; i < 100; ++i) fds.push_back(tcp_pair());
    Counters io_n, cpu_n;
    const auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(secs));
    std::vector<corelet::Task<void>> ts;
    for (auto [a, b] : fds) ts.push_back(corelet::spawn({.name = "io"}, io_tasklet, a, b, end, std::ref(io_n)));
    for (int i = 0; i < 2; ++i) ts.push_back(corelet::spawn({.name = "cpu"}, cpu_tasklet, end, std::ref(cpu_n)));
    corelet::this_tasklet::sleep_for(std::chrono::duration<double>(secs * 0.9));
    const corelet::Stats st = corelet::stats();  // while every load tasklet is alive
    for (auto& t : ts) t.join();
    for (auto [a, b] : fds) {
      ::close(a);
      ::close(b);
    }
    struct Sum {
      double run = 0, wait[corelet::kWaitKinds] = {}, ready = 0;
      int n = 0;
    };
    std::map<std::string, Sum> by;
    for (const auto& t : st.tasklets) {
      if (t.name != "io" && t.name != "cpu") continue;
      Sum& s = by[t.name];
      s.run += static_cast<double>(t.run_ns);
      for (int k = 0; k < corelet::kWaitKinds; ++k) s.wait[k] += static_cast<double>(t.wait_ns[k]);
      s.ready += static_cast<double>(t.ready_ns);
      ++s.n;
    }
    for (const auto& [name, s] : by) {
      const double total = s.run + s.wait[0] + s.wait[1] + s.wait[2] + s.wait[3] + s.ready;
      std::printf(
          "{\"split\": \"%s\", \"lang\": \"C++\", \"tasklets\": %d, \"run\": %.4f, \"io\": %.4f, \"timer\": %.4f, "
          "\"sync\": %.4f, \"remote\": %.4f, \"ready\": %.4f}\n",
          name.c_str(), s.n, s.run / total, s.wait[0] / total, s.wait[1] / total, s.wait[2] / total, s.wait[3] / total,
          s.ready / total);
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "split") == 0) {
    print_split(std::atof(argv[2]));
    return 0;
  }
  if (argc < 6 || std::strcmp(argv[1], "load") != 0) {
    std::fprintf(stderr, "usage: profile_loads load io|cpu corelet|cluster|thread WORKERS SECONDS [TASKS]\n"
                         "       profile_loads split SECONDS\n");
    return 2;
  }
  const bool io = std::strcmp(argv[2], "io") == 0;
  const std::string runtime = argv[3];
  const int workers = std::atoi(argv[4]);
  const double secs = std::atof(argv[5]);
  const int tasks = argc > 6 ? std::atoi(argv[6]) : 200;
  std::uint64_t ops = 0;
  if (runtime == "corelet") {
    corelet::run([&] { ops = corelet_load(io, workers, tasks, secs); });
  } else if (runtime == "cluster") {
    corelet::Config cfg;
    cfg.workers = workers;
    corelet::run(cfg, [&] {
      std::vector<corelet::Future<std::uint64_t>> parts;
      const int per = (tasks + workers - 1) / workers;
      for (int w = 0; w < workers; ++w) parts.push_back(corelet::spawn_on(w, cluster_part, io ? 1 : 0, per, secs));
      std::uint64_t sum = 0;
      for (auto& f : parts) sum += f.get();
      std::printf("{\"lang\": \"C++\", \"runtime\": \"corelet, a scheduler per core\", \"load\": \"%s\", "
                  "\"workers\": %d, \"ops_per_s\": %.1f}\n",
                  io ? "io" : "cpu", workers, static_cast<double>(sum) / secs);
      std::fflush(stdout);
    });
    return 0;
  } else if (runtime == "thread") {
    ops = thread_load(io, workers, tasks, secs);
  } else {
    std::fprintf(stderr, "profile_loads: unknown runtime %s\n", runtime.c_str());
    return 2;
  }
  std::printf("{\"lang\": \"C++\", \"runtime\": \"%s\", \"load\": \"%s\", \"workers\": %d, \"ops_per_s\": %.1f}\n",
              runtime == "corelet" ? "corelet, one scheduler" : "std::thread", io ? "io" : "cpu", workers,
              static_cast<double>(ops) / secs);
  return 0;
}
