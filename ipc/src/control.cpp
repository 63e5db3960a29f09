// A worker's side of the cluster's control: peer deaths, replacements, stop.
//
// Peer death. The supervisor marks the slot Dead and bumps the epoch; each
// survivor, on seeing it, fails the calls it waits on there, fails its
// senders to it, and empties both rings it shares with it (nobody else uses
// them now), then acknowledges the epoch. Only after every survivor has
// acknowledged does the supervisor fork the replacement, so the replacement
// never sees a frame of its predecessor and survivors never see one of it
// before they know it is alive (its Alive state is published before the fork).

#include "worker.hpp"

#include <corelet/sched/task.hpp>

#include <exception>
#include <string>

namespace corelet::ipc::detail {

using corelet::primitive::Waiter;

void reset_ring(RingHeader* h) noexcept {
  h->write.store(0, std::memory_order_relaxed);
  h->read.store(0, std::memory_order_relaxed);
  h->producer_waiting.store(0, std::memory_order_relaxed);
}

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
  corelet::primitive::wake_all(o.turn, Waiter::State::Closed);
  corelet::primitive::wake_all(o.space, Waiter::State::Closed);
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
  corelet::primitive::wake_all(stop_waiters_);
  if (main_) corelet::detail::cancel(main_);
}

void Worker::serve() {
  while (!stopping_) corelet::primitive::wait_on(stop_waiters_, "cluster stop", this);
}

}  // namespace corelet::ipc::detail
