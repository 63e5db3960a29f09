#pragma once
// corelet/sched/channel.hpp — Channel<T> and select.
//
// Channel<T>(0) is a rendezvous channel with Stackless semantics: send parks the
// sender until a receiver takes the value; balance() tells how many tasklets wait
// to send (> 0) or to receive (< 0). Channel<T>(n) buffers up to n values; send
// parks only when the buffer is full. Waiters are served first come, first
// served. A Channel belongs to one scheduler (one thread).
//
// Every blocking call here parks the calling tasklet, never the thread, and:
//  - timeout: the *_for / *_until forms return false / nullopt; nothing is lost
//    (the value of a send that timed out stays with the caller);
//  - cancellation: throws Cancelled; the value was not sent;
//  - close: wakes every waiter; parked senders and later sends throw
//    ChannelClosed; receivers drain what is buffered, then throw ChannelClosed.
// Calling a blocking form outside a tasklet throws UsageError naming the call
// (try_send / try_recv work anywhere).

#include <corelet/sched/primitive.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace corelet {

template <class T>
class Channel {
 public:
  explicit Channel(std::size_t capacity = 0) : cap_(capacity) {}
  // Destroying a channel closes it: tasklets still parked on it are woken with
  // ChannelClosed before the memory goes away.
  ~Channel() { close(); }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // send — delivers v: to a parked receiver, into the buffer, or parks until a
  // receiver (rendezvous) or buffer space arrives. Throws ChannelClosed,
  // Cancelled (v is then untouched if passed as an lvalue or not yet moved).
  void send(const T& v) { send_impl(const_cast<T&>(v), false, Clock::time_point::max(), true, "Channel::send"); }
  void send(T&& v) { send_impl(v, true, Clock::time_point::max(), true, "Channel::send"); }
  // try_send — delivers without parking; false if it would have to wait.
  // Moves from v only when it returns true. Throws ChannelClosed.
  bool try_send(const T& v) { return send_impl(const_cast<T&>(v), false, {}, false, "Channel::try_send"); }
  bool try_send(T&& v) { return send_impl(v, true, {}, false, "Channel::try_send"); }
  // send_for / send_until — like send, false on timeout (v is not moved then).
  template <class Rep, class Period>
  bool send_for(T&& v, std::chrono::duration<Rep, Period> d) {
    return send_impl(v, true, primitive::deadline_after(d), true, "Channel::send_for");
  }
  template <class Rep, class Period>
  bool send_for(const T& v, std::chrono::duration<Rep, Period> d) {
    return send_impl(const_cast<T&>(v), false, primitive::deadline_after(d), true, "Channel::send_for");
  }
  bool send_until(T&& v, Clock::time_point tp) { return send_impl(v, true, tp, true, "Channel::send_until"); }
  bool send_until(const T& v, Clock::time_point tp) {
    return send_impl(const_cast<T&>(v), false, tp, true, "Channel::send_until");
  }

  // recv — the next value; parks until one is sent. Throws ChannelClosed once the
  // channel is closed and drained, Cancelled.
  T recv() {
    std::optional<T> v = recv_impl(Clock::time_point::max(), true, "Channel::recv");
    return std::move(*v);
  }
  // try_recv — a value if one is there now (buffered or a parked sender's);
  // nullopt otherwise, or if closed and drained.
  std::optional<T> try_recv() {
    std::optional<T> out;
    bool closed = false;
    take_now(out, closed);
    return out;
  }
  // recv_for / recv_until — like recv, nullopt on timeout.
  template <class Rep, class Period>
  std::optional<T> recv_for(std::chrono::duration<Rep, Period> d) {
    return recv_impl(primitive::deadline_after(d), true, "Channel::recv_for");
  }
  std::optional<T> recv_until(Clock::time_point tp) { return recv_impl(tp, true, "Channel::recv_until"); }

  // close — no more sends. Wakes every parked sender (ChannelClosed) and
  // receiver (ChannelClosed, the buffer being empty if they were parked).
  // Buffered values can still be received. Idempotent.
  void close() noexcept {
    if (closed_) return;
    closed_ = true;
    primitive::wake_all(receivers_, primitive::Waiter::State::Closed);
    primitive::wake_all(senders_, primitive::Waiter::State::Closed);
  }
  bool closed() const noexcept { return closed_; }
  // balance — tasklets parked to send minus tasklets parked to receive.
  int balance() const noexcept {
    return static_cast<int>(senders_.size()) - static_cast<int>(receivers_.size());
  }
  std::size_t size() const noexcept { return buf_.size(); }  // buffered values
  std::size_t capacity() const noexcept { return cap_; }

  // ---- the non-blocking core (primitive.hpp's three steps) ----
  // What send, recv, select and the Python binding's stackless Channel are
  // written with: one state machine for every kind of tasklet.
  enum class Try : std::uint8_t { Done, Wait, Closed };
  // try_put — a send without waiting: v goes to a parked receiver or into the
  // buffer (Done; moved from if movable, else copied), or stays (Wait; Closed
  // if the channel is closed).
  Try try_put(T& v, bool movable = true) {
    if (closed_) return Try::Closed;
    return deliver_or_buffer(v, movable) ? Try::Done : Try::Wait;
  }
  // try_take — a receive without waiting: a buffered value or a parked
  // sender's into out (Done), else Wait, or Closed once closed and drained.
  Try try_take(std::optional<T>& out) {
    bool closed = false;
    if (take_now(out, closed)) return Try::Done;
    return closed ? Try::Closed : Try::Wait;
  }
  // enlist_sender / enlist_receiver — w (its tasklet set, and its sibling in
  // a select) waits to send v / to receive into out. The completing side
  // sets w.state: Done when v was taken / out filled, Closed when the
  // channel closed first. v and out must stay put until then.
  void enlist_sender(primitive::Waiter& w, T& v, bool movable = true) noexcept {
    w.slot = &v;
    w.movable = movable;
    primitive::wait_in(senders_, w);
  }
  void enlist_receiver(primitive::Waiter& w, std::optional<T>& out) noexcept {
    out.reset();
    w.slot = &out;
    primitive::wait_in(receivers_, w);
  }
  // Whether every tasklet waiting here belongs to this thread's scheduler (a
  // wake-up must not go to another one's ready queue): what a binding checks
  // where two schedulers may share the object.
  bool waiters_are_here() const noexcept {
    for (const primitive::WaitQueue* q : {&senders_, &receivers_})
      if (!q->empty() && !primitive::on_this_scheduler(q->head->tasklet)) return false;
    return true;
  }

  // Range-for: receives until the channel is closed and drained.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Channel* ch) : ch_(ch) { ++*this; }
    T& operator*() { return *cur_; }
    T* operator->() { return &*cur_; }
    iterator& operator++() {
      cur_ = ch_->recv_impl(Clock::time_point::max(), false, "Channel iteration");
      if (!cur_) ch_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return ch_ == nullptr; }

   private:
    Channel* ch_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  // Passes v to put as an rvalue if movable, else as a const lvalue (copied).
  template <class Put>
  static void copy_or_move(T& v, bool movable, Put&& put) {
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!movable) return put(static_cast<const T&>(v));
    }
    put(std::move(v));
  }
  static T take_from(primitive::Waiter* s) {
    T* p = static_cast<T*>(s->slot);
    if constexpr (std::is_copy_constructible_v<T>) {
      if (!s->movable) return T(*static_cast<const T*>(p));
    }
    return T(std::move(*p));
  }
  // The value is copied/moved while the waiter is still queued: if that
  // throws, the waiter stays where it was and nothing is lost.
  void deliver(T& v, bool movable) {
    primitive::Waiter* r = receivers_.head;
    auto* slot = static_cast<std::optional<T>*>(r->slot);
    copy_or_move(v, movable, [slot](auto&& x) { slot->emplace(std::forward<decltype(x)>(x)); });
    primitive::complete(r);
  }

  // Sends now if possible. Throws ChannelClosed.
  bool put_now(T& v, bool movable) {
    if (closed_) throw ChannelClosed("corelet: send on a closed channel");
    return deliver_or_buffer(v, movable);
  }
  bool deliver_or_buffer(T& v, bool movable) {
    if (!receivers_.empty()) {
      deliver(v, movable);
      return true;
    }
    if (buf_.size() < cap_) {
      copy_or_move(v, movable, [this](auto&& x) { buf_.push_back(std::forward<decltype(x)>(x)); });
      return true;
    }
    return false;
  }
  // Receives now if possible; sets closed if closed and drained.
  bool take_now(std::optional<T>& out, bool& closed) {
    // Each copy/move that may throw happens before any waiter leaves its
    // queue, so an exception loses neither a value nor a waiter.
    if (!buf_.empty()) {
      if (primitive::Waiter* s = senders_.head) {  // a parked sender fills the gap
        buf_.push_back(take_from(s));
        primitive::complete(s);
      }
      out.emplace(std::move(buf_.front()));
      buf_.pop_front();
      return true;
    }
    if (primitive::Waiter* s = senders_.head) {  // rendezvous
      out.emplace(take_from(s));
      primitive::complete(s);
      return true;
    }
    closed = closed_;
    return false;
  }

  bool send_impl(T& v, bool movable, Clock::time_point deadline, bool may_block, const char* call) {
    if (put_now(v, movable)) return true;
    if (!may_block) return false;
    detail::Tasklet* t = primitive::require_tasklet(call);
    primitive::Waiter w;
    w.slot = &v;
    w.movable = movable;
    primitive::enlist(w, t, senders_);
    switch (primitive::park(call, this, deadline)) {
      case primitive::Wake::Cancelled: throw Cancelled{};
      case primitive::Wake::Timeout: return false;
      case primitive::Wake::Notified: break;
    }
    if (w.state == primitive::Waiter::State::Closed) throw ChannelClosed("corelet: send on a closed channel");
    return true;
  }

  // nullopt on timeout, or on close when throw_on_close is false.
  std::optional<T> recv_impl(Clock::time_point deadline, bool throw_on_close, const char* call) {
    std::optional<T> out;
    bool closed = false;
    if (take_now(out, closed)) return out;
    if (closed) {
      if (throw_on_close) throw ChannelClosed("corelet: recv on a closed and drained channel");
      return out;
    }
    detail::Tasklet* t = primitive::require_tasklet(call);
    primitive::Waiter w;
    w.slot = &out;
    primitive::enlist(w, t, receivers_);
    switch (primitive::park(call, this, deadline)) {
      case primitive::Wake::Cancelled: throw Cancelled{};
      case primitive::Wake::Timeout: return out;
      case primitive::Wake::Notified: break;
    }
    if (w.state == primitive::Waiter::State::Closed && throw_on_close)
      throw ChannelClosed("corelet: recv on a closed and drained channel");
    return out;
  }

  primitive::WaitQueue senders_;
  primitive::WaitQueue receivers_;
  std::deque<T> buf_;
  std::size_t cap_;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------
// select — waits on several channel operations at once and performs exactly one.
//
//   std::size_t i = corelet::select(
//       corelet::on_recv(jobs, [&](Job j) { ... }),
//       corelet::on_send(results, r, [&] { ... }),
//       corelet::on_timeout(100ms, [&] { ... }));   // or corelet::on_default(...)
//
// Returns the index of the case that ran. Ready cases are tried starting at a
// rotating position, so a busy channel cannot starve the others. With an
// on_default case, select never parks. With on_timeout (at most one), it parks
// at most that long. A recv case whose channel is closed and drained fires too:
// its handler gets std::nullopt if it accepts std::optional<T>, otherwise select
// throws ChannelClosed. A send case on a closed channel throws ChannelClosed.
// Cancellation throws Cancelled and performs no operation.

namespace detail {

struct NoHandler {
  template <class... A>
  void operator()(A&&...) const noexcept {}
};

enum class CaseKind { Recv, Send, Timeout, Default };

template <class T, class F>
struct RecvCase {
  static constexpr CaseKind kind = CaseKind::Recv;
  Channel<T>& ch;
  F fn;
  std::optional<T> slot{};
  bool closed = false;
  bool try_now() {
    switch (ch.try_take(slot)) {
      case Channel<T>::Try::Done: return true;
      case Channel<T>::Try::Closed: closed = true; return true;
      case Channel<T>::Try::Wait: break;
    }
    return false;
  }
  void enqueue(Waiter& w) { ch.enlist_receiver(w, slot); }
  void fire() {
    if constexpr (std::is_invocable_v<F&, std::optional<T>>) {
      fn(std::move(slot));
    } else {
      if (!slot) throw ChannelClosed("corelet: select: recv on a closed and drained channel");
      if constexpr (std::is_invocable_v<F&, T>) fn(std::move(*slot)); else fn();
    }
  }
};

template <class T, class F>
struct SendCase {
  static constexpr CaseKind kind = CaseKind::Send;
  Channel<T>& ch;
  T value;
  F fn;
  bool try_now() {
    switch (ch.try_put(value)) {
      case Channel<T>::Try::Done: return true;
      case Channel<T>::Try::Closed: throw ChannelClosed("corelet: send on a closed channel");
      case Channel<T>::Try::Wait: break;
    }
    return false;
  }
  void enqueue(Waiter& w) { ch.enlist_sender(w, value); }
  void fire() { fn(); }
};

template <class F>
struct TimeoutCase {
  static constexpr CaseKind kind = CaseKind::Timeout;
  Clock::time_point deadline;
  F fn;
  void fire() { fn(); }
};

template <class F>
struct DefaultCase {
  static constexpr CaseKind kind = CaseKind::Default;
  F fn;
  void fire() { fn(); }
};

}  // namespace detail

template <class T, class F = detail::NoHandler>
detail::RecvCase<T, F> on_recv(Channel<T>& ch, F fn = {}) { return {ch, std::move(fn)}; }
template <class T, class V, class F = detail::NoHandler>
detail::SendCase<T, F> on_send(Channel<T>& ch, V&& value, F fn = {}) {
  return {ch, T(std::forward<V>(value)), std::move(fn)};
}
template <class Rep, class Period, class F = detail::NoHandler>
detail::TimeoutCase<F> on_timeout(std::chrono::duration<Rep, Period> d, F fn = {}) {
  return {primitive::deadline_after(d), std::move(fn)};
}
template <class F = detail::NoHandler>
detail::TimeoutCase<F> on_deadline(Clock::time_point tp, F fn = {}) { return {tp, std::move(fn)}; }
template <class F = detail::NoHandler>
detail::DefaultCase<F> on_default(F fn = {}) { return {std::move(fn)}; }

template <class... Cases>
std::size_t select(Cases&&... cases) {
  using detail::CaseKind;
  constexpr std::size_t n = sizeof...(Cases);
  static_assert(n > 0, "corelet::select needs at least one case");
  constexpr std::size_t n_default = ((std::decay_t<Cases>::kind == CaseKind::Default) + ... + 0);
  constexpr std::size_t n_timeout = ((std::decay_t<Cases>::kind == CaseKind::Timeout) + ... + 0);
  static_assert(n_default <= 1, "corelet::select: at most one on_default case");
  static_assert(n_timeout <= 1, "corelet::select: at most one on_timeout/on_deadline case");
  static_assert(n_default + n_timeout <= 1, "corelet::select: on_default and on_timeout exclude each other");

  auto all = std::forward_as_tuple(cases...);
  std::size_t chosen = n;
  auto for_each = [&](auto&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::integral_constant<std::size_t, I>{}), ...); }
    (std::make_index_sequence<n>{});
  };

  // 1. A case that is ready now, from a rotating start.
  const std::size_t start = primitive::select_start(n);
  for (std::size_t k = 0; k < n && chosen == n; ++k) {
    const std::size_t want = (start + k) % n;
    for_each([&](auto ic) {
      constexpr std::size_t i = decltype(ic)::value;
      auto& c = std::get<i>(all);
      if constexpr (std::decay_t<decltype(c)>::kind == CaseKind::Recv ||
                    std::decay_t<decltype(c)>::kind == CaseKind::Send) {
        if (i == want && chosen == n && c.try_now()) chosen = i;
      }
    });
  }
  // 2. The default case.
  if (chosen == n) {
    for_each([&](auto ic) {
      constexpr std::size_t i = decltype(ic)::value;
      if constexpr (std::decay_t<std::tuple_element_t<i, decltype(all)>>::kind == CaseKind::Default) chosen = i;
    });
  }
  // 3. Park on all of them.
  if (chosen == n) {
    detail::Tasklet* t = primitive::require_tasklet("corelet::select");
    primitive::Waiter ws[n];
    Clock::time_point deadline = Clock::time_point::max();
    std::size_t timeout_index = n;
    primitive::Waiter* chain = nullptr;
    for_each([&](auto ic) {
      constexpr std::size_t i = decltype(ic)::value;
      auto& c = std::get<i>(all);
      if constexpr (std::decay_t<decltype(c)>::kind == CaseKind::Timeout) {
        deadline = c.deadline;
        timeout_index = i;
      } else if constexpr (std::decay_t<decltype(c)>::kind != CaseKind::Default) {
        primitive::add_case(t, ws[i], i, chain);
        c.enqueue(ws[i]);
      }
    });
    t->waiters = chain;
    switch (primitive::park("corelet::select", nullptr, deadline)) {
      case primitive::Wake::Cancelled: throw Cancelled{};
      case primitive::Wake::Timeout: chosen = timeout_index; break;
      case primitive::Wake::Notified: chosen = primitive::fired(ws, n); break;
    }
    if (chosen < n && ws[chosen].state == primitive::Waiter::State::Closed) {
      bool is_send = false;
      for_each([&](auto ic) {
        constexpr std::size_t i = decltype(ic)::value;
        if constexpr (std::decay_t<std::tuple_element_t<i, decltype(all)>>::kind == CaseKind::Send)
          if (i == chosen) is_send = true;
      });
      if (is_send) throw ChannelClosed("corelet: select: send on a closed channel");
    }
  }
  for_each([&](auto ic) {
    constexpr std::size_t i = decltype(ic)::value;
    if (i == chosen) std::get<i>(all).fire();
  });
  return chosen;
}

}  // namespace corelet
