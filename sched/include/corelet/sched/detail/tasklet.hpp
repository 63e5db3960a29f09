#pragma once
// Internal: the tasklet control block, wait queues and the scheduler entry points
// that the header-only primitives use. Not part of the public API.

#include <corelet/core/fiber.hpp>
#include <corelet/core/overflow.hpp>
#include <corelet/core/stack.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/sched/profile.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>

namespace corelet {

using Clock = std::chrono::steady_clock;

namespace detail {

struct Tasklet;
struct WaitQueue;

// Why a parked tasklet was made ready again.
enum class Wake : std::uint8_t { Notified, Timeout, Cancelled };

// Waiter — one parked tasklet's entry in one wait queue. It lives on the parked
// tasklet's stack for the duration of the park; a tasklet parked in a select has
// several, chained through `sibling`. Unparking a tasklet unlinks all of them.
struct Waiter {
  Tasklet* tasklet = nullptr;
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
  WaitQueue* queue = nullptr;  // non-null while linked
  Waiter* sibling = nullptr;   // next waiter of the same park
  void* slot = nullptr;        // the primitive's: a value to take, a place to put one
  std::size_t index = 0;       // the primitive's: select case, count asked for...
  bool movable = true;         // a sender's slot may be moved from (else copied)
  enum class State : std::uint8_t { Pending, Done, Closed } state = State::Pending;
};

// WaitQueue — FIFO of waiters (intrusive, no allocation).
struct WaitQueue {
  Waiter* head = nullptr;
  Waiter* tail = nullptr;
  std::size_t count = 0;

  bool empty() const noexcept { return head == nullptr; }
  std::size_t size() const noexcept { return count; }
  void push_back(Waiter* w) noexcept {
    w->queue = this;
    w->next = nullptr;
    w->prev = tail;
    if (tail) tail->next = w; else head = w;
    tail = w;
    ++count;
  }
  void remove(Waiter* w) noexcept {
    if (w->prev) w->prev->next = w->next; else head = w->next;
    if (w->next) w->next->prev = w->prev; else tail = w->prev;
    w->prev = w->next = nullptr;
    w->queue = nullptr;
    --count;
  }
  Waiter* pop_front() noexcept {
    Waiter* w = head;
    if (w) remove(w);
    return w;
  }
};

// Tasklet-local storage: a singly linked list of values keyed by the address of
// their TaskletLocal<T>.
struct LocalSlot {
  const void* key = nullptr;
  LocalSlot* next = nullptr;
  virtual ~LocalSlot() = default;
};

enum class State : std::uint8_t { Ready, Running, Parked, Done };

// Tasklet control blocks alive on this thread (tests use it as a leak check).
std::size_t tasklet_objects_alive() noexcept;

struct Tasklet {
  Tasklet();
  Tasklet(const Tasklet&) = delete;
  Tasklet& operator=(const Tasklet&) = delete;
  virtual ~Tasklet();
  // Runs the body and stores its result; exceptions are caught by the caller.
  virtual void invoke() = 0;
  // A stackless tasklet (see `stackless`) runs in slices instead: step() runs
  // one on the loop's own stack and returns true when the tasklet has ended
  // (its result or error stored). A slice ends by parking (park_stackless),
  // by returning with the tasklet still running (a yield: it goes to the back
  // of the ready queue), or by ending. Exceptions are caught by the caller.
  virtual bool step() { return true; }

  // Control blocks come from a per-thread cache of recently freed blocks
  // (spawn+join would otherwise spend a fifth of its time in malloc/free).
  static void* operator new(std::size_t n);
  static void operator delete(void* p, std::size_t n) noexcept;
  void destroy_locals() noexcept;

  core::RunningStack running;       // stack, name, id: for the overflow report
  std::string name;
  core::Fiber fiber;                // its context and stack, made at its first run (not for stackless ones)
  std::size_t stack_size = core::kDefaultStackSize;

  State state = State::Ready;
  bool started = false;
  bool detached = false;
  bool joined = false;
  bool cancel_pending = false;
  bool is_main = false;
  // Never gets a stack: run by step() on the loop's stack, never resumed from
  // another tasklet's. The Python bindings' generator and coroutine tasklets
  // are such, so that no Python frame ever runs on a switched C stack.
  bool stackless = false;
  const void* owner = nullptr;      // the scheduler it was started on (see on_this_scheduler)
  bool error_reported = false;      // a lost exception was printed already
  Wake wake = Wake::Notified;
  std::uint32_t refs = 1;           // the scheduler's (until done) + the handle's

  Tasklet* next_ready = nullptr;    // ready queue / hand-off stack links
  Tasklet* prev_ready = nullptr;
  bool in_fifo = false;             // linked in the FIFO ready queue
  Tasklet* all_prev = nullptr;      // the scheduler's list of live tasklets
  Tasklet* all_next = nullptr;

  Waiter* waiters = nullptr;        // this park's waiters
  const char* wait_what = nullptr;  // what this park waits on, for reports
  const void* wait_obj = nullptr;

  Clock::time_point deadline = Clock::time_point::max();
  std::size_t heap_index = npos;    // position in the timer heap, npos if none
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

  WaitQueue joiners;
  std::exception_ptr error;
  LocalSlot* locals = nullptr;
  // Where it was spawned (file may stay nullptr), and by which tasklet.
  const char* spawn_file = nullptr;
  unsigned spawn_line = 0;
  std::uint64_t parent_id = 0;

  // Accounting (profile.hpp), in core::cycles() units.
  std::uint64_t run_cycles = 0;
  std::uint64_t resumes = 0;
  // Its time in the ready queue is what is left of its life: see stats().
  std::uint64_t born_at = 0;          // when it was spawned (to a tick)
  std::uint64_t parked_at = 0;        // when the current park began; 0: not parked
  std::uint64_t wait_cycles[kWaitKinds] = {};
  std::uint32_t stalls = 0;
  WaitKind wait_kind = WaitKind::Sync;
};

template <class T>
struct TaskletWithResult : Tasklet {
  union { T value; };
  bool has_value = false;
  TaskletWithResult() {}
  ~TaskletWithResult() override { if (has_value) value.~T(); }
};
template <>
struct TaskletWithResult<void> : Tasklet {};

// enlist — links w, a waiter of tasklet t, into q as the only waiter of t's
// next park (the common case; select chains several through `sibling`).
inline void enlist(Waiter& w, Tasklet* t, WaitQueue& q) noexcept {
  w.tasklet = t;
  q.push_back(&w);
  t->waiters = &w;
}

// ---- scheduler entry points (sched/src/scheduler.cpp) ----

// The running tasklet, or nullptr outside any tasklet (also outside run()).
Tasklet* current() noexcept;
// Throws UsageError("corelet: <call> called outside a tasklet") if not in one.
Tasklet* require_tasklet(const char* call);
// Adds a new tasklet to the running scheduler's ready queue. Throws UsageError
// if no scheduler runs on this thread.
void start(Tasklet* t, const char* call);

// park — suspends the current tasklet, which has linked its waiters (if any)
// into wait queues, until unpark() or the deadline. If a cancellation is pending
// it returns Wake::Cancelled at once without suspending. In every case the
// tasklet's waiters are unlinked on return.
// `kind` is what accounting files the wait under.
Wake park(const char* what, const void* obj, Clock::time_point deadline = Clock::time_point::max(),
          WaitKind kind = WaitKind::Sync);
// unpark — makes a parked tasklet ready with the given reason, unlinking its
// waiters and its timer. No-op if the tasklet is not parked.
void unpark(Tasklet* t, Wake why = Wake::Notified) noexcept;
// Wakes the tasklet of the first waiter in q (state = Done); false if none.
bool wake_one(WaitQueue& q) noexcept;
// Wakes every waiter of q with the given state.
void wake_all(WaitQueue& q, Waiter::State st = Waiter::State::Done) noexcept;

// Parks on q (one waiter) until woken or the deadline. Throws Cancelled.
// Returns false on timeout.
bool wait_on(WaitQueue& q, const char* what, const void* obj,
             Clock::time_point deadline = Clock::time_point::max(), WaitKind kind = WaitKind::Sync);
// Like wait_on, but returns the waiter's state: Done or Closed when woken,
// Pending on timeout. Throws Cancelled. After Closed the primitive may already
// be destroyed: the caller must not touch it. A woken waiter that its
// primitive keeps on a list of its own until it runs (Queue's woken_) is taken
// off that list here.
Waiter::State wait_state(WaitQueue& q, const char* what, const void* obj, Clock::time_point deadline,
                         WaitKind kind = WaitKind::Sync);

void yield();

// park_stackless — the current tasklet, a stackless one inside step(), has
// linked its waiters (if any) into wait queues and will park when its step
// returns: until unpark() or the deadline, like park(). Returns false, with
// nothing parked and its waiters unlinked, if a cancellation was pending (the
// step goes on and reports it). After the wake, Tasklet::wake says why.
bool park_stackless(const char* what, const void* obj, Clock::time_point deadline = Clock::time_point::max(),
                    WaitKind kind = WaitKind::Sync);

void cancel(Tasklet* t) noexcept;
// Whether t belongs to the scheduler running on this thread (false outside
// any): primitives shared by two schedulers check it before waking a waiter.
bool on_this_scheduler(const Tasklet* t) noexcept;
// Cancels every tasklet of this thread's scheduler (no-op outside one).
void cancel_everything() noexcept;
void retain(Tasklet* t) noexcept;
void release(Tasklet* t) noexcept;
// Parks the current tasklet until t is done (join/wait). Throws Cancelled.
// Returns false on timeout.
bool wait_done(Tasklet* t, const char* what, Clock::time_point deadline);
// Detaches t: run() no longer waits for it; its result is discarded.
void detach(Tasklet* t);

template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const auto now = Clock::now();
  if (d <= d.zero()) return now;
  if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(d);
}

}  // namespace detail
}  // namespace corelet
