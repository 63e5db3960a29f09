// A worker's sending side: messages cut into frames on the ring to the peer,
// one sender at a time per ring (FIFO turns), waits for ring space, and
// publication (batched per tasklet and poll round).

#include "worker.hpp"

#include <algorithm>
#include <cstring>

namespace corelet::ipc::detail {

using corelet::primitive::Waiter;

void Worker::send_parts(int to, std::uint16_t kind, const std::string_view* parts, std::size_t nparts,
                        std::string_view task, std::uint32_t expected) {
  const void* me = corelet::primitive::current();
  if (!me) [[unlikely]]
    throw UsageError("corelet: " + std::string(task) + " called outside a tasklet");
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
    if (corelet::primitive::wait_state(o.turn, "ring turn", &o, Clock::time_point::max(), WaitKind::Remote) == Waiter::State::Closed)
      throw_lost(to, task);
  }
  o.busy = true;
  struct Turn {
    Out& o;
    ~Turn() {
      if (!corelet::primitive::wake_one(o.turn)) o.busy = false;  // else the turn passes on
    }
  } turn{o};
  if (peer_dead_[to] || in_[to].incarnation != incarnation) throw_lost(to, task);
  const std::size_t max = o.w.max_payload();
  const std::uint64_t batch = c_.cfg.ring_bytes / 8;
  std::size_t total = 0;
  for (std::size_t i = 0; i < nparts; ++i) total += parts[i].size();
  if (total <= max) {
    // One frame (the common case): the parts one after the other.
    const auto len = static_cast<std::uint32_t>(total);
    std::byte* p = o.w.try_reserve(len);
    if (!p) p = reserve_waiting(to, o, len, incarnation, task);
    for (std::size_t i = 0; i < nparts; ++i) {
      if (parts[i].empty()) continue;
      std::memcpy(p, parts[i].data(), parts[i].size());
      p += parts[i].size();
    }
    o.w.commit(len, kind, kFirst | kLast);
    ++messages_out_;
    corelet::detail::trace_message(true, message_id(id_, to, o.sent++), kind_name(kind));
    // A large message goes out at once: the receiver copies it while we copy the next.
    if (o.w.unpublished() >= batch || len >= kLargeFrame) flush(to);
  } else {
    std::size_t off = 0;
    std::size_t part = 0, part_off = 0;  // where the copying stands in parts
    do {
      const auto len = static_cast<std::uint32_t>(std::min(max, total - off));
      const std::uint16_t flags =
          static_cast<std::uint16_t>((off == 0 ? kFirst : 0) | (off + len == total ? kLast : 0));
      std::byte* p = o.w.try_reserve(len);
      if (!p) p = reserve_waiting(to, o, len, incarnation, task);
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
  }
  // Publication. A message goes out at once unless the same tasklet already
  // sent on this ring in this poll round: then it waits for the next poll()
  // (when this tasklet parks or yields and the loop comes round), or for a
  // full batch above. One tasklet's burst costs one shared store, while a
  // single message followed by computation is not held back.
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

std::byte* Worker::reserve_waiting(int to, Out& o, std::uint32_t len, std::uint32_t incarnation,
                                   std::string_view task) {
  // The peer may die (or be replaced) while we wait for its ring.
  for (;;) {
    wait_space(to, o, len);
    if (peer_dead_[to] || in_[to].incarnation != incarnation) throw_lost(to, task);
    if (std::byte* p = o.w.try_reserve(len)) return p;
  }
}

void Worker::wait_space(int to, Out& o, std::uint32_t size) {
  flush(to);  // the consumer must see everything before we wait for it
  if (o.w.announce_waiting(size)) return;
  o.need = size;
  corelet::primitive::wait_state(o.space, "ring full", &o, Clock::time_point::max(), WaitKind::Remote);
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

}  // namespace corelet::ipc::detail
