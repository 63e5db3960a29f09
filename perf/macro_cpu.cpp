// macro_cpu — the seeds' CPU-bound macro benchmarks (primes, md5, count),
// each a fixed list of independent units, run:
//   sequentially in one thread;
//   over std::threads (1 and 2; units round-robin);
//   over corelet workers (1 and 2 processes; Pool::map, one unit per chunk).
// Every configuration runs `reps` times, interleaved (this VM's core speed
// drifts by tens of percent over seconds); medians are printed with the
// speedup over sequential, then one JSON line per configuration.
//
// corelet figures come in two forms: "in cluster" times Pool::map inside
// main (the steady state of a long-running program), "whole run" times
// corelet::run from the call to its return (fork, rings, teardown included),
// as the seeds' figures include starting processes.
//
//   macro_cpu [COUNT_N [REPS]]   COUNT_N: calibrated to ~1 s sequential if 0/absent
//
// The kernels (macro_kernels.hpp) check their own results.

#include "macro_kernels.hpp"

#include <corelet/corelet.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace corelet_perf;
using SteadyClock = std::chrono::steady_clock;

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

std::uint64_t g_count_n = 0;  // set before any cluster starts: every worker inherits it

std::uint64_t primes_unit(int u) { return primes_work(u); }
std::uint64_t md5_unit(int u) { return md5_work(u); }
std::uint64_t count_unit(int) {
  count_down(g_count_n);
  return g_count_n;
}
CORELET_REMOTE(primes_unit);
CORELET_REMOTE(md5_unit);
CORELET_REMOTE(count_unit);

struct Workload {
  const char* name;
  int units;
  std::uint64_t (*unit)(int);
};

std::uint64_t fold(const std::vector<std::uint64_t>& out) {
  std::uint64_t c = 0;
  for (std::uint64_t v : out) c = c * 31 + v;
  return c;
}

// One measurement: seconds, with the folded unit results in *check.
double run_threads(const Workload& w, int threads, std::uint64_t* check) {
  std::vector<std::uint64_t> out(static_cast<std::size_t>(w.units));
  const auto t0 = SteadyClock::now();
  if (threads == 0) {
    for (int u = 0; u < w.units; ++u) out[static_cast<std::size_t>(u)] = w.unit(u);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int u = t; u < w.units; u += threads) out[static_cast<std::size_t>(u)] = w.unit(u);
      });
    for (auto& th : pool) th.join();
  }
  const double s = seconds_since(t0);
  *check = fold(out);
  return s;
}

// Shared with the workers (MAP_SHARED before the fork): worker 0 writes here.
struct Shared {
  double in_cluster;
  std::uint64_t check;
};
Shared* g_shared = nullptr;

double run_corelet(const Workload& w, int workers, std::uint64_t* check, double* whole) {
  const auto t0 = SteadyClock::now();
  const int st = corelet::run(corelet::Config{.workers = workers}, [&w] {
    std::vector<int> units(static_cast<std::size_t>(w.units));
    for (int u = 0; u < w.units; ++u) units[static_cast<std::size_t>(u)] = u;
    corelet::Pool pool;
    const auto t1 = SteadyClock::now();
    auto out = pool.map(w.unit, units, 1);
    g_shared->in_cluster = seconds_since(t1);
    g_shared->check = fold(out);
    return 0;
  });
  *whole = seconds_since(t0);
  if (st != 0) {
    std::fprintf(stderr, "macro_cpu: the cluster failed (status %d)\n", st);
    std::exit(1);
  }
  *check = g_shared->check;
  return g_shared->in_cluster;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::uint64_t calibrate_count(double target) {
  std::uint64_t n = 1 << 24;
  for (;;) {
    auto time_it = [n] {
      const auto t0 = SteadyClock::now();
      count_down(n);
      return seconds_since(t0);
    };
    if (double s = time_it(); s >= 0.2) {
      s = std::min(s, time_it());
      return static_cast<std::uint64_t>(static_cast<double>(n) * target / (s * kCountUnits));
    }
    n *= 2;
  }
}

void check_kernels() {
  const auto hex = [](const std::array<unsigned char, 16>& d) {
    std::string s;
    char two[3];
    for (unsigned char b : d) std::snprintf(two, sizeof two, "%02x", b), s += two;
    return s;
  };
  if (count_primes_sieve(kPrimesLimit) != 33'860 || count_primes_sieve(100) != 25 ||
      hex(md5_of("abc", 3)) != "900150983cd24fb0d6963f7d28e17f72" ||
      hex(md5_of("", 0)) != "d41d8cd98f00b204e9800998ecf8427e") {
    std::fprintf(stderr, "macro_cpu: kernel self-check failed\n");
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  check_kernels();
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  g_shared = static_cast<Shared*>(mem);
  g_count_n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 0;
  if (g_count_n == 0) g_count_n = calibrate_count(1.0);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::vector<Workload> workloads = {
      {"primes", kPrimesUnits, primes_unit},
      {"md5", kMd5Units, md5_unit},
      {"count", kCountUnits, count_unit},
  };
  // Configurations: sequential, 1 and 2 threads, 1 and 2 corelet workers.
  struct Cfg {
    const char* mode;
    int n;
  };
  const std::vector<Cfg> cfgs = {{"sequential", 0}, {"std_thread", 1}, {"std_thread", 2}, {"corelet", 1}, {"corelet", 2}};
  std::printf("cpus: %u   count n: %llu   repetitions: %d (medians)\n", std::thread::hardware_concurrency(),
              static_cast<unsigned long long>(g_count_n), reps);
  std::printf("%-7s %10s %10s %10s %10s %10s %10s  %8s %8s %8s\n", "load", "seq s", "1 thr s", "2 thr s", "1 wkr s",
              "2 wkr s", "2 wkr run", "x 2thr", "x 2wkr", "x 2wkr*");
  std::vector<std::string> json;
  for (const Workload& w : workloads) {
    std::uint64_t want = 0;
    run_threads(w, 0, &want);  // warm-up: page faults, OpenSSL's provider
    std::vector<std::vector<double>> t(cfgs.size()), whole(cfgs.size());
    for (int r = 0; r < reps; ++r)
      for (std::size_t k = 0; k < cfgs.size(); ++k) {
        std::uint64_t c = 0;
        double all = 0;
        if (std::string(cfgs[k].mode) == "corelet") {
          t[k].push_back(run_corelet(w, cfgs[k].n, &c, &all));
        } else {
          t[k].push_back(run_threads(w, cfgs[k].n, &c));
          all = t[k].back();
        }
        whole[k].push_back(all);
        if (c != want) {
          std::fprintf(stderr, "macro_cpu: %s gave a different result in %s/%d\n", w.name, cfgs[k].mode, cfgs[k].n);
          return 1;
        }
      }
    std::vector<double> med, med_whole;
    for (std::size_t k = 0; k < cfgs.size(); ++k) {
      med.push_back(median(t[k]));
      med_whole.push_back(median(whole[k]));
      char line[320];
      std::snprintf(line, sizeof line,
                    "{\"bench\":\"macro_%s\",\"mode\":\"%s\",\"n\":%d,\"value\":%.6f,\"whole_run\":%.6f,\"unit\":\"s\","
                    "\"speedup\":%.3f,\"speedup_whole_run\":%.3f}",
                    w.name, cfgs[k].mode, cfgs[k].n, med.back(), med_whole.back(), med[0] / med.back(),
                    med[0] / med_whole.back());
      json.push_back(line);
    }
    std::printf("%-7s %10.4f %10.4f %10.4f %10.4f %10.4f %10.4f  %8.2f %8.2f %8.2f\n", w.name, med[0], med[1], med[2],
                med[3], med[4], med_whole[4], med[0] / med[2], med[0] / med[4], med[0] / med_whole[4]);
  }
  std::printf("(x 2wkr: Pool::map inside the cluster; x 2wkr*: the whole corelet::run, start and stop included)\n");
  for (const auto& j : json) std::printf("%s\n", j.c_str());
  return 0;
}
