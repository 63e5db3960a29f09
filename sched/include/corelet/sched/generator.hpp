#pragma once
// corelet/sched/generator.hpp — Generator<T>: values produced by a body that
// runs in its own tasklet, consumed by range-for.
//
//   corelet::Generator<int> evens([](corelet::Yield<int>& yield) {
//     for (int i = 0; i < 10; i += 2) yield(i);
//   });
//   for (int v : evens) ...
//
// The body starts at the first request for a value and runs one value ahead of
// the consumer (a rendezvous channel joins them). It may block (sleep, I/O,
// channels). An exception thrown by the body is rethrown to the consumer after
// the values yielded before it. Destroying the generator early stops the body:
// its pending yield throws Cancelled. Consuming needs a tasklet (UsageError).

#include <corelet/sched/channel.hpp>
#include <corelet/sched/task.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>

namespace corelet {

template <class T>
class Yield {
 public:
  // operator() — hands v to the consumer; parks until it asks for the next one.
  // Cancellation (the generator was destroyed): throws Cancelled or
  // ChannelClosed, which the body should let propagate.
  void operator()(T v) { ch_->send(std::move(v)); }

 private:
  template <class>
  friend class Generator;
  explicit Yield(Channel<T>* ch) : ch_(ch) {}
  Channel<T>* ch_;
};

template <class T>
class Generator {
 public:
  // body: callable as body(Yield<T>&); may be move-only.
  template <class F>
  explicit Generator(F body, SpawnOptions opts = {})
      : state_(std::make_shared<State>()),
        body_(std::make_unique<Body<F>>(std::move(body))),
        opts_(std::move(opts)) {}
  Generator(Generator&&) noexcept = default;
  // Move assignment stops this generator's body first, as the destructor does.
  Generator& operator=(Generator&& o) noexcept {
    if (this != &o) {
      stop();
      state_ = std::move(o.state_);
      body_ = std::move(o.body_);
      opts_ = std::move(o.opts_);
      task_ = std::move(o.task_);
    }
    return *this;
  }
  ~Generator() { stop(); }

  // next — the next value, or nullopt when the body has returned. Rethrows the
  // body's exception. Parks the calling tasklet while the body computes, with
  // no timeout; cancellation of the caller throws Cancelled and the value the
  // body was about to hand over stays with it for the next call.
  std::optional<T> next() {
    if (!state_) return std::nullopt;
    if (!task_.valid() && !state_->finished) start();
    try {
      return state_->ch.recv();
    } catch (const ChannelClosed&) {
    }
    state_->finished = true;
    if (state_->error) std::rethrow_exception(std::exchange(state_->error, nullptr));
    return std::nullopt;
  }

  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Generator* g) : g_(g) { ++*this; }
    T& operator*() { return *cur_; }
    T* operator->() { return &*cur_; }
    iterator& operator++() {
      cur_ = g_->next();
      if (!cur_) g_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return g_ == nullptr; }

   private:
    Generator* g_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  void stop() noexcept {
    if (!state_) return;
    state_->ch.close();  // a parked yield wakes with ChannelClosed...
    if (task_.valid()) {
      task_.cancel();    // ...or, if it is not parked yet, its next yield throws Cancelled
      try {
        task_.detach();
      } catch (...) {
      }
    }
  }

  struct BodyBase {
    virtual ~BodyBase() = default;
    virtual void operator()(Yield<T>& y) = 0;
  };
  template <class F>
  struct Body final : BodyBase {
    explicit Body(F fn) : f(std::move(fn)) {}
    void operator()(Yield<T>& y) override { f(y); }
    F f;
  };
  // Shared with the producing tasklet, which may outlive the Generator object.
  struct State {
    Channel<T> ch{0};
    std::exception_ptr error;
    bool finished = false;
  };
  void start() {
    task_ = spawn(std::move(opts_), [st = state_, body = std::move(body_)]() mutable {
      Yield<T> y(&st->ch);
      try {
        (*body)(y);
      } catch (const ChannelClosed&) {
        // Our own channel closed: the consumer went away. Another channel's
        // ChannelClosed is the body's failure, for the consumer to see.
        if (!st->ch.closed()) st->error = std::current_exception();
      } catch (...) {
        st->error = std::current_exception();
      }
      st->ch.close();
    });
  }
  std::shared_ptr<State> state_;
  std::unique_ptr<BodyBase> body_;
  SpawnOptions opts_;
  Task<void> task_;
};

}  // namespace corelet
