#pragma once
// corelet/ipc/actor.hpp — actors: an object that lives in one worker and
// serves method calls from any worker, one call at a time.
//
//   struct Counter {
//     explicit Counter(long start) : n(start) {}
//     long add(long k) { return n += k; }
//     long n;
//   };
//   CORELET_ACTOR_METHOD(Counter, add);              // at namespace scope
//   ...
//   corelet::Actor<Counter> c = corelet::spawn_actor<Counter>(1, 10L);  // lives on worker 1
//   corelet::Future<long> f = c.call<&Counter::add>(5);                 // runs there
//   long now = f.get();                                                 // 15
//   c.stop().get();                                                     // destroyed there
//
// Calls run in the owning worker in the order they arrive there, one at a
// time (a call that parks keeps the others waiting, as an actor's mailbox
// does); each returns a Future like spawn_on. An Actor<T> is a small value:
// copy it, send it in messages (it arrives usable), keep it in the name
// registry's neighbourhood (register its worker's mailbox, or pass it along).
// Methods cross by their registered name ("Counter::add"), constructors by
// the type's and arguments' names; nothing crosses by address.
//
// Lifetime: until stop(), or the end of the cluster. If the owning worker
// dies, the actor is lost with it: calls fail with WorkerLost, also after the
// worker was replaced.

#include <corelet/ipc/remote.hpp>
#include <corelet/sched/mutex.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace corelet {

namespace ipc::detail {

// The actors of this worker.
struct ActorTurn {
  corelet::Mutex m;      // one call at a time, FIFO
  bool stopped = false;  // set by stop() under m: calls queued behind it fail
};
struct ActorSlot {
  std::shared_ptr<void> obj;
  std::shared_ptr<ActorTurn> turn;
  const std::type_info* type = nullptr;
};
// take_turn — takes the actor's turn; throws std::invalid_argument if the
// actor was stopped while this call waited for it.
std::unique_lock<corelet::Mutex> take_turn(ActorSlot& slot, std::uint64_t id);
std::uint64_t add_actor(std::shared_ptr<void> obj, const std::type_info& type);
// find_actor — a copy of the slot (keeps the object alive during a call).
// Throws std::invalid_argument if there is no such actor of that type here.
ActorSlot find_actor(std::uint64_t id, const std::type_info& type);
bool remove_actor(std::uint64_t id);
// check_incarnation — throws WorkerLost if `worker` is no longer incarnation `gen`.
void check_incarnation(int worker, std::uint32_t gen, const char* task);
std::uint32_t current_gen(int worker);

template <class T, class... A>
struct ActorCtor {
  static std::uint64_t create(A... args) {
    return add_actor(std::make_shared<T>(std::move(args)...), typeid(T));
  }
  // Registered by name before main (spawn_actor<T>(...) odr-uses it).
  static inline const bool registered = [] {
    static const std::string name = std::string("corelet::actor<") + typeid(T).name() + ">" +
                                    typeid(std::tuple<A...>).name();
    register_remote(name.c_str(), reinterpret_cast<FnKey>(&create), &Invoke<&create>::call, &Invoke<&create>::chunk);
    return true;
  }();
};

std::uint64_t actor_stop(std::uint64_t id);  // registered in actor.cpp

template <auto M>
struct ActorMethod;

template <class T, class R, class... P, R (T::*M)(P...)>
struct ActorMethod<M> {
  using Class = T;
  static std::decay_t<R> run(std::uint64_t id, wire_t<P>... args) {
    ActorSlot slot = find_actor(id, typeid(T));
    auto one_at_a_time = take_turn(slot, id);
    return (static_cast<T*>(slot.obj.get())->*M)(args...);
  }
  static inline const char* name = nullptr;
};

template <class T, class R, class... P, R (T::*M)(P...) const>
struct ActorMethod<M> {
  using Class = T;
  static std::decay_t<R> run(std::uint64_t id, wire_t<P>... args) {
    ActorSlot slot = find_actor(id, typeid(T));
    auto one_at_a_time = take_turn(slot, id);
    return (static_cast<const T*>(slot.obj.get())->*M)(args...);
  }
  static inline const char* name = nullptr;
};

template <auto M>
struct MethodRegistrar {
  explicit MethodRegistrar(const char* name) {
    ActorMethod<M>::name = name;
    using AM = ActorMethod<M>;
    register_remote(name, reinterpret_cast<FnKey>(&AM::run), &Invoke<&AM::run>::call, &Invoke<&AM::run>::chunk);
  }
};

}  // namespace ipc::detail

// CORELET_ACTOR_METHOD(T, m) — registers T::m as "T::m" so that
// Actor<T>::call<&T::m> can run it on any worker. Once, at namespace scope.
#define CORELET_ACTOR_METHOD(T, m)                                            \
  static const ::corelet::ipc::detail::MethodRegistrar<&T::m> CORELET_IPC_CAT( \
      corelet_actor_method_, __LINE__) {                                      \
    #T "::" #m                                                                \
  }

template <class T>
class Actor {
 public:
  Actor() = default;

  bool valid() const noexcept { return id_ != 0; }
  int worker() const noexcept { return worker_; }

  // call — runs the registered method M with args on the actor's worker,
  // after the calls that arrived before. Throws (at once) UsageError for an
  // unregistered method, WorkerLost if the actor's worker died; the Future
  // carries the method's result or its exception (RemoteError).
  template <auto M, class... A>
  auto call(A&&... args) const {
    using AM = ipc::detail::ActorMethod<M>;
    static_assert(std::is_same_v<typename AM::Class, T>, "corelet::Actor::call: a method of another class");
    if (!AM::name)
      throw UsageError("corelet::Actor::call: the method is not registered; add CORELET_ACTOR_METHOD(T, method)");
    require();
    ipc::detail::check_incarnation(worker_, gen_, AM::name);
    return spawn_on(worker_, &AM::run, id_, std::forward<A>(args)...);
  }

  // stop — destroys the actor on its worker after the calls queued before;
  // later calls fail with RemoteError (std::invalid_argument: no such actor).
  Future<std::uint64_t> stop() const {
    require();
    ipc::detail::check_incarnation(worker_, gen_, "Actor::stop");
    return spawn_on(worker_, &ipc::detail::actor_stop, id_);
  }

  bool operator==(const Actor&) const = default;

 private:
  template <class U, class... A>
  friend Actor<U> spawn_actor(int worker, A&&... args);
  void require() const {
    if (!valid()) throw UsageError("corelet::Actor: an empty Actor (default-constructed)");
  }
  std::int32_t worker_ = -1;
  std::uint32_t gen_ = 0;
  std::uint64_t id_ = 0;
};

// spawn_actor — constructs T(args...) on worker `worker` (parks until it
// exists) and returns its proxy. Throws what spawn_on throws, and RemoteError
// if the constructor threw.
template <class T, class... A>
Actor<T> spawn_actor(int worker, A&&... args) {
  using Ctor = ipc::detail::ActorCtor<T, std::decay_t<A>...>;
  (void)Ctor::registered;
  ipc::detail::require_cluster("spawn_actor");
  ipc::detail::check_worker(worker, "spawn_actor");
  const std::uint32_t gen = ipc::detail::current_gen(worker);
  Actor<T> a;
  a.id_ = spawn_on(worker, &Ctor::create, std::forward<A>(args)...).get();
  a.worker_ = worker;
  a.gen_ = gen;
  return a;
}

}  // namespace corelet
