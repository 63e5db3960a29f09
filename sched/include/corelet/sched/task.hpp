#pragma once
// corelet/sched/task.hpp — tasklets: run, spawn, Task<T>, this_tasklet.
//
// One scheduler runs per thread that calls corelet::run (normally one per
// process). Tasklets are cooperative: a tasklet runs until it makes a blocking
// corelet call (join, sleep, a channel or lock operation, yield...), which parks
// the tasklet, never the thread. Never block the thread inside a tasklet: use
// corelet::run_blocking or the I/O layer.

#include <corelet/sched/primitive.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace corelet {

// SpawnOptions — how to start a tasklet.
struct SpawnOptions {
  // Shown in deadlock reports, the overflow message and Task::name().
  std::string name;
  // Usable stack bytes (rounded up to pages). Only touched pages are resident.
  // Zero, below core::kMinStackSize or above core::kMaxStackSize: spawn throws
  // std::invalid_argument.
  std::size_t stack_size = core::kDefaultStackSize;
  // Where the tasklet is spawned, for dumps and stall reports: the place
  // where these options are made (spawn without options records none).
  std::source_location where = std::source_location::current();
};

template <class T>
class Task;

namespace detail {

template <class R, class Fn, class... Args>
struct TaskletImpl final : TaskletWithResult<R> {
  std::optional<std::tuple<Fn, Args...>> call;
  template <class F, class... A>
  explicit TaskletImpl(F&& f, A&&... a) {
    call.emplace(std::forward<F>(f), std::forward<A>(a)...);
  }
  void invoke() override {
    struct Reset {  // the callable and its arguments end with the body, not the handle
      std::optional<std::tuple<Fn, Args...>>& c;
      ~Reset() { c.reset(); }
    } reset{call};
    if constexpr (std::is_void_v<R>) {
      std::apply([](auto&& f, auto&&... a) { std::invoke(std::move(f), std::move(a)...); }, std::move(*call));
    } else {
      ::new (static_cast<void*>(&this->value)) R(std::apply(
          [](auto&& f, auto&&... a) -> R { return std::invoke(std::move(f), std::move(a)...); },
          std::move(*call)));
      this->has_value = true;
    }
  }
};

void run_main(Tasklet* main);

template <class F, class... Args>
using spawn_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

template <class F, class... Args>
Task<spawn_result_t<F, Args...>> spawn_with(SpawnOptions&& opts, F&& f, Args&&... args);

}  // namespace detail

// Task<T> — the handle of a spawned tasklet. Move-only. Dropping a handle does
// not detach: run() still waits for the tasklet, and an exception nobody joined
// is printed to stderr when the last reference goes.
template <class T>
class Task {
 public:
  Task() = default;
  Task(Task&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      reset();
      t_ = std::exchange(o.t_, nullptr);
    }
    return *this;
  }
  ~Task() { reset(); }

  // join — parks the caller until the tasklet ends; returns its value or
  // rethrows its exception (Cancelled if it was cancelled). Once only.
  // Must be called in a tasklet unless the tasklet already ended.
  // Cancellation of the caller: throws Cancelled; the task goes on and may be
  // joined later. UsageError: empty handle, detached, already joined, self-join.
  T join() {
    check("Task::join");
    if (t_->joined) throw UsageError("corelet: Task::join: the task was already joined");
    detail::wait_done(t_, "Task::join", Clock::time_point::max());
    t_->joined = true;
    if (t_->error) std::rethrow_exception(t_->error);
    if constexpr (!std::is_void_v<T>) {
      auto* r = static_cast<detail::TaskletWithResult<T>*>(t_);
      return std::move(r->value);
    }
  }

  // wait_for / wait_until — park until the tasklet ended or the time passed;
  // true if it ended. Do not consume the result. Throw Cancelled if the caller
  // is cancelled.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    check("Task::wait_for");
    return detail::wait_done(t_, "Task::wait_for", primitive::deadline_after(d));
  }
  bool wait_until(Clock::time_point tp) {
    check("Task::wait_until");
    return detail::wait_done(t_, "Task::wait_until", tp);
  }

  // detach — run() no longer waits for the tasklet; it is cancelled if still
  // alive when everything else has ended. The handle becomes empty.
  void detach() {
    check("Task::detach");
    detail::detach(t_);
    reset();
  }

  // cancel — the tasklet's current or next blocking call throws Cancelled. If
  // it has not started yet, its body never runs. No effect once it ended.
  void cancel() noexcept {
    if (t_) detail::cancel(t_);
  }

  bool valid() const noexcept { return t_ != nullptr; }
  bool done() const noexcept { return t_ && t_->state == detail::State::Done; }
  std::uint64_t id() const noexcept { return t_ ? t_->running.id : 0; }
  const std::string& name() const noexcept {
    static const std::string empty;
    return t_ ? t_->name : empty;
  }

 private:
  template <class F, class... Args>
  friend Task<detail::spawn_result_t<F, Args...>> detail::spawn_with(SpawnOptions&&, F&&, Args&&...);
  explicit Task(detail::Tasklet* t) noexcept : t_(t) {}
  void check(const char* call) const {
    if (!t_) throw UsageError(std::string("corelet: ") + call + " on an empty or detached Task");
  }
  void reset() noexcept {
    if (t_) detail::release(std::exchange(t_, nullptr));
  }
  detail::Tasklet* t_ = nullptr;
};

namespace detail {
template <class F, class... Args>
Task<spawn_result_t<F, Args...>> spawn_with(SpawnOptions&& opts, F&& f, Args&&... args) {
  using R = spawn_result_t<F, Args...>;
  const std::size_t stack = core::StackPool::round_size(opts.stack_size);
  auto* t = new TaskletImpl<R, std::decay_t<F>, std::decay_t<Args>...>(std::forward<F>(f),
                                                                        std::forward<Args>(args)...);
  t->stack_size = stack;
  t->name = std::move(opts.name);
  if (opts.where.line() != 0) {
    t->spawn_file = opts.where.file_name();
    t->spawn_line = opts.where.line();
  }
  Task<R> task(t);  // owns the first reference: deleted if start() throws
  start(t, "corelet::spawn");
  return task;
}
}  // namespace detail

// spawn — starts f(args...) as a new tasklet and returns its Task. The tasklet
// is queued behind the tasklets already ready; the caller goes on running.
// f and args are copied/moved into the tasklet (use std::ref for references).
// Throws UsageError outside corelet::run.
template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>)
auto spawn(F&& f, Args&&... args) {
  SpawnOptions o;
  o.where = std::source_location();  // here is not the caller's place
  return detail::spawn_with(std::move(o), std::forward<F>(f), std::forward<Args>(args)...);
}
template <class F, class... Args>
auto spawn(SpawnOptions opts, F&& f, Args&&... args) {
  return detail::spawn_with(std::move(opts), std::forward<F>(f), std::forward<Args>(args)...);
}

// run — runs a scheduler on the calling thread: main(args...) as the first
// tasklet ("main"), until main and every non-detached tasklet have ended;
// detached tasklets still alive then are cancelled. Returns main's value if it
// is convertible to int, else 0. Rethrows main's exception (after cancelling
// and unwinding the other tasklets). Throws Deadlock when no tasklet can run
// again while some are blocked. UsageError if a scheduler already runs here.
template <class F, class... Args>
int run(F&& main, Args&&... args) {
  using R = detail::spawn_result_t<F, Args...>;
  auto* t = new detail::TaskletImpl<R, std::decay_t<F>, std::decay_t<Args>...>(std::forward<F>(main),
                                                                              std::forward<Args>(args)...);
  struct Ref {
    detail::Tasklet* t;
    ~Ref() { detail::release(t); }
  } ref{t};
  detail::run_main(t);
  if (t->error) std::rethrow_exception(t->error);
  if constexpr (std::is_convertible_v<R, int>) {
    return static_cast<int>(static_cast<detail::TaskletWithResult<R>*>(t)->value);
  } else {
    return 0;
  }
}

namespace this_tasklet {

// yield — lets every other ready tasklet run, then continues. A cancellation
// point: throws Cancelled if the tasklet was cancelled.
inline void yield() { detail::yield(); }

// sleep_until / sleep_for — park the tasklet until the time. Cancellation:
// throws Cancelled at once. A time in the past still yields.
inline void sleep_until(Clock::time_point tp) {
  detail::Tasklet* t = primitive::require_tasklet("this_tasklet::sleep");
  (void)t;
  if (primitive::park("this_tasklet::sleep", nullptr, tp, WaitKind::Timer) == primitive::Wake::Cancelled) throw Cancelled{};
}
template <class C, class D>
void sleep_until(std::chrono::time_point<C, D> tp) {
  sleep_until(Clock::now() + std::chrono::duration_cast<Clock::duration>(tp - C::now()));
}
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(primitive::deadline_after(d));
}

// id — the running tasklet's id (unique in the process), 0 outside a tasklet.
inline std::uint64_t id() noexcept {
  detail::Tasklet* t = primitive::current();
  return t ? t->running.id : 0;
}
// name — the running tasklet's name, empty outside a tasklet.
inline const std::string& name() noexcept {
  static const std::string empty;
  detail::Tasklet* t = primitive::current();
  return t ? t->name : empty;
}
// cancellation_point — throws Cancelled if a cancellation is pending; for
// long computations that do not otherwise block.
inline void cancellation_point() {
  detail::Tasklet* t = primitive::current();
  if (t && t->cancel_pending) {
    t->cancel_pending = false;
    throw Cancelled{};
  }
}

}  // namespace this_tasklet
}  // namespace corelet
