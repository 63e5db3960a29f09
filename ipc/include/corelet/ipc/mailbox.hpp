#pragma once
// corelet/ipc/mailbox.hpp — typed messages between tasklets on any workers.
//
//   corelet::Mailbox<Order> inbox;                 // owned by this worker
//   corelet::register_name("orders", inbox.address());
//   ...                                            // elsewhere, any worker:
//   corelet::send(*corelet::whereis("orders"), Order{...});
//   Order o = inbox.recv();                        // parks until one arrives
//
// A Mailbox is a many-producer, one-owner channel that crosses workers: any
// tasklet anywhere that knows its Address may send to it; the tasklets of
// the owning worker receive. Messages from one sender tasklet arrive in the
// order sent. A mailbox buffers without bound (the rings between workers
// bound what is in flight; a receiver that never receives grows its queue).
//
// Addresses are plain values: they travel inside messages, and they name an
// incarnation of a worker, so a message to a mailbox of a worker that died
// fails with WorkerLost even after the worker was replaced.

#include <corelet/ipc/cluster.hpp>
#include <corelet/ipc/codec.hpp>
#include <corelet/sched/primitive.hpp>
#include <corelet/sched/errors.hpp>

#include <boost/circular_buffer.hpp>

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>

namespace corelet {

// Address — where a mailbox lives: worker, that worker's incarnation, box id.
struct Address {
  std::int32_t worker = -1;
  std::uint32_t gen = 0;
  std::uint32_t box = 0;
  bool valid() const noexcept { return worker >= 0 && box != 0; }
  auto operator<=>(const Address&) const = default;
};
std::string to_string(const Address& a);

namespace ipc::detail {

struct MailboxBase {
  // deliver — one message for this box, in the loop's context.
  virtual void deliver(Decoder& in, std::uint64_t type) = 0;
  std::uint64_t type = 0;  // typeid(T).hash_code(): the same in every worker (one binary)
  const char* type_name = "";

 protected:
  ~MailboxBase() = default;
};

Address open_box(MailboxBase* box);   // registers it in this worker; UsageError outside a cluster
void close_box(const Address& a) noexcept;
MailboxBase* find_box(const Address& a) noexcept;  // this worker's, or nullptr
// send_mail_parts — a mail message ([MailHeader, payload] in parts) to a box
// on another worker.
void send_mail_parts(const Address& to, const std::string_view* parts, std::size_t n);
// MailHeader — what precedes the payload of a mail message.
struct MailHeader {
  std::uint32_t box;
  std::uint32_t gen;
  std::uint64_t type;
};
static_assert(sizeof(MailHeader) == 16);
void check_address(const Address& to, const char* call);

// type_code — typeid(T).hash_code(), the same in every worker (one binary);
// computed once (libstdc++ hashes the type's name on every hash_code()).
template <class T>
std::uint64_t type_code() noexcept {
  static const std::uint64_t code = typeid(T).hash_code();
  return code;
}

// MailQueue — a mailbox's messages: a ring buffer that doubles when full, so
// that a steady stream allocates nothing. A trivially copyable T is kept as
// raw bytes, decoded straight from the ring into its slot (one copy in, one
// out); any other T as a T in a boost::circular_buffer, moved in and out.
// (The raw slots are not a circular_buffer: it has no emplace, and its
// push_back() copies a value-initialised temporary into the slot, a second
// copy of every message.)
template <class T>
class MailQueue {
  static constexpr bool kRaw = std::is_trivially_copyable_v<T>;

  class RawRing {
    struct alignas(T) Slot {
      unsigned char b[sizeof(T)];  // no initialiser: new Slot[n] leaves it to the memcpy
    };

   public:
    std::size_t size() const noexcept { return count_; }
    // A slot at the back, to be filled by the caller.
    unsigned char* append() {
      if (count_ == cap_) grow();
      unsigned char* p = slots_[(head_ + count_) & (cap_ - 1)].b;
      ++count_;
      return p;
    }
    const unsigned char* front() const noexcept { return slots_[head_].b; }
    void pop_front() noexcept {
      head_ = (head_ + 1) & (cap_ - 1);
      --count_;
    }

   private:
    void grow() {
      const std::size_t n = cap_ ? 2 * cap_ : 16;  // a power of two: the index is a mask
      std::unique_ptr<Slot[]> s(new Slot[n]);
      for (std::size_t i = 0; i < count_; ++i) std::memcpy(s[i].b, slots_[(head_ + i) & (cap_ - 1)].b, sizeof(T));
      slots_ = std::move(s);
      cap_ = n;
      head_ = 0;
    }
    std::unique_ptr<Slot[]> slots_;
    std::size_t cap_ = 0, head_ = 0, count_ = 0;
  };

 public:
  bool empty() const noexcept { return q_.size() == 0; }
  std::size_t size() const noexcept { return q_.size(); }
  // Appends the T that `in` holds next. DecodeError leaves the queue as it was.
  void push_decoded(Decoder& in) {
    if constexpr (kRaw) {
      const char* bytes = in.take(sizeof(T));  // DecodeError before anything is queued
      std::memcpy(q_.append(), bytes, sizeof(T));
    } else {
      grow();
      q_.push_back(in.get<T>());
    }
  }
  void push(T&& v) {
    if constexpr (kRaw) {
      std::memcpy(q_.append(), &v, sizeof(T));
    } else {
      grow();
      q_.push_back(std::move(v));
    }
  }
  // Copies the front message into `out` and drops it (a trivially copyable T).
  void pop_into(T& out) noexcept {
    static_assert(kRaw);
    std::memcpy(static_cast<void*>(&out), q_.front(), sizeof(T));
    q_.pop_front();
  }
  T pop() {
    if constexpr (kRaw) {
      T v(*std::launder(reinterpret_cast<const T*>(q_.front())));
      q_.pop_front();
      return v;
    } else {
      T v(std::move(q_.front()));
      q_.pop_front();
      return v;
    }
  }

 private:
  void grow() {
    if (q_.full()) q_.set_capacity(std::max<std::size_t>(16, 2 * q_.capacity()));
  }
  std::conditional_t<kRaw, RawRing, boost::circular_buffer<T>> q_;
};

}  // namespace ipc::detail

// Mailbox<T> — see the top of this file. Not copyable or movable (its
// address is registered); belongs to the worker and scheduler that made it.
// T must be encodable (codec.hpp).
template <class T>
class Mailbox final : public ipc::detail::MailboxBase {
 public:
  // Mailbox — opens a mailbox in this worker. UsageError outside a cluster.
  Mailbox() {
    type = ipc::detail::type_code<T>();
    type_name = typeid(T).name();
    addr_ = ipc::detail::open_box(this);
  }
  // Destroying a mailbox closes it; tasklets still waiting in recv get
  // ChannelClosed without touching the memory that is going away.
  ~Mailbox() {
    close_box();
    corelet::primitive::wake_all(waiters_, corelet::primitive::Waiter::State::Closed);
  }
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  const Address& address() const noexcept { return addr_; }

  // recv — the next message; parks until one arrives. Throws ChannelClosed
  // once closed and drained, DecodeError for a message of another type (it
  // is dropped; the next recv goes on), Cancelled.
  T recv() {
    if (!q_.empty() && !bad_) return q_.pop();  // one copy, into the caller's object
    return recv_waiting();
  }
  // recv_for / recv_until — as recv; nullopt on timeout.
  template <class Rep, class Period>
  std::optional<T> recv_for(std::chrono::duration<Rep, Period> d) {
    return recv_until(corelet::primitive::deadline_after(d));
  }
  std::optional<T> recv_until(Clock::time_point tp) {
    for (;;) {
      if (auto v = try_recv()) return v;
      if (closed_) throw ChannelClosed();
      // It must wait: wait_state throws UsageError("corelet: Mailbox::recv called outside a tasklet").
      const auto st = corelet::primitive::wait_state(waiters_, "Mailbox::recv", this, tp, WaitKind::Remote);
      if (st == corelet::primitive::Waiter::State::Closed) throw ChannelClosed();  // destroyed: *this is gone
      if (st == corelet::primitive::Waiter::State::Pending && q_.empty() && !bad_) return std::nullopt;
    }
  }
  // try_recv — a message if one is here; nullopt otherwise.
  std::optional<T> try_recv() {
    throw_if_bad();
    if (q_.empty()) return std::nullopt;
    return q_.pop();
  }
  std::size_t size() const noexcept { return q_.size(); }

  // close — no more messages are accepted (later ones are dropped); the
  // queued ones can still be received; receivers then get ChannelClosed.
  void close() noexcept {
    close_box();
    corelet::primitive::wake_all(waiters_);
  }

  // put — used by send() for a mailbox of this worker.
  void put(T v) {
    if (closed_) return;
    if constexpr (kHandoff) {
      if (auto* w = handoff_waiter()) return hand_off(w, &v);
    }
    q_.push(std::move(v));
    corelet::primitive::wake_one(waiters_);
  }

 private:
  // kHandoff — a message for a receiver already parked in recv() is copied
  // from the ring straight into that recv's result, not through the queue:
  // one copy after the ring, as a plain ring's consumer makes. The waiter's
  // `slot` points at the result; `index` becomes 1 once it is filled.
  static constexpr bool kHandoff = std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T>;

  T recv_waiting() {
    if constexpr (kHandoff) {
      return recv_handed();
    } else {
      return std::move(*recv_until(Clock::time_point::max()));
    }
  }
  T recv_handed() {
    // Every return returns v, declared at the function's outermost scope: v
    // is the caller's object (GCC's NRVO needs both; objdump shows one memcpy).
    T v;
    for (;;) {
      throw_if_bad();
      if (!q_.empty()) {
        q_.pop_into(v);
        return v;
      }
      if (closed_) throw ChannelClosed();
      corelet::primitive::Waiter w;
      w.slot = &v;
      corelet::primitive::enlist(w, corelet::primitive::require_tasklet("Mailbox::recv"), waiters_);
      // park unlinks w on every return, so deliver never writes into v after this.
      if (corelet::primitive::park("Mailbox::recv", this, Clock::time_point::max(), WaitKind::Remote) ==
          corelet::primitive::Wake::Cancelled)
        throw Cancelled{};
      if (w.state == corelet::primitive::Waiter::State::Closed) throw ChannelClosed();  // *this may be gone
      if (w.index == 1) return v;
    }
  }

  // The receiver a message goes to directly: the first waiter, if it waits
  // in recv() and nothing is queued before it (the order of arrival holds).
  corelet::primitive::Waiter* handoff_waiter() const noexcept {
    corelet::primitive::Waiter* w = waiters_.head;
    return w && w->slot && q_.empty() ? w : nullptr;
  }
  static void hand_off(corelet::primitive::Waiter* w, const void* bytes) noexcept {
    std::memcpy(w->slot, bytes, sizeof(T));
    w->index = 1;
    corelet::primitive::complete(w);
  }

  void throw_if_bad() {
    if (!bad_) return;
    std::string why = std::move(*bad_);
    bad_.reset();
    throw ipc::DecodeError(why);
  }

  void deliver(ipc::Decoder& in, std::uint64_t sent_type) override {
    if (closed_) return;
    if (sent_type != type) {
      bad_ = std::string("corelet: a message of another type was sent to a Mailbox<") + type_name + "> at " +
             to_string(addr_) + "; it was dropped";
    } else {
      if constexpr (kHandoff) {
        if (auto* w = handoff_waiter()) return hand_off(w, in.take(sizeof(T)));  // DecodeError: w untouched
      }
      q_.push_decoded(in);
    }
    corelet::primitive::wake_one(waiters_);
  }

  void close_box() noexcept {
    if (closed_) return;
    closed_ = true;
    ipc::detail::close_box(addr_);
  }

  Address addr_;
  ipc::detail::MailQueue<T> q_;
  corelet::primitive::WaitQueue waiters_;
  std::optional<std::string> bad_;
  bool closed_ = false;
};

// send — delivers v to the mailbox at `to`. Parks only while the ring to
// that worker is full. Throws WorkerLost if that worker (incarnation) is
// dead, std::invalid_argument for an invalid address, Cancelled. A message
// to a closed or unknown mailbox of a live worker is dropped.
template <class T>
void send(const Address& to, const T& v) {
  ipc::detail::check_address(to, "send");
  if (to.worker == this_worker()) {
    auto* box = ipc::detail::find_box(to);
    if (!box) return;
    if (box->type != ipc::detail::type_code<T>()) {
      throw std::invalid_argument(std::string("corelet::send: the mailbox at ") + to_string(to) +
                                  " takes another type than " + typeid(T).name());
    }
    static_cast<Mailbox<T>*>(box)->put(v);
    return;
  }
  const ipc::detail::MailHeader h{to.box, to.gen, ipc::detail::type_code<T>()};
  if constexpr (std::is_trivially_copyable_v<T>) {
    // No allocation: the header and the value are copied into the ring.
    const std::string_view parts[2] = {{reinterpret_cast<const char*>(&h), sizeof h},
                                       {reinterpret_cast<const char*>(&v), sizeof v}};
    ipc::detail::send_mail_parts(to, parts, 2);
  } else {
    std::string body;
    ipc::Encoder(body).put(v);
    const std::string_view parts[2] = {{reinterpret_cast<const char*>(&h), sizeof h}, body};
    ipc::detail::send_mail_parts(to, parts, 2);
  }
}

// broadcast — send(a, v) to every address, encoding v once. A lost worker
// does not stop the others: returns the addresses whose worker was lost.
template <class T>
std::vector<Address> broadcast(const std::vector<Address>& to, const T& v) {
  std::vector<Address> lost;
  std::string body;
  bool encoded = false;
  for (const Address& a : to) {
    try {
      if (a.worker == this_worker()) {
        send(a, v);
        continue;
      }
      ipc::detail::check_address(a, "broadcast");
      if (!encoded) {
        ipc::Encoder(body).put(v);
        encoded = true;
      }
      const ipc::detail::MailHeader h{a.box, a.gen, ipc::detail::type_code<T>()};
      const std::string_view parts[2] = {{reinterpret_cast<const char*>(&h), sizeof h}, body};
      ipc::detail::send_mail_parts(a, parts, 2);
    } catch (const WorkerLost&) {
      lost.push_back(a);
    }
  }
  return lost;
}

// register_name — makes `a` findable by `name` from every worker (the
// cluster's name registry, in shared memory). Names are at most 55 bytes.
// Returns false if the name is taken by a live address. Throws
// std::invalid_argument for a bad name, std::length_error when the registry
// (1024 names) is full, UsageError outside a cluster.
bool register_name(std::string_view name, const Address& a);
// unregister_name — removes the name; false if it was not registered.
bool unregister_name(std::string_view name);
// whereis — the address registered under `name`; nullopt if none, or if
// its worker has died since (the name is then free again).
std::optional<Address> whereis(std::string_view name);

}  // namespace corelet
