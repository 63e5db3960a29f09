// A worker process's side of the cluster: sending and receiving over the
// rings, calls in flight, peer deaths, sleeping and waking.
//
// Wakeups (Dekker). A worker about to sleep raises its `sleeping` flag, issues
// a seq_cst fence and re-checks every inbound ring; a producer publishes its
// frames (release), issues a seq_cst fence and then reads the flag. With both
// fences seq_cst, at least one side sees the other's store: either the sleeper
// finds the frames, or the producer finds the flag and wakes it — through the
// eventfd its reactor waits on, or with FUTEX_WAKE if it sleeps on the flag
// word itself (see Worker::sleep; the word says which). The same pairing guards a producer waiting for
// ring space (RingWriter::announce_waiting / RingReader::release_and_check_waiter).
//
// Peer death. The supervisor marks the slot Dead and bumps the epoch; each
// survivor, on seeing it, fails the calls it waits on there, fails its
// senders to it, and empties both rings it shares with it (nobody else uses
// them now), then acknowledges the epoch. Only after every survivor has
// acknowledged does the supervisor fork the replacement, so the replacement
// never sees a frame of its predecessor and survivors never see one of it
// before they know it is alive (its Alive state is published before the fork).

#include "worker.hpp"

#include <corelet/sched/futex.hpp>
#include <corelet/sched/task.hpp>

#include <corelet/core/cycles.hpp>

#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace corelet::ipc::detail {

Cluster* g_cluster = nullptr;
Worker* g_worker = nullptr;
int g_worker_id = -1;

namespace {
using corelet::detail::Waiter;

}  // namespace

// A worker's `sleeping` word:
//   0           awake;
//   kOnEventfd  asleep (or about to be) in its reactor or ppoll: wake it
//               through its eventfd;
//   kOnFutex    asleep in futex_wait on the word itself: FUTEX_WAKE;
//   kWakeDue    woken while awake (a freed ring, a peer's death): the next
//               prepare_sleep() consumes it and does not sleep.
// Producers move 1 or 2 to 0 (whoever does, wakes); wake() moves anything to
// kWakeDue; only the worker moves kWakeDue back to 0.
constexpr std::uint32_t kOnEventfd = 1;
constexpr std::uint32_t kOnFutex = 2;
constexpr std::uint32_t kWakeDue = 3;

namespace {
void write_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  ssize_t r = ::write(fd, &one, sizeof one);
  (void)r;  // EAGAIN only when the counter is saturated: a wakeup is pending anyway
}
}  // namespace

namespace {
// A message's id in the trace: the same at both ends (each ring is FIFO, and
// both ends count the messages since its last reset).
std::uint64_t message_id(int from, int to, std::uint64_t seq) noexcept {
  return (static_cast<std::uint64_t>(from) << 52) ^ (static_cast<std::uint64_t>(to) << 40) ^ seq;
}
const char* kind_name(std::uint16_t kind) noexcept {
  switch (kind) {
    case kCall: return "call";
    case kReply: return "reply";
    case kMail: return "mail";
  }
  return "message";
}
}  // namespace

void wake(const Cluster& c, int w) noexcept {
  // Unconditional (the supervisor, a freed ring): w wakes wherever it sleeps,
  // and if it is awake its next prepare_sleep() does not sleep.
  WorkerSlot& s = c.slot(w);
  const std::uint32_t was = s.sleeping.exchange(kWakeDue, std::memory_order_seq_cst);
  if (was == kOnFutex) {
    corelet::futex_wake(s.sleeping, 1);
  } else {
    write_eventfd(s.event_fd);  // for a reactor sleep (a pending read, or poll)
  }
}

bool wake_if_sleeping(const Cluster& c, int w) noexcept {
  WorkerSlot& s = c.slot(w);
  std::uint32_t was = s.sleeping.load(std::memory_order_relaxed);
  while (was == kOnEventfd || was == kOnFutex) {
    if (s.sleeping.compare_exchange_weak(was, 0, std::memory_order_relaxed)) {
      if (was == kOnFutex) {
        corelet::futex_wake(s.sleeping, 1);
      } else {
        write_eventfd(s.event_fd);
      }
      return true;
    }
  }
  return false;
}

void reset_ring(RingHeader* h) noexcept {
  h->write.store(0, std::memory_order_relaxed);
  h->read.store(0, std::memory_order_relaxed);
  h->producer_waiting.store(0, std::memory_order_relaxed);
}

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

WorkerExit Worker::last_exit(int w) const {
  const WorkerSlot& s = c_.slot(w);
  WorkerExit e;
  e.worker = w;
  e.pid = s.dead_pid.load(std::memory_order_relaxed);
  e.signal = s.dead_signal.load(std::memory_order_relaxed);
  e.exit_code = s.dead_code.load(std::memory_order_relaxed);
  return e;
}

void Worker::throw_lost(int to, std::string_view task) const { throw WorkerLost(last_exit(to), std::string(task)); }

// ---------------------------------------------------------------------------
// Sending.

void Worker::send_parts(int to, std::uint16_t kind, const std::string_view* parts, std::size_t nparts,
                        std::string_view task, std::uint32_t expected) {
  Out& o = out_[to];
  if (peer_dead_[to]) {
    // Maybe replaced since this worker's last poll: look before failing.
    handle_control(c_.ctl->epoch.load(std::memory_order_acquire));
    if (peer_dead_[to]) throw_lost(to, task);
  }
  // The peer incarnation this message is for: a reply is for the one that
  // called (`expected`), anything else for the current one. Checked again
  // after every park: a message never reaches a later incarnation.
  const std::uint32_t incarnation = expected != kAnyIncarnation ? expected : in_[to].incarnation;
  if (in_[to].incarnation != incarnation) throw_lost(to, task);
  if (o.busy) {
    // FIFO: the sender ahead of us hands the turn over when it is done.
    if (corelet::detail::wait_state(o.turn, "ring turn", &o, Clock::time_point::max(), WaitKind::Remote) == Waiter::State::Closed)
      throw_lost(to, task);
  }
  o.busy = true;
  struct Turn {
    Out& o;
    ~Turn() {
      if (!corelet::detail::wake_one(o.turn)) o.busy = false;  // else the turn passes on
    }
  } turn{o};
  if (peer_dead_[to] || in_[to].incarnation != incarnation) throw_lost(to, task);
  const std::size_t max = o.w.max_payload();
  const std::uint64_t batch = c_.cfg.ring_bytes / 8;
  std::size_t total = 0;
  for (std::size_t i = 0; i < nparts; ++i) total += parts[i].size();
  std::size_t off = 0;
  std::size_t part = 0, part_off = 0;  // where the copying stands in parts
  do {
    const auto len = static_cast<std::uint32_t>(std::min(max, total - off));
    const std::uint16_t flags =
        static_cast<std::uint16_t>((off == 0 ? kFirst : 0) | (off + len == total ? kLast : 0));
    std::byte* p;
    while (!(p = o.w.try_reserve(len))) {
      wait_space(to, o, len);
      if (peer_dead_[to] || in_[to].incarnation != incarnation) throw_lost(to, task);
    }
    for (std::uint32_t done = 0; done < len;) {
      const std::size_t take = std::min<std::size_t>(len - done, parts[part].size() - part_off);
      std::memcpy(p + done, parts[part].data() + part_off, take);
      done += static_cast<std::uint32_t>(take);
      part_off += take;
      if (part_off == parts[part].size()) {
        ++part;
        part_off = 0;
      }
    }
    o.w.commit(len, kind, flags);
    if (off == 0) {  // the message is on its way
      ++messages_out_;
      corelet::detail::trace_message(true, message_id(id_, to, o.sent++), kind_name(kind));
    }
    off += len;
    if (o.w.unpublished() >= batch) flush(to);
  } while (off < total);
  // Publication. A message goes out at once unless the same tasklet already
  // sent on this ring in this poll round: then it waits for the next poll()
  // (when this tasklet parks or yields and the loop comes round), or for a
  // full batch above. One tasklet's burst costs one shared store, while a
  // single message followed by computation is not held back.
  const void* me = corelet::detail::current();
  if (o.round == round_ && o.sender == me) {
    dirty_[to] = 1;
  } else {
    flush(to);
  }
  o.round = round_;
  o.sender = me;
}

void Worker::flush_all() noexcept {
  for (int k = 0; k < n_; ++k)
    if (dirty_[k]) flush(k);
}

void Worker::wait_space(int to, Out& o, std::uint32_t size) {
  flush(to);  // the consumer must see everything before we wait for it
  if (o.w.announce_waiting(size)) return;
  o.need = size;
  corelet::detail::wait_state(o.space, "ring full", &o, Clock::time_point::max(), WaitKind::Remote);
}

void Worker::flush(int to) noexcept {
  dirty_[to] = 0;
  if (!out_[to].w.publish()) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);  // publish, then read `sleeping` (Dekker)
  if (wake_if_sleeping(c_, to)) ++wakes_sent_;
}

void Worker::call(int to, std::string&& msg, std::shared_ptr<CallBase> st) {
  const std::uint64_t id = next_call_++;
  std::memcpy(msg.data(), &id, sizeof id);
  calls_.emplace(id, st);
  try {
    send(to, kCall, msg, st->task);
  } catch (...) {
    calls_.erase(id);
    throw;
  }
}

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
      if (peer_dead_[k] || o.w.has_room(o.need) || o.w.announce_waiting(o.need)) corelet::detail::wake_all(o.space);
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
    Frame f;
    int budget = 1024;  // frames per ring per poll: other rings and tasklets get their turn
    bool popped = false;
    while (budget-- > 0 && in.r.peek(f)) {
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

bool Worker::prepare_sleep() noexcept {
  // Spin a while after traffic: a busy peer's next message then costs no
  // wakeup. A worker that received nothing since it last slept sleeps at once
  // (an I/O-only worker never spins).
  const auto spin = c_.cfg.idle_spin;
  if (spin.count() > 0 && recent_rx_) {
    const std::uint64_t until = core::cycles() + static_cast<std::uint64_t>(spin.count()) * core::cycles_per_us();
    for (unsigned i = 1;; ++i) {
      if (inbound_pending() || c_.ctl->epoch.load(std::memory_order_relaxed) != seen_epoch_) return false;
      core::cpu_relax();  // one pause per look: a look costs a load per inbound ring
      if (i % 64 == 0 && core::cycles() >= until) break;
    }
  }
  recent_rx_ = false;
  auto& flag = c_.slot(id_).sleeping;
  std::uint32_t awake = 0;
  if (!flag.compare_exchange_strong(awake, kOnEventfd, std::memory_order_relaxed)) {
    flag.store(0, std::memory_order_relaxed);  // kWakeDue: consumed; go round the loop again
    return false;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // raise the flag, then re-check (Dekker)
  if (inbound_pending() || c_.ctl->epoch.load(std::memory_order_relaxed) != seen_epoch_) {
    woke();
    return false;
  }
  return true;
}

bool Worker::sleep(const struct timespec* timeout) noexcept {
  // Nothing but a message, a peer's death or a timer can wake us: wait on the
  // `sleeping` word itself (a futex in shared memory), cheaper to wake than
  // an eventfd read pending in io_uring. If the word is no longer kOnEventfd
  // a waker came first (it wrote the eventfd): do not sleep at all.
  auto& flag = c_.slot(id_).sleeping;
  std::uint32_t expected = kOnEventfd;
  if (!flag.compare_exchange_strong(expected, kOnFutex, std::memory_order_seq_cst)) return true;
  // Returns when woken, at the timeout, at once if the word is no longer
  // kOnFutex (EAGAIN), or on a signal: every case goes back to the loop.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&flag), FUTEX_WAIT, kOnFutex, timeout, nullptr, 0);
  return true;
}

void Worker::woke() noexcept {
  // Back to 0 from kOnEventfd / kOnFutex; a kWakeDue that arrived meanwhile
  // stays for the next prepare_sleep().
  auto& flag = c_.slot(id_).sleeping;
  std::uint32_t was = flag.load(std::memory_order_relaxed);
  while ((was == kOnEventfd || was == kOnFutex) && !flag.compare_exchange_weak(was, 0, std::memory_order_relaxed)) {
  }
}

void Worker::wake() noexcept { ipc::detail::wake(c_, id_); }

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
// Control: deaths, restarts, stop.

void Worker::handle_control(std::uint64_t epoch) noexcept {
  for (int k = 0; k < n_; ++k) {
    if (k == id_) continue;
    const WorkerSlot& s = c_.slot(k);
    const auto state = static_cast<SlotState>(s.state.load(std::memory_order_acquire));
    const std::uint32_t gen = s.gen.load(std::memory_order_acquire);
    if (!peer_dead_[k] && (state != SlotState::Alive || gen != known_gen_[k])) peer_died(k);
    if (peer_dead_[k] && state == SlotState::Alive && gen != known_gen_[k]) {
      known_gen_[k] = gen;  // its replacement: the rings were emptied in peer_died
      peer_dead_[k] = 0;
    }
  }
  if (c_.ctl->shutdown.load(std::memory_order_acquire) != 0 && !stopping_) begin_stop();
  seen_epoch_ = epoch;
  c_.slot(id_).acked_epoch.store(epoch, std::memory_order_release);
}

void Worker::peer_died(int k) noexcept {
  peer_dead_[k] = 1;
  const WorkerExit ex = last_exit(k);
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (it->second->worker != k) {
      ++it;
      continue;
    }
    CallBase& st = *it->second;
    try {
      st.error = std::make_exception_ptr(WorkerLost(ex, st.task));
    } catch (...) {
      st.error = std::current_exception();  // bad_alloc: still an error, never a hang
    }
    finish(st);
    it = calls_.erase(it);
  }
  Out& o = out_[k];
  corelet::detail::wake_all(o.turn, Waiter::State::Closed);
  corelet::detail::wake_all(o.space, Waiter::State::Closed);
  reset_ring(c_.ring(id_, k));
  o.w.attach(c_.ring(id_, k));
  o.sent = 0;
  dirty_[k] = 0;
  In& in = in_[k];
  reset_ring(c_.ring(k, id_));
  in.r.attach(c_.ring(k, id_));
  in.received = 0;
  in.partial.clear();
  in.in_partial = false;
  ++in.incarnation;
}

void Worker::begin_stop() noexcept {
  stopping_ = true;
  corelet::detail::wake_all(stop_waiters_);
  if (main_) corelet::detail::cancel(main_);
}

void Worker::serve() {
  while (!stopping_) corelet::detail::wait_on(stop_waiters_, "cluster stop", this);
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
  const auto box = d.get<std::uint32_t>();
  const auto gen = d.get<std::uint32_t>();
  const auto type = d.get<std::uint64_t>();
  if (gen != c_.slot(id_).gen.load(std::memory_order_relaxed)) return;  // for a predecessor of ours
  if (MailboxBase* b = find_box(box)) b->deliver(d, type);
}

}  // namespace corelet::ipc::detail
