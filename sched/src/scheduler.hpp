#pragma once
// Internal: the per-thread Scheduler. Only sched/src includes this.

#include "monitor.hpp"
#include "trace.hpp"

#include <corelet/sched/detail/loop_hook.hpp>
#include <corelet/sched/primitive.hpp>
#include <corelet/core/fiber.hpp>
#include <corelet/core/stack.hpp>

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace corelet::detail {

struct BlockingJob;
class Reactor;

class Scheduler {
 public:
  // hook / wake_fd: see set_next_run_hook (loop_hook.hpp); -1 makes our own eventfd.
  explicit Scheduler(LoopHook* hook = nullptr, int wake_fd = -1);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs the loop until every tasklet has ended (see run_main in scheduler.cpp),
  // watched by the monitor when accounting is on (profile.cpp).
  void run_loop();

  void add(Tasklet* t);            // a new tasklet: registered and made ready
  void make_ready(Tasklet* t) noexcept;
  // hand_off — t runs next, ahead of the FIFO (a join's target that has not
  // started, or the joiner of a tasklet that just ended). See pick().
  void hand_off(Tasklet* t) noexcept;
  void suspend();                  // the current tasklet gives up the CPU
  Wake park(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind);
  bool park_stackless(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind);
  void unpark(Tasklet* t, Wake why, bool handoff = false) noexcept;
  void cancel(Tasklet* t) noexcept;
  void cancel_all() noexcept;
  void detached_one() noexcept { --live_attached_; }

  // run_blocking: called on helper threads when a job finished.
  void post_completion(BlockingJob* job) noexcept;
  void job_submitted() noexcept { ++blocking_outstanding_; }

  // The I/O reactor, set up at the first I/O call of the run (reactor.hpp).
  Reactor& reactor() {
    if (!reactor_) make_reactor_now();
    return *reactor_;
  }
  bool has_reactor() const noexcept { return reactor_ != nullptr; }
  const std::string& io_fallback_reason() const noexcept { return io_fallback_reason_; }

  Tasklet* current() const noexcept { return current_; }
  // What primitive::current() reports: none while a PlainCode scope lives.
  Tasklet* visible_current() const noexcept { return plain_ ? nullptr : current_; }
  int plain_ = 0;  // PlainCode scopes open on this thread (primitive.hpp)

  // Parks that suspended so far (I/O's fairness budget: an I/O call that
  // returned without one did not let anybody else run).
  std::uint64_t parks() const noexcept { return parks_; }
  // The current tasklet goes to the back of the ready queue, and the loop
  // runs (reactor poll, timers) before it is resumed. No cancellation check.
  void yield_to_loop();
  const std::string& deadlock_report() const noexcept { return deadlock_report_; }

  // Profiling (profile.hpp; profile.cpp). The monitor is enrolled for the
  // duration of loop().
  Stats stats(bool tasklets);
  std::string dump();
  // wake_from_outside — any thread: the loop leaves its sleep soon.
  void wake_from_outside() noexcept;
  // report_stall_here — in the stall signal's handler: writes the report
  // for this thread's scheduler if the monitor asked for one. False if not
  // (the signal is somebody else's). Async-signal-safe.
  static bool report_stall_here() noexcept;
  // The text of "waits on ..." for a parked tasklet.
  static std::string describe_wait(const Tasklet* t);
  // With CORELET_TRACE: a message between workers (trace.hpp).
  void trace_message(bool out, std::uint64_t id, const char* name) noexcept {
    if (tracer_) tracer_->flow(out, id, name, Tracer::now_ns());
  }

 private:
  // The FIFO ready queue: doubly linked so that join() can pull a tasklet that
  // has not started out of it (see hand_off).
  struct ReadyQueue {
    Tasklet* head = nullptr;
    Tasklet* tail = nullptr;
    bool empty() const noexcept { return head == nullptr; }
    void push(Tasklet* t) noexcept {
      t->next_ready = nullptr;
      t->prev_ready = tail;
      t->in_fifo = true;
      if (tail) tail->next_ready = t; else head = t;
      tail = t;
    }
    void remove(Tasklet* t) noexcept {
      if (t->prev_ready) t->prev_ready->next_ready = t->next_ready; else head = t->next_ready;
      if (t->next_ready) t->next_ready->prev_ready = t->prev_ready; else tail = t->prev_ready;
      t->next_ready = t->prev_ready = nullptr;
      t->in_fifo = false;
    }
    Tasklet* pop() noexcept {
      Tasklet* t = head;
      if (t) remove(t);
      return t;
    }
  };

  void loop();
  Tasklet* pick() noexcept;         // the next tasklet to run, with its fiber made
  Tasklet* pick_queued() noexcept;  // the ordering policy alone
  bool next_is_stackless() const noexcept;  // pick_queued() would give a stackless one
  void run_stackless(Tasklet* t) noexcept;  // one step(), on the loop's stack
  void arm_timer(Tasklet* t, Clock::time_point deadline);
  bool begin_park(Tasklet* t, const char* what, const void* obj, Clock::time_point deadline, WaitKind kind);
  bool start_fiber(Tasklet* t) noexcept;

  // Switching (the fiber itself, its stack and the sanitizer annotations are
  // core::Fiber's). `save` receives the continuation of the context we leave.
  void create_fiber(Tasklet* next);
  core::Fiber* prepare(Tasklet* next);
  void switch_to(Tasklet* next, core::Fiber* save);
  void after_switch(core::Continuation&& from) noexcept;
  core::Fiber& entry(Tasklet* t, core::Continuation&& caller);
  // finish — t ended; account: add its figures to the totals now (entry()
  // does it itself, after finish's own time is charged).
  void finish(Tasklet* t, bool account = true) noexcept;

  // Timers: a binary min-heap on Tasklet::deadline with back-indices.
  void timer_push(Tasklet* t);
  void timer_remove(Tasklet* t) noexcept;
  void timer_sift_up(std::size_t i) noexcept;
  void timer_sift_down(std::size_t i) noexcept;
  void fire_timers(Clock::time_point now) noexcept;

  void drain_completions() noexcept;

  // Accounting (see "Accounting" in scheduler.cpp).
  void on_switch(Tasklet* next) noexcept;
  bool sample_tick() noexcept;
  void tick_passed(std::uint32_t tick) noexcept;
  // refresh_beat — tells the monitor this scheduler is making progress.
  void refresh_beat() noexcept {
    beat_.tick.store(g_tick.value.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  void charge(std::uint64_t now) noexcept;
  void exclude(std::uint64_t from, std::uint64_t to) noexcept;
  void ended(Tasklet* t) noexcept;
  std::uint64_t ready_of(const Tasklet* t, std::uint64_t now) const noexcept;
  void write_dump_now() noexcept;
  void report_stall() noexcept;
  void idle_wait();
  void make_reactor_now();
  std::string describe_blocked() const;

  Tasklet* current_ = nullptr;
  // Accounting state, read and written on every switch: next to current_.
  bool accounting_ = false;
  std::uint32_t seen_tick_ = 0;     // g_tick at the last switch that read it
  std::uint64_t switches_ = 0;      // context switches (to tasklets and to the loop)
  std::uint64_t mark_ = 0;          // cycles() up to which time is charged
  std::uint64_t mark_switches_ = 0; // switches_ when mark_ was taken
  std::unique_ptr<Tracer> tracer_;  // CORELET_TRACE; checked on every switch, so here
  ReadyQueue ready_;
  Tasklet* handoff_ = nullptr;      // LIFO stack of hand-offs (next_ready links)
  int handoff_streak_ = 0;          // hand-offs run since the FIFO was last served
  int batch_ = 0;
  std::uint64_t parks_ = 0;
  core::Fiber main_;                // the loop's own context (the thread's)
  core::Fiber* save_slot_ = nullptr;
  Tasklet* zombie_ = nullptr;
  Tasklet* all_ = nullptr;          // live tasklets (not yet done)
  std::size_t live_ = 0;            // tasklets not yet done
  std::size_t live_attached_ = 0;   // of those, not detached
  std::size_t stackless_live_ = 0;  // of those, stackless (see next_is_stackless)
  std::vector<Tasklet*> timers_;
  core::StackPool stacks_;

  bool shutting_down_ = false;
  int fruitless_cancel_rounds_ = 0;
  std::size_t live_at_last_cancel_ = 0;
  std::string deadlock_report_;

  // run_blocking completions, posted by helper threads.
  moodycamel::ConcurrentQueue<BlockingJob*> completions_;
  std::size_t blocking_outstanding_ = 0;
  std::atomic<bool> sleeping_{false};
  std::atomic<int> posting_{0};     // helpers inside post_completion
  int wake_fd_ = -1;
  bool own_wake_fd_ = true;
  LoopHook* hook_ = nullptr;        // ipc's cluster worker, if any

  // Accounting totals (cycles): the loop's own work, sleep, and the tasklets
  // that ended.
  std::uint64_t started_at_ = 0;
  std::uint64_t loop_cycles_ = 0;
  std::uint64_t idle_cycles_ = 0;
  std::uint64_t wakeups_ = 0;
  std::uint64_t spawned_ = 0;
  std::uint64_t finished_ = 0;
  std::uint64_t stalls_ = 0;
  std::uint64_t last_stall_ns_ = 0;  // CLOCK_MONOTONIC of the last stall report
  std::uint64_t done_run_ = 0;
  std::uint64_t done_resumes_ = 0;
  std::uint64_t done_wait_[kWaitKinds] = {};
  std::uint64_t done_ready_ = 0;
  Beat beat_;
  TaskletDescriber* describer_ = nullptr;

  std::unique_ptr<Reactor> reactor_;  // after wake_fd_: destroyed first
  std::string io_fallback_reason_;
};

// The scheduler running on this thread, or nullptr; run_main sets it.
Scheduler* this_scheduler() noexcept;
void set_this_scheduler(Scheduler* s) noexcept;

// What Task::join's park is called (by pointer: describe_wait names the target).
inline constexpr char kJoinWhat[] = "Task::join";

// Prints a tasklet's exception that nobody can observe any more (tasklet_block.cpp).
void report_lost_exception(Tasklet* t, const char* why) noexcept;
// The same, set while the monitor watches it; read by the stall signal's
// handler (see scheduler.cpp).
extern thread_local Scheduler* tl_signal_sched __attribute__((tls_model("initial-exec")));

}  // namespace corelet::detail
