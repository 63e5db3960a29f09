// A worker process's side of the cluster: its state, the loop hook's poll,
// and the receive path — frames from the rings to the receiving tasklet
// (reassembly, dispatch, calls, replies, mail), kept in one file because it is
// the hot path of every message. Sending is in sending.cpp, sleeping and
// waking in wakeup.cpp, peer deaths and stop in control.cpp.

#include "worker.hpp"

#include <corelet/sched/task.hpp>

#include <corelet/core/cycles.hpp>

#include <algorithm>
#include <cstring>

namespace corelet::ipc::detail {

Cluster* g_cluster = nullptr;
Worker* g_worker = nullptr;
int g_worker_id = -1;

using corelet::primitive::Waiter;

Worker::Worker(Cluster& c, int id)
    : c_(c), id_(id), n_(c.n), out_(c.n), in_(c.n), known_gen_(c.n), peer_dead_(c.n), dirty_(c.n) {
  seen_epoch_ = c.ctl->epoch.load(std::memory_order_acquire);
  for (int k = 0; k < n_; ++k) {
    peer_dead_[k] = c.slot(k).state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(SlotState::Alive);
    // A dead peer's replacement is recognised by a generation other than
    // the one known: none is known for a peer dead now (generations start at 1).
    known_gen_[k] = peer_dead_[k] ? 0 : c.slot(k).gen.load(std::memory_order_acquire);
    if (k == id_) continue;
    if (peer_dead_[k]) {
      // It may have written to us before it died: nobody uses these rings
      // now, and its replacement waits for our acknowledgement (below).
      reset_ring(c.ring(id_, k));
      reset_ring(c.ring(k, id_));
    }
    out_[k].w.attach(c.ring(id_, k));
    in_[k].r.attach(c.ring(k, id_));
  }
  c.slot(id_).acked_epoch.store(seen_epoch_, std::memory_order_release);
  if (c.cfg.idle_spin.count() > 0) (void)core::cycles_per_us();  // calibrated now, not in the first idle spin
}

Worker::~Worker() = default;

// ---------------------------------------------------------------------------
// The loop hook.

void Worker::poll() noexcept {
  ++round_;
  const std::uint64_t e = c_.ctl->epoch.load(std::memory_order_acquire);
  if (e != seen_epoch_) handle_control(e);
  drain();
  for (int k = 0; k < n_; ++k) {
    if (dirty_[k]) flush(k);
    Out& o = out_[k];
    if (o.space.count != 0) {
      // The consumer woke us after freeing space; if it freed too little,
      // raise the flag again (it cleared it) so that its next release wakes us.
      if (peer_dead_[k] || o.w.has_room(o.need) || o.w.announce_waiting(o.need)) corelet::primitive::wake_all(o.space);
    }
  }
}

bool Worker::inbound_pending() noexcept {
  for (int k = 0; k < n_; ++k)
    if (k != id_ && !in_[k].r.empty()) return true;
  return false;
}

void Worker::drain() noexcept {
  bool got = false;
  for (int k = 0; k < n_; ++k) {
    if (k == id_) continue;
    In& in = in_[k];
    if (peer_dead_[k]) {
      if (in.r.empty()) continue;
      // Frames from a peer we think dead: its replacement, whose Alive state
      // was published before it could write them. Catch up first.
      handle_control(c_.ctl->epoch.load(std::memory_order_acquire));
      if (peer_dead_[k]) {
        // Still dead after that fresh look: the frames are the dead
        // incarnation's (its replacement would be visible by now). Drop them,
        // or the worker would never sleep while they sit there.
        reset_ring(c_.ring(k, id_));
        in.r.attach(c_.ring(k, id_));
        in.received = 0;
        continue;
      }
    }
    // Per ring per poll at most 1,024 frames, so that other rings and the
    // tasklets get their turn; and a large frame ends the drain, so that a
    // receiver woken by a large message runs (and waits in recv again, to be
    // handed the next one straight from the ring) before more of them are
    // copied into its mailbox's queue: one copy after the ring, not two.
    Frame f;
    int budget = 1024;
    bool popped = false;
    bool large = false;
    while (budget-- > 0 && !large && in.r.peek(f)) {
      large = f.size >= kLargeFrame;
      if ((f.flags & (kFirst | kLast)) == (kFirst | kLast)) {
        in.message = in.received++;
        dispatch(k, f.kind, f.data, f.size);
      } else if (f.flags & kFirst) {
        in.partial_kind = f.kind;
        in.message = in.received++;
        in.in_partial = reassemble(in, f, true);
      } else if (in.in_partial) {  // else: the rest of a message whose sender gave up; dropped
        in.in_partial = reassemble(in, f, false);
        if (in.in_partial && (f.flags & kLast)) {
          in.in_partial = false;
          dispatch(k, in.partial_kind, reinterpret_cast<const std::byte*>(in.partial.data()), in.partial.size());
          if (in.partial.capacity() > (std::size_t{1} << 20)) std::string().swap(in.partial);
        }
      }
      in.r.pop(f);
      popped = true;
    }
    if (popped) {
      got = true;
      if (in.r.release_and_check_waiter()) {
        ipc::detail::wake(c_, k);
        ++wakes_sent_;
      }
    }
  }
  if (got) recent_rx_ = true;
}

void Worker::add_stats(WorkerStats& s) const noexcept {
  s.worker = id_;
  for (int k = 0; k < n_; ++k) {
    if (k == id_) continue;
    s.ring_in_bytes += in_[k].r.depth();
    s.ring_out_bytes += out_[k].w.depth();
  }
  s.messages_in = messages_in_;
  s.messages_out = messages_out_;
  s.wakes_sent = wakes_sent_;
}

// ---------------------------------------------------------------------------
// Receiving.

bool Worker::reassemble(In& in, const Frame& f, bool first) noexcept {
  try {
    if (first) {
      in.partial.assign(reinterpret_cast<const char*>(f.data), f.size);
    } else {
      in.partial.append(reinterpret_cast<const char*>(f.data), f.size);
    }
    return true;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "corelet: worker %d: out of memory reassembling a %zu-byte message; dropped\n", id_,
                 in.partial.size() + f.size);
    std::string().swap(in.partial);
    return false;
  }
}

void Worker::dispatch(int from, std::uint16_t kind, const std::byte* p, std::size_t n) noexcept {
  ++messages_in_;
  // Counted at its first frame (drain), as the sender counts it at its first
  // commit: a message whose sender gave up midway still counts on both sides.
  corelet::detail::trace_message(false, message_id(from, id_, in_[from].message), kind_name(kind));
  try {
    switch (kind) {
      case kCall: on_call(from, p, n); break;
      case kReply: on_reply(from, p, n); break;
      case kMail: on_mail(p, n); break;
      default:
        std::fprintf(stderr, "corelet: worker %d: message of unknown kind %u from worker %d dropped\n", id_,
                     unsigned{kind}, from);
    }
  } catch (...) {
    auto [type, msg] = current_exception_info();
    std::fprintf(stderr, "corelet: worker %d: message from worker %d dropped: %s: %s\n", id_, from, type.c_str(),
                 msg.c_str());
  }
}

void Worker::on_call(int from, const std::byte* p, std::size_t n) {
  Decoder d(p, n);
  const auto call_id = d.get<std::uint64_t>();
  try {
    start_handler(from, call_id, d);
  } catch (...) {
    // The call cannot run (out of memory, a malformed message): the caller
    // must hear so rather than wait forever. A small tasklet sends the error.
    auto [type, msg] = current_exception_info();
    std::string reply;
    Encoder out(reply);
    out.put(call_id);
    out.put(std::uint8_t{1});
    out.put_string(type);
    out.put_string(msg);
    const std::uint32_t incarnation = in_[from].incarnation;
    corelet::spawn([this, from, incarnation, reply = std::move(reply)] {
      try {
        send(from, kReply, reply, "reply", incarnation);
      } catch (const WorkerLost&) {
      }
    }).detach();
  }
}

void Worker::start_handler(int from, std::uint64_t call_id, Decoder& d) {
  const auto mode = d.get<std::uint8_t>();
  std::string name(d.get_string());
  const RemoteEntry* e = find_remote(name);
  std::string args(d.position(), d.remaining());
  const std::uint32_t incarnation = in_[from].incarnation;
  SpawnOptions opts;
  opts.name = name;
  opts.stack_size = c_.cfg.stack_size;
  corelet::spawn(std::move(opts), [this, from, incarnation, call_id, mode, e, name = std::move(name),
                                   args = std::move(args)] {
    std::string reply;
    Encoder out(reply);
    out.put(call_id);
    out.put(std::uint8_t{0});
    try {
      if (!e)
        throw UsageError("corelet: no function named \"" + name + "\" is registered with CORELET_REMOTE on worker " +
                         std::to_string(id_));
      Decoder in(args.data(), args.size());
      (mode == kCallChunk ? e->chunk : e->call)(in, out);
    } catch (...) {
      auto [type, msg] = current_exception_info();
      reply.clear();
      out.put(call_id);
      out.put(std::uint8_t{1});
      out.put_string(type);
      out.put_string(msg);
    }
    try {
      send(from, kReply, reply, name, incarnation);
    } catch (const WorkerLost&) {
      // The caller died (maybe replaced since): nobody waits for this reply.
    }
  }).detach();
}

void Worker::on_reply(int from, const std::byte* p, std::size_t n) {
  Decoder d(p, n);
  const auto call_id = d.get<std::uint64_t>();
  const auto status = d.get<std::uint8_t>();
  auto it = calls_.find(call_id);
  if (it == calls_.end() || it->second->worker != from) return;  // not ours (a stale reply)
  std::shared_ptr<CallBase> st = std::move(it->second);
  calls_.erase(it);
  try {
    if (status == 0) {
      st->complete(d);
    } else {
      std::string type(d.get_string());
      std::string msg(d.get_string());
      st->error = std::make_exception_ptr(RemoteError(std::move(type), std::move(msg), from));
    }
  } catch (...) {
    st->error = std::current_exception();
  }
  finish(*st);
}

}  // namespace corelet::ipc::detail

namespace corelet::ipc::detail {

Address Worker::open_box(MailboxBase* box) {
  Address a;
  a.worker = id_;
  a.gen = c_.slot(id_).gen.load(std::memory_order_relaxed);
  a.box = next_box_++;
  if (next_box_ == 0) next_box_ = 1;
  boxes_.emplace(a.box, box);
  return a;
}

void Worker::on_mail(const std::byte* p, std::size_t n) {
  Decoder d(p, n);
  MailHeader h;
  std::memcpy(&h, d.take(sizeof h), sizeof h);
  if (h.gen != c_.slot(id_).gen.load(std::memory_order_relaxed)) return;  // for a predecessor of ours
  if (MailboxBase* b = find_box(h.box)) b->deliver(d, h.type);
}

}  // namespace corelet::ipc::detail
