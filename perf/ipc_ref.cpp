// ipc_ref — reference figures for cross-process messaging on this machine.
//
// Two forked processes, each pinned to one of the first two CPUs of the
// affinity mask, talk through memfd-backed shared memory, a pipe or eventfds.
// The parent only forks, waits and prints one JSON line per run.
//
//   ipc_ref ref_tput SIZE [N]    reference SPSC ring, messages/s
//   ipc_ref ref_rtt [N]          ping-pong over two reference rings, median ns
//   ipc_ref cacheline_rtt [N]    one counter bounced on one cache line, median ns
//   ipc_ref pipe_tput SIZE [N]   pipe, messages/s
//   ipc_ref pipe_rtt [N]         ping-pong over two pipes, median ns
//   ipc_ref eventfd_rtt [N]      ping-pong over two eventfds, median ns
//
// Build: g++ -std=c++20 -O2 -Wall -Wextra -o ipc_ref ipc_ref.cpp
// Spin loops do not use `pause` (build with -DREF_PAUSE=1 to add it): the
// reference is meant to show the hardware limit, and on recent Intel cores
// `pause` costs ~140 cycles per iteration, which shows up in round trips.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
constexpr std::size_t kLine = 64;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ipc_ref: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}
// In a child, exit without running the parent's atexit handlers / stdio flush.
[[noreturn]] void child_die(const char* what) {
  std::fprintf(stderr, "ipc_ref child: %s: %s\n", what, errno ? std::strerror(errno) : "");
  _exit(2);
}

inline void spin() {
#if REF_PAUSE
  __builtin_ia32_pause();
#endif
}

using Clock = std::chrono::steady_clock;
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// An index alone on its cache line, so writer and reader never share a line.
struct alignas(kLine) Index {
  std::atomic<std::uint64_t> v{0};
};

// The reference ring: the simplest correct SPSC ring. No batching and no
// cached copy of the peer's index: every message costs the full handshake.
struct Ring {
  Index head;  // written by the producer only: messages published
  Index tail;  // written by the consumer only: messages consumed
  std::size_t slots = 0, slot_bytes = 0;
  unsigned char* data() { return reinterpret_cast<unsigned char*>(this) + sizeof(Ring); }
  static std::size_t bytes(std::size_t slots, std::size_t slot_bytes) { return sizeof(Ring) + slots * slot_bytes; }

  void push(const void* msg, std::size_t size) {
    const std::uint64_t w = head.v.load(std::memory_order_relaxed);  // own index
    while (w - tail.v.load(std::memory_order_acquire) == slots) spin();
    std::memcpy(data() + (w % slots) * slot_bytes, msg, size);
    head.v.store(w + 1, std::memory_order_release);
  }
  void pop(void* out, std::size_t size) {
    const std::uint64_t r = tail.v.load(std::memory_order_relaxed);  // own index
    while (head.v.load(std::memory_order_acquire) == r) spin();
    std::memcpy(out, data() + (r % slots) * slot_bytes, size);
    tail.v.store(r + 1, std::memory_order_release);
  }
};
static_assert(sizeof(Ring) % kLine == 0);

// Shared control block at the start of the mapping; rings follow it.
struct alignas(kLine) Control {
  std::atomic<int> ready{0};  // start barrier: both children pinned and waiting
  double result = 0;          // written by the measuring child, read by parent
  alignas(kLine) std::atomic<std::uint64_t> bounce{0};  // cacheline_rtt only
  alignas(kLine) char pad[kLine]{};                      // keep the ring off `bounce`'s line
};

// memfd + MAP_SHARED before fork(): both children see the same pages, no file
// in /dev/shm to clean up.
void* shared_map(std::size_t bytes) {
  int fd = memfd_create("ipc_ref", MFD_CLOEXEC);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) die("ftruncate");
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap");
  close(fd);
  std::memset(p, 0, bytes);  // fault pages in now, not during the measurement
  return p;
}

std::vector<int> first_two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) die("sched_getaffinity");
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.size() < 2) { std::fprintf(stderr, "ipc_ref: need two allowed CPUs\n"); std::exit(1); }
  return cpus;
}

// Runs side(0) and side(1) in two pinned children that start together, waits
// for both and fails loudly if either did not exit 0.
void run_pair(Control* ctl, const std::function<void(int)>& side) {
  const std::vector<int> cpus = first_two_cpus();
  std::fflush(nullptr);  // no duplicated stdio buffers in the children
  pid_t pids[2];
  for (int i = 0; i < 2; ++i) {
    pids[i] = fork();
    if (pids[i] < 0) die("fork");
    if (pids[i] == 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[i], &one);
      if (sched_setaffinity(0, sizeof one, &one) != 0) child_die("sched_setaffinity");
      ctl->ready.fetch_add(1);
      while (ctl->ready.load() < 2) {}
      side(i);
      _exit(0);
    }
  }
  // Reap in exit order: if one side dies, its peer would spin or block
  // forever, so kill the peer and fail.
  for (int left = 2; left > 0; --left) {
    int st = 0;
    const pid_t pid = waitpid(-1, &st, 0);
    if (pid != pids[0] && pid != pids[1]) die("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "ipc_ref: child %d failed (status 0x%x)\n", pid, st);
      if (left == 2) kill(pid == pids[0] ? pids[1] : pids[0], SIGKILL);
      std::exit(1);
    }
  }
}

double median(std::vector<std::int64_t>& v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return static_cast<double>(v[v.size() / 2]);
}

// A round-trip driver: side 0 times each exchange, side 1 echoes. A warm-up
// of 1% (at least 100) round trips is run first and not recorded.
template <class Ping, class Pong>
double rtt_pair(Control* ctl, std::size_t n, Ping ping, Pong pong) {
  const std::size_t warm = std::max<std::size_t>(100, n / 100);
  run_pair(ctl, [&](int side) {
    if (side == 1) {
      for (std::size_t i = 0; i < warm + n; ++i) pong(i);
      return;
    }
    std::vector<std::int64_t> ns(n);
    for (std::size_t i = 0; i < warm; ++i) ping(i);
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t t0 = now_ns();
      ping(warm + i);
      ns[i] = now_ns() - t0;
    }
    ctl->result = median(ns);
  });
  return ctl->result;
}

void write_all(int fd, const void* p, std::size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  while (n > 0) {
    ssize_t k = write(fd, b, n);
    if (k < 0) { if (errno == EINTR) continue; child_die("write"); }
    b += k, n -= static_cast<std::size_t>(k);
  }
}
void read_all(int fd, void* p, std::size_t n) {
  auto* b = static_cast<unsigned char*>(p);
  while (n > 0) {
    ssize_t k = read(fd, b, n);
    if (k < 0) { if (errno == EINTR) continue; child_die("read"); }
    if (k == 0) { errno = 0; child_die("read: unexpected EOF"); }
    b += k, n -= static_cast<std::size_t>(k);
  }
}

// Throughput: side 0 sends n messages of `size` bytes (a sequence number at
// the start), side 1 receives and checks them and times first to last.
template <class Send, class Recv>
double tput_pair(Control* ctl, std::size_t size, std::size_t n, Send send, Recv recv) {
  run_pair(ctl, [&](int side) {
    std::vector<unsigned char> msg(size, 0x5a);
    if (side == 0) {
      for (std::uint64_t i = 0; i < n; ++i) { std::memcpy(msg.data(), &i, 8); send(msg.data()); }
      return;
    }
    std::int64_t t0 = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      recv(msg.data());
      if (i == 0) t0 = now_ns();
      std::uint64_t seq;
      std::memcpy(&seq, msg.data(), 8);
      if (seq != i) { std::fprintf(stderr, "sequence mismatch: got %llu want %llu\n", (unsigned long long)seq, (unsigned long long)i); std::abort(); }
    }
    ctl->result = static_cast<double>(n - 1) * 1e9 / static_cast<double>(now_ns() - t0);
  });
  return ctl->result;
}

Ring* make_ring(void* at, std::size_t slots, std::size_t slot_bytes) {
  Ring* r = new (at) Ring;
  r->slots = slots, r->slot_bytes = slot_bytes;
  return r;
}

void print(const char* bench, long size, double value, const char* unit) {
  if (size >= 0) std::printf("{\"bench\":\"%s\",\"size\":%ld,\"value\":%.4g,\"unit\":\"%s\"}\n", bench, size, value, unit);
  else std::printf("{\"bench\":\"%s\",\"value\":%.4g,\"unit\":\"%s\"}\n", bench, value, unit);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) { std::fprintf(stderr, "usage: ipc_ref MODE [SIZE] [N]\n"); return 2; }
  const std::string mode = argv[1];
  const bool sized = mode == "ref_tput" || mode == "pipe_tput";
  const std::size_t size = sized ? std::strtoull(argc > 2 ? argv[2] : "64", nullptr, 10) : 64;
  const char* n_arg = argc > (sized ? 3 : 2) ? argv[sized ? 3 : 2] : nullptr;
  auto n_or = [&](std::size_t dflt) { return n_arg ? std::strtoull(n_arg, nullptr, 10) : dflt; };
  if (size < 8) { std::fprintf(stderr, "ipc_ref: SIZE must be >= 8 (it carries a sequence number)\n"); return 2; }

  // 1024 slots of max(64, SIZE) rounded up to a cache line, as the reference
  // definition says; the second ring is only mapped for ref_rtt.
  const std::size_t slot_bytes = (std::max<std::size_t>(64, size) + kLine - 1) / kLine * kLine, slots = 1024;
  const std::size_t ring_bytes = Ring::bytes(slots, slot_bytes), rings = mode == "ref_rtt" ? 2 : 1;
  auto* base = static_cast<unsigned char*>(shared_map(sizeof(Control) + rings * ring_bytes));
  auto* ctl = new (base) Control;
  Ring* a = make_ring(base + sizeof(Control), slots, slot_bytes);
  Ring* b = rings == 2 ? make_ring(base + sizeof(Control) + ring_bytes, slots, slot_bytes) : nullptr;

  if (mode == "ref_tput") {
    // Budget ~6 GiB moved for big messages; 10 M messages at most for small ones.
    const std::size_t n = n_or(std::min<std::size_t>(10'000'000, (6ull << 30) / size));
    print("ref_ring_tput", long(size), tput_pair(ctl, size, n, [&](const void* m) { a->push(m, size); }, [&](void* m) { a->pop(m, size); }), "msg/s");
  } else if (mode == "ref_rtt") {
    unsigned char m[64]{};
    const double v = rtt_pair(ctl, n_or(1'000'000),
        [&](std::size_t i) { std::memcpy(m, &i, 8); a->push(m, 64); b->pop(m, 64);
                             if (std::memcmp(m, &i, 8) != 0) std::abort(); },
        [&](std::size_t) { a->pop(m, 64); b->push(m, 64); });
    print("ref_ring_rtt", 64, v, "ns");
  } else if (mode == "cacheline_rtt") {
    // Side 0 owns even values, side 1 odd ones: each waits for its turn, then
    // increments. Side 0 times 2i -> 2i+1 -> 2i+2, i.e. two line transfers.
    auto& c = ctl->bounce;
    const double v = rtt_pair(ctl, n_or(2'000'000),
        [&](std::size_t i) { c.store(2 * i + 1, std::memory_order_release);
                             while (c.load(std::memory_order_acquire) != 2 * i + 2) spin(); },
        [&](std::size_t i) { while (c.load(std::memory_order_acquire) != 2 * i + 1) spin();
                             c.store(2 * i + 2, std::memory_order_release); });
    print("cacheline_rtt", -1, v, "ns");
  } else if (mode == "pipe_tput") {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) die("pipe2");
    const std::size_t n = n_or(std::min<std::size_t>(2'000'000, (1ull << 30) / size));
    print("pipe_tput", long(size), tput_pair(ctl, size, n, [&](const void* m) { write_all(p[1], m, size); }, [&](void* m) { read_all(p[0], m, size); }), "msg/s");
  } else if (mode == "pipe_rtt") {
    int p[2], q[2];
    if (pipe2(p, O_CLOEXEC) != 0 || pipe2(q, O_CLOEXEC) != 0) die("pipe2");
    unsigned char m[64]{};
    const double v = rtt_pair(ctl, n_or(100'000),
        [&](std::size_t) { write_all(p[1], m, 64); read_all(q[0], m, 64); },
        [&](std::size_t) { read_all(p[0], m, 64); write_all(q[1], m, 64); });
    print("pipe_rtt", 64, v, "ns");
  } else if (mode == "eventfd_rtt") {
    const int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
    if (e1 < 0 || e2 < 0) die("eventfd");
    std::uint64_t one = 1, got = 0;
    const double v = rtt_pair(ctl, n_or(100'000),
        [&](std::size_t) { write_all(e1, &one, 8); read_all(e2, &got, 8); },
        [&](std::size_t) { read_all(e1, &got, 8); write_all(e2, &one, 8); });
    print("eventfd_rtt", -1, v, "ns");
  } else {
    std::fprintf(stderr, "ipc_ref: unknown mode %s\n", mode.c_str());
    return 2;
  }
  return 0;
}
