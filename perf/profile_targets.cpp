// profile_targets — the profiling targets that are not a micro-benchmark
// (the yield round trip with and without accounting is in yield_bench):
//
//   cpu      count in 1 ms chunks for ~0.5 s, one scheduler running two
//            tasklets and a two-worker cluster, with accounting and the stall
//            detector on / with the stall detector off / with both off,
//            interleaved: their cost on a busy core (the monitor thread's
//            wake-ups included);
//   stall    a tasklet that hogs its scheduler for 50 ms: when the report came,
//            from the hog's start (target: 50 ms + one 5 ms tick);
//   dump     dump() of 100,000 parked tasklets (target: under a second).
//
//   profile_targets [ROUNDS]      prints a markdown table of medians
//
// Stall reports go to stderr, which this program sends to /dev/null while
// it measures, after checking once that the report names the hog.

#include "macro_kernels.hpp"

#include <corelet/corelet.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kChunk = 2'000'000;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::uint64_t spin_chunks(double secs) {
  const auto end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(secs));
  std::uint64_t n = 0;
  while (SteadyClock::now() < end) {
    corelet_perf::count_down(kChunk);
    ++n;
    corelet::this_tasklet::yield();
  }
  return n;
}
CORELET_REMOTE(spin_chunks);

enum class Mode { On, NoStall, Off };
void set_mode(Mode m) {
  corelet::set_accounting(m != Mode::Off);
  corelet::set_stall_threshold(m == Mode::On ? 20ms : 0ms);
}

// CPU time (ns, from schedstat) of this process's threads other than the
// calling one: during a run, the monitor thread.
std::uint64_t other_threads_cpu_ns() {
  std::uint64_t sum = 0;
  const std::string self = std::to_string(::gettid());
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.' || self == e->d_name) continue;
      if (FILE* f = std::fopen(("/proc/self/task/" + std::string(e->d_name) + "/schedstat").c_str(), "r")) {
        unsigned long long ns = 0;
        if (std::fscanf(f, "%llu", &ns) == 1) sum += ns;
        std::fclose(f);
      }
    }
    ::closedir(d);
  }
  return sum;
}

// Chunks per second of two tasklets on one scheduler; *monitor_share: the
// monitor thread's CPU time over the run, as a share of one core.
double cpu_one(double secs, double* monitor_share = nullptr) {
  std::uint64_t n = 0;
  corelet::run([&] {
    const std::uint64_t cpu0 = other_threads_cpu_ns();
    const auto t0 = SteadyClock::now();
    auto a = corelet::spawn(spin_chunks, secs);
    auto b = corelet::spawn(spin_chunks, secs);
    n = a.join() + b.join();
    if (monitor_share)
      *monitor_share = static_cast<double>(other_threads_cpu_ns() - cpu0) /
                       static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - t0).count());
  });
  return static_cast<double>(n) / secs;
}

// Chunks per second of two workers (forked after set_mode: they inherit it).
// main runs in worker 0's process: the figure comes back in a shared page.
double cpu_cluster(double secs) {
  static auto* shared = static_cast<double*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  *shared = 0;
  corelet::Config cfg;
  cfg.workers = 2;
  corelet::run(cfg, [&] {
    auto f0 = corelet::spawn_on(0, spin_chunks, secs);
    auto f1 = corelet::spawn_on(1, spin_chunks, secs);
    *shared = static_cast<double>(f0.get() + f1.get()) / secs;
  });
  return *shared;
}

// Milliseconds from a 50 ms hog's start to its stall report.
double stall_latency_ms() {
  double ms = -1;
  corelet::run([&] {
    SteadyClock::time_point start;
    auto hog = corelet::spawn({.name = "hog"}, [&] {
      start = SteadyClock::now();
      const auto end = start + 50ms;
      while (SteadyClock::now() < end) {
      }
    });
    hog.join();
    const corelet::WorkerStats w = corelet::stats(false).worker;
    if (w.stalls == 1)
      ms = (static_cast<double>(w.last_stall_ns) - static_cast<double>(start.time_since_epoch().count())) / 1e6;
  });
  return ms;
}

// Seconds for dump() of n parked tasklets.
double dump_seconds(int n, std::size_t* bytes) {
  double secs = 0;
  corelet::run([&] {
    corelet::Event go;
    std::vector<corelet::Task<void>> ts;
    ts.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ts.push_back(corelet::spawn({.stack_size = corelet::core::kMinStackSize}, [&] { go.wait(); }));
    corelet::this_tasklet::yield();  // every one parks on the event
    const auto t0 = SteadyClock::now();
    const std::string d = corelet::dump();
    secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    *bytes = d.size();
    go.set();
    for (auto& t : ts) t.join();
  });
  return secs;
}

class QuietStderr {
 public:
  QuietStderr() : saved_(::dup(2)) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    ::close(null);
  }
  ~QuietStderr() {
    ::dup2(saved_, 2);
    ::close(saved_);
  }

 private:
  int saved_;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const double secs = 0.5;
  std::vector<double> one[3], cluster[3], stall, dump, monitor;
  std::size_t dump_bytes = 0;
  {
    QuietStderr quiet;
    for (int r = 0; r < rounds; ++r) {
      for (Mode m : {Mode::On, Mode::NoStall, Mode::Off}) {
        set_mode(m);
        double share = 0;
        one[static_cast<int>(m)].push_back(cpu_one(secs, &share));
        if (m == Mode::On) monitor.push_back(share);
        cluster[static_cast<int>(m)].push_back(cpu_cluster(secs));
      }
      set_mode(Mode::On);
      stall.push_back(stall_latency_ms());
      dump.push_back(dump_seconds(100000, &dump_bytes));
    }
  }
  set_mode(Mode::On);
  std::printf("medians of %d interleaved rounds\n\n", rounds);
  std::printf("| measurement | accounting + stall detector | stall detector off | both off | cost of both | cost of the detector |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  auto row = [](const char* name, std::vector<double>* v) {
    const double on = median(v[0]), nostall = median(v[1]), off = median(v[2]);
    std::printf("| %s (chunks/s) | %.0f | %.0f | %.0f | %+.1f%% | %+.1f%% |\n", name, on, nostall, off,
                (off / on - 1) * 100, (nostall / on - 1) * 100);
  };
  row("count, 2 tasklets on one scheduler", one);
  row("count, 2 workers", cluster);
  std::printf("\nThe monitor thread (ticks, stall checks) used %.3f%% of a core during the one-scheduler runs (median; "
              "its CPU time from /proc/self/task/*/schedstat over the run's wall time).\n",
              median(monitor) * 100);
  std::printf("\n| target | measured |\n|---|---|\n");
  std::printf("| a 50 ms hog reported within 50 ms + one tick (55 ms) | after %.1f ms (median; all: ", median(stall));
  for (double s : stall) std::printf("%.1f ", s);
  std::printf("ms) |\n");
  std::printf("| dump of 100,000 parked tasklets under 1 s | %.3f s (median; %zu bytes of text) |\n", median(dump),
              dump_bytes);
  return 0;
}
