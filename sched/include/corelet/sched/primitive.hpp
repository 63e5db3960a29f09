#pragma once
// corelet/sched/primitive.hpp — the extension API: what a primitive that parks
// tasklets is written with. corelet's own channels, queues, locks, events and
// the Python binding's operations are written with it, and nothing else.
//
// A primitive keeps its waiting tasklets in WaitQueues. Every blocking call
// has the same three steps:
//
//   1. try now      — complete the operation without waiting if the state
//                     allows (a free lock, a buffered value, a waiting peer);
//   2. enlist       — otherwise link a Waiter of the calling tasklet into the
//                     primitive's queue (slot/index say what it wants) and park;
//   3. complete     — the side that can serve it (an unlock, a send) takes the
//                     waiter off the queue, does the work for it (hands over
//                     the value, the ownership), sets its state and unparks it.
//
// A fiber tasklet parks with park() (or wait_on / wait_state, which do steps 2
// and 3's bookkeeping for a single waiter) and runs on when woken. A stackless
// tasklet (a Python generator or coroutine: it has no stack of its own) calls
// park_stackless() inside its step and returns; the scheduler runs its next
// step after the wake, and Tasklet::wake says why. The waker's side is the
// same for both: a primitive whose steps 1 and 3 are written once serves both
// kinds of tasklet (see Channel's try_send / try_recv / enlist_sender /
// enlist_receiver in channel.hpp, used by select and by the Python Channel).
//
// Deadlines are Clock::time_point values (Clock::time_point::max(): none),
// made from durations with deadline_after(). Every park returns Wake::Timeout
// when its deadline passes and Wake::Cancelled when the tasklet is cancelled,
// with all its waiters unlinked either way: the primitive needs no clean-up.
//
// Rules:
// - A wait queue belongs to one scheduler (one thread): wake only waiters of
//   tasklets for which on_this_scheduler() is true.
// - A Waiter lives in the parked call's frame (a fiber's stack, a stackless
//   operation object): nothing else owns it.
// - The waker sets state (Done, or Closed for "the primitive is going away")
//   before it unparks; the woken call reads only its own waiter after that.
//
// Cross-process primitives wait on shared words instead: <corelet/sched/futex.hpp>.

#include <corelet/sched/profile.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace corelet {

using Clock = std::chrono::steady_clock;

namespace detail {
struct Tasklet;
class Scheduler;
}

namespace primitive {

// A tasklet's control block. A primitive passes it around and reads `wake`
// after a stackless park; the rest is the scheduler's.
using Tasklet = detail::Tasklet;

struct WaitQueue;

// Why a parked tasklet was made ready again.
enum class Wake : std::uint8_t { Notified, Timeout, Cancelled };

// Waiter — one parked tasklet's entry in one wait queue. A tasklet parked on
// several queues at once (select) has one per queue, chained through
// `sibling`; unparking the tasklet unlinks all of them.
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

// ---- deadlines ----

// deadline_after — now + d, saturating: a zero or negative d is now (the call
// only tries), one too long for the clock is none (Clock::time_point::max()).
template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const auto now = Clock::now();
  if (d <= d.zero()) return now;
  if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(Clock::time_point::max() - now))
    return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(d);
}
// Whether the deadline has passed (never for none).
inline bool expired(Clock::time_point deadline) noexcept {
  return deadline != Clock::time_point::max() && Clock::now() >= deadline;
}
// What is left until the deadline: zero once it has passed, Clock::duration::max()
// for none. One deadline spread over several calls passes this to each.
inline Clock::duration remaining(Clock::time_point deadline) noexcept {
  if (deadline == Clock::time_point::max()) return Clock::duration::max();
  const auto left = deadline - Clock::now();
  return left > left.zero() ? left : Clock::duration::zero();
}

// ---- the calling tasklet ----

// The running tasklet, or nullptr outside any tasklet (also outside run()
// and inside a PlainCode scope).
Tasklet* current() noexcept;
// PlainCode — while one lives, current() is nullptr on this thread: the code
// run meanwhile is plain code, whose blocking calls block the thread instead
// of parking the tasklet that runs it (corelet's Python Pool runs the user's
// function so, as multiprocessing's workers do). The thread's scheduler runs
// nothing else until the scope ends, so code in it must not wait for
// another tasklet of this scheduler. Scopes nest; one belongs to the thread
// that made it.
class PlainCode {
 public:
  PlainCode() noexcept;
  ~PlainCode();
  PlainCode(const PlainCode&) = delete;
  PlainCode& operator=(const PlainCode&) = delete;

 private:
  detail::Scheduler* sched_;
};
// The running tasklet; throws UsageError("corelet: <call> called outside a
// tasklet") if there is none.
Tasklet* require_tasklet(const char* call);
// Whether t belongs to the scheduler running on this thread (false outside
// any): a primitive shared by two schedulers checks it before waking a waiter.
bool on_this_scheduler(const Tasklet* t) noexcept;

// Whether q is empty or its waiters are tasklets of this thread's scheduler
// (they all are if the first is). A primitive that two schedulers might
// share checks it before it completes a waiter.
inline bool waiters_are_here(const WaitQueue& q) noexcept;

// ---- parking ----

// wait_in — w joins the back of q, Pending: a primitive's own half of
// enlisting (the caller has set w.tasklet and the tasklet's `waiters`, or
// calls enlist, which does both halves).
inline void wait_in(WaitQueue& q, Waiter& w) noexcept {
  w.state = Waiter::State::Pending;
  q.push_back(&w);
}

// enlist — links w, a waiter of tasklet t, into q as the only waiter of t's
// next park (select chains several through `sibling` and sets the tasklet's
// first itself: see channel.hpp).
inline void enlist(Waiter& w, Tasklet* t, WaitQueue& q) noexcept;  // defined in detail/tasklet.hpp

// park — suspends the current fiber tasklet, which has linked its waiters (if
// any) into wait queues, until unpark() or the deadline. If a cancellation is
// pending it returns Wake::Cancelled at once without suspending. In every case
// the tasklet's waiters are unlinked on return. In a stackless tasklet it
// throws UsageError (use park_stackless). `kind` is what accounting files the
// wait under (profile.hpp); `what` and `obj` name it in deadlock reports.
Wake park(const char* what, const void* obj, Clock::time_point deadline = Clock::time_point::max(),
          WaitKind kind = WaitKind::Sync);

// park_stackless — the current tasklet, a stackless one inside its step, has
// linked its waiters (if any) into wait queues and parks when its step
// returns: until unpark() or the deadline, as park(). Returns false, with
// nothing parked and its waiters unlinked, if a cancellation was pending (the
// step goes on and reports it). After the wake, Tasklet::wake says why.
bool park_stackless(const char* what, const void* obj, Clock::time_point deadline = Clock::time_point::max(),
                    WaitKind kind = WaitKind::Sync);

// wait_state — enlists the current fiber tasklet on q alone and parks. Returns
// the waiter's state: Done or Closed when woken, Pending on timeout. Throws
// Cancelled. After Closed the primitive may already be destroyed: the caller
// must not touch it. A woken waiter that its primitive keeps on a list of its
// own until it runs (Queue's woken_) is taken off that list here.
Waiter::State wait_state(WaitQueue& q, const char* what, const void* obj, Clock::time_point deadline,
                         WaitKind kind = WaitKind::Sync);
// wait_on — wait_state, true when woken, false on timeout.
bool wait_on(WaitQueue& q, const char* what, const void* obj,
             Clock::time_point deadline = Clock::time_point::max(), WaitKind kind = WaitKind::Sync);

// ---- select: one park on several queues ----
// A select tries its cases from select_start(n) on (a start that rotates per
// thread, so that a busy case cannot starve the others), then parks on all
// of them: add_case links each case's waiter into the chain of the park
// (the case enlists it after), the tasklet's `waiters` is set to the chain,
// and after the wake fired() says which case completed. One wake unparks the
// tasklet and unlinks every other case's waiter.
inline std::size_t select_start(std::size_t n) noexcept {
  thread_local std::size_t rotation = 0;  // inline: a select costs no call for it
  return rotation++ % n;
}
inline void add_case(Tasklet* t, Waiter& w, std::size_t index, Waiter*& chain) noexcept {
  w.tasklet = t;
  w.index = index;
  w.sibling = chain;
  chain = &w;
}
// The index of the first waiter of ws[0, n) that was completed (Done or
// Closed), n if none (a timeout). Waiters of no case have no tasklet.
inline std::size_t fired(const Waiter* ws, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    if (ws[i].tasklet && ws[i].state != Waiter::State::Pending) return i;
  return n;
}

// ---- waking ----

// unpark — makes a parked tasklet ready with the given reason, unlinking its
// waiters and its timer. No-op if the tasklet is not parked.
void unpark(Tasklet* t, Wake why = Wake::Notified) noexcept;
// complete — takes w off its queue, sets its state and unparks its tasklet:
// step 3 once the waker has done the waiter's work.
void complete(Waiter* w, Waiter::State st = Waiter::State::Done) noexcept;
// wake_one — completes the first waiter of q (state Done); false if none.
bool wake_one(WaitQueue& q) noexcept;
// wake_all — completes every waiter of q with the given state.
void wake_all(WaitQueue& q, Waiter::State st = Waiter::State::Done) noexcept;

}  // namespace primitive

inline bool primitive::waiters_are_here(const WaitQueue& q) noexcept {
  return q.empty() || on_this_scheduler(q.head->tasklet);
}

namespace detail {
// The scheduler's own code, and the primitives written before this header
// existed, name the extension API unqualified or as detail::.
using namespace corelet::primitive;
}  // namespace detail

}  // namespace corelet

#include <corelet/sched/detail/tasklet.hpp>  // the control block (enlist, Tasklet::wake)
