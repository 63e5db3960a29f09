// ipc_corelet — corelet's side of the cross-process messaging comparison
// (perf/ipc_compare.py runs it next to perf/ipc_ref, the reference ring, pipe
// and eventfd). Each mode starts a cluster of two pinned workers and prints
// one JSON line like ipc_ref's:
//
//   ipc_corelet tput SIZE [N]        mailbox messages of SIZE bytes, worker 1 -> 0, msg/s
//   ipc_corelet raw_tput SIZE [N]    corelet's ring alone (RingWriter/RingReader), msg/s
//   ipc_corelet rtt [N]              mailbox ping-pong, peers polling (idle_spin), median ns
//   ipc_corelet raw_rtt [N]          the same ping-pong on corelet's rings alone, median ns
//   ipc_corelet rtt_sleep [N]        the same with idle_spin = 0: every message wakes a sleeper
//   ipc_corelet spawn_on_rtt [N]     spawn_on(1, noop).get(), median ns
//   ipc_corelet pool N CHUNK         Pool::map of a trivial function: ns per task
//
// SIZE is the message's own bytes (a sequence number and filler), as in
// ipc_ref; corelet adds its 8-byte frame header and 16-byte mail header.
// IPC_CORELET_RING_BYTES (a power of two) sets the ring's data bytes for tput
// and raw_tput (default: Config's, 1 MiB), to compare with ipc_ref's rings of
// 1024 slots (64 MiB at 64 KiB messages).

#include <corelet/corelet.hpp>

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using SteadyClock = std::chrono::steady_clock;

std::size_t ring_bytes() {
  const char* v = std::getenv("IPC_CORELET_RING_BYTES");
  return v && *v ? std::strtoull(v, nullptr, 10) : corelet::Config{}.ring_bytes;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void report(const char* bench, std::size_t size, double value, const char* unit) {
  std::printf("{\"bench\":\"%s\",\"size\":%zu,\"value\":%.6g,\"unit\":\"%s\"}\n", bench, size, value, unit);
  std::fflush(stdout);
}

template <std::size_t Size>
struct Msg {
  std::uint64_t seq;
  std::array<unsigned char, Size - sizeof(std::uint64_t)> fill;
};

// ---- tput: mailbox messages from worker 1 to worker 0 ----

template <std::size_t Size>
int blast(corelet::Address to, std::uint64_t n) {
  auto m = std::make_unique<Msg<Size>>();
  for (std::uint64_t i = 0; i < n; ++i) {
    m->seq = i;
    corelet::send(to, *m);
  }
  return 0;
}
CORELET_REMOTE(blast<64>);
CORELET_REMOTE(blast<1024>);
CORELET_REMOTE(blast<65536>);

// Written by worker 0, read by the supervisor: MAP_SHARED before the fork.
double* g_result = nullptr;

template <std::size_t Size>
double tput(std::uint64_t n) {
  // Stacks hold a message (recv returns it by value): 64 KiB ones need more.
  corelet::Config cfg{.workers = 2, .stack_size = 4 * Size + 64 * 1024};
  cfg.ring_bytes = ring_bytes();
  corelet::run(cfg, [&] {
    corelet::Mailbox<Msg<Size>> box;
    auto f = corelet::spawn_on(1, blast<Size>, box.address(), n);
    box.recv();  // the clock starts at the first message, as in ipc_ref
    const auto t0 = now_ns();
    for (std::uint64_t i = 1; i < n; ++i) {
      if (box.recv().seq != i) {
        std::fprintf(stderr, "ipc_corelet: message %llu out of order\n", static_cast<unsigned long long>(i));
        std::exit(1);
      }
    }
    *g_result = static_cast<double>(n - 1) / (static_cast<double>(now_ns() - t0) / 1e9);
    f.get();
    return 0;
  });
  return *g_result;
}

// ---- raw_tput / raw_rtt: the ring alone between two pinned processes ----

// Runs side(0, rings, result) and side(1, ...) in two children pinned to the
// first two allowed CPUs, over `nrings` fresh rings in shared memory; returns
// what a side stored in *result.
template <class Side>
double raw_pair(int nrings, Side side) {
  const std::size_t kCap = ring_bytes();
  const std::size_t one = corelet::ipc::ring_bytes(kCap);
  void* mem = mmap(nullptr, nrings * one + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) std::exit(1);
  std::vector<corelet::ipc::RingHeader*> rings;
  for (int i = 0; i < nrings; ++i) rings.push_back(corelet::ipc::init_ring(static_cast<std::byte*>(mem) + i * one, kCap));
  auto* result = reinterpret_cast<double*>(static_cast<std::byte*>(mem) + nrings * one);
  cpu_set_t set;
  sched_getaffinity(0, sizeof set, &set);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  std::fflush(nullptr);
  pid_t pids[2];
  for (int s = 0; s < 2; ++s) {
    pids[s] = fork();
    if (pids[s] != 0) continue;
    cpu_set_t mine;
    CPU_ZERO(&mine);
    CPU_SET(cpus[static_cast<std::size_t>(s) % cpus.size()], &mine);
    sched_setaffinity(0, sizeof mine, &mine);
    side(s, rings, result);
    _exit(0);
  }
  for (pid_t p : pids) {
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "ipc_corelet: a raw_* child failed\n");
      std::exit(1);
    }
  }
  return *result;
}

double raw_tput(std::size_t size, std::uint64_t n) {
  return raw_pair(1, [&](int side, const std::vector<corelet::ipc::RingHeader*>& rings, double* result) {
    std::vector<unsigned char> buf(size, 1);
    if (side == 0) {  // producer: publishes every 32 messages or when full
      corelet::ipc::RingWriter w(rings[0]);
      for (std::uint64_t i = 0; i < n;) {
        std::byte* p = w.try_reserve(static_cast<std::uint32_t>(size));
        if (!p) {
          w.publish();
          continue;
        }
        std::memcpy(buf.data(), &i, sizeof i);
        std::memcpy(p, buf.data(), size);
        w.commit(static_cast<std::uint32_t>(size), 1);
        if (++i % 32 == 0) w.publish();
      }
      w.publish();
    } else {
      corelet::ipc::RingReader r(rings[0]);
      corelet::ipc::Frame f;
      std::uint64_t got = 0;
      std::int64_t t0 = 0;
      while (got < n) {
        while (r.peek(f)) {
          if (got == 0) t0 = now_ns();
          std::memcpy(buf.data(), f.data, f.size);
          std::uint64_t seq;
          std::memcpy(&seq, buf.data(), sizeof seq);
          if (seq != got) _exit(3);
          ++got;
          r.pop(f);
        }
        r.release();
      }
      *result = static_cast<double>(n - 1) / (static_cast<double>(now_ns() - t0) / 1e9);
    }
  });
}

// raw_rtt — a 64-byte ping-pong on two of corelet's rings, each message
// published and released at once, both sides spinning: the ring's own share
// of the mailbox round trip (rtt), measured as ipc_ref's ref_rtt is.
double raw_rtt(std::uint64_t n) {
  return raw_pair(2, [&](int side, const std::vector<corelet::ipc::RingHeader*>& rings, double* result) {
    corelet::ipc::RingWriter w(rings[side]);
    corelet::ipc::RingReader r(rings[1 - side]);
    unsigned char m[64]{};
    auto put = [&](std::uint64_t i) {
      std::memcpy(m, &i, sizeof i);
      while (!w.try_write(1, m, sizeof m)) {}
      w.publish();
    };
    auto take = [&]() {
      corelet::ipc::Frame f;
      while (!r.peek(f)) {}
      std::uint64_t seq;
      std::memcpy(m, f.data, sizeof m);
      std::memcpy(&seq, m, sizeof seq);
      r.pop(f);
      r.release();
      return seq;
    };
    const std::uint64_t warm = 1000;
    if (side == 1) {
      for (std::uint64_t i = 0; i < warm + n; ++i) put(take());
      return;
    }
    std::vector<double> samples;
    samples.reserve(n);
    for (std::uint64_t i = 0; i < warm + n; ++i) {
      const auto t0 = now_ns();
      put(i);
      if (take() != i) _exit(3);
      if (i >= warm) samples.push_back(static_cast<double>(now_ns() - t0));
    }
    *result = median(samples);
  });
}

// ---- round trips ----

struct Ping {
  std::uint64_t seq;
  corelet::Address reply;
};

int pong(int rounds) {
  corelet::Mailbox<Ping> box;
  corelet::register_name("pong", box.address());
  for (int i = 0; i < rounds; ++i) {
    Ping p = box.recv();
    corelet::send(p.reply, p);
  }
  return 0;
}
CORELET_REMOTE(pong);

void rtt(const char* name, corelet::Config cfg, int rounds) {
  cfg.workers = 2;
  corelet::run(cfg, [&] {
    corelet::Mailbox<Ping> box;
    auto f = corelet::spawn_on(1, pong, rounds + 1000);
    corelet::Address to;
    while (true) {
      if (auto a = corelet::whereis("pong")) {
        to = *a;
        break;
      }
      corelet::this_tasklet::sleep_for(std::chrono::microseconds(50));
    }
    std::vector<double> samples;
    samples.reserve(static_cast<std::size_t>(rounds));
    for (int i = 0; i < rounds + 1000; ++i) {
      const auto t0 = now_ns();
      corelet::send(to, Ping{static_cast<std::uint64_t>(i), box.address()});
      Ping p = box.recv();
      if (p.seq != static_cast<std::uint64_t>(i)) std::exit(1);
      if (i >= 1000) samples.push_back(static_cast<double>(now_ns() - t0));  // after a warm-up
    }
    f.get();
    report(name, 64, median(samples), "ns");
    return 0;
  });
}

int noop(int x) { return x; }
CORELET_REMOTE(noop);

void spawn_on_rtt(int rounds) {
  corelet::run(corelet::Config{.workers = 2}, [&] {
    std::vector<double> samples;
    for (int i = 0; i < rounds + 1000; ++i) {
      const auto t0 = now_ns();
      if (corelet::spawn_on(1, noop, i).get() != i) std::exit(1);
      if (i >= 1000) samples.push_back(static_cast<double>(now_ns() - t0));
    }
    report("spawn_on_rtt", 0, median(samples), "ns");
    return 0;
  });
}

long identity(long x) { return x; }
CORELET_REMOTE(identity);

void pool(std::size_t n, std::size_t chunk) {
  corelet::run(corelet::Config{.workers = 2}, [&] {
    corelet::Pool p;
    std::vector<long> in(n);
    for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<long>(i);
    p.map(identity, std::vector<long>(1000, 1), chunk);  // warm-up
    const auto t0 = now_ns();
    auto out = p.map(identity, in, chunk);
    const double per = static_cast<double>(now_ns() - t0) / static_cast<double>(n);
    if (out != in) std::exit(1);
    report(chunk == 0 ? "pool_map_default_chunks" : "pool_map_chunk", chunk, per, "ns/task");
    return 0;
  });
}

}  // namespace

int main(int argc, char** argv) {
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 1;
  g_result = static_cast<double*>(page);
  const std::string mode = argc > 1 ? argv[1] : "";
  auto arg = [&](int i, std::uint64_t def) { return argc > i ? std::strtoull(argv[i], nullptr, 10) : def; };
  if (mode == "tput") {
    const std::size_t size = arg(2, 64);
    const std::uint64_t n = arg(3, size >= 65536 ? 200'000 : 5'000'000);
    double rate = 0;
    if (size == 64) rate = tput<64>(n);
    else if (size == 1024) rate = tput<1024>(n);
    else if (size == 65536) rate = tput<65536>(n);
    else { std::fprintf(stderr, "ipc_corelet: tput SIZE is 64, 1024 or 65536\n"); return 2; }
    report("corelet_tput", size, rate, "msg/s");
  } else if (mode == "raw_tput") {
    const std::size_t size = arg(2, 64);
    report("corelet_ring_tput", size, raw_tput(size, arg(3, size >= 65536 ? 200'000 : 20'000'000)), "msg/s");
  } else if (mode == "raw_rtt") {
    report("corelet_ring_rtt", 64, raw_rtt(arg(2, 1'000'000)), "ns");
  } else if (mode == "rtt") {
    rtt("corelet_rtt_busy", corelet::Config{}, static_cast<int>(arg(2, 200'000)));
  } else if (mode == "rtt_sleep") {
    corelet::Config cfg;
    cfg.idle_spin = std::chrono::microseconds(0);
    rtt("corelet_rtt_sleeping", cfg, static_cast<int>(arg(2, 20'000)));
  } else if (mode == "spawn_on_rtt") {
    spawn_on_rtt(static_cast<int>(arg(2, 100'000)));
  } else if (mode == "pool") {
    pool(arg(2, 1'000'000), arg(3, 0));
  } else {
    std::fprintf(stderr, "usage: ipc_corelet tput|raw_tput SIZE [N] | rtt [N] | raw_rtt [N] | rtt_sleep [N] | spawn_on_rtt [N] | pool N CHUNK\n");
    return 2;
  }
  return 0;
}
