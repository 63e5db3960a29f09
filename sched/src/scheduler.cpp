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

thread_local Scheduler* tl_sched = nullptr;

}  // namespace

// The scheduler of this thread, for the stall signal's handler alone: the
// initial-exec model makes reading it a plain load from the thread pointer,
// where the default model in a dlopen'd module (the Python extension) may
// call __tls_get_addr, which can allocate — not async-signal-safe.
thread_local Scheduler* tl_signal_sched __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

const char* const kJoinWhat = "Task::join";

}  // namespace

Scheduler* this_scheduler() noexcept { return tl_sched; }

// uniform_fp_status — raises the sticky "inexact" flag in this thread's MXCSR
// before any fiber exists. Boost.Context saves MXCSR when a context leaves and
// loads the entered context's saved value; when the two differ the load costs
// more than the whole switch (~190 ns against ~12 ns measured here). A new
// fiber inherits its creator's MXCSR, and the first double operation of any
// context sets "inexact"; with the flag set from the start every context
// carries the same value. Only fetestexcept(FE_INEXACT) can tell.
static void uniform_fp_status() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | _MM_EXCEPT_INEXACT);
#endif
}

namespace {
thread_local std::size_t tl_tasklet_objects = 0;

// The control-block cache: per size class (64-byte steps up to 1 KiB) a
// free list of at most kCachedPerClass blocks; larger blocks and overflow go
// to the global allocator. A block freed on another thread joins that
// thread's cache. Emptied when the thread exits.
class BlockCache {
 public:
  static constexpr std::size_t kStep = 64;
  static constexpr std::size_t kClasses = 16;
  static constexpr std::size_t kCachedPerClass = 1024;

  void* get(std::size_t n) {
    const std::size_t c = (n - 1) / kStep;
    if (c < kClasses && !gone_ && lists_[c].head) {
      Node* b = lists_[c].head;
      lists_[c].head = b->next;
      --lists_[c].count;
      return b;
    }
    return ::operator new(c < kClasses && !gone_ ? (c + 1) * kStep : n);
  }
  void put(void* p, std::size_t n) noexcept {
    const std::size_t c = (n - 1) / kStep;
    if (c < kClasses && !gone_ && lists_[c].count < kCachedPerClass) {
      auto* b = static_cast<Node*>(p);
      b->next = lists_[c].head;
      lists_[c].head = b;
      ++lists_[c].count;
      return;
    }
    ::operator delete(p);
  }
  ~BlockCache() {
    gone_ = true;  // a Task handle destroyed later in this thread's exit frees directly
    for (auto& l : lists_)
      while (Node* b = l.head) {
        l.head = b->next;
        ::operator delete(b);
      }
  }

 private:
  struct Node {
    Node* next;
  };
  struct List {
    Node* head = nullptr;
    std::size_t count = 0;
  };
  List lists_[kClasses];
  bool gone_ = false;
};
thread_local BlockCache tl_blocks;

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

void* Tasklet::operator new(std::size_t n) { return tl_blocks.get(n); }
void Tasklet::operator delete(void* p, std::size_t n) noexcept { tl_blocks.put(p, n); }
std::size_t tasklet_objects_alive() noexcept { return tl_tasklet_objects; }

Tasklet::Tasklet() { ++tl_tasklet_objects; }

void Tasklet::destroy_locals() noexcept {
  while (locals) {
    LocalSlot* s = locals;
    locals = s->next;
    delete s;
  }
}

Tasklet::~Tasklet() {
  --tl_tasklet_objects;
  destroy_locals();  // normally done at the end of the tasklet already
}

// Prints a tasklet's exception that nobody can observe any more, as Python
// does for a task's lost exception. Cancelled is not worth a line.
static void report_lost_exception(Tasklet* t, const char* why) noexcept {
  t->error_reported = true;
  try {
    std::rethrow_exception(t->error);
  } catch (const Cancelled&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corelet: tasklet \"%s\" (#%llu) ended with %s: %s%s\n", t->name.c_str(),
                 static_cast<unsigned long long>(t->running.id), typeid(e).name(), e.what(), why);
  } catch (...) {
    std::fprintf(stderr, "corelet: tasklet \"%s\" (#%llu) ended with a non-standard exception%s\n",
                 t->name.c_str(), static_cast<unsigned long long>(t->running.id), why);
  }
}

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
// Timers.

void Scheduler::timer_push(Tasklet* t) {
  timers_.push_back(t);  // may throw: t is not in the heap then
  t->heap_index = timers_.size() - 1;
  timer_sift_up(t->heap_index);
}

void Scheduler::timer_remove(Tasklet* t) noexcept {
  const std::size_t i = t->heap_index;
  Tasklet* last = timers_.back();
  timers_.pop_back();
  t->heap_index = Tasklet::npos;
  if (last == t) return;
  timers_[i] = last;
  last->heap_index = i;
  timer_sift_up(i);
  timer_sift_down(last->heap_index);
}

void Scheduler::timer_sift_up(std::size_t i) noexcept {
  Tasklet* t = timers_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!(t->deadline < timers_[parent]->deadline)) break;
    timers_[i] = timers_[parent];
    timers_[i]->heap_index = i;
    i = parent;
  }
  timers_[i] = t;
  t->heap_index = i;
}

void Scheduler::timer_sift_down(std::size_t i) noexcept {
  const std::size_t n = timers_.size();
  Tasklet* t = timers_[i];
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timers_[c + 1]->deadline < timers_[c]->deadline) ++c;
    if (!(timers_[c]->deadline < t->deadline)) break;
    timers_[i] = timers_[c];
    timers_[i]->heap_index = i;
    i = c;
  }
  timers_[i] = t;
  t->heap_index = i;
}

void Scheduler::fire_timers(Clock::time_point now) noexcept {
  while (!timers_.empty() && timers_.front()->deadline <= now) unpark(timers_.front(), Wake::Timeout);
}

// ---------------------------------------------------------------------------
// The loop.

void Scheduler::post_completion(BlockingJob* job) noexcept {
  // posting_ keeps this Scheduler alive until we are out of here: once the
  // job is in completions_, the loop may drain it, finish and return from
  // run(). The increment happens-before the enqueue (release), so a loop that
  // has dequeued the job sees it in ~Scheduler and waits for the decrement.
  posting_.fetch_add(1, std::memory_order_relaxed);
  completions_.enqueue(job);
  // Pairs with the fence in idle_wait (Dekker): either the loop sees this job in
  // completions_ after its fence, or we see sleeping_ == true after ours and
  // write the eventfd it sleeps on. Both fences are seq_cst, so the two stores
  // cannot both be missed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed)) {
    const std::uint64_t one = 1;
    ssize_t r = ::write(wake_fd_, &one, sizeof one);
    (void)r;  // EAGAIN only if the counter is saturated: it is non-zero, a wakeup is due anyway
  }
  posting_.fetch_sub(1, std::memory_order_release);  // our last touch of *this
}

void Scheduler::drain_completions() noexcept {
  BlockingJob* job;
  while (completions_.try_dequeue(job)) {
    --blocking_outstanding_;
    job->finished = true;
    unpark(job->waiter, Wake::Notified);
  }
}

void Scheduler::make_reactor_now() { reactor_ = make_reactor(*this, wake_fd_, &io_fallback_reason_); }

namespace {
thread_local IdleGuard* tl_idle_guard = nullptr;
}  // namespace

IdleGuard* set_idle_guard(IdleGuard* guard) noexcept { return std::exchange(tl_idle_guard, guard); }

void Scheduler::idle_wait() {
  timespec ts{};
  timespec* tsp = nullptr;
  if (!timers_.empty()) {
    auto d = timers_.front()->deadline - Clock::now();
    if (d <= d.zero()) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    tsp = &ts;
  }
  stacks_.trim();  // idle: give back the pages of cold stacks
  struct Asleep {  // the sleep's time is idle time, and the monitor knows we sleep
    Scheduler& s;
    std::uint64_t from = 0;
    std::uint64_t from_ns = 0;  // for the trace
    explicit Asleep(Scheduler& sched) noexcept : s(sched) {
      if (!s.accounting_) return;
      if (s.tracer_) from_ns = Tracer::now_ns();
      from = core::cycles();
      s.charge(from);
      s.beat_.idle.store(true, std::memory_order_relaxed);
    }
    ~Asleep() {
      if (!s.accounting_) return;
      // The fresh beat first, then awake (release; the monitor reads idle
      // with acquire, then the beat): it never sees the beat from before the
      // sleep on an awake scheduler, which would look like a long stall.
      s.refresh_beat();
      s.beat_.idle.store(false, std::memory_order_release);
      monitor_note_awake();
      const std::uint64_t to = core::cycles();
      s.idle_cycles_ += to - from;
      ++s.wakeups_;
      s.exclude(from, to);
      if (s.tracer_) s.tracer_->idle(from_ns, Tracer::now_ns());
    }
    Asleep(const Asleep&) = delete;
    Asleep& operator=(const Asleep&) = delete;
  } asleep(*this);
  struct Guard {  // the thread's IdleGuard, around everything that may block
    IdleGuard* g;
    explicit Guard(IdleGuard* guard) noexcept : g(guard) {
      if (g) g->before_sleep();
    }
    ~Guard() {
      if (g) g->after_sleep();
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
  } guard(tl_idle_guard);
  // Only a helper running one of our blocking jobs reads sleeping_ (see
  // post_completion): without one outstanding, no fence is needed.
  const bool helpers = blocking_outstanding_ != 0;
  if (helpers) {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // see post_completion
  }
  if (helpers && completions_.size_approx() != 0) {
    // A completion came in meanwhile: do not sleep.
  } else if (hook_ && !hook_->prepare_sleep()) {
    // The hook's work came in meanwhile: do not sleep.
  } else if (hook_ && !helpers && !(reactor_ && reactor_->in_flight()) && hook_->sleep(tsp)) {
    hook_->woke();  // slept the hook's way (a cluster worker: a futex)
  } else if (reactor_) {
    try {
      reactor_->wait(tsp);  // I/O completions, the eventfd or the next timer
    } catch (...) {
      sleeping_.store(false, std::memory_order_relaxed);
      if (hook_) hook_->woke();
      throw;
    }
    if (hook_) hook_->woke();
  } else {
    pollfd pfd{wake_fd_, POLLIN, 0};
    int r = ::ppoll(&pfd, 1, tsp, nullptr);
    if (hook_) hook_->woke();
    if (r < 0 && errno != EINTR) {
      sleeping_.store(false, std::memory_order_relaxed);
      throw std::system_error(errno, std::generic_category(), "corelet: ppoll in the idle scheduler");
    }
    if (r > 0 && (pfd.revents & POLLIN)) {
      std::uint64_t v;
      ssize_t n = ::read(wake_fd_, &v, sizeof v);  // one read resets the counter (one reader: us)
      (void)n;
    }
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

std::string Scheduler::describe_wait(const Tasklet* t) {
  if (t->wait_what == kJoinWhat) {
    auto* target = static_cast<const Tasklet*>(t->wait_obj);
    std::ostringstream os;
    os << "Task::join of tasklet \"" << target->name << "\" (#" << target->running.id << ")";
    return os.str();
  }
  std::ostringstream os;
  os << t->wait_what;
  if (t->wait_obj) os << " " << t->wait_obj;
  return os.str();
}

std::string Scheduler::describe_blocked() const {
  // all_ is newest first; report oldest first, as spawned.
  std::vector<const Tasklet*> list;
  for (Tasklet* t = all_; t; t = t->all_next) list.push_back(t);
  std::ostringstream os;
  os << "corelet: deadlock: " << list.size() << (list.size() == 1 ? " tasklet is" : " tasklets are")
     << " blocked forever and nothing else can wake them:";
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    const Tasklet* t = *it;
    os << "\n  tasklet \"" << t->name << "\" (#" << t->running.id << ") ";
    if (t->state != State::Parked || !t->wait_what) {
      os << "is not started";
    } else {
      os << "waits on " << describe_wait(t);
    }
  }
  return os.str();
}

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
// Entry points for the header-only primitives.

Tasklet* current() noexcept { return tl_sched ? tl_sched->current() : nullptr; }

Tasklet* require_tasklet(const char* call) {
  Tasklet* t = current();
  if (!t) throw UsageError(std::string("corelet: ") + call + " called outside a tasklet");
  return t;
}

void start(Tasklet* t, const char* call) {
  if (!tl_sched) throw UsageError(std::string("corelet: ") + call + " called outside corelet::run");
  tl_sched->add(t);
}

Wake park(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  return tl_sched->park(what, obj, deadline, kind);
}

bool park_stackless(const char* what, const void* obj, Clock::time_point deadline, WaitKind kind) {
  Tasklet* t = current();
  if (!t || !t->stackless) throw UsageError(std::string("corelet: ") + what + ": park_stackless outside a stackless tasklet");
  return tl_sched->park_stackless(what, obj, deadline, kind);
}

void unpark(Tasklet* t, Wake why) noexcept { tl_sched->unpark(t, why); }

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

bool on_this_scheduler(const Tasklet* t) noexcept { return tl_sched && t->owner == tl_sched; }

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

// ---------------------------------------------------------------------------
// run

namespace {
// While run() runs, SIGPIPE is blocked on its thread: a write to a closed pipe
// or socket fails with EPIPE (one tasklet's error) instead of killing the
// process, as Rust's runtime and Go (for fds other than 1 and 2) arrange. A
// SIGPIPE left pending by such a write is consumed at the end, unless one was
// pending already, and the thread's mask is restored.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigset_t pending;
    was_pending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    ok_ = ::pthread_sigmask(SIG_BLOCK, &block, &old_) == 0;
  }
  ~SigpipeBlocked() {
    if (!ok_) return;
    if (!was_pending_ && !sigismember(&old_, SIGPIPE)) {
      sigset_t only;
      sigemptyset(&only);
      sigaddset(&only, SIGPIPE);
      const timespec zero{0, 0};
      while (::sigtimedwait(&only, nullptr, &zero) == SIGPIPE) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
  bool ok_ = false;
};
}  // namespace

namespace {
thread_local LoopHook* tl_next_hook = nullptr;
thread_local int tl_next_wake_fd = -1;
}  // namespace

void set_next_run_hook(LoopHook* hook, int wake_fd) noexcept {
  tl_next_hook = hook;
  tl_next_wake_fd = wake_fd;
}

void run_main(Tasklet* main) {
  if (tl_sched) throw UsageError("corelet: corelet::run called inside corelet::run on the same thread");
  core::install_overflow_handler();
  uniform_fp_status();
  SigpipeBlocked no_sigpipe;
  LoopHook* hook = std::exchange(tl_next_hook, nullptr);
  Scheduler sched(hook, std::exchange(tl_next_wake_fd, -1));
  tl_sched = &sched;
  main->is_main = true;
  if (main->name.empty()) main->name = "main";
  try {
    sched.add(main);
    sched.run_loop();
  } catch (...) {
    tl_sched = nullptr;
    throw;
  }
  tl_sched = nullptr;
  if (!sched.deadlock_report().empty()) throw Deadlock(sched.deadlock_report());
}

}  // namespace corelet::detail
