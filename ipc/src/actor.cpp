// The actors of this worker process.

#include "worker.hpp"

#include <corelet/ipc/actor.hpp>

#include <unordered_map>

namespace corelet::ipc::detail {

namespace {
struct Actors {
  std::unordered_map<std::uint64_t, ActorSlot> slots;
  std::uint64_t next = 1;
};
Actors& actors() {
  static Actors a;  // one worker per process: tasklets of one thread use it
  return a;
}
ActorSlot find_actor_any(std::uint64_t id) {
  Actors& a = actors();
  auto it = a.slots.find(id);
  if (it == a.slots.end())
    throw std::invalid_argument("corelet: no actor " + std::to_string(id) + " on worker " + std::to_string(g_worker_id) +
                                " (stopped?)");
  return it->second;
}
}  // namespace

std::uint64_t add_actor(std::shared_ptr<void> obj, const std::type_info& type) {
  Actors& a = actors();
  const std::uint64_t id = a.next++;
  a.slots.emplace(id, ActorSlot{std::move(obj), std::make_shared<ActorTurn>(), &type});
  return id;
}

ActorSlot find_actor(std::uint64_t id, const std::type_info& type) {
  Actors& a = actors();
  auto it = a.slots.find(id);
  if (it == a.slots.end() || *it->second.type != type)
    throw std::invalid_argument("corelet: no actor " + std::to_string(id) + " of that type on worker " +
                                std::to_string(g_worker_id) + " (stopped?)");
  return it->second;
}

bool remove_actor(std::uint64_t id) { return actors().slots.erase(id) != 0; }

std::unique_lock<corelet::Mutex> take_turn(ActorSlot& slot, std::uint64_t id) {
  std::unique_lock<corelet::Mutex> lock(slot.turn->m);
  if (slot.turn->stopped)
    throw std::invalid_argument("corelet: actor " + std::to_string(id) + " on worker " + std::to_string(g_worker_id) +
                                " was stopped");
  return lock;
}

std::uint64_t actor_stop(std::uint64_t id) {
  ActorSlot slot = find_actor_any(id);
  auto after_queued_calls = take_turn(slot, id);
  slot.turn->stopped = true;  // calls already waiting for the turn fail
  remove_actor(id);
  return id;  // the object goes with the last reference (`slot` here)
}
static const Registrar<&actor_stop> actor_stop_registrar{"corelet::actor_stop"};

void check_incarnation(int worker, std::uint32_t gen, const char* task) {
  check_worker(worker, task);
  const Address a{worker, gen, 1};
  if (!g_cluster->address_alive(a)) throw WorkerLost(g_worker->last_exit(worker), task);
}

std::uint32_t current_gen(int worker) { return g_cluster->slot(worker).gen.load(std::memory_order_acquire); }

}  // namespace corelet::ipc::detail
