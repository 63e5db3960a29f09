#pragma once
// Internal: the cluster's shared memory — the control block the supervisor
// and the workers share, and the rings — and the process-local view of it
// that every worker inherits through fork.

#include <corelet/ipc/cluster.hpp>
#include <corelet/ipc/mailbox.hpp>
#include <corelet/ipc/ring.hpp>
#include <corelet/ipc/robust_mutex.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace corelet::ipc::detail {

enum class SlotState : std::uint32_t { Alive = 1, Dead = 2 };

// WorkerSlot — one per worker. Written by the supervisor except `acked_epoch`
// and `sleeping`, which the worker writes. The supervisor fills the death
// fields before it publishes the state change with a release increment of
// ControlBlock::epoch; workers read them after an acquire load of it.
struct alignas(kCacheLine) WorkerSlot {
  std::atomic<std::uint32_t> state{0};
  std::atomic<std::uint32_t> gen{0};       // incarnation, +1 per fork
  std::atomic<std::int32_t> pid{0};
  std::atomic<std::int32_t> dead_pid{0};   // the last dead incarnation's
  std::atomic<std::int32_t> dead_signal{0};
  std::atomic<std::int32_t> dead_code{0};
  std::atomic<std::uint64_t> acked_epoch{0};  // the worker: epochs handled so far
  std::atomic<std::uint32_t> go{0};           // == gen: the new process may start (see fork_worker)
  int event_fd = -1;                          // its wake eventfd (inherited)
  // Own line: set by the worker when it is about to sleep, read (and cleared
  // by whoever writes event_fd) by producers after they publish.
  alignas(kCacheLine) std::atomic<std::uint32_t> sleeping{0};
};
static_assert(std::is_standard_layout_v<WorkerSlot>);

// NameEntry — one name of the registry (register_name / whereis).
struct NameEntry {
  char name[56];
  Address addr;
  bool used;
};
inline constexpr std::size_t kMaxNames = 1024;

struct ControlBlock {
  std::uint32_t magic = 0;
  std::int32_t workers = 0;
  // The name registry: a robust mutex (a worker that dies holding it does
  // not lock the others out) over a small table. Each entry is written name
  // first and `used` last, so the table is usable as a dead holder left it.
  RobustMutex names_lock;
  NameEntry names[kMaxNames];
  // Bumped (release) by the supervisor after every change of a slot's state
  // or of `shutdown`; workers compare it with the last value they handled.
  alignas(kCacheLine) std::atomic<std::uint64_t> epoch{0};
  std::atomic<std::uint32_t> shutdown{0};  // 1: stop (see Worker::begin_stop)
};
static_assert(std::is_standard_layout_v<NameEntry> && std::is_standard_layout_v<ControlBlock>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::int32_t>::is_always_lock_free);

// Cluster — the mapping and where things are in it. Made by the supervisor
// before it forks; each worker uses its inherited copy.
struct Cluster {
  Config cfg;
  int n = 0;
  std::vector<int> cpus;        // the affinity mask's CPUs
  void* base = nullptr;
  std::size_t size = 0;
  ControlBlock* ctl = nullptr;
  WorkerSlot* slots = nullptr;
  std::byte* rings = nullptr;
  std::size_t ring_stride = 0;

  WorkerSlot& slot(int w) const noexcept { return slots[w]; }
  // address_alive — a's worker incarnation is the live one.
  bool address_alive(const Address& a) const noexcept {
    const WorkerSlot& s = slot(a.worker);
    return s.gen.load(std::memory_order_acquire) == a.gen &&
           s.state.load(std::memory_order_acquire) == static_cast<std::uint32_t>(SlotState::Alive);
  }
  RingHeader* ring(int from, int to) const noexcept {
    return reinterpret_cast<RingHeader*>(rings + (static_cast<std::size_t>(from) * n + to) * ring_stride);
  }
};

// wake_if_sleeping — writes worker w's eventfd if it announced a sleep
// (clearing the flag, so that concurrent producers write it once); true if it
// did. The caller
// has published what w must see and then issued a seq_cst fence (Dekker: w
// raises the flag, fences, then re-checks its rings; see Worker).
bool wake_if_sleeping(const Cluster& c, int w) noexcept;
// wake — writes worker w's eventfd.
void wake(const Cluster& c, int w) noexcept;

// reset_ring — empties a ring; only while no live process uses it.
void reset_ring(RingHeader* h) noexcept;

// The process's cluster state: set in the supervisor before the workers are
// forked; in a worker also its Worker.
extern Cluster* g_cluster;
class Worker;
extern Worker* g_worker;
extern int g_worker_id;

}  // namespace corelet::ipc::detail
