// Python tasklets: the driver (PyTasklet::step), the awaitable protocol of
// operations, and run / spawn / sleep / Task / current.

#include "tasklet.hpp"

#include <corelet/sched/detail/loop_hook.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/sched/task.hpp>

#include <chrono>
#include <cmath>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace corelet::py {

Exceptions g_exc;

namespace {

// One corelet.run on this thread (RunScope): its main tasklet, and a
// KeyboardInterrupt or SystemExit that arrived while it ran (raised by a
// signal handler between steps, or ending a tasklet other than main): main
// is cancelled and resumes with it instead of Cancelled, so it propagates out
// of run().
struct RunState {
  PyTasklet* main = nullptr;
  PyObject* interrupt = nullptr;
};
thread_local RunState* tl_run = nullptr;

void interrupt_run(PyObject* exc) noexcept {
  RunState* r = tl_run;
  if (!r || !r->main || r->interrupt) {
    Py_DECREF(exc);
    return;
  }
  r->interrupt = exc;
  if (r->main->state == detail::State::Done) {
    detail::cancel_everything();  // main ended already: stop the others; run() raises the interrupt
  } else {
    detail::cancel(r->main);
  }
}

PyObject* str_throw = nullptr;

// The GIL is released only while the loop sleeps; a signal that arrived then
// (SIGINT) is handled as soon as the loop wakes.
struct GilWhileIdle final : detail::IdleGuard {
  PyThreadState* saved = nullptr;
  void before_sleep() noexcept override { saved = PyEval_SaveThread(); }
  void after_sleep() noexcept override {
    // A daemon thread woken while the interpreter finalizes must not take the
    // GIL back (3.11 would end it with pthread_exit, which cannot unwind
    // through this noexcept frame): it waits for the process to end.
    if (_Py_IsFinalizing()) {
      for (;;) ::pause();
    }
    PyEval_RestoreThread(saved);
    if (PyErr_CheckSignals() < 0) interrupt_run(fetch_exception());
  }
};

bool is_base_exit(PyObject* exc) noexcept {
  return PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt) ||
         PyErr_GivenExceptionMatches(exc, PyExc_SystemExit);
}

Op* as_op(PyObject* o) {
  static PyTypeObject* op_type = reinterpret_cast<PyTypeObject*>(pyb::type::of<Op>().ptr());
  if (!PyObject_TypeCheck(o, op_type)) return nullptr;
  return pyb::handle(o).cast<Op*>();
}

std::string describe(PyObject* o) {
  PyObject* r = PyObject_Repr(o);
  if (!r) {
    PyErr_Clear();
    return Py_TYPE(o)->tp_name;
  }
  const char* s = PyUnicode_AsUTF8(r);
  std::string out = s ? s : Py_TYPE(o)->tp_name;
  Py_DECREF(r);
  if (out.size() > 200) out = out.substr(0, 200) + "...";
  return out;
}

// A C++ exception standing for a Python one in Tasklet::error (the scheduler
// only needs to know that the tasklet failed; Python code sees exc_).
class PythonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace

struct RunScope::Impl {
  RunState state;
  GilWhileIdle gil;
  detail::IdleGuard* before = nullptr;
  detail::TaskletDescriber* before_describer = nullptr;
};

RunScope::RunScope() : impl_(new Impl) {
  if (tl_run) {
    delete impl_;
    throw pyb::value_error("corelet.run: called inside corelet.run on the same thread");
  }
  tl_run = &impl_->state;
  impl_->before = detail::set_idle_guard(&impl_->gil);
  impl_->before_describer = detail::set_describer(python_describer());
}

RunScope::~RunScope() {
  detail::set_idle_guard(impl_->before);
  detail::set_describer(impl_->before_describer);
  tl_run = nullptr;
  Py_CLEAR(impl_->state.interrupt);
  delete impl_;
}

void RunScope::set_main(PyTasklet* t) noexcept { impl_->state.main = t; }

PyObject* RunScope::take_interrupt() noexcept { return steal(impl_->state.interrupt); }

PyTasklet* current_py() noexcept {
  detail::Tasklet* t = primitive::current();
  return t && t->stackless ? static_cast<PyTasklet*>(t) : nullptr;
}

PyTasklet::PyTasklet(PyObject* fn, PyObject* args) : fn_(Py_NewRef(fn)), args_(Py_NewRef(args)) {
  stackless = true;
  error_reported = true;  // it reports its own lost exception, with the traceback
}

PyTasklet::~PyTasklet() {
  if (exc_ && !retrieved_ && !is_main && !PyErr_GivenExceptionMatches(exc_, g_exc.cancelled) && Py_IsInitialized()) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);  // keep whatever error is being raised meanwhile
    std::fprintf(stderr, "corelet: tasklet \"%s\" (#%llu) ended with an exception nobody joined:\n", name.c_str(),
                 static_cast<unsigned long long>(running.id));
    PyObject* tbo = PyException_GetTraceback(exc_);
    PyErr_Display(reinterpret_cast<PyObject*>(Py_TYPE(exc_)), exc_, tbo);
    Py_XDECREF(tbo);
    PyErr_Restore(t, v, tb);
  }
  clear_op();
  Py_CLEAR(spawn_file_obj_);
  Py_CLEAR(fn_);
  Py_CLEAR(args_);
  Py_CLEAR(coro_);
  for (PyObject* c : callers_) Py_DECREF(c);
  callers_.clear();
  Py_CLEAR(send_);
  Py_CLEAR(throw_);
  Py_CLEAR(result_);
  Py_CLEAR(exc_);
}

void PyTasklet::give(PyObject* value) noexcept {
  Py_XSETREF(send_, value);
  Py_CLEAR(throw_);
}

void PyTasklet::raise(PyObject* exc) noexcept {
  Py_XSETREF(throw_, exc);
  Py_CLEAR(send_);
}

void PyTasklet::raise_new(PyObject* type, const std::string& msg) noexcept {
  PyObject* exc = PyObject_CallFunction(type, "s", msg.c_str());
  raise(exc ? exc : fetch_exception());  // no exc: MemoryError, thrown in instead
}

void PyTasklet::raise_cancelled() noexcept {
  RunState* r = tl_run;
  if (is_main && r && r->interrupt) {
    raise(steal(r->interrupt));
    return;
  }
  raise_new(g_exc.cancelled, "corelet: tasklet \"" + name + "\" cancelled");
}

void PyTasklet::capture_exception() noexcept {
  PyObject* value = fetch_exception();
  Py_XSETREF(exc_, value);
  if (PyErr_GivenExceptionMatches(value, g_exc.cancelled)) {
    error = std::make_exception_ptr(Cancelled{});
  } else {
    error = std::make_exception_ptr(PythonError("Python exception " + describe(value)));
    if (!is_main && is_base_exit(value)) {
      retrieved_ = true;  // it goes on to main
      interrupt_run(Py_NewRef(value));
    }
  }
}

bool PyTasklet::frame_ended(PyObject* result) noexcept {
  Py_CLEAR(coro_);
  if (callers_.empty()) {
    if (result) result_ = result; else capture_exception();
    return true;
  }
  coro_ = callers_.back();
  callers_.pop_back();
  if (result) give(result); else capture_pending_into_throw();
  return false;
}

void PyTasklet::capture_pending_into_throw() noexcept { raise(fetch_exception()); }

PyObject* fetch_exception() noexcept {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
}

void PyTasklet::clear_op() noexcept {
  op_ = nullptr;
  Py_CLEAR(op_obj_);
}

void PyTasklet::settle() noexcept {
  // Cancelled before it ever ran: the scheduler ended it without a step.
  if (state == detail::State::Done && !exc_ && !result_ && error) {
    raise_new(g_exc.cancelled, "corelet: tasklet \"" + name + "\" cancelled before it ran");
    exc_ = steal(throw_);
  }
}

PyObject* PyTasklet::outcome() noexcept {
  settle();
  if (exc_) {
    retrieved_ = true;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc_)), exc_);
    return nullptr;
  }
  return Py_NewRef(result_ ? result_ : Py_None);
}

bool PyTasklet::step() {
  if (!coro_) {
    if (!fn_) return true;  // nothing left to run (cannot happen: done tasklets are not stepped)
    PyObject* fn = steal(fn_);
    PyObject* args = steal(args_);
    PyObject* r = PyObject_Call(fn, args, nullptr);
    Py_DECREF(fn);
    Py_DECREF(args);
    if (!r) {
      capture_exception();
      return true;
    }
    if (!PyGen_Check(r) && !PyCoro_CheckExact(r)) {
      result_ = r;  // a plain function: its value is the result
      return true;
    }
    coro_ = r;
  }
  if (op_) {
    if (!op_->end(*this)) return false;  // parked again
    clear_op();
  } else if (cancel_pending) {  // cancelled while ready (after a yield): the yield raises
    cancel_pending = false;
    raise_cancelled();
  }
  for (;;) {
    PyObject* out = nullptr;
    if (throw_) {
      PyObject* exc = steal(throw_);
      out = PyObject_CallMethodOneArg(coro_, str_throw, exc);
      Py_DECREF(exc);
      if (!out) {
        PyObject* value = nullptr;
        if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
          PyObject *t, *v, *tb;
          PyErr_Fetch(&t, &v, &tb);
          PyErr_NormalizeException(&t, &v, &tb);
          value = v ? PyObject_GetAttrString(v, "value") : nullptr;
          if (!value) PyErr_Clear();
          if (!value) value = Py_NewRef(Py_None);
          Py_XDECREF(t);
          Py_XDECREF(v);
          Py_XDECREF(tb);
        }
        if (frame_ended(value)) return true;
        continue;
      }
    } else {
      PyObject* v = send_ ? steal(send_) : Py_NewRef(Py_None);
      const PySendResult r = PyIter_Send(coro_, v, &out);
      Py_DECREF(v);
      if (r != PYGEN_NEXT) {
        if (frame_ended(r == PYGEN_RETURN ? out : nullptr)) return true;
        continue;
      }
    }
    // `out` is what the tasklet yielded (owned).
    if (out == Py_None) {  // a bare `yield`: let the others run
      Py_DECREF(out);
      if (cancel_pending) {
        cancel_pending = false;
        raise_cancelled();
        continue;
      }
      return false;
    }
    if (PyGen_Check(out) || PyCoro_CheckExact(out)) {  // a call: run it, then resume with its result
      try {
        callers_.push_back(coro_);
      } catch (...) {
        Py_DECREF(out);
        raise_new(PyExc_MemoryError, "corelet: no memory for a nested generator call");
        continue;
      }
      coro_ = out;
      give(nullptr);
      continue;
    }
    Op* op = nullptr;
    try {
      op = as_op(out);
    } catch (...) {
      op = nullptr;
    }
    if (!op) {
      raise_new(PyExc_TypeError, "corelet: a tasklet may yield or await corelet operations "
                                 "(corelet.sleep(...), ch.recv(), task.join(), ...) or a bare yield, not " +
                                     describe(out));
      Py_DECREF(out);
      continue;
    }
    Op::Begin begun;
    try {
      begun = op->begin(*this);
    } catch (pyb::error_already_set& e) {
      e.restore();
      capture_pending_into_throw();
      Py_DECREF(out);
      continue;
    } catch (const std::exception& e) {  // bad_alloc from a timer heap, a waiter vector...
      raise_new(dynamic_cast<const std::bad_alloc*>(&e) ? PyExc_MemoryError : PyExc_RuntimeError,
                std::string("corelet: ") + op->what() + ": " + e.what());
      Py_DECREF(out);
      continue;
    }
    switch (begun) {
      case Op::Begin::Done:
        Py_DECREF(out);
        continue;
      case Op::Begin::Yield:
        Py_DECREF(out);
        give(nullptr);
        return false;
      case Op::Begin::Parked:
        op_ = op;
        op_obj_ = out;
        return false;
    }
  }
}

Clock::time_point deadline_from(PyObject* timeout, const char* call) {
  if (timeout == Py_None) return Clock::time_point::max();
  const double s = PyFloat_AsDouble(timeout);
  if (s == -1.0 && PyErr_Occurred()) throw pyb::error_already_set();
  if (std::isnan(s) || s < 0) throw pyb::value_error(std::string(call) + ": timeout must be a non-negative number of seconds");
  if (s > 1e9) return Clock::time_point::max();
  return primitive::deadline_after(std::chrono::duration<double>(s));
}

Clock::time_point deadline_from(const pyb::object& timeout, const char* call) {
  return deadline_from(timeout.ptr(), call);
}

std::string not_here_message(const char* what) {
  return std::string("corelet: ") + what +
         ": tasklets of another corelet.run (another thread, or a run that ended) wait on it; channels, locks, "
         "events and queues belong to one scheduler";
}

PyObject* set_python_error() noexcept {
  try {
    throw;
  } catch (pyb::error_already_set& e) {
    e.restore();
  } catch (const pyb::builtin_exception& e) {
    e.set_error();
  } catch (const Cancelled& e) {
    PyErr_SetString(g_exc.cancelled, e.what());
  } catch (const UsageError& e) {
    PyErr_SetString(g_exc.usage, e.what());
  } catch (const ChannelClosed& e) {
    PyErr_SetString(g_exc.channel_closed, e.what());
  } catch (const Deadlock& e) {
    PyErr_SetString(g_exc.deadlock, e.what());
  } catch (const BrokenBarrier& e) {
    PyObject* threading = PyImport_ImportModule("threading");
    PyObject* type = threading ? PyObject_GetAttrString(threading, "BrokenBarrierError") : nullptr;
    Py_XDECREF(threading);
    if (type) {
      PyErr_SetNone(type);
      Py_DECREF(type);
    }
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::timed_out) {
      PyErr_SetString(PyExc_TimeoutError, e.what());
    } else if (PyObject* exc = PyObject_CallFunction(PyExc_OSError, "is", e.code().value(), e.what())) {
      PyErr_SetObject(PyExc_OSError, exc);
      Py_DECREF(exc);
    }
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::length_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::out_of_range& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "corelet: an unknown C++ exception");
  }
  return nullptr;
}

bool park(PyTasklet& t, Op& op, const void* obj, Clock::time_point deadline) {
  if (primitive::park_stackless(op.what(), obj, deadline, op.kind())) return true;
  t.raise_cancelled();
  return false;
}

bool end_waiter(PyTasklet& t, const primitive::Waiter& w, PyObject*& slot, const char* call, PyObject* closed_type) {
  switch (t.wake) {
    case primitive::Wake::Cancelled:
      t.raise_cancelled();
      return true;
    case primitive::Wake::Timeout:
      t.raise_new(PyExc_TimeoutError, std::string(call) + ": timed out");
      return true;
    case primitive::Wake::Notified:
      break;
  }
  if (w.state == primitive::Waiter::State::Closed) {
    t.raise_new(closed_type, std::string(call) + ": closed");
    return true;
  }
  t.give(slot ? steal(slot) : Py_NewRef(Py_None));
  return true;
}

// ---------------------------------------------------------------------------
// Operations of the tasklet module.

namespace {

class SleepOp final : public Op {
 public:
  explicit SleepOp(double seconds) : seconds_(seconds) {}
  Begin begin(PyTasklet& t) override {
    if (seconds_ <= 0) {
      if (t.cancel_pending) {
        t.cancel_pending = false;
        t.raise_cancelled();
        return Begin::Done;
      }
      return Begin::Yield;
    }
    return park(t, *this, this, primitive::deadline_after(std::chrono::duration<double>(seconds_))) ? Begin::Parked
                                                                                                   : Begin::Done;
  }
  bool end(PyTasklet& t) override {
    if (t.wake == primitive::Wake::Cancelled) t.raise_cancelled(); else t.give(nullptr);
    return true;
  }
  const char* what() const noexcept override { return "corelet.sleep"; }
  WaitKind kind() const noexcept override { return WaitKind::Timer; }

 private:
  double seconds_;
};

// Joining: the joiner parks on the target's joiners with its own join_w_.
Op::Begin join_begin(PyTasklet& t, PyTasklet* target, Op& op, Clock::time_point deadline);
bool join_end(PyTasklet& t, PyTasklet* target);

void deliver(PyTasklet& t, PyTasklet* target) {
  target->joined = true;
  if (PyObject* v = target->outcome()) {
    t.give(v);
    return;
  }
  t.raise(fetch_exception());  // outcome() set the target's exception, its traceback kept
}

Op::Begin join_begin(PyTasklet& t, PyTasklet* target, Op& op, Clock::time_point deadline) {
  if (target->state == detail::State::Done) {
    deliver(t, target);
    return Op::Begin::Done;
  }
  if (target == &t) {
    t.raise_new(g_exc.usage, "corelet: Task.join: a tasklet cannot join itself");
    return Op::Begin::Done;
  }
  if (!primitive::on_this_scheduler(target)) {
    t.raise_new(g_exc.usage, "corelet: Task.join: the task belongs to another corelet.run (another thread)");
    return Op::Begin::Done;
  }
  t.join_w_.state = primitive::Waiter::State::Pending;
  primitive::enlist(t.join_w_, &t, target->joiners);
  return park(t, op, target, deadline) ? Op::Begin::Parked : Op::Begin::Done;
}

bool join_end(PyTasklet& t, PyTasklet* target) {
  if (t.wake == primitive::Wake::Cancelled) {
    t.raise_cancelled();
  } else if (target->state == detail::State::Done) {
    deliver(t, target);
  } else {
    t.raise_new(PyExc_TimeoutError, "corelet: Task.join: timed out");
  }
  return true;
}

// A join with a timeout (the Task itself is the join without one).
class JoinOp final : public Op {
 public:
  JoinOp(pyb::object task, PyTasklet* target, Clock::time_point deadline)
      : task_(std::move(task)), target_(target), deadline_(deadline) {}
  Begin begin(PyTasklet& t) override { return join_begin(t, target_, *this, deadline_); }
  bool end(PyTasklet& t) override { return join_end(t, target_); }
  const char* what() const noexcept override { return "Task.join"; }

 private:
  pyb::object task_;  // keeps the target alive
  PyTasklet* target_;
  Clock::time_point deadline_;
};

// select(ops, timeout=None): the first of several operations that can
// complete; gives (index, value). Cases ready at once are tried from a
// rotating start, so that no case starves; otherwise the tasklet waits on all
// of them (one waiter each, chained as siblings: the wake of one unlinks all).
class SelectOp final : public Op {
 public:
  SelectOp(std::vector<pyb::object> ops, Clock::time_point deadline) : objs_(std::move(ops)), deadline_(deadline) {
    for (const pyb::object& o : objs_) {
      Op* op = as_op(o.ptr());
      if (!op || !op->selectable())
        throw pyb::type_error("corelet.select: cases are channel operations (ch.recv(), ch.send(v)), not " +
                              describe(o.ptr()));
      ops_.push_back(op);
    }
    if (ops_.empty()) throw pyb::value_error("corelet.select: no cases");
  }
  Begin begin(PyTasklet& t) override {
    const std::size_t n = ops_.size();
    const std::size_t start = primitive::select_start(n);
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (start + k) % n;
      PyObject* v = nullptr;
      const int r = ops_[i]->try_now(t, &v);
      if (r == 1) {
        give(t, i, v);
        return Begin::Done;
      }
      if (r == -1) return Begin::Done;
    }
    if (deadline_ <= Clock::now()) {
      t.raise_new(PyExc_TimeoutError, "corelet: select: timed out");
      return Begin::Done;
    }
    ws_.assign(n, primitive::Waiter{});
    primitive::Waiter* chain = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
      primitive::add_case(&t, ws_[i], i, chain);
      ops_[i]->link(t, ws_[i]);
    }
    t.waiters = chain;
    return park(t, *this, this, deadline_) ? Begin::Parked : Begin::Done;
  }
  bool end(PyTasklet& t) override {
    switch (t.wake) {
      case primitive::Wake::Cancelled: t.raise_cancelled(); return true;
      case primitive::Wake::Timeout: t.raise_new(PyExc_TimeoutError, "corelet: select: timed out"); return true;
      case primitive::Wake::Notified: break;
    }
    const std::size_t i = primitive::fired(ws_.data(), ws_.size());
    if (i == ws_.size()) {
      t.raise_new(PyExc_RuntimeError, "corelet: select: woken with no case done");  // cannot happen
      return true;
    }
    PyObject* v = nullptr;
    if (ops_[i]->fired(t, ws_[i], &v) == 1) give(t, i, v);
    return true;
  }
  const char* what() const noexcept override { return "select"; }

 private:
  static void give(PyTasklet& t, std::size_t i, PyObject* v) {
    PyObject* pair = Py_BuildValue("(nN)", static_cast<Py_ssize_t>(i), v);
    if (!pair) {
      t.raise_new(PyExc_MemoryError, "corelet: select");
      return;
    }
    t.give(pair);
  }
  std::vector<pyb::object> objs_;  // keep the cases alive
  std::vector<Op*> ops_;
  std::vector<primitive::Waiter> ws_;
  Clock::time_point deadline_;
};


PyObject* spawn_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "corelet.spawn: missing the function to run");
    return nullptr;
  }
  PyObject* name = nullptr;
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(key, "name") != 0) {
      PyErr_Format(PyExc_TypeError, "corelet.spawn: unexpected keyword argument '%U'", key);
      return nullptr;
    }
    name = args[nargs + i];
  }
  PyObject* tuple = PyTuple_New(nargs - 1);
  if (!tuple) return nullptr;
  for (Py_ssize_t i = 1; i < nargs; ++i) PyTuple_SET_ITEM(tuple, i - 1, Py_NewRef(args[i]));
  try {
    PyTasklet* t = make_tasklet(pyb::reinterpret_borrow<pyb::object>(args[0]),
                                pyb::reinterpret_steal<pyb::args>(tuple),
                                name ? pyb::reinterpret_borrow<pyb::object>(name) : pyb::none());
    auto ref = std::make_unique<TaskRef>(t);  // the creator's reference
    detail::start(t, "corelet.spawn");
    return pyb::cast(ref.release(), pyb::return_value_policy::take_ownership).release().ptr();
  } catch (...) {
    return set_python_error();
  }
}

const char* state_name(const detail::Tasklet* t) {
  switch (t->state) {
    case detail::State::Ready: return t->started ? "ready" : "new";
    case detail::State::Running: return "running";
    case detail::State::Parked: return "waiting";
    case detail::State::Done: return "done";
  }
  return "?";
}

}  // namespace

PyTasklet* make_tasklet(const pyb::object& fn, const pyb::args& args, const pyb::object& name) {
  if (!PyCallable_Check(fn.ptr())) throw pyb::type_error("corelet: the tasklet's function is not callable: " + describe(fn.ptr()));
  std::string tname;
  if (!name.is_none()) {
    tname = pyb::str(name);
  } else {
    PyObject* q = PyObject_GetAttrString(fn.ptr(), "__qualname__");
    const char* c = q && PyUnicode_Check(q) ? PyUnicode_AsUTF8(q) : nullptr;
    if (c) tname = c;
    PyErr_Clear();  // no __qualname__, or one that is not UTF-8: a plain name
    Py_XDECREF(q);
    if (tname.empty()) tname = "tasklet";
  }
  auto* t = new PyTasklet(fn.ptr(), args.ptr());
  t->name = std::move(tname);
  set_spawn_site(*t);
  return t;
}

Op::Begin TaskRef::begin(PyTasklet& t) { return join_begin(t, t_, *this, Clock::time_point::max()); }
bool TaskRef::end(PyTasklet& t) { return join_end(t, t_); }

void bind_tasklets(pyb::module_& m) {
  str_throw = PyUnicode_InternFromString("throw");

  pyb::class_<Op>(m, "Op", "An operation a tasklet yields or awaits (corelet.sleep(), ch.recv(), ...).")
      .def("__await__",
           [](pyb::object self) {
             self.cast<Op&>().await_stage = 0;
             return self;
           })
      .def("__iter__", [](pyb::object self) { return self; })
      .def("__next__",
           [](pyb::object self) -> pyb::object {
             Op& op = self.cast<Op&>();
             if (op.await_stage++ == 0) return self;
             throw pyb::stop_iteration();
           })
      .def("send",
           [](pyb::object self, pyb::object v) -> pyb::object {
             Op& op = self.cast<Op&>();
             if (op.await_stage++ == 0) {
               if (!v.is_none()) throw pyb::type_error("corelet: can't send non-None value to a just-started operation");
               return self;
             }
             PyObject* stop = PyObject_CallOneArg(PyExc_StopIteration, v.ptr());
             if (!stop) throw pyb::error_already_set();
             PyErr_SetObject(PyExc_StopIteration, stop);
             Py_DECREF(stop);
             throw pyb::error_already_set();
           })
      .def("__repr__", [](const Op& op) { return std::string("<corelet operation ") + op.what() + ">"; });

  pyb::class_<SleepOp, Op>(m, "_Sleep");
  pyb::class_<JoinOp, Op>(m, "_Join");
  pyb::class_<SelectOp, Op>(m, "_Select");

  m.def(
      "select",
      [](pyb::iterable ops, pyb::object timeout) {
        std::vector<pyb::object> v;
        for (auto o : ops) v.push_back(pyb::reinterpret_borrow<pyb::object>(o));
        return new SelectOp(std::move(v), deadline_from(timeout, "corelet.select"));
      },
      pyb::arg("ops"), pyb::arg("timeout") = pyb::none(),
      "select(ops, timeout=None) -> operation giving (index, value) of the first of ops to\n"
      "complete; only that one takes effect. ops are channel operations: ch.recv(), ch.send(v).\n"
      "TimeoutError after timeout seconds (timeout=0: only what is ready now).");

  m.def(
      "sleep",
      [](double seconds) {
        if (std::isnan(seconds) || seconds < 0) throw pyb::value_error("corelet.sleep: seconds must be >= 0");
        return new SleepOp(seconds);
      },
      pyb::arg("seconds"),
      "sleep(seconds) -> operation: `yield corelet.sleep(s)` or `await corelet.sleep(s)` parks the\n"
      "tasklet for s seconds; sleep(0) lets the other ready tasklets run first.");

  pyb::class_<TaskRef, Op>(m, "Task", "A spawned tasklet: join (yield/await), result, cancel, name.")
      .def(
          "join",
          [](pyb::object self, pyb::object timeout) -> pyb::object {
            if (timeout.is_none()) return self;  // the Task is its own join operation
            return pyb::cast(new JoinOp(self, self.cast<TaskRef&>().get(), deadline_from(timeout, "Task.join")),
                             pyb::return_value_policy::take_ownership);
          },
          pyb::arg("timeout") = pyb::none(),
          "join(timeout=None) -> operation: `r = yield task.join()` / `r = await task` gives the\n"
          "tasklet's result or raises its exception (TimeoutError after timeout seconds).")
      .def(
          "result",
          [](TaskRef& r) -> pyb::object {
            PyTasklet* t = r.get();
            if (t->state != detail::State::Done)
              throw pyb::value_error("corelet: Task.result: tasklet \"" + t->name + "\" has not ended");
            t->joined = true;
            PyObject* v = t->outcome();
            if (!v) throw pyb::error_already_set();
            return pyb::reinterpret_steal<pyb::object>(v);
          },
          "The tasklet's result, or its exception raised; ValueError if it has not ended.")
      .def(
          "exception",
          [](TaskRef& r) -> pyb::object {
            PyTasklet* t = r.get();
            if (t->state != detail::State::Done)
              throw pyb::value_error("corelet: Task.exception: tasklet \"" + t->name + "\" has not ended");
            t->settle();
            t->retrieved_ = true;
            return t->exc_ ? pyb::reinterpret_borrow<pyb::object>(t->exc_) : pyb::none();
          },
          "The exception the tasklet ended with, or None; ValueError if it has not ended.")
      .def(
          "cancel", [](TaskRef& r) { detail::cancel(r.get()); },
          "Its current or next wait raises corelet.Cancelled; if it has not started it never runs.")
      .def("done", [](TaskRef& r) { return r.get()->state == detail::State::Done; })
      .def("cancelled",
           [](TaskRef& r) {
             PyTasklet* t = r.get();
             t->settle();
             return t->state == detail::State::Done && t->exc_ && PyErr_GivenExceptionMatches(t->exc_, g_exc.cancelled);
           })
      .def_property_readonly("name", [](TaskRef& r) { return r.get()->name; })
      .def_property_readonly("id", [](TaskRef& r) { return r.get()->running.id; })
      .def_property_readonly("state", [](TaskRef& r) { return state_name(r.get()); })
      .def("__eq__", [](TaskRef& a, pyb::object b) {
        return pyb::isinstance<TaskRef>(b) && b.cast<TaskRef&>().get() == a.get();
      })
      .def("__hash__", [](TaskRef& r) { return std::hash<const void*>{}(r.get()); })
      .def("__repr__", [](TaskRef& r) {
        PyTasklet* t = r.get();
        return "<corelet.Task \"" + t->name + "\" #" + std::to_string(t->running.id) + " " + state_name(t) + ">";
      });

  // spawn is the hottest call of all: a METH_FASTCALL function, without the
  // argument and keyword packing of a pybind11 binding.
  static PyMethodDef spawn_def = {
      "spawn", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&spawn_fast)),
      METH_FASTCALL | METH_KEYWORDS,
      "spawn(fn, *args, name=None) -> Task: runs fn(*args) as a new tasklet. fn may be a\n"
      "generator function, an async def, or a plain function (run to its end in one slice)."};
  PyObject* spawn_fn = PyCFunction_NewEx(&spawn_def, nullptr, m.ptr());
  if (!spawn_fn) throw pyb::error_already_set();
  m.add_object("spawn", pyb::reinterpret_steal<pyb::object>(spawn_fn));

  m.def(
      "current",
      []() -> pyb::object {
        PyTasklet* t = current_py();
        if (!t) return pyb::none();
        detail::retain(t);
        return pyb::cast(new TaskRef(t), pyb::return_value_policy::take_ownership);
      },
      "The running Python tasklet's Task, or None outside one.");

  m.def(
      "current_id",
      []() -> std::uint64_t {
        detail::Tasklet* t = primitive::current();
        return t ? t->running.id : 0;
      },
      "The running tasklet's id (Task.id), or 0 outside any tasklet.");

  m.def(
      "_plain_call",
      [](const pyb::object& fn, const pyb::args& args) {
        primitive::PlainCode plain;
        return fn(*args);
      },
      "fn(*args) as plain code, in a tasklet too: corelet's waits in it block the thread (a Pool's "
      "function, as multiprocessing's workers run it).");

  m.def(
      "_run",
      [](pyb::object main, pyb::args args) -> pyb::object {
        RunScope scope;
        PyTasklet* t = make_tasklet(main, args, pyb::str("main"));
        TaskRef ref(t);
        scope.set_main(t);
        try {
          detail::run_main(t);
        } catch (const Deadlock& e) {
          PyErr_SetString(g_exc.deadlock, e.what());
          throw pyb::error_already_set();
        }
        if (PyObject* intr = scope.take_interrupt()) {  // came after main ended
          PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(intr)), intr);
          Py_DECREF(intr);
          throw pyb::error_already_set();
        }
        PyObject* v = t->outcome();
        if (!v) throw pyb::error_already_set();
        return pyb::reinterpret_steal<pyb::object>(v);
      },
      pyb::arg("main"));
}

}  // namespace corelet::py
