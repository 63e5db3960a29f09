#pragma once
// corelet/ipc/remote.hpp — running registered functions on other workers.
//
//   std::size_t count_primes(std::size_t limit);
//   CORELET_REMOTE(count_primes);                 // at namespace scope, once
//   ...
//   corelet::Future<std::size_t> f = corelet::spawn_on(1, count_primes, 400000);
//   std::size_t n = f.get();                      // parks this tasklet
//
// A function crosses by its registered name, never by its address, so the
// same program can later run over a transport between machines. Arguments are
// converted to the function's parameter types (decayed) and encoded as
// codec.hpp says; so is the result.

#include <corelet/ipc/cluster.hpp>
#include <corelet/ipc/codec.hpp>
#include <corelet/sched/primitive.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/sched/task.hpp>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corelet {

namespace ipc::detail {

using FnKey = void (*)();
using Invoker = void (*)(Decoder& in, Encoder& out);

// RemoteEntry — one registered function: `call` decodes one argument tuple
// and encodes the result; `chunk` does the same for a counted run of them
// (Pool's chunks).
struct RemoteEntry {
  std::string name;
  FnKey key;
  Invoker call;
  Invoker chunk;
};

void register_remote(const char* name, FnKey key, Invoker call, Invoker chunk);
const RemoteEntry* find_remote(FnKey key) noexcept;
const RemoteEntry* find_remote(std::string_view name) noexcept;
const RemoteEntry& require_remote(FnKey key, const char* call);

// CallBase — the state a Future and the worker's table of calls in flight share.
struct CallBase {
  virtual ~CallBase() = default;
  virtual void complete(Decoder& in) = 0;  // decode the result (loop context)
  corelet::primitive::WaitQueue waiters;
  std::exception_ptr error;
  bool done = false;
  bool taken = false;  // get() was called
  int worker = -1;
  std::string task;    // the function's name, for WorkerLost
};

template <class T>
struct CallState final : CallBase {
  std::optional<T> value;
  void complete(Decoder& in) override { value.emplace(in.get<T>()); }
};
template <>
struct CallState<void> final : CallBase {
  void complete(Decoder&) override {}
};

// Call message modes.
inline constexpr std::uint8_t kCallOne = 0;
inline constexpr std::uint8_t kCallChunk = 1;

// call_prologue — a call message's fixed part; the arguments are appended.
std::string call_prologue(const RemoteEntry& e, std::uint8_t mode);
// start_call — sends the message to `worker`; its reply completes `st`. Parks
// while the ring is full. Throws WorkerLost if the worker is gone.
void start_call(int worker, std::string&& msg, std::shared_ptr<CallBase> st);
// finish — marks st done (value or error set) and wakes its waiters.
void finish(CallBase& st) noexcept;
// require_cluster — throws UsageError outside a cluster worker.
void require_cluster(const char* call);
// check_worker — throws std::out_of_range for a bad worker id.
void check_worker(int worker, const char* call);
// current_exception_info — the type name (demangled) and message of the
// exception being handled; only inside a catch block.
std::pair<std::string, std::string> current_exception_info();

template <class T>
using wire_t = std::decay_t<T>;

template <class T>
constexpr void check_wire_type() {
  static_assert(!std::is_pointer_v<wire_t<T>>,
                "corelet: pointers cannot cross workers (each worker has its own memory); pass values");
}

template <auto Fn>
struct Invoke;

template <class R, class... P, R (*Fn)(P...)>
struct Invoke<Fn> {
  static std::tuple<wire_t<P>...> decode_args(Decoder& in) {
    // Braced initialisation evaluates left to right: the wire order.
    return std::tuple<wire_t<P>...>{in.get<wire_t<P>>()...};
  }
  static void call(Decoder& in, Encoder& out) {
    auto args = decode_args(in);
    if constexpr (std::is_void_v<R>) {
      std::apply(Fn, args);
    } else {
      out.put(static_cast<wire_t<R>>(std::apply(Fn, args)));
    }
  }
  static void chunk(Decoder& in, Encoder& out) {
    const auto n = in.get<std::uint32_t>();
    out.put(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      auto args = decode_args(in);
      if constexpr (std::is_void_v<R>) {
        std::apply(Fn, args);
      } else {
        out.put(static_cast<wire_t<R>>(std::apply(Fn, args)));
      }
    }
  }
};

template <auto Fn>
struct Registrar {
  explicit Registrar(const char* name) {
    register_remote(name, reinterpret_cast<FnKey>(Fn), &Invoke<Fn>::call, &Invoke<Fn>::chunk);
  }
};

}  // namespace ipc::detail

#define CORELET_IPC_CAT2(a, b) a##b
#define CORELET_IPC_CAT(a, b) CORELET_IPC_CAT2(a, b)

// CORELET_REMOTE(fn) — registers the function `fn` under the name "fn" so
// that spawn_on, Pool and actors can run it on any worker. Use it at namespace
// scope, once per function (a second registration of the same function is
// harmless; another function under the same name is an error at start-up).
// For an overloaded function, register a non-overloaded wrapper.
#define CORELET_REMOTE(fn)                                                      \
  static const ::corelet::ipc::detail::Registrar<&fn> CORELET_IPC_CAT(          \
      corelet_remote_registrar_, __LINE__) {                                    \
    #fn                                                                         \
  }

// Future — the result of a call that runs elsewhere. Not thread-safe; used by
// the tasklets of the worker that made it.
template <class T>
class Future {
 public:
  Future() = default;
  explicit Future(std::shared_ptr<ipc::detail::CallState<T>> st) noexcept : st_(std::move(st)) {}

  bool valid() const noexcept { return st_ != nullptr; }
  // ready — the result (or the error) is here; get() will not park.
  bool ready() const noexcept { return st_ && st_->done; }
  // worker — where the call runs.
  int worker() const noexcept { return st_ ? st_->worker : -1; }

  // wait — parks until ready. Cancellation: throws Cancelled (the call goes on
  // remotely; its result is dropped if nobody waits any more).
  void wait() const { wait_until(Clock::time_point::max()); }
  // wait_for / wait_until — as wait(); false on timeout.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) const {
    return wait_until(corelet::primitive::deadline_after(d));
  }
  bool wait_until(Clock::time_point tp) const {
    require();
    while (!st_->done) {
      if (!corelet::primitive::wait_on(st_->waiters, "Future::get", st_.get(), tp, WaitKind::Remote) && !st_->done) return false;
    }
    return true;
  }

  // get — parks until ready, then returns the result or throws what the call
  // threw: RemoteError (type name and message kept), WorkerLost if its worker
  // died, DecodeError if the result did not decode. Once per Future.
  T get() {
    wait();
    if (st_->taken) throw UsageError("corelet: Future::get called twice");
    st_->taken = true;
    if (st_->error) std::rethrow_exception(st_->error);
    if constexpr (!std::is_void_v<T>) return std::move(*st_->value);
  }

 private:
  void require() const {
    if (!st_) throw UsageError("corelet: Future has no state (default-constructed or moved from)");
  }
  std::shared_ptr<ipc::detail::CallState<T>> st_;
};

// spawn_on — runs fn(args...) on worker `worker` (which may be this one) in a
// new tasklet there, and returns its Future at once. fn must be registered
// with CORELET_REMOTE. Parks only while the ring to that worker is full.
// Throws UsageError for an unregistered function or outside a cluster,
// std::out_of_range for a bad worker id, WorkerLost if the worker is dead.
template <class R, class... P, class... A>
Future<std::decay_t<R>> spawn_on(int worker, R (*fn)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "corelet::spawn_on: wrong number of arguments");
  (ipc::detail::check_wire_type<P>(), ...);
  using T = std::decay_t<R>;
  ipc::detail::require_cluster("spawn_on");
  ipc::detail::check_worker(worker, "spawn_on");
  const auto& e = ipc::detail::require_remote(reinterpret_cast<ipc::detail::FnKey>(fn), "spawn_on");
  auto st = std::make_shared<ipc::detail::CallState<T>>();
  st->worker = worker;
  st->task = e.name;
  if (worker == this_worker()) {
    // Local: a tasklet runs it with its own copies of the arguments, as a
    // remote worker would.
    spawn(SpawnOptions{.name = e.name},
          [st, fn](std::decay_t<P>... a) {
            try {
              if constexpr (std::is_void_v<T>) {
                fn(a...);
              } else {
                st->value.emplace(fn(a...));
              }
            } catch (...) {
              auto [type, msg] = ipc::detail::current_exception_info();
              st->error = std::make_exception_ptr(RemoteError(type, msg, st->worker));
            }
            ipc::detail::finish(*st);
          },
          static_cast<std::decay_t<P>>(std::forward<A>(args))...)
        .detach();
  } else {
    std::string msg = ipc::detail::call_prologue(e, ipc::detail::kCallOne);
    ipc::Encoder enc(msg);
    (enc.put(static_cast<std::decay_t<P>>(std::forward<A>(args))), ...);
    ipc::detail::start_call(worker, std::move(msg), st);
  }
  return Future<T>(std::move(st));
}

}  // namespace corelet
