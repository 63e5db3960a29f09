#pragma once
// corelet/sched/profile.hpp — what the scheduler measures about itself:
// per-tasklet and per-worker accounting (stats), the tasklet dump, the stall
// detector and the trace file.
//
// Accounting is always on and cheap: a tasklet's waits are timed at park and
// wake-up (time-stamp counter reads), and its run time is sampled: a monitor
// thread advances a tick every 5 ms, and the first switch after a tick reads
// the counter and charges the time since the last reading to the tasklet that
// was running, so a tasklet's run time is exact for long runs and an unbiased
// estimate for runs shorter than a tick. Time in the ready queue is a
// tasklet's life less its run time and waits. Worker busy, polling and idle
// time are exact to within a tick. Environment variables (the first three read
// once, when the first scheduler of the process starts; CORELET_TRACE at every
// start):
//   CORELET_ACCOUNTING=0     no accounting and no stall detection
//   CORELET_STALL_MS=N       the stall threshold in ms (default 20; 0: off)
//   CORELET_DUMP_SIGNAL=SIG  QUIT (default), USR1, USR2, or 0 for none
//   CORELET_TRACE=out.json   each run writes a Chrome trace-event file that
//                            Perfetto opens: a track per scheduler (worker)
//                            with a slice per tasklet run and per sleep, an
//                            async slice per wait, and a flow per message
//                            between workers. For looking, not production:
//                            it reads the clock on every switch.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace corelet {

// WaitKind — why a parked tasklet waits. Sync covers channels, locks,
// conditions, events, queues and joins; Io covers sockets, files and
// run_blocking; Remote covers cluster calls, mailboxes and ring space.
enum class WaitKind : std::uint8_t { Io, Timer, Sync, Remote };
inline constexpr int kWaitKinds = 4;
const char* to_string(WaitKind k) noexcept;

// TaskletStats — one live tasklet, as stats() and dump() see it. Times in ns.
struct TaskletStats {
  std::uint64_t id = 0;
  std::string name;
  std::string state;        // "new", "ready", "running" or "parked"
  std::string waits_on;     // what a parked tasklet waits on; empty otherwise
  std::string spawned_at;   // "file:line" where known; empty otherwise
  std::uint64_t parent = 0; // the id of the tasklet that spawned it (0: none)
  std::uint64_t run_ns = 0;
  std::uint64_t resumes = 0;                  // times it was switched to
  std::uint64_t wait_ns[kWaitKinds] = {};     // parked, by WaitKind
  // In the ready queue (woken, yielded, or not started yet): what is left of
  // its life once run time and waits are taken away.
  std::uint64_t ready_ns = 0;
  std::uint64_t stalls = 0;                   // stall reports about it
  std::string stack;        // Python tasklets: their stack, innermost last
};

// WorkerStats — one scheduler (one worker of a cluster). Times in ns.
struct WorkerStats {
  int worker = -1;                 // the cluster worker id; -1 outside a cluster
  int pid = 0;
  std::uint64_t uptime_ns = 0;     // since the scheduler started
  std::uint64_t busy_ns = 0;       // running tasklets
  std::uint64_t poll_ns = 0;       // the loop's own work: I/O and ring polling, timers
  std::uint64_t idle_ns = 0;       // asleep, waiting for work
  std::uint64_t wakeups = 0;       // sleeps that ended
  std::uint64_t resumes = 0;       // tasklet switches
  std::uint64_t parks = 0;
  std::uint64_t spawned = 0;       // tasklets started
  std::uint64_t finished = 0;      // tasklets ended
  std::uint64_t live = 0;          // tasklets alive now
  std::uint64_t stalls = 0;        // stall reports
  std::uint64_t last_stall_ns = 0; // steady_clock time of the last one (ns since its epoch)
  // Every tasklet's waits and run time, the ended ones included.
  std::uint64_t wait_ns[kWaitKinds] = {};
  std::uint64_t ready_ns = 0;
  // Cluster workers only: bytes waiting in this worker's inbound rings and
  // in its outbound rings not yet read by their consumer, messages sent and
  // received, and wake-ups sent to sleeping peers.
  std::uint64_t ring_in_bytes = 0;
  std::uint64_t ring_out_bytes = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t wakes_sent = 0;
  bool accounting = true;          // false: the times above stay zero
};

struct Stats {
  WorkerStats worker;
  std::vector<TaskletStats> tasklets;  // oldest first
};

// stats — the calling thread's scheduler: its worker figures and, if
// `tasklets`, every live tasklet. Call it in a tasklet. Does not park.
// Throws UsageError outside corelet::run.
Stats stats(bool tasklets = true);

// dump — a human-readable listing of the calling thread's scheduler: one line
// per live tasklet with id, name, state, what it waits on, where it was
// spawned and its accounting, and Python tasklets' stacks. Does not park.
// Throws UsageError outside corelet::run. A dump is also written to stderr
// when the process gets CORELET_DUMP_SIGNAL (SIGQUIT by default; the
// supervisor of a cluster passes it on to every worker): each scheduler writes
// it at its loop's next turn, so a deadlocked program dumps at once, and a
// tasklet that never yields is reported by the stall detector instead.
std::string dump();

// set_stall_threshold — tasklets that run longer than `t` without a switch
// are reported on stderr (name, id, where it was spawned, and a native
// backtrace or the Python stack), at most once per run and ten times a
// second per process. Zero turns the detector off. Process-wide; a
// scheduler reads it when it starts. Default 20 ms (CORELET_STALL_MS).
// The report is made on the stalled thread by a SIGURG handler, so a
// blocking system call in that tasklet may see EINTR once.
void set_stall_threshold(std::chrono::milliseconds t);
std::chrono::milliseconds stall_threshold() noexcept;

// set_accounting — turns accounting (and with it stall detection) on or off
// for schedulers started afterwards on any thread. On by default
// (CORELET_ACCOUNTING=0 turns it off). For measuring its cost.
void set_accounting(bool on);
bool accounting() noexcept;

}  // namespace corelet
