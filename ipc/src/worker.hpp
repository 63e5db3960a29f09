#pragma once
// Internal: a worker process's side of the cluster — its rings, the calls it
// waits for, and the hook that runs inside its scheduler loop.

#include "shared.hpp"

#include <corelet/ipc/remote.hpp>
#include <corelet/sched/detail/loop_hook.hpp>
#include <corelet/sched/primitive.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace corelet::ipc::detail {

// Message kinds (FrameHeader::kind).
enum MsgKind : std::uint16_t { kCall = 1, kReply = 2, kMail = 3 };
// Frame flags: a message is one frame (both) or a run of chunks.
inline constexpr std::uint16_t kFirst = 1;
inline constexpr std::uint16_t kLast = 2;
// A frame this large ends a poll's drain of its ring (see Worker::drain).
inline constexpr std::uint32_t kLargeFrame = 16 * 1024;

// A message's id in the trace: the same at both ends (each ring is FIFO, and
// both ends count the messages since its last reset).
inline std::uint64_t message_id(int from, int to, std::uint64_t seq) noexcept {
  return (static_cast<std::uint64_t>(from) << 52) ^ (static_cast<std::uint64_t>(to) << 40) ^ seq;
}
inline const char* kind_name(std::uint16_t kind) noexcept {
  switch (kind) {
    case kCall: return "call";
    case kReply: return "reply";
    case kMail: return "mail";
  }
  return "message";
}


class Worker final : public corelet::detail::LoopHook {
 public:
  Worker(Cluster& c, int id);
  ~Worker();

  int id() const noexcept { return id_; }
  Cluster& cluster() const noexcept { return c_; }

  // send — one whole message to worker `to` (not this one), in chunks if it
  // is larger than a frame. Senders to one worker take turns in FIFO order.
  // Parks while the ring is full. Throws WorkerLost if `to` is dead (task
  // names what was being sent), Cancelled.
  // `expected`: the incarnation of `to` the message is for (a reply: the
  // caller's, as seen when the call arrived); kAnyIncarnation: the current.
  static constexpr std::uint32_t kAnyIncarnation = 0xffffffff;
  void send(int to, std::uint16_t kind, std::string_view msg, std::string_view task,
            std::uint32_t expected = kAnyIncarnation) {
    send_parts(to, kind, &msg, 1, task, expected);
  }
  // send_parts — the same for a message made of `n` consecutive parts.
  void send_parts(int to, std::uint16_t kind, const std::string_view* parts, std::size_t n, std::string_view task,
                  std::uint32_t expected = kAnyIncarnation);

  // call — registers `st` under a new call id (written at the start of msg)
  // and sends the call message.
  void call(int to, std::string&& msg, std::shared_ptr<CallBase> st);

  // flush_all — publishes every ring's unpublished frames now.
  void flush_all() noexcept;

  // Mailboxes of this worker.
  Address open_box(MailboxBase* box);
  void close_box(std::uint32_t id) noexcept {
    boxes_.erase(id);
    if (id == last_box_) last_box_ = 0;
  }
  // A stream of messages goes to one box: the last one found is kept.
  MailboxBase* find_box(std::uint32_t id) const noexcept {
    if (id == last_box_) return last_box_ptr_;
    auto it = boxes_.find(id);
    if (it == boxes_.end()) return nullptr;
    last_box_ = id;
    last_box_ptr_ = it->second;
    return it->second;
  }

  bool peer_alive(int w) const noexcept { return w == id_ || !peer_dead_[w]; }
  WorkerExit last_exit(int w) const;

  // serve — the main tasklet of workers other than 0: parks until the cluster stops.
  void serve();
  // main_started — worker 0's main tasklet, cancelled on a signal-driven stop.
  void main_started(corelet::detail::Tasklet* t) noexcept { main_ = t; }
  void main_ended() noexcept { main_ = nullptr; }

  // LoopHook
  void poll() noexcept override;
  bool prepare_sleep() noexcept override;
  bool sleep(const struct timespec* timeout) noexcept override;
  void woke() noexcept override;
  bool keeps_alive() const noexcept override { return !stopping_; }
  void wake() noexcept override;
  void add_stats(WorkerStats& s) const noexcept override;

 private:
  struct Out {
    RingWriter w;
    bool busy = false;        // a sender holds the turn
    std::uint32_t need = 0;   // frame size the turn holder waits room for
    std::uint64_t round = 0;  // poll round of the last send (see send)
    const void* sender = nullptr;  // the tasklet that sent last
    corelet::primitive::WaitQueue turn;   // senders waiting for the turn
    corelet::primitive::WaitQueue space;  // the turn holder, waiting for room
    std::uint64_t sent = 0;            // messages, since the ring was last reset (trace ids)
  };
  struct In {
    RingReader r;
    std::string partial;      // chunks of a message being reassembled
    std::uint16_t partial_kind = 0;
    bool in_partial = false;
    std::uint32_t incarnation = 0;  // +1 each time the peer is lost
    std::uint64_t received = 0;     // messages begun, since the ring was last reset (trace ids)
    std::uint64_t message = 0;      // the number of the one being received
  };

  void handle_control(std::uint64_t epoch) noexcept;
  void peer_died(int k) noexcept;
  void begin_stop() noexcept;
  void drain() noexcept;
  bool inbound_pending() noexcept;
  void flush(int to) noexcept;
  // Room for a frame of len bytes once try_reserve failed: parks until the
  // peer frees space; throws WorkerLost if it dies or is replaced meanwhile.
  std::byte* reserve_waiting(int to, Out& o, std::uint32_t len, std::uint32_t incarnation, std::string_view task);
  void wait_space(int to, Out& o, std::uint32_t size);
  void dispatch(int from, std::uint16_t kind, const std::byte* p, std::size_t n) noexcept;
  void on_call(int from, const std::byte* p, std::size_t n);
  void start_handler(int from, std::uint64_t call_id, Decoder& d);
  bool reassemble(In& in, const Frame& f, bool first) noexcept;
  void on_reply(int from, const std::byte* p, std::size_t n);
  void on_mail(const std::byte* p, std::size_t n);
  [[noreturn]] void throw_lost(int to, std::string_view task) const;

  Cluster& c_;
  const int id_;
  const int n_;
  std::vector<Out> out_;
  std::vector<In> in_;
  std::vector<std::uint32_t> known_gen_;
  std::vector<char> peer_dead_;  // the peer is dead (not yet replaced): sends to it fail
  std::vector<char> dirty_;  // unpublished frames per peer
  std::uint64_t seen_epoch_ = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<CallBase>> calls_;
  std::uint64_t next_call_ = 1;
  bool stopping_ = false;
  corelet::primitive::WaitQueue stop_waiters_;
  corelet::detail::Tasklet* main_ = nullptr;
  bool recent_rx_ = false;   // received since the last sleep (prepare_sleep spins then)
  std::uint64_t round_ = 1;  // poll() calls so far
  std::uint64_t messages_in_ = 0;   // for stats()
  std::uint64_t messages_out_ = 0;
  std::uint64_t wakes_sent_ = 0;
  std::unordered_map<std::uint32_t, MailboxBase*> boxes_;
  mutable std::uint32_t last_box_ = 0;  // box ids start at 1: 0 is none
  mutable MailboxBase* last_box_ptr_ = nullptr;
  std::uint32_t next_box_ = 1;
};

}  // namespace corelet::ipc::detail
