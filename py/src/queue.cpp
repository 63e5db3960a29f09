// _QueueCore: the base of corelet.Queue (py/corelet/_queues.py) — sched's
// BasicQueue (queue.hpp) with the queue's storage left to the Python object's
// _put / _get / _qsize, as queue.Queue's subclasses expect (LifoQueue and
// PriorityQueue override them; so may a user's subclass). The bound, the
// unfinished-task count and the waiters are sched's state machine, the one
// fiber tasklets use; this file adds the stackless operations and threading's
// exceptions.

#include "core_type.hpp"
#include "tasklet.hpp"

#include <corelet/sched/errors.hpp>
#include <corelet/sched/queue.hpp>

#include <new>
#include <optional>
#include <string>

namespace corelet::py {
namespace {

// The order of a Python queue: its own methods. `self` is the queue object
// itself (this core is its base).
struct PyOrder {
  PyObject* self = nullptr;

  void push(pyb::object&& v) {
    static PyObject* name = PyUnicode_InternFromString("_put");
    PyObject* r = PyObject_CallMethodOneArg(self, name, v.ptr());
    if (!r) throw pyb::error_already_set();
    Py_DECREF(r);
  }
  void push(const pyb::object& v) { push(pyb::object(v)); }
  pyb::object pop() {
    static PyObject* name = PyUnicode_InternFromString("_get");
    PyObject* r = PyObject_CallMethodNoArgs(self, name);
    if (!r) throw pyb::error_already_set();
    return pyb::reinterpret_steal<pyb::object>(r);
  }
  std::size_t size() const noexcept {
    if (Py_REFCNT(self) == 0) return 0;  // being destroyed: no Python call
    static PyObject* name = PyUnicode_InternFromString("_qsize");
    PyObject* r = PyObject_CallMethodNoArgs(self, name);
    Py_ssize_t n = r ? PyLong_AsSsize_t(r) : -1;
    Py_XDECREF(r);
    if (n < 0) {
      // size() cannot fail in the state machine: report and count it empty.
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "corelet: Queue._qsize() returned a negative size");
      PyErr_WriteUnraisable(self);
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
  void clear() noexcept {}  // only at destruction: the storage goes with the object
};

using Core = corelet::detail::BasicQueue<pyb::object, PyOrder>;
using Try = Core::Try;

Core& core_of(PyObject* self) noexcept { return py::core_of<Core>(self); }

struct Errors {
  PyObject* empty = nullptr;  // queue.Empty
  PyObject* full = nullptr;   // queue.Full
} g_queue_exc;

// QueueOp — a get, put or join that waits. Condition-variable style, as
// sched's Queue: woken, it tries again and parks again if another tasklet
// came first; the deadline stays the one it began with.
class QueueOp final : public Op {
 public:
  enum class Kind { Get, Put, Join };
  QueueOp(Kind kind, PyObject* queue, PyObject* item, Clock::time_point deadline)
      : kind_(kind), queue_(Py_NewRef(queue)), core_(core_of(queue)), item_(pyb::reinterpret_borrow<pyb::object>(item)),
        deadline_(deadline) {}
  ~QueueOp() override { Py_DECREF(queue_); }

  Begin begin(PyTasklet& t) override {
    if (attempt(t)) return Begin::Done;
    if (deadline_ <= Clock::now()) {
      timed_out(t);
      return Begin::Done;
    }
    return wait(t) ? Begin::Parked : Begin::Done;
  }
  bool end(PyTasklet& t) override {
    switch (t.wake) {
      case primitive::Wake::Cancelled:
        core_.woken(w_);
        t.raise_cancelled();
        return true;
      case primitive::Wake::Timeout:
        timed_out(t);
        return true;
      case primitive::Wake::Notified:
        break;
    }
    core_.woken(w_);
    if (w_.state == primitive::Waiter::State::Closed) {
      t.raise_new(g_exc.usage, std::string("corelet: ") + what() + ": the queue was shut down");
      return true;
    }
    if (attempt(t)) return true;
    if (deadline_ <= Clock::now()) {
      timed_out(t);
      return true;
    }
    return !wait(t);  // parked again: not ended
  }
  const char* what() const noexcept override {
    switch (kind_) {
      case Kind::Get: return "Queue.get";
      case Kind::Put: return "Queue.put";
      case Kind::Join: return "Queue.join";
    }
    return "Queue";
  }

 private:
  // Completes the operation now if the queue allows (true: t has its value
  // or its error).
  bool attempt(PyTasklet& t) {
    try {
      switch (kind_) {
        case Kind::Get: {
          std::optional<pyb::object> got;
          if (core_.try_get_now(got) != Try::Done) return false;
          t.give(got->release().ptr());
          return true;
        }
        case Kind::Put:
          if (core_.try_put_now(item_) != Try::Done) return false;
          t.give(Py_NewRef(Py_None));
          return true;
        case Kind::Join:
          if (core_.unfinished_tasks() != 0) return false;
          t.give(Py_NewRef(Py_None));
          return true;
      }
    } catch (pyb::error_already_set& e) {
      t.raise(fetch_exception_from(e));
      return true;
    }
    return false;
  }
  // Enlists and parks; false (Cancelled given) if a cancellation was pending.
  bool wait(PyTasklet& t) {
    w_.tasklet = &t;
    t.waiters = &w_;
    switch (kind_) {
      case Kind::Get: core_.enlist_getter(w_); break;
      case Kind::Put: core_.enlist_putter(w_); break;
      case Kind::Join: core_.enlist_joiner(w_); break;
    }
    return park(t, *this, &core_, deadline_);
  }
  void timed_out(PyTasklet& t) {
    PyObject* type = kind_ == Kind::Get ? g_queue_exc.empty : kind_ == Kind::Put ? g_queue_exc.full : PyExc_TimeoutError;
    t.raise_new(type, std::string("corelet: ") + what() + ": timed out");
  }
  static PyObject* fetch_exception_from(pyb::error_already_set& e) {
    e.restore();
    return fetch_exception();
  }

  Kind kind_;
  PyObject* queue_;
  Core& core_;
  pyb::object item_;
  Clock::time_point deadline_;
  primitive::Waiter w_;
};

// ---- the type's methods (METH_FASTCALL: they are on every put and get) ----

PyObject* queue_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyObject* self = type->tp_alloc(type, 0);
  if (!self) return nullptr;
  new (&core_of(self)) Core(0, PyOrder{self});  // its order is the object itself: not make_core
  return self;
}

// _try_put(item) -> True if put now (there was room), False if it must wait.
PyObject* queue_try_put(PyObject* self, PyObject* item) {
  Core& q = core_of(self);
  if (!check_here(q, "Queue.put")) return nullptr;
  try {
    return PyBool_FromLong(q.try_put_now(pyb::reinterpret_borrow<pyb::object>(item)) == Try::Done);
  } catch (...) {
    return set_python_error();
  }
}

// _try_get(default) -> the next item, or default if there is none.
PyObject* queue_try_get(PyObject* self, PyObject* dflt) {
  Core& q = core_of(self);
  if (!check_here(q, "Queue.get")) return nullptr;
  try {
    std::optional<pyb::object> got;
    if (q.try_get_now(got) != Try::Done) return Py_NewRef(dflt);
    return got->release().ptr();
  } catch (...) {
    return set_python_error();
  }
}

// _put_op(item, timeout) / _get_op(timeout) / _join_op(): the waiting operations.
PyObject* queue_put_op(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "_put_op(item, timeout)");
    return nullptr;
  }
  try {
    return op_object(new QueueOp(QueueOp::Kind::Put, self, args[0], deadline_from(args[1], "Queue.put")));
  } catch (...) {
    return set_python_error();
  }
}

PyObject* queue_get_op(PyObject* self, PyObject* timeout) {
  try {
    return op_object(new QueueOp(QueueOp::Kind::Get, self, Py_None, deadline_from(timeout, "Queue.get")));
  } catch (...) {
    return set_python_error();
  }
}

PyObject* queue_join_op(PyObject* self, PyObject*) {
  try {
    return op_object(new QueueOp(QueueOp::Kind::Join, self, Py_None, Clock::time_point::max()));
  } catch (...) {
    return set_python_error();
  }
}

PyObject* queue_task_done(PyObject* self, PyObject*) {
  Core& q = core_of(self);
  if (q.unfinished_tasks() == 0) {
    PyErr_SetString(PyExc_ValueError, "task_done() called too many times");
    return nullptr;
  }
  if (!check_here(q, "Queue.task_done")) return nullptr;
  q.task_done();
  Py_RETURN_NONE;
}

PyObject* queue_unfinished(PyObject* self, PyObject*) { return PyLong_FromSize_t(core_of(self).unfinished_tasks()); }

PyObject* queue_get_maxsize(PyObject* self, void*) { return PyLong_FromSize_t(core_of(self).maxsize()); }

int queue_set_maxsize(PyObject* self, PyObject* value, void*) {
  if (!value) {
    PyErr_SetString(PyExc_AttributeError, "corelet: Queue.maxsize cannot be deleted");
    return -1;
  }
  const Py_ssize_t n = PyLong_AsSsize_t(value);
  if (n == -1 && PyErr_Occurred()) return -1;
  core_of(self).set_maxsize(n > 0 ? static_cast<std::size_t>(n) : 0);  // <= 0: unbounded, as queue.Queue
  return 0;
}

PyMethodDef g_methods[] = {
    {"_try_put", as_cfunction(&queue_try_put), METH_O, nullptr},
    {"_try_get", as_cfunction(&queue_try_get), METH_O, nullptr},
    {"_put_op", as_cfunction(&queue_put_op), METH_FASTCALL, nullptr},
    {"_get_op", as_cfunction(&queue_get_op), METH_O, nullptr},
    {"_join_op", as_cfunction(&queue_join_op), METH_NOARGS, nullptr},
    {"task_done", as_cfunction(&queue_task_done), METH_NOARGS,
     "One item taken from the queue is processed (see join())."},
    {"_unfinished", as_cfunction(&queue_unfinished), METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef g_getset[] = {
    {"maxsize", &queue_get_maxsize, &queue_set_maxsize, "The bound (0: none).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

}  // namespace

void bind_queue(pyb::module_& m) {
  pyb::class_<QueueOp, Op>(m, "_QueueOp");
  pyb::module_ queue = pyb::module_::import("queue");
  g_queue_exc.empty = pyb::object(queue.attr("Empty")).release().ptr();
  g_queue_exc.full = pyb::object(queue.attr("Full")).release().ptr();
  // core_dealloc: the core's size() sees the object's count of 0 and calls nothing.
  PyObject* type = make_core_type<Core>(
      "corelet._corelet._QueueCore", "Base of corelet.Queue: sched's queue state machine on the object's storage.",
      &queue_new, g_methods, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, g_getset);
  if (!type) throw pyb::error_already_set();
  m.add_object("_QueueCore", pyb::reinterpret_steal<pyb::object>(type));
}

}  // namespace corelet::py
