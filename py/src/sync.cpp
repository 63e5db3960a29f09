// The building blocks of corelet's Python synchronization primitives
// (py/corelet/_sync.py, _queues.py): sched's Semaphore, Event and Barrier as
// small Python types (_Units, _Flag, _Gate) whose state machines Lock, RLock,
// Semaphore, Event and Barrier use; a wait queue whose waiters are handed a value by notify();
// an operation that is complete at once; and run_blocking.

#include "core_type.hpp"
#include "tasklet.hpp"

#include <corelet/sched/detail/blocking.hpp>
#include <corelet/sched/barrier.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/sched/event.hpp>
#include <corelet/sched/semaphore.hpp>

#include <string>
#include <type_traits>

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
    if (!primitive::waiters_are_here(q_)) throw UsageError(not_here_message("WaitQueue.notify"));
    primitive::Waiter* w = q_.pop_front();
    if (!w) return false;
    *static_cast<PyObject**>(w->slot) = Py_NewRef(value);
    w->state = primitive::Waiter::State::Done;
    primitive::unpark(w->tasklet);
    return true;
  }
  std::size_t notify_all(PyObject* value) {
    std::size_t n = 0;
    while (notify(value)) ++n;
    return n;
  }
  std::size_t size() const noexcept { return q_.size(); }

  primitive::WaitQueue q_;
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
  void link(PyTasklet&, primitive::Waiter& w) override {
    Py_CLEAR(value_);
    w.slot = &value_;
    primitive::wait_in(queue_.q_, w);
  }

  bool end(PyTasklet& t) override {
    if (t.wake == primitive::Wake::Timeout) {
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
  primitive::Waiter w_;
};

// ---------------------------------------------------------------------------
// _Units and _Flag: corelet::Semaphore and corelet::Event, as Python types
// with METH_FASTCALL methods (a pybind11 call costs three times a Python
// one; these cost less than one). Their state machines — the count, the
// FIFO hand-off of a released unit, the flag — are sched's, the same code
// that fiber tasklets use; the Python classes add threading's names and
// argument checks.

PyObject* g_broken_barrier = nullptr;  // threading.BrokenBarrierError

// CoreWaitOp — a wait on a core: for a unit of a Semaphore (given True once
// it is ours) or for an Event's set() (True). False on timeout.
template <class Core>
class CoreWaitOp final : public Op {
 public:
  CoreWaitOp(PyObject* owner, Clock::time_point deadline, const char* what)
      : owner_(Py_NewRef(owner)), core_(core_of<Core>(owner)), deadline_(deadline),
        what_(what) {}
  ~CoreWaitOp() override { Py_DECREF(owner_); }
  Begin begin(PyTasklet& t) override {
    if (ready_now()) {
      t.give(Py_NewRef(Py_True));
      return Begin::Done;
    }
    if (deadline_ <= Clock::now()) {
      t.give(Py_NewRef(Py_False));
      return Begin::Done;
    }
    w_.tasklet = &t;
    t.waiters = &w_;
    core_.enlist(w_);
    return park(t, *this, &core_, deadline_) ? Begin::Parked : Begin::Done;
  }
  bool end(PyTasklet& t) override {
    switch (t.wake) {
      case primitive::Wake::Cancelled: t.raise_cancelled(); break;
      case primitive::Wake::Timeout: t.give(Py_NewRef(Py_False)); break;
      case primitive::Wake::Notified: t.give(Py_NewRef(Py_True)); break;
    }
    return true;
  }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  bool ready_now() {
    if constexpr (std::is_same_v<Core, corelet::Semaphore>) return core_.try_acquire();
    else return core_.is_set();
  }
  PyObject* owner_;
  Core& core_;
  Clock::time_point deadline_;
  std::string what_;
  primitive::Waiter w_;
};

// wait(timeout, what): the operation (timeout: None or seconds).
template <class Core>
PyObject* core_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyUnicode_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "wait(timeout, what)");
    return nullptr;
  }
  const char* what = PyUnicode_AsUTF8(args[1]);
  if (!what) return nullptr;
  try {
    const Clock::time_point d = deadline_from(args[0], what);
    return op_object(new CoreWaitOp<Core>(self, d, what));
  } catch (...) {
    return set_python_error();
  }
}

template <class Core>
PyObject* core_waiting(PyObject* self, PyObject*) {
  return PyLong_FromSize_t(core_of<Core>(self).waiting());
}

PyObject* units_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"value", nullptr};
  Py_ssize_t value = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:_Units", const_cast<char**>(kw), &value)) return nullptr;
  if (value < 0) {
    PyErr_SetString(PyExc_ValueError, "corelet: _Units: value must be >= 0");
    return nullptr;
  }
  return make_core<corelet::Semaphore>(type, static_cast<std::size_t>(value));
}

PyObject* units_take(PyObject* self, PyObject*) { return PyBool_FromLong(core_of<corelet::Semaphore>(self).try_acquire()); }

// give(n=1): n units back, each to the longest waiter first.
PyObject* units_give(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  std::size_t n = 1;
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "give(n=1)");
    return nullptr;
  }
  if (nargs == 1) {
    n = PyLong_AsSize_t(args[0]);
    if (n == static_cast<std::size_t>(-1) && PyErr_Occurred()) return nullptr;
  }
  corelet::Semaphore& sem = core_of<corelet::Semaphore>(self);
  if (!check_here(sem, "release")) return nullptr;
  sem.release(n);
  Py_RETURN_NONE;
}

PyObject* units_value(PyObject* self, PyObject*) { return PyLong_FromSize_t(core_of<corelet::Semaphore>(self).value()); }

PyObject* flag_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  if (!PyArg_ParseTuple(args, ":_Flag") || (kwargs && PyDict_GET_SIZE(kwargs))) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_Flag() takes no arguments");
    return nullptr;
  }
  return make_core<corelet::Event>(type);
}

PyObject* flag_is_set(PyObject* self, PyObject*) { return PyBool_FromLong(core_of<corelet::Event>(self).is_set()); }

PyObject* flag_set(PyObject* self, PyObject*) {
  corelet::Event& ev = core_of<corelet::Event>(self);
  if (!check_here(ev, "Event.set")) return nullptr;
  ev.set();
  Py_RETURN_NONE;
}

PyObject* flag_clear(PyObject* self, PyObject*) {
  core_of<corelet::Event>(self).clear();
  Py_RETURN_NONE;
}

// ---- _Gate: corelet::Barrier for the Python Barrier ----

// GateWaitOp — a party that is not the last waits for the barrier to pass:
// True then; BrokenBarrierError if it breaks or is reset first, or when the
// wait times out (which breaks it, as in threading); a cancelled wait breaks
// it too.
class GateWaitOp final : public Op {
 public:
  GateWaitOp(PyObject* owner, Clock::time_point deadline)
      : owner_(Py_NewRef(owner)), gate_(core_of<corelet::Barrier>(owner)), deadline_(deadline) {}
  ~GateWaitOp() override { Py_DECREF(owner_); }
  Begin begin(PyTasklet& t) override {
    if (deadline_ <= Clock::now()) {
      gate_.abort();
      broken(t);
      return Begin::Done;
    }
    w_.tasklet = &t;
    t.waiters = &w_;
    gate_.enlist(w_);
    if (park(t, *this, &gate_, deadline_)) return Begin::Parked;
    gate_.abort();  // cancelled before it parked
    return Begin::Done;
  }
  bool end(PyTasklet& t) override {
    switch (t.wake) {
      case primitive::Wake::Cancelled:
        gate_.abort();
        t.raise_cancelled();
        return true;
      case primitive::Wake::Timeout:
        gate_.abort();
        broken(t);
        return true;
      case primitive::Wake::Notified:
        break;
    }
    if (w_.state == primitive::Waiter::State::Closed) broken(t);
    else t.give(Py_NewRef(Py_True));
    return true;
  }
  const char* what() const noexcept override { return "Barrier.wait"; }

 private:
  static void broken(PyTasklet& t) { t.raise_new(g_broken_barrier, "corelet: Barrier.wait: the barrier is broken"); }
  PyObject* owner_;
  corelet::Barrier& gate_;
  Clock::time_point deadline_;
  primitive::Waiter w_;
};

PyObject* gate_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* kw[] = {"parties", nullptr};
  Py_ssize_t parties = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n:_Gate", const_cast<char**>(kw), &parties)) return nullptr;
  if (parties < 1) {
    PyErr_SetString(PyExc_ValueError, "parties must be > 0");
    return nullptr;
  }
  return make_core<corelet::Barrier>(type, static_cast<std::size_t>(parties));
}

// arrive() -> (index, last): counts the caller in; BrokenBarrierError if broken.
PyObject* gate_arrive(PyObject* self, PyObject*) {
  try {
    const corelet::Barrier::Arrival a = core_of<corelet::Barrier>(self).arrive();
    return Py_BuildValue("(nO)", static_cast<Py_ssize_t>(a.index), a.last ? Py_True : Py_False);
  } catch (...) {
    return set_python_error();
  }
}

// pass_(), abort(), reset(): each wakes the waiters, so each checks that
// they are this scheduler's.
template <void (corelet::Barrier::*Do)() noexcept>
PyObject* gate_wake(PyObject* self, const char* what) {
  corelet::Barrier& b = core_of<corelet::Barrier>(self);
  if (!check_here(b, what)) return nullptr;
  (b.*Do)();
  Py_RETURN_NONE;
}
PyObject* gate_pass(PyObject* self, PyObject*) { return gate_wake<&corelet::Barrier::pass>(self, "Barrier.wait"); }
PyObject* gate_abort(PyObject* self, PyObject*) { return gate_wake<&corelet::Barrier::abort>(self, "Barrier.abort"); }
PyObject* gate_reset(PyObject* self, PyObject*) { return gate_wake<&corelet::Barrier::reset>(self, "Barrier.reset"); }

PyObject* gate_wait(PyObject* self, PyObject* timeout) {
  try {
    const Clock::time_point d = deadline_from(timeout, "Barrier.wait");
    return op_object(new GateWaitOp(self, d));
  } catch (...) {
    return set_python_error();
  }
}

PyObject* gate_parties(PyObject* self, PyObject*) { return PyLong_FromSize_t(core_of<corelet::Barrier>(self).parties()); }
PyObject* gate_waiting(PyObject* self, PyObject*) { return PyLong_FromSize_t(core_of<corelet::Barrier>(self).n_waiting()); }
PyObject* gate_broken(PyObject* self, PyObject*) { return PyBool_FromLong(core_of<corelet::Barrier>(self).broken()); }

PyMethodDef g_units_methods[] = {
    {"take", as_cfunction(&units_take), METH_NOARGS, "take() -> True if a unit was free (now ours)."},
    {"give", as_cfunction(&units_give), METH_FASTCALL, "give(n=1): n units back, to the waiters first (FIFO)."},
    {"wait", as_cfunction(&core_wait<corelet::Semaphore>), METH_FASTCALL,
     "wait(timeout, what) -> operation giving True once a unit is ours, False on timeout."},
    {"value", as_cfunction(&units_value), METH_NOARGS, "Free units."},
    {"waiting", as_cfunction(&core_waiting<corelet::Semaphore>), METH_NOARGS, "Tasklets waiting for a unit."},
    {nullptr, nullptr, 0, nullptr},
};

PyMethodDef g_flag_methods[] = {
    {"is_set", as_cfunction(&flag_is_set), METH_NOARGS, nullptr},
    {"set", as_cfunction(&flag_set), METH_NOARGS, "Sets the flag and wakes every waiter."},
    {"clear", as_cfunction(&flag_clear), METH_NOARGS, nullptr},
    {"wait", as_cfunction(&core_wait<corelet::Event>), METH_FASTCALL,
     "wait(timeout, what) -> operation giving True once the flag is set, False on timeout."},
    {"waiting", as_cfunction(&core_waiting<corelet::Event>), METH_NOARGS, "Tasklets waiting for the flag."},
    {nullptr, nullptr, 0, nullptr},
};

PyMethodDef g_gate_methods[] = {
    {"arrive", as_cfunction(&gate_arrive), METH_NOARGS, "arrive() -> (index, last): counts the caller in."},
    {"pass_", as_cfunction(&gate_pass), METH_NOARGS, "The last party: the others go on."},
    {"wait", as_cfunction(&gate_wait), METH_O, "wait(timeout) -> operation: a party that is not the last waits."},
    {"abort", as_cfunction(&gate_abort), METH_NOARGS, nullptr},
    {"reset", as_cfunction(&gate_reset), METH_NOARGS, nullptr},
    {"parties", as_cfunction(&gate_parties), METH_NOARGS, nullptr},
    {"waiting", as_cfunction(&gate_waiting), METH_NOARGS, nullptr},
    {"broken", as_cfunction(&gate_broken), METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
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
    if (!primitive::park_stackless(what(), &job_, Clock::time_point::max(), WaitKind::Io)) {
      cancelled_ = true;
      t.cancel_pending = false;
      job_.stop.request_stop();
      primitive::park_stackless(what(), &job_, Clock::time_point::max(), WaitKind::Io);  // nothing pending now: parks
    }
    return Begin::Parked;
  }
  bool end(PyTasklet& t) override {
    if (t.wake == primitive::Wake::Cancelled) {
      cancelled_ = true;
      job_.stop.request_stop();
    }
    if (!job_.finished) {
      primitive::park_stackless(what(), &job_, Clock::time_point::max(), WaitKind::Io);  // the cancellation was consumed
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
  pyb::class_<CoreWaitOp<corelet::Semaphore>, Op>(m, "_UnitsWait");
  pyb::class_<CoreWaitOp<corelet::Event>, Op>(m, "_FlagWait");
  PyObject* units = make_core_type<corelet::Semaphore>(
      "corelet._corelet._Units", "_Units(value=1): corelet::Semaphore's count and FIFO hand-off.", &units_new,
      g_units_methods);
  if (!units) throw pyb::error_already_set();
  m.add_object("_Units", pyb::reinterpret_steal<pyb::object>(units));
  PyObject* flag = make_core_type<corelet::Event>("corelet._corelet._Flag", "_Flag(): corelet::Event's flag.",
                                                  &flag_new, g_flag_methods);
  if (!flag) throw pyb::error_already_set();
  m.add_object("_Flag", pyb::reinterpret_steal<pyb::object>(flag));
  pyb::class_<GateWaitOp, Op>(m, "_GateWait");
  g_broken_barrier = pyb::object(pyb::module_::import("threading").attr("BrokenBarrierError")).release().ptr();
  PyObject* gate = make_core_type<corelet::Barrier>(
      "corelet._corelet._Gate", "_Gate(parties): corelet::Barrier's count, generations and breaking.", &gate_new,
      g_gate_methods);
  if (!gate) throw pyb::error_already_set();
  m.add_object("_Gate", pyb::reinterpret_steal<pyb::object>(gate));
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
