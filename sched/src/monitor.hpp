#pragma once
// Internal: the profiler's monitor thread, one per process. It advances the
// accounting tick, finds stalled schedulers and passes dump requests on.
// Only sched/src includes this.

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace corelet::detail {

class Scheduler;

// The tick: advanced by the monitor every kTick while some scheduler is
// awake (every kIdleTick while all sleep). Schedulers read it on every
// switch, so it sits alone on its cache line. Relaxed everywhere: it is a
// clock for sampling, and nothing else is published through it.
struct alignas(64) Tick {
  std::atomic<std::uint32_t> value{1};
};
extern Tick g_tick;
inline constexpr std::chrono::milliseconds kTick{5};
inline constexpr std::chrono::milliseconds kIdleTick{20};
// After this long with every scheduler asleep the monitor stops ticking and
// sleeps until a scheduler wakes (monitor_note_awake): an idle process then
// costs no CPU at all.
inline constexpr std::chrono::milliseconds kDeepSleepAfter{1000};

// Set by the monitor while it sleeps without a timeout; see monitor_note_awake.
extern std::atomic<bool> g_monitor_deep;
void wake_deep_monitor() noexcept;

// monitor_note_awake — a scheduler that has just stored idle = false: wakes
// the monitor if it sleeps deeply. Dekker with the monitor, which stores
// g_monitor_deep = true, issues a seq_cst fence and then reads every idle
// flag: with the fence here between our idle store and this load, either the
// monitor sees us awake (and does not sleep) or we see its flag (and wake
// it). A fence per wakeup from the idle wait, which costs a system call anyway.
inline void monitor_note_awake() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (g_monitor_deep.load(std::memory_order_relaxed)) wake_deep_monitor();
}

// Beat — what one scheduler publishes to the monitor. The scheduler's thread
// writes tick (relaxed: a stale read delays one stall check) and idle: when
// it wakes it stores a fresh tick first, then idle = false with release, and
// the monitor loads idle with acquire before the tick, so an awake scheduler
// is never judged by the tick from before its sleep. The monitor raises
// stall_due/dump_due, which the scheduler's thread consumes (exchange / load,
// relaxed: each flag is the whole message; the report and the dump read only
// the scheduler's own state, on its own thread).
struct Beat {
  alignas(64) std::atomic<std::uint32_t> tick{0};  // g_tick at its last progress point
  std::atomic<bool> idle{false};                   // asleep in idle_wait
  alignas(64) std::atomic<bool> stall_due{false};  // a stall report is asked for (SIGURG follows)
  std::atomic<bool> dump_due{false};               // write a dump at the loop's next turn
  // Set at enroll, read by the monitor under its lock.
  Scheduler* sched = nullptr;
  pthread_t thread{};
  std::uint32_t threshold_ticks = 0;  // 0: no stall detection
  std::uint32_t reported = 0;         // the tick value of the last stall reported
  Beat* next = nullptr;
};

// enroll / withdraw — a scheduler starts / stops being watched (its thread,
// at the start and the end of run). enroll starts the monitor thread and
// installs the signal handlers the first time.
void enroll(Beat* b);
void withdraw(Beat* b) noexcept;

// The stall signal: the monitor sends it to a stalled scheduler's thread,
// whose handler writes the report (Scheduler::report_stall).
inline constexpr int kStallSignal = SIGURG;  // ignored by default; Go uses it to preempt

}  // namespace corelet::detail
