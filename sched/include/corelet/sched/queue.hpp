#pragma once
// corelet/sched/queue.hpp — Queue, LifoQueue, PriorityQueue with the semantics
// of Python's `queue` module, for tasklets.
//
// maxsize 0 means unbounded. put() parks while the queue is full, get() while it
// is empty; the _for/_until forms return false / nullopt on timeout, and the
// try_ forms never park. A value whose put timed out or failed stays with the
// caller. Cancellation: the parked call throws Cancelled; nothing was put or got.
// task_done()/join() count unfinished items as queue.Queue does: join() parks
// until every item put has been matched by a task_done(); one task_done() too
// many throws UsageError (Python's ValueError).
// shutdown() (Python 3.13): later puts throw QueueShutDown; gets drain what is
// left, then throw QueueShutDown; parked putters and getters are woken to throw
// it. shutdown(true) also discards what is queued (counting it as done).

#include <corelet/sched/primitive.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <type_traits>
#include <vector>

namespace corelet {

namespace detail {

template <class T>
struct FifoOrder {
  std::deque<T> c;
  void push(T&& v) { c.push_back(std::move(v)); }
  void push(const T& v) { c.push_back(v); }
  T pop() { T v = std::move(c.front()); c.pop_front(); return v; }
  std::size_t size() const noexcept { return c.size(); }
  void clear() noexcept { c.clear(); }
};

template <class T>
struct LifoOrder {
  std::vector<T> c;
  void push(T&& v) { c.push_back(std::move(v)); }
  void push(const T& v) { c.push_back(v); }
  T pop() { T v = std::move(c.back()); c.pop_back(); return v; }
  std::size_t size() const noexcept { return c.size(); }
  void clear() noexcept { c.clear(); }
};

// Smallest first, like Python's heapq-based PriorityQueue.
template <class T, class Compare>
struct PriorityOrder {
  std::vector<T> c;
  // std::push_heap makes a max-heap for Compare; invert it for smallest-first.
  struct Inverted {
    Compare cmp;
    bool operator()(const T& a, const T& b) const { return cmp(b, a); }
  } inv{};
  void push(T&& v) { c.push_back(std::move(v)); std::push_heap(c.begin(), c.end(), inv); }
  void push(const T& v) { c.push_back(v); std::push_heap(c.begin(), c.end(), inv); }
  T pop() {
    std::pop_heap(c.begin(), c.end(), inv);
    T v = std::move(c.back());
    c.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return c.size(); }
  void clear() noexcept { c.clear(); }
};

template <class T, class Order>
class BasicQueue {
 public:
  explicit BasicQueue(std::size_t maxsize = 0, Order order = Order{}) : items_(std::move(order)), maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  // Destroying a queue shuts it down (immediately): parked getters, putters
  // and joiners, and woken ones that have not run yet, throw QueueShutDown
  // without touching it again.
  ~BasicQueue() {
    shutdown(true);
    wake_all(joiners_, Waiter::State::Closed);
    while (Waiter* w = woken_.pop_front()) w->state = Waiter::State::Closed;
  }

  void put(const T& v) { put_impl(v, Clock::time_point::max(), true, "Queue::put"); }
  void put(T&& v) { put_impl(std::move(v), Clock::time_point::max(), true, "Queue::put"); }
  bool try_put(const T& v) { return put_impl(v, {}, false, "Queue::try_put"); }
  bool try_put(T&& v) { return put_impl(std::move(v), {}, false, "Queue::try_put"); }
  template <class Rep, class Period>
  bool put_for(T&& v, std::chrono::duration<Rep, Period> d) {
    return put_impl(std::move(v), deadline_after(d), true, "Queue::put_for");
  }
  template <class Rep, class Period>
  bool put_for(const T& v, std::chrono::duration<Rep, Period> d) {
    return put_impl(v, deadline_after(d), true, "Queue::put_for");
  }
  bool put_until(T&& v, Clock::time_point tp) { return put_impl(std::move(v), tp, true, "Queue::put_until"); }
  bool put_until(const T& v, Clock::time_point tp) { return put_impl(v, tp, true, "Queue::put_until"); }

  T get() { return std::move(*get_impl(Clock::time_point::max(), true, "Queue::get")); }
  std::optional<T> try_get() { return get_impl({}, false, "Queue::try_get"); }
  template <class Rep, class Period>
  std::optional<T> get_for(std::chrono::duration<Rep, Period> d) {
    return get_impl(deadline_after(d), true, "Queue::get_for");
  }
  std::optional<T> get_until(Clock::time_point tp) { return get_impl(tp, true, "Queue::get_until"); }

  void task_done() {
    if (unfinished_ == 0) throw UsageError("corelet: Queue::task_done called too many times");
    if (--unfinished_ == 0)
      while (wake_one(joiners_)) {
      }
  }
  void join() { join_until(Clock::time_point::max()); }
  template <class Rep, class Period>
  bool join_for(std::chrono::duration<Rep, Period> d) {
    return join_until(deadline_after(d));
  }
  bool join_until(Clock::time_point tp) {
    while (unfinished_ > 0) {
      switch (wait(joiners_, "Queue::join", tp)) {
        case Waiter::State::Pending: return unfinished_ == 0;  // timeout
        case Waiter::State::Closed: throw QueueShutDown{};     // `this` may be gone
        case Waiter::State::Done: break;
      }
    }
    return true;
  }

  void shutdown(bool immediate = false) noexcept {
    shutdown_ = true;
    if (immediate) {
      unfinished_ -= std::min(unfinished_, items_.size());
      items_.clear();
      if (unfinished_ == 0)
        while (wake_one(joiners_)) {
        }
    }
    wake_all(getters_, Waiter::State::Closed);
    wake_all(putters_, Waiter::State::Closed);
  }
  bool is_shut_down() const noexcept { return shutdown_; }

  std::size_t qsize() const noexcept { return items_.size(); }
  bool empty() const noexcept { return items_.size() == 0; }
  bool full() const noexcept { return maxsize_ > 0 && items_.size() >= maxsize_; }
  std::size_t maxsize() const noexcept { return maxsize_; }
  std::size_t unfinished_tasks() const noexcept { return unfinished_; }

  // ---- the non-blocking core (primitive.hpp), for other kinds of tasklet
  // (the Python binding's stackless ones); put and get are written with it ----
  enum class Try : std::uint8_t { Done, Wait, ShutDown };
  // try_put_now — puts v if there is room (Done; v moved from if an rvalue),
  // else Wait or ShutDown (v untouched).
  template <class V>
  Try try_put_now(V&& v) {
    if (shutdown_) return Try::ShutDown;
    if (full()) return Try::Wait;
    items_.push(std::forward<V>(v));
    ++unfinished_;
    wake_one(getters_);
    return Try::Done;
  }
  // try_get_now — the next item into out (Done), else Wait, or ShutDown once
  // shut down and drained.
  Try try_get_now(std::optional<T>& out) {
    if (items_.size() == 0) return shutdown_ ? Try::ShutDown : Try::Wait;
    out.emplace(items_.pop());
    wake_one(putters_);
    return Try::Done;
  }
  // enlist_* — w (its tasklet set) waits for an item, for room, or for the
  // last task_done(). Condition-variable style: a waiter woken with Done
  // must call woken(w), then try again (another tasklet may have come
  // first); Closed means the queue was shut down or destroyed.
  void enlist_getter(Waiter& w) noexcept { wait_in(getters_, w); }
  void enlist_putter(Waiter& w) noexcept { wait_in(putters_, w); }
  void enlist_joiner(Waiter& w) noexcept { wait_in(joiners_, w); }
  void woken(Waiter& w) noexcept {
    if (w.queue) w.queue->remove(&w);  // off woken_ (see wake_one)
  }
  void set_maxsize(std::size_t maxsize) noexcept { maxsize_ = maxsize; }
  bool waiters_are_here() const noexcept {
    for (const WaitQueue* q : {&getters_, &putters_, &joiners_})
      if (!primitive::waiters_are_here(*q)) return false;
    return true;
  }

 private:
  // Condition-variable style: a woken tasklet re-checks the queue when it
  // runs (another may have taken the item or the room first), and LIFO and
  // priority order apply to every item queued by then. Between its wake-up
  // and its run a woken waiter sits in woken_, so that a queue destroyed in
  // that gap marks it Closed and the tasklet never touches the queue again.
  bool wake_one(WaitQueue& q) noexcept {
    Waiter* w = q.pop_front();
    if (!w) return false;
    w->state = Waiter::State::Done;
    unpark(w->tasklet);  // unlinks the tasklet's waiters: w is in no queue now
    woken_.push_back(w);
    return true;
  }
  // Parks on q. Returns Pending on timeout, Closed if the queue was shut down
  // or destroyed (do not touch it then), Done if woken (it is alive, and
  // wait_state has taken the waiter off woken_). Throws Cancelled.
  Waiter::State wait(WaitQueue& q, const char* call, Clock::time_point deadline) {
    return wait_state(q, call, this, deadline);
  }

  template <class V>
  bool put_impl(V&& v, Clock::time_point deadline, bool may_block, const char* call) {
    for (;;) {
      switch (try_put_now(std::forward<V>(v))) {  // moves from v only when Done
        case Try::Done: return true;
        case Try::ShutDown: throw QueueShutDown{};
        case Try::Wait: break;
      }
      if (!may_block) return false;
      switch (wait(putters_, call, deadline)) {
        case Waiter::State::Pending: return false;
        case Waiter::State::Closed: throw QueueShutDown{};  // `this` may be gone
        case Waiter::State::Done: break;
      }
    }
  }
  std::optional<T> get_impl(Clock::time_point deadline, bool may_block, const char* call) {
    std::optional<T> v;
    for (;;) {
      switch (try_get_now(v)) {
        case Try::Done: return v;
        case Try::ShutDown: throw QueueShutDown{};
        case Try::Wait: break;
      }
      if (!may_block) return std::nullopt;
      switch (wait(getters_, call, deadline)) {
        case Waiter::State::Pending: return std::nullopt;
        case Waiter::State::Closed: throw QueueShutDown{};  // `this` may be gone
        case Waiter::State::Done: break;
      }
    }
  }

  Order items_;
  std::size_t maxsize_;
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
  WaitQueue getters_;
  WaitQueue putters_;
  WaitQueue joiners_;
  WaitQueue woken_;  // woken, not yet run (see wake_one)
};

}  // namespace detail

// Queue<T> — first in, first out.
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoOrder<T>> {
  using detail::BasicQueue<T, detail::FifoOrder<T>>::BasicQueue;
};
// LifoQueue<T> — last in, first out.
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoOrder<T>> {
  using detail::BasicQueue<T, detail::LifoOrder<T>>::BasicQueue;
};
// PriorityQueue<T, Compare> — smallest first (by Compare, std::less by default).
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::PriorityOrder<T, Compare>> {
  using detail::BasicQueue<T, detail::PriorityOrder<T, Compare>>::BasicQueue;
};

}  // namespace corelet
