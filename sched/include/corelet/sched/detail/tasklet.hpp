#pragma once
// Internal: the tasklet control block and the scheduler calls that Task,
// spawn and join use. The extension API (waiters, wait queues, park/unpark)
// is <corelet/sched/primitive.hpp>, which includes this header.

#include <corelet/sched/primitive.hpp>

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

namespace detail {

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

}  // namespace detail

inline void primitive::enlist(Waiter& w, Tasklet* t, WaitQueue& q) noexcept {
  w.tasklet = t;
  q.push_back(&w);
  t->waiters = &w;
}

namespace detail {

// ---- scheduler entry points (sched/src/scheduler.cpp) ----

// Adds a new tasklet to the running scheduler's ready queue. Throws UsageError
// if no scheduler runs on this thread.
void start(Tasklet* t, const char* call);

void yield();

void cancel(Tasklet* t) noexcept;
// Cancels every tasklet of this thread's scheduler (no-op outside one).
void cancel_everything() noexcept;
void retain(Tasklet* t) noexcept;
void release(Tasklet* t) noexcept;
// Parks the current tasklet until t is done (join/wait). Throws Cancelled.
// Returns false on timeout.
bool wait_done(Tasklet* t, const char* what, Clock::time_point deadline);
// Detaches t: run() no longer waits for it; its result is discarded.
void detach(Tasklet* t);

}  // namespace detail
}  // namespace corelet
