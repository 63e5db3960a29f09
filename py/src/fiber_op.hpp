#pragma once
// FiberOp — an operation whose work is a C++ call that parks (I/O through the
// reactor, a remote call's Future): the call runs in a small fiber tasklet and
// the Python tasklet waits for that fiber to end. Only C++ runs on the fiber's
// stack; the Python frames stay on the loop's. A cancelled Python tasklet
// cancels the fiber and still waits for it (a kernel operation is cancelled
// before its buffer can go away); a result that came in anyway is kept, and
// the cancellation then hits the tasklet's next wait, as in C++.

#include "tasklet.hpp"

#include <corelet/sched/errors.hpp>
#include <corelet/sched/task.hpp>

#include <string>
#include <system_error>

namespace corelet::py {

class FiberOp : public Op {
 public:
  explicit FiberOp(std::string what) : what_(std::move(what)) {}
  ~FiberOp() override {
    if (fiber_) detail::release(fiber_);
  }
  Begin begin(PyTasklet& t) override {
    if (fiber_) {
      t.raise_new(g_exc.usage, "corelet: " + what_ + ": this operation was already used");
      return Begin::Done;
    }
    if (!prepare(t)) return Begin::Done;
    auto body = [this] { result_ = run(); };
    auto* f = new detail::TaskletImpl<void, decltype(body)>(std::move(body));
    f->name = what_;
    fiber_ = f;  // our reference (the scheduler takes its own in start)
    try {
      detail::start(f, what_.c_str());
    } catch (const std::exception& e) {
      t.raise_new(g_exc.usage, e.what());
      return Begin::Done;
    }
    return wait_fiber(t) ? Begin::Parked : Begin::Done;
  }
  bool end(PyTasklet& t) override {
    if (t.wake == primitive::Wake::Cancelled) {
      cancelled_ = true;
      detail::cancel(fiber_);  // no effect if it ended meanwhile
    }
    if (fiber_->state != detail::State::Done) {
      primitive::enlist(w_, &t, fiber_->joiners);
      primitive::park_stackless(what(), fiber_, Clock::time_point::max(), kind());  // the cancellation was consumed
      return false;
    }
    finish(t);
    return true;
  }
  const char* what() const noexcept override { return what_.c_str(); }
  WaitKind kind() const noexcept override { return WaitKind::Io; }

 protected:
  // Under the GIL, before the fiber starts: take buffers etc. False (with
  // t.raise set) to fail at once.
  virtual bool prepare(PyTasklet&) { return true; }
  // In the fiber (no GIL use): the call.
  virtual long run() = 0;
  // Under the GIL, after a successful run: the value for the tasklet, or
  // nullptr with a Python error set (the tasklet raises it).
  virtual PyObject* value(long result) { return PyLong_FromLong(result); }
  // Under the GIL, for an exception of run() other than Cancelled: raise it
  // in t (true), or leave it to the standard translation (false).
  virtual bool translate(PyTasklet&, const std::exception_ptr&) { return false; }

 private:
  bool wait_fiber(PyTasklet& t) {
    primitive::enlist(w_, &t, fiber_->joiners);
    if (primitive::park_stackless(what(), fiber_, Clock::time_point::max(), kind())) return true;
    // A cancellation was pending: cancel the fiber too, and still wait for it.
    cancelled_ = true;
    detail::cancel(fiber_);
    primitive::enlist(w_, &t, fiber_->joiners);
    primitive::park_stackless(what(), fiber_, Clock::time_point::max(), kind());
    return true;
  }
  void finish(PyTasklet& t) {
    fiber_->joined = true;  // its error is ours to report
    if (!fiber_->error) {
      if (cancelled_) t.cancel_pending = true;  // the result came in anyway: keep it, cancel at the next wait
      PyObject* v = value(result_);  // nullptr: value() set the error
      if (v) t.give(v);
      else if (PyErr_Occurred()) t.raise(fetch_exception());
      else t.raise_new(PyExc_MemoryError, "corelet: " + what_);
      return;
    }
    if (cancelled_) {  // an error after our cancellation (the fd closed meanwhile...): cancelled wins
      t.raise_cancelled();
      return;
    }
    if (translate(t, fiber_->error)) return;
    try {
      std::rethrow_exception(fiber_->error);
    } catch (const Cancelled&) {
      t.raise_cancelled();
    } catch (...) {
      set_python_error();
      t.raise(fetch_exception());
    }
  }

  std::string what_;
  detail::Tasklet* fiber_ = nullptr;
  primitive::Waiter w_;
  long result_ = 0;
  bool cancelled_ = false;
};

}  // namespace corelet::py
