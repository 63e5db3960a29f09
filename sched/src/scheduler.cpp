#include "scheduler.hpp"
#include "reactor.hpp"
#include <corelet/sched/detail/blocking.hpp>

#include <corelet/core/cycles.hpp>
#include <corelet/core/overflow.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <sstream>
#include <system_error>
#include <thread>
#include <typeinfo>

namespace corelet::detail {
namespace {

// How many tasklet-to-tasklet switches run before the loop looks at timers and
// completions again: bounds timer lateness under load, keeps the check off most
// switches (a clock read costs ~40 ns here).
constexpr int kBatch = 64;

// At most this many hand-offs run in a row before the FIFO's head gets a turn,
// so a spawn/join loop cannot starve the other ready tasklets.
constexpr int kHandoffStreak = 64;

}  // namespace

// This thread's scheduler. Internal linkage in effect (nothing outside this
// file declares it), so that the calls below read it with a plain load.
static thread_local Scheduler* tl_sched = nullptr;

// The scheduler of this thread, for the stall signal's handler alone: the
// initial-exec model makes reading it a plain load from the thread pointer,
// where the default model in a dlopen'd module (the Python extension) may
// call __tls_get_addr, which can allocate — not async-signal-safe.
thread_local Scheduler* tl_signal_sched __attribute__((tls_model("initial-exec"))) = nullptr;

Scheduler* this_scheduler() noexcept { return tl_sched; }
void set_this_scheduler(Scheduler* s) noexcept { tl_sched = s; }

namespace {

// Ids are unique in the process: each thread takes them from the global
// counter in blocks, so a spawn does not pay an atomic read-modify-write.
// Relaxed: only uniqueness matters.
std::atomic<std::uint64_t> g_next_id_block{1};
thread_local std::uint64_t tl_next_id = 0;
thread_local std::uint64_t tl_id_limit = 0;

std::uint64_t next_id() noexcept {
  constexpr std::uint64_t kIdBlock = 1024;
  if (tl_next_id == tl_id_limit) {
    tl_next_id = g_next_id_block.fetch_add(kIdBlock, std::memory_order_relaxed);
    tl_id_limit = tl_next_id + kIdBlock;
  }
  return tl_next_id++;
}
}  // namespace

Scheduler::Scheduler(LoopHook* hook, int wake_fd) : hook_(hook) {
  if (wake_fd >= 0) {
    wake_fd_ = wake_fd;
    own_wake_fd_ = false;
  } else {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "corelet: eventfd");
  }
  main_.bind_thread();  // the loop runs on this thread's own context
}

Scheduler::~Scheduler() {
  // A helper may still be inside post_completion (between the enqueue we
  // drained and its eventfd write): wait the few instructions it needs.
  while (posting_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  reactor_.reset();  // it watches wake_fd_
  if (wake_fd_ >= 0 && own_wake_fd_) ::close(wake_fd_);
}

// ---------------------------------------------------------------------------
// Switching.
//
// Tasklets switch directly to one another; the loop's own context (main_)
// runs only between batches and when nothing is ready. Every switch passes the
// continuation of the context it leaves through save_slot_: the context that
// resumes stores it there (after_switch), so each suspended context is owned by
// exactly one Tasklet::fiber or by main_. The jump itself, the stack and the
// sanitizer annotations are core::Fiber's (core/fiber.hpp).

// The switch path is kept free of calls: after a switch every `ret` of the
// resumed context mispredicts (the return-stack buffer holds the other
// context's frames), so each function between the user's blocking call and
// jump_fcontext costs a mispredicted return. Hence always_inline here.
#define CORELET_HOT inline __attribute__((always_inline))

void Scheduler::create_fiber(Tasklet* next) {
  // The stack is taken only now, at the first run: a spawned tasklet that has
  // not run yet costs its control block and nothing more.
  next->started = true;
  core::Stack st = stacks_.allocate(next->stack_size);
  next->running.stack = st;
  next->fiber.create(stacks_, st, [this, next](core::Continuation&& caller) -> core::Fiber& {
    return entry(next, std::move(caller));
  });
}

// ---------------------------------------------------------------------------
// Accounting (profile.hpp).
//
// Time is charged in cycles() from mark_ on. A reading of the counter where
// no switch happened since mark_ was taken charges [mark_, now) exactly, to
// the tasklet that runs (to the loop when current_ is nullptr). Switches do
// not read the counter (that would cost a fifth of a yield round trip),
// except the first switch after the monitor's tick moved: it charges all the
// time since mark_ to the context it leaves, which is the one that was
// running when the tick moved. Tasklets that switch more often than the tick
// thus get their run time sampled (unbiased, at the tick's resolution);
// between a reading and the next switch it is exact. Parks and wake-ups read
// the counter, so waits are exact. A stackless tasklet's step counts as a
// switch in and a switch out, with the same rule.

// sample_tick — true if the tick moved since the last switch that looked;
// the time since the last reading is then charged to the context current_.
CORELET_HOT bool Scheduler::sample_tick() noexcept {
  const std::uint32_t tick = g_tick.value.load(std::memory_order_relaxed);
  if (__builtin_expect(tick == seen_tick_, 1)) return false;
  tick_passed(tick);
  return true;
}

// on_switch — every switch: counted, and the first one after the tick moved
// samples (tick_passed). A tasklet's time in the ready queue (woken or
// yielded, and before its first run) is not timed here: it is the rest of its
// life once its run time and waits are taken away (ready_of).
CORELET_HOT void Scheduler::on_switch(Tasklet* next) noexcept {
  if (!accounting_) return;
  ++switches_;
  if (next) ++next->resumes;
  sample_tick();
  if (__builtin_expect(tracer_ != nullptr, 0)) {
    const std::uint64_t ts = Tracer::now_ns();
    if (next) tracer_->run_begin(next, ts); else tracer_->run_end(ts);
  }
}

void Scheduler::tick_passed(std::uint32_t tick) noexcept {
  seen_tick_ = tick;
  beat_.tick.store(tick, std::memory_order_relaxed);
  const std::uint64_t now = core::cycles();
  (current_ ? current_->run_cycles : loop_cycles_) += now - mark_;
  mark_ = now;
  mark_switches_ = switches_;
}

// charge — a reading outside a switch: exact if no switch came since the
// mark; otherwise the time stays with the mark for the next tick to sample.
void Scheduler::charge(std::uint64_t now) noexcept {
  if (switches_ != mark_switches_) return;
  (current_ ? current_->run_cycles : loop_cycles_) += now - mark_;
  mark_ = now;
}

// exclude — [from, to) was charged elsewhere (sleep): keep it out of what
// the mark still holds.
void Scheduler::exclude(std::uint64_t from, std::uint64_t to) noexcept {
  if (switches_ == mark_switches_) mark_ = to; else mark_ += to - from;
}

// ready_of — t's time in the ready queue up to now: its life so far less its
// run time and its waits (the one in progress included). The run time is
// sampled, so this is too; never negative.
std::uint64_t Scheduler::ready_of(const Tasklet* t, std::uint64_t now) const noexcept {
  const std::uint64_t born = std::max(t->born_at, started_at_);
  std::uint64_t used = t->run_cycles + (t->parked_at ? now - t->parked_at : 0);
  for (int k = 0; k < kWaitKinds; ++k) used += t->wait_cycles[k];
  const std::uint64_t life = now > born ? now - born : 0;
  return life > used ? life - used : 0;
}

// ended — t's figures join the totals of the tasklets that ended.
void Scheduler::ended(Tasklet* t) noexcept {
  ++finished_;
  done_run_ += t->run_cycles;
  done_resumes_ += t->resumes;
  for (int k = 0; k < kWaitKinds; ++k) done_wait_[k] += t->wait_cycles[k];
  done_ready_ += ready_of(t, mark_);  // to a tick: no reading per tasklet
}

// prepare — makes `next` (a tasklet, or nullptr for the loop) the current
// context and returns the continuation to resume.
CORELET_HOT core::Fiber* Scheduler::prepare(Tasklet* next) {
  on_switch(next);
  current_ = next;
  if (!next) {
    core::tl_running_stack = nullptr;
    return &main_;
  }
  next->state = State::Running;
  core::tl_running_stack = &next->running;
  return &next->fiber;  // pick() gave it a stack and a context already
}

CORELET_HOT void Scheduler::after_switch(core::Continuation&& from) noexcept {
  if (save_slot_) {
    save_slot_->keep(std::move(from));
    save_slot_ = nullptr;
  }
  if (__builtin_expect(zombie_ != nullptr, 0)) {
    Tasklet* z = zombie_;
    zombie_ = nullptr;
    detail::release(z);
  }
}

CORELET_HOT void Scheduler::switch_to(Tasklet* next, core::Fiber* save) {
  core::Fiber* target = prepare(next);
  save_slot_ = save;
  after_switch(target->resume());
}

CORELET_HOT void Scheduler::make_ready(Tasklet* t) noexcept {
  t->state = State::Ready;
  ready_.push(t);
}

// Ordering policy. The FIFO serves spawns, wake-ups and yields in arrival
// order, as Stackless does. Two events jump it, through the hand-off stack:
// a join() on a tasklet that has not started runs that tasklet next, and a
// tasklet that ends hands the CPU to its joiner. A tree of tasklets that spawn
// and join their children thus runs depth first, so only about its depth of
// them hold a stack at once instead of every interior node (skynet: ~1,500
// live stacks instead of ~111,000). kHandoffStreak bounds the unfairness.
void Scheduler::hand_off(Tasklet* t) noexcept {
  if (t->in_fifo) ready_.remove(t);
  t->state = State::Ready;
  t->next_ready = handoff_;
  handoff_ = t;
}

CORELET_HOT Tasklet* Scheduler::pick_queued() noexcept {
  if (handoff_ && (handoff_streak_ < kHandoffStreak || ready_.empty())) {
    Tasklet* t = handoff_;
    handoff_ = t->next_ready;
    t->next_ready = nullptr;
    // The streak counts only hand-offs that made a FIFO tasklet wait.
    handoff_streak_ = ready_.empty() ? 0 : handoff_streak_ + 1;
    return t;
  }
  handoff_streak_ = 0;
  return ready_.pop();
}

CORELET_HOT Tasklet* Scheduler::pick() noexcept {
  for (;;) {
    Tasklet* t = pick_queued();
    // A tasklet gets its stack before the switch to it, here, so that a
    // failure to map one ends that tasklet (with the error, for its joiner)
    // instead of surfacing in the blocking call of whoever switched away.
    if (!t || __builtin_expect(t->started, 1) || t->stackless || start_fiber(t)) return t;
  }
}

// A stackless tasklet runs only on the loop's stack: a tasklet that suspends
// while one is next switches to the loop instead of to it.
CORELET_HOT bool Scheduler::next_is_stackless() const noexcept {
  if (stackless_live_ == 0) return false;  // a C++-only program pays one load per switch
  const Tasklet* t = handoff_ && (handoff_streak_ < kHandoffStreak || ready_.empty()) ? handoff_ : ready_.head;
  return t && t->stackless;
}

void Scheduler::run_stackless(Tasklet* t) noexcept {
  on_switch(t);  // a step is a switch in (and its end one out) for accounting and the trace
  current_ = t;
  t->state = State::Running;
  core::tl_running_stack = nullptr;
  bool done = true;
  if (!t->started && t->cancel_pending) {
    // Cancelled before it ever ran: the body does not run at all.
    t->cancel_pending = false;
    t->error = std::make_exception_ptr(Cancelled{});
  } else {
    t->started = true;
    t->wait_what = nullptr;
    t->wait_obj = nullptr;
    if (t->wake == Wake::Cancelled) t->cancel_pending = false;  // as park() does
    try {
      done = t->step();
    } catch (...) {
      t->error = std::current_exception();
    }
  }
  on_switch(nullptr);
  current_ = nullptr;
  if (done) {
    finish(t);
    detail::release(t);  // the scheduler's reference
  } else if (t->state == State::Running) {
    t->wake = Wake::Notified;  // the last park's reason is spent
    make_ready(t);             // the step yielded
  }
}

bool Scheduler::start_fiber(Tasklet* t) noexcept {
  try {
    create_fiber(t);
    return true;
  } catch (...) {
    t->error = std::current_exception();
    finish(t);
    detail::release(t);  // the scheduler's reference; it never ran
    return false;
  }
}


// entry — a fiber tasklet's body, on its own stack (core::Fiber::create's
// contract): returns the fiber to switch to when it ends.
core::Fiber& Scheduler::entry(Tasklet* t, core::Continuation&& caller) {
  after_switch(std::move(caller));
  if (t->cancel_pending) {
    // Cancelled before it ever ran: the body does not run at all.
    t->cancel_pending = false;
    t->error = std::make_exception_ptr(Cancelled{});
  } else {
    try {
      t->invoke();
    } catch (const core::FiberUnwind&) {
      throw;  // the fiber is being destroyed (core::Fiber's contract)
    } catch (...) {
      t->error = std::current_exception();
    }
  }
  finish(t, false);
  if (accounting_) {  // its last slice and its finish (local destructors), then its figures join the totals
    if (!sample_tick()) charge(core::cycles());
    ended(t);
  }
  zombie_ = t;  // the next context drops the scheduler's reference
  Tasklet* next = batch_ < kBatch && !next_is_stackless() ? pick() : nullptr;
  if (next) ++batch_;
  core::Fiber* target = prepare(next);
  save_slot_ = nullptr;  // this context ends; nothing to keep
  return *target;
}

void Scheduler::finish(Tasklet* t, bool account) noexcept {
  t->state = State::Done;
  if (accounting_ && account) ended(t);
  --live_;
  if (t->stackless) --stackless_live_;
  if (!t->detached) --live_attached_;
  if (t->all_prev) t->all_prev->all_next = t->all_next; else all_ = t->all_next;
  if (t->all_next) t->all_next->all_prev = t->all_prev;
  t->all_prev = t->all_next = nullptr;
  t->destroy_locals();  // tasklet-local values end with the tasklet
  if (t->error) {
    if (t->is_main)
      cancel_all();  // main failed: everything else is cancelled, then run rethrows
    else if ((t->detached || t->refs == 1) && !t->error_reported)
      report_lost_exception(t, "");  // no handle left to join it
  }
  while (Waiter* w = t->joiners.pop_front()) {  // the joiner goes on at once
    w->state = Waiter::State::Done;
    unpark(w->tasklet, Wake::Notified, true);
  }
}

CORELET_HOT void Scheduler::suspend() {
  Tasklet* self = current_;
  Tasklet* next = batch_ < kBatch && !next_is_stackless() ? pick() : nullptr;
  if (next == self) {  // yield with nobody else ready
    ++batch_;
    if (accounting_) sample_tick();  // a yield all the same: progress for the stall detector
    self->state = State::Running;
    return;
  }
  if (next) ++batch_;
  switch_to(next, &self->fiber);
}

// ---------------------------------------------------------------------------
// Tasklets.

void Scheduler::add(Tasklet* t) {
  t->owner = this;
  ++spawned_;
  if (current_) t->parent_id = current_->running.id;
  if (accounting_) t->born_at = core::cycles();
  if (t->stackless) ++stackless_live_;
  t->running.id = next_id();
  t->running.name = t->name.c_str();
  t->all_next = all_;
  if (all_) all_->all_prev = t;
  all_ = t;
  ++live_;
  ++live_attached_;
  ++t->refs;  // the scheduler's reference, dropped when the tasklet is done
  make_ready(t);
}

// Removes every waiter of t's park from its wait queue.
CORELET_HOT static void unlink_waiters(Tasklet* t) noexcept {
  for (Waiter* w = t->waiters; w; w = w->sibling)
    if (w->queue) w->queue->remove(w);
  t->waiters = nullptr;
}

void Scheduler::arm_timer(Tasklet* t, Clock::time_point deadline) {
  t->deadline = deadline;
  try {
    timer_push(t);  // may throw std::bad_alloc: leave nothing linked then
  } catch (...) {
    unlink_waiters(t);
    throw;
  }
}

// begin_park — what both kinds of park do before the tasklet stops running:
// a pending cancellation ends it at once (false: its waiters unlinked,
// nothing armed); otherwise the deadline is armed and the tasklet is Parked.
CORELET_HOT bool Scheduler::begin_park(Tasklet* t, const char* what, const void* obj, Clock::time_point deadline,
                                       WaitKind kind) {
  if (t->cancel_pending) {
    t->cancel_pending = false;
    unlink_waiters(t);
    return false;
  }
  if (deadline != Clock::time_point::max()) arm_timer(t, deadline);
  t->state = State::Parked;
  t->wait_what = what;
  t->wait_obj = obj;
  t->wake = Wake::Notified;
  ++parks_;
  if (accounting_) {
    const std::uint64_t now = core::cycles();
    charge(now);
    t->parked_at = now;
    t->wait_kind = kind;
    if (tracer_) tracer_->wait_begin(t, to_string(kind), what, Tracer::now_ns());
  }
  return true;
}

CORELET_HOT Wake Scheduler::park(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  Tasklet* t = current_;
  if (__builtin_expect(t->stackless, 0)) {
    unlink_waiters(t);
    throw UsageError(std::string("corelet: ") + what +
                     ": a blocking call in a stackless tasklet (it has no stack to park)");
  }
  if (!begin_park(t, what, obj, deadline, kind)) return Wake::Cancelled;
  suspend();
  t->wait_what = nullptr;
  t->wait_obj = nullptr;
  if (t->wake == Wake::Cancelled) t->cancel_pending = false;
  return t->wake;
}

bool Scheduler::park_stackless(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  Tasklet* t = current_;
  if (begin_park(t, what, obj, deadline, kind)) return true;  // run_stackless sees Parked and leaves it so
  t->wake = Wake::Cancelled;
  return false;
}

void Scheduler::yield_to_loop() {
  if (current_->stackless) throw UsageError("corelet: a blocking call in a stackless tasklet");
  make_ready(current_);
  batch_ = kBatch;  // suspend() then switches to the loop, not to the next tasklet
  suspend();
}

void Scheduler::unpark(Tasklet* t, Wake why, bool handoff) noexcept {
  if (t->state != State::Parked) return;
  unlink_waiters(t);
  if (t->heap_index != Tasklet::npos) timer_remove(t);
  t->wake = why;
  if (accounting_ && t->parked_at) {
    const std::uint64_t now = core::cycles();
    t->wait_cycles[static_cast<int>(t->wait_kind)] += now - t->parked_at;
    t->parked_at = 0;
    if (tracer_) tracer_->wait_end(t, Tracer::now_ns());
  }
  if (handoff) hand_off(t); else make_ready(t);
}

void Scheduler::cancel(Tasklet* t) noexcept {
  if (t->state == State::Done) return;
  t->cancel_pending = true;
  unpark(t, Wake::Cancelled);
}

void Scheduler::cancel_all() noexcept {
  for (Tasklet* t = all_; t; t = t->all_next) cancel(t);
}

// ---------------------------------------------------------------------------
// The loop.

void Scheduler::loop() {
  for (;;) {
    if (accounting_) {
      refresh_beat();
      if (__builtin_expect(beat_.dump_due.load(std::memory_order_relaxed), 0)) write_dump_now();
    }
    if (reactor_) reactor_->poll();  // submit this batch's I/O, take completions
    if (hook_) hook_->poll();        // ipc: inbound messages, outbound publication
    if (!timers_.empty()) fire_timers(Clock::now());
    if (blocking_outstanding_) drain_completions();
    if (Tasklet* t = pick()) {
      batch_ = 1;
      while (t->stackless) {  // stackless tasklets run here, between switches
        run_stackless(t);
        t = batch_ < kBatch ? pick() : nullptr;
        if (!t) break;
        ++batch_;
      }
      if (t) switch_to(t, &main_);
      continue;
    }
    if (live_ == 0) return;
    if (live_attached_ == 0 && !shutting_down_) {
      // Main and every non-detached tasklet ended: the detached ones still
      // alive are cancelled once, then waited for like any other tasklet.
      shutting_down_ = true;
      cancel_all();
      continue;
    }
    if (!timers_.empty() || blocking_outstanding_ || (reactor_ && reactor_->in_flight()) ||
        (hook_ && hook_->keeps_alive())) {
      idle_wait();
      continue;
    }
    // Nothing is ready, no timer and no blocking call can wake anyone: every
    // live tasklet is blocked forever. With non-detached ones among them it is
    // a deadlock: report it. Either way cancel everything so stacks unwind.
    if (live_attached_ > 0 && deadlock_report_.empty()) deadlock_report_ = describe_blocked();
    // Tasklets that catch Cancelled and block again get it again; after a few
    // rounds in which none of them ends, they are abandoned (leaked, not run).
    if (live_ == live_at_last_cancel_) {
      if (++fruitless_cancel_rounds_ > 3) {
        std::fprintf(stderr, "corelet: %zu tasklets ignored cancellation and are abandoned\n", live_);
        // They stay parked for good: take their waiters out of the wait
        // queues, which may outlive this run (a Python primitive), so that
        // nobody wakes a tasklet of a scheduler that is gone.
        for (Tasklet* t = all_; t; t = t->all_next) {
          unlink_waiters(t);
          if (t->heap_index != Tasklet::npos) timer_remove(t);
        }
        return;
      }
    } else {
      fruitless_cancel_rounds_ = 0;
    }
    live_at_last_cancel_ = live_;
    cancel_all();
  }
}

// ---------------------------------------------------------------------------
// The extension API (primitive.hpp) and the calls of Task and spawn. Here, in
// the switch path's file, they reach tl_sched with a plain thread-local load.

}  // namespace corelet::detail

namespace corelet::primitive {

using detail::Scheduler;
using detail::tl_sched;

Tasklet* current() noexcept { return tl_sched ? tl_sched->visible_current() : nullptr; }

PlainCode::PlainCode() noexcept : sched_(tl_sched) {
  if (sched_) ++sched_->plain_;
}
PlainCode::~PlainCode() {
  if (sched_) --sched_->plain_;
}

Tasklet* require_tasklet(const char* call) {
  Tasklet* t = current();
  if (!t) throw UsageError(std::string("corelet: ") + call + " called outside a tasklet");
  return t;
}

bool on_this_scheduler(const Tasklet* t) noexcept { return tl_sched && t->owner == tl_sched; }

Wake park(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  return tl_sched->park(what, obj, deadline, kind);
}

bool park_stackless(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  Tasklet* t = current();
  if (!t || !t->stackless) throw UsageError(std::string("corelet: ") + what + ": park_stackless outside a stackless tasklet");
  return tl_sched->park_stackless(what, obj, deadline, kind);
}

void unpark(Tasklet* t, Wake why) noexcept { tl_sched->unpark(t, why); }

void complete(Waiter* w, Waiter::State st) noexcept {
  if (w->queue) w->queue->remove(w);
  w->state = st;
  tl_sched->unpark(w->tasklet, Wake::Notified);
}

bool wake_one(WaitQueue& q) noexcept {
  Waiter* w = q.pop_front();
  if (!w) return false;
  w->state = Waiter::State::Done;
  tl_sched->unpark(w->tasklet, Wake::Notified);
  return true;
}

void wake_all(WaitQueue& q, Waiter::State st) noexcept {
  while (Waiter* w = q.pop_front()) {
    w->state = st;
    tl_sched->unpark(w->tasklet, Wake::Notified);
  }
}

Waiter::State wait_state(WaitQueue& q, const char* what, const void* obj, Clock::time_point deadline,
                         WaitKind kind) {
  Waiter w;
  enlist(w, require_tasklet(what), q);
  switch (tl_sched->park(what, obj, deadline, kind)) {
    case Wake::Notified:
      // A primitive may keep woken waiters on a list of its own until they
      // run (Queue does, to tell them if it is destroyed first): leave it.
      if (w.queue) w.queue->remove(&w);
      return w.state;
    case Wake::Timeout: return Waiter::State::Pending;
    case Wake::Cancelled: throw Cancelled{};
  }
  return w.state;
}

bool wait_on(WaitQueue& q, const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  return wait_state(q, what, obj, deadline, kind) != Waiter::State::Pending;
}

}  // namespace corelet::primitive

namespace corelet::detail {

void start(Tasklet* t, const char* call) {
  if (!tl_sched) throw UsageError(std::string("corelet: ") + call + " called outside corelet::run");
  tl_sched->add(t);
}

void yield() {
  Scheduler* s = tl_sched;
  Tasklet* t = s ? s->current() : nullptr;
  if (__builtin_expect(!t, 0)) require_tasklet("this_tasklet::yield");
  if (__builtin_expect(t->stackless, 0))
    throw UsageError("corelet: this_tasklet::yield in a stackless tasklet (its step returns instead)");
  if (t->cancel_pending) {
    t->cancel_pending = false;
    throw Cancelled{};
  }
  s->make_ready(t);
  s->suspend();
}

void cancel(Tasklet* t) noexcept {
  if (t->state == State::Done) return;
  if (tl_sched) {
    tl_sched->cancel(t);
  } else {
    t->cancel_pending = true;
  }
}

void cancel_everything() noexcept {
  if (tl_sched) tl_sched->cancel_all();
}

void retain(Tasklet* t) noexcept { ++t->refs; }

void release(Tasklet* t) noexcept {
  if (--t->refs != 0) return;
  if (t->error && !t->joined && !t->error_reported && !t->is_main && t->state == State::Done)
    report_lost_exception(t, " (never joined)");
  delete t;
}

bool wait_done(Tasklet* t, const char* what, Clock::time_point deadline) {
  if (t->state == State::Done) return true;
  Tasklet* self = require_tasklet(what);
  if (self == t) throw UsageError(std::string("corelet: ") + what + ": a tasklet cannot wait for itself");
  Waiter w;
  enlist(w, self, t->joiners);
  if (t->in_fifo && !t->started && !t->cancel_pending) tl_sched->hand_off(t);  // run it next
  for (;;) {
    switch (tl_sched->park(kJoinWhat, t, deadline, WaitKind::Sync)) {
      case Wake::Notified: return true;
      case Wake::Timeout: return t->state == State::Done;
      case Wake::Cancelled: throw Cancelled{};
    }
  }
}

void detach(Tasklet* t) {
  if (t->detached) throw UsageError("corelet: Task::detach: the task is already detached");
  t->detached = true;
  if (t->state != State::Done && tl_sched) tl_sched->detached_one();
}

}  // namespace corelet::detail
