#pragma once
// corelet/sched/blocking.hpp — run_blocking: call a blocking function without
// blocking the scheduler.
//
// run_blocking(f, args...) runs f(args...) on one of a small pool of helper
// threads (started on first use, at most 16) and parks only the calling tasklet
// until it returns; the result is returned, an exception rethrown.
// f runs on another thread: it must not touch tasklet-only objects (channels,
// locks of corelet) and must be safe to run concurrently with the scheduler.
// Cancellation: a thread cannot be interrupted, so the tasklet keeps waiting
// for f to return, then throws Cancelled (the result is dropped). If f accepts a
// std::stop_token as its first argument, stop is requested on cancellation.
// run() does not return while a run_blocking call is outstanding.

#include <corelet/sched/detail/blocking.hpp>

#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace corelet {

template <class F, class... Args>
auto run_blocking(F&& f, Args&&... args) {
  constexpr bool with_token = std::is_invocable_v<F&, std::stop_token, Args&...>;
  using R = std::conditional_t<with_token, std::invoke_result<F&, std::stop_token, Args&...>,
                               std::invoke_result<F&, Args&...>>::type;
  struct Job final : detail::BlockingJob {
    F& f;
    std::tuple<Args&...> args;
    std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
    std::exception_ptr error;
    Job(F& fn, Args&... a) : f(fn), args(a...) {}
    void execute() noexcept override {
      try {
        auto call = [&](auto&... a) -> R {
          if constexpr (with_token) return std::invoke(f, stop.get_token(), a...);
          else return std::invoke(f, a...);
        };
        if constexpr (std::is_void_v<R>) {
          std::apply(call, args);
        } else {
          result.emplace(std::apply(call, args));
        }
      } catch (...) {
        error = std::current_exception();
      }
    }
  } job(f, args...);
  detail::run_job(job, "corelet::run_blocking");
  if (job.error) std::rethrow_exception(job.error);
  if constexpr (!std::is_void_v<R>) return std::move(*job.result);
}

}  // namespace corelet
