// The building blocks of corelet's Python synchronization primitives
// (py/corelet/_sync.py, _queues.py): a wait queue whose waiters are handed a
// value by notify(), an operation that is complete at once, and run_blocking.

#include "tasklet.hpp"

#include <corelet/sched/detail/blocking.hpp>
#include <corelet/sched/errors.hpp>

#include <string>

namespace corelet::py {
namespace {

// WaitQueue — FIFO of parked tasklets. notify(value) hands `value` to the
// first one and makes it ready; the primitives use it for hand-offs (a lock
// released to its next waiter stays locked, so nobody can barge in between).
class WaitQueue {
 public:
  WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;

  bool notify(PyObject* value) {
    if (!q_.empty() && !detail::on_this_scheduler(q_.head->tasklet))
      throw UsageError("corelet: tasklets of another corelet.run (another thread, or a run that ended) wait on "
                       "this primitive; locks, events and queues belong to one scheduler");
    detail::Waiter* w = q_.pop_front();
    if (!w) return false;
    *static_cast<PyObject**>(w->slot) = Py_NewRef(value);
    w->state = detail::Waiter::State::Done;
    detail::unpark(w->tasklet);
    return true;
  }
  std::size_t notify_all(PyObject* value) {
    std::size_t n = 0;
    while (notify(value)) ++n;
    return n;
  }
  std::size_t size() const noexcept { return q_.size(); }

  detail::WaitQueue q_;
};

class WaitOp final : public Op {
 public:
  WaitOp(pyb::object queue, Clock::time_point deadline, PyObject* timeout_value, PyObject* timeout_error,
         const std::string& what)
      : queue_obj_(std::move(queue)),
        queue_(queue_obj_.cast<WaitQueue&>()),
        deadline_(deadline),
        timeout_value_(Py_XNewRef(timeout_value)),
        timeout_error_(Py_NewRef(timeout_error)),
        what_(what) {}
  ~WaitOp() override {
    Py_XDECREF(value_);
    Py_XDECREF(timeout_value_);
    Py_XDECREF(timeout_error_);
  }
  Begin begin(PyTasklet& t) override {
    if (deadline_ <= Clock::now()) {
      timed_out(t);
      return Begin::Done;
    }
    w_.tasklet = &t;
    link(t, w_);
    t.waiters = &w_;
    return park(t, *this, &queue_, deadline_) ? Begin::Parked : Begin::Done;
  }
  void link(PyTasklet&, detail::Waiter& w) override {
    Py_CLEAR(value_);
    w.slot = &value_;
    w.state = detail::Waiter::State::Pending;
    queue_.q_.push_back(&w);
  }

  bool end(PyTasklet& t) override {
    if (t.wake == detail::Wake::Timeout) {
      timed_out(t);
      return true;
    }
    return end_waiter(t, w_, value_, what_.c_str(), g_exc.usage);
  }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  void timed_out(PyTasklet& t) {
    if (timeout_value_) t.give(Py_NewRef(timeout_value_));
    else t.raise_new(timeout_error_, "corelet: " + what_ + ": timed out");
  }
  pyb::object queue_obj_;
  WaitQueue& queue_;
  Clock::time_point deadline_;
  PyObject* timeout_value_;  // given on timeout (if set) instead of raising...
  PyObject* timeout_error_;  // ...this exception type
  PyObject* value_ = nullptr;
  std::string what_;
  detail::Waiter w_;
};

// ReadyOp — complete at once with its value: what a primitive returns when
// it need not wait (an uncontended Lock.acquire()), so that `yield` and
// `await` of it cost one round through the driver and no park.
class ReadyOp final : public Op {
 public:
  explicit ReadyOp(pyb::object value) : value_(std::move(value)) {}
  Begin begin(PyTasklet& t) override {
    t.give(Py_NewRef(value_.ptr()));
    return Begin::Done;
  }
  bool end(PyTasklet&) override { return true; }
  const char* what() const noexcept override { return "ready"; }

 private:
  pyb::object value_;
};

// run_blocking(fn, *args): fn runs on one of sched's helper threads, which
// takes the GIL for it; the tasklet parks meanwhile. A cancelled tasklet
// still waits for the call to end (a thread cannot be interrupted safely),
// then raises Cancelled.
class BlockingOp final : public Op {
 public:
  BlockingOp(pyb::object fn, pyb::tuple args) : job_(std::move(fn), std::move(args)) {}
  ~BlockingOp() override = default;
  Begin begin(PyTasklet& t) override {
    if (used_) {
      t.raise_new(g_exc.usage, "corelet: run_blocking: this operation was already used");
      return Begin::Done;
    }
    used_ = true;
    try {
      detail::submit_job(job_, "corelet.run_blocking");
    } catch (const std::exception& e) {
      t.raise_new(PyExc_RuntimeError, std::string("corelet: run_blocking: ") + e.what());
      return Begin::Done;
    }
    if (!detail::park_stackless(what(), &job_, Clock::time_point::max(), WaitKind::Io)) {
      cancelled_ = true;
      t.cancel_pending = false;
      job_.stop.request_stop();
      detail::park_stackless(what(), &job_, Clock::time_point::max(), WaitKind::Io);  // nothing pending now: parks
    }
    return Begin::Parked;
  }
  bool end(PyTasklet& t) override {
    if (t.wake == detail::Wake::Cancelled) {
      cancelled_ = true;
      job_.stop.request_stop();
    }
    if (!job_.finished) {
      detail::park_stackless(what(), &job_, Clock::time_point::max(), WaitKind::Io);  // the cancellation was consumed
      return false;
    }
    if (cancelled_) {
      t.raise_cancelled();
    } else if (job_.exc) {
      t.raise(steal(job_.exc));
    } else {
      t.give(job_.result ? steal(job_.result) : Py_NewRef(Py_None));
    }
    return true;
  }
  const char* what() const noexcept override { return "run_blocking"; }

 private:
  struct Job final : detail::BlockingJob {
    Job(pyb::object f, pyb::tuple a) : fn(std::move(f)), args(std::move(a)) {}
    ~Job() {
      Py_XDECREF(result);
      Py_XDECREF(exc);
    }
    void execute() noexcept override {
      // Never take the GIL while the interpreter finalizes: 3.11 would end
      // this thread with pthread_exit, which cannot unwind this noexcept
      // frame. The call is dropped; nobody waits for it any more.
      if (_Py_IsFinalizing()) return;
      PyGILState_STATE g = PyGILState_Ensure();
      result = PyObject_Call(fn.ptr(), args.ptr(), nullptr);
      if (!result) exc = fetch_exception();
      PyGILState_Release(g);
    }
    pyb::object fn;
    pyb::tuple args;
    PyObject* result = nullptr;
    PyObject* exc = nullptr;
  };
  Job job_;
  bool used_ = false;
  bool cancelled_ = false;
};

}  // namespace

void bind_sync(pyb::module_& m) {
  pyb::class_<WaitOp, Op>(m, "_Wait");
  pyb::class_<ReadyOp, Op>(m, "_Ready");
  pyb::class_<WaitQueue>(m, "WaitQueue",
                         "FIFO of waiting tasklets; notify(value) hands value to the first one. The\n"
                         "building block of corelet's Lock, Event, Semaphore, Condition and queues.")
      .def(pyb::init<>())
      .def(
          "wait",
          [](pyb::object self, pyb::object timeout, pyb::object timeout_value, pyb::object timeout_error,
             const std::string& what) {
            if (!PyExceptionClass_Check(timeout_error.ptr()))
              throw pyb::type_error("corelet: WaitQueue.wait: timeout_error must be an exception class");
            return new WaitOp(self, deadline_from(timeout, what.c_str()),
                              timeout_value.is(pyb::ellipsis()) ? nullptr : timeout_value.ptr(), timeout_error.ptr(),
                              what);
          },
          pyb::arg("timeout") = pyb::none(), pyb::arg("timeout_value") = pyb::ellipsis(),
          pyb::arg("timeout_error") = pyb::reinterpret_borrow<pyb::object>(PyExc_TimeoutError),
          pyb::arg("what") = "WaitQueue.wait",
          "wait(timeout=None, timeout_value=..., timeout_error=TimeoutError, what=...) -> operation\n"
          "giving the value passed to notify(); on timeout it gives timeout_value if one is given,\n"
          "else raises timeout_error. `what` names the wait in deadlock reports.")
      .def(
          "notify", [](WaitQueue& q, pyb::object value) { return q.notify(value.ptr()); },
          pyb::arg("value") = true, "Hands value to the first waiter; False if nobody waits.")
      .def(
          "notify_all", [](WaitQueue& q, pyb::object value) { return q.notify_all(value.ptr()); },
          pyb::arg("value") = true, "Hands value to every waiter; returns how many.")
      .def("__len__", &WaitQueue::size)
      .def("__bool__", [](const WaitQueue& q) { return q.size() != 0; });
  m.def(
      "ready", [](pyb::object value) { return new ReadyOp(std::move(value)); }, pyb::arg("value"),
      "ready(value) -> an operation complete at once, giving value.");
}

void bind_blocking(pyb::module_& m) {
  pyb::class_<BlockingOp, Op>(m, "_Blocking");
  m.def(
      "run_blocking",
      [](pyb::object fn, pyb::args args) {
        if (!PyCallable_Check(fn.ptr())) throw pyb::type_error("corelet.run_blocking: fn is not callable");
        return new BlockingOp(std::move(fn), pyb::tuple(std::move(args)));
      },
      pyb::arg("fn"),
      "run_blocking(fn, *args) -> operation: `r = yield corelet.run_blocking(fn, ...)` runs fn on a\n"
      "helper thread (it may block: a C library, a slow syscall) while the other tasklets run.");
}

}  // namespace corelet::py
