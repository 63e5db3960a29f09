#pragma once
// Python tasklets on the C++ scheduler.
//
// A Python tasklet is a *stackless* corelet tasklet (sched's Tasklet::stackless):
// the scheduler calls its step() on the loop's own stack, the thread's stack,
// and step() drives the generator or coroutine with PyIter_Send until it
// yields an operation (Op) that has to wait. No Python frame ever runs on a
// switched C stack, so nothing here depends on CPython's private thread state
// (greenlet's trouble with each new CPython release).
//
// An Op is what a tasklet yields (`x = yield ch.recv()`) or awaits
// (`x = await ch.recv()`): the Op's begin() either completes at once, giving
// the value to send back, or links the Op's waiters into the primitive's wait
// queues and parks the tasklet (park_stackless); its end() turns the wake into
// the value or the exception the tasklet resumes with.
//
// The GIL: the scheduler's thread holds it while the loop runs and releases it
// only while the loop sleeps (an IdleGuard), so every step, and every
// reference count the loop touches, runs with the GIL held.

#include <pybind11/pybind11.h>

#include <corelet/sched/detail/loop_hook.hpp>
#include <corelet/sched/primitive.hpp>

#include <string>
#include <vector>

namespace corelet::py {

namespace pyb = pybind11;

struct PyTasklet;

// Owned reference helpers for the CPython API.
inline PyObject* steal(PyObject*& slot) noexcept {
  PyObject* o = slot;
  slot = nullptr;
  return o;
}

class Op {
 public:
  enum class Begin { Done, Parked, Yield };
  Op() = default;
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;
  virtual ~Op() = default;
  // begin — inside t's step: complete at once (t.give/t.raise set; Done), park
  // t (Parked) or let others run first (Yield; t resumes with None).
  virtual Begin begin(PyTasklet& t) = 0;
  // end — inside t's next step after a Parked begin: the outcome of the wake
  // (true), or park t again (false; only run_blocking's wait for its helper).
  virtual bool end(PyTasklet& t) = 0;
  // What a report says t waits on ("Channel.recv", ...).
  virtual const char* what() const noexcept = 0;
  // What accounting files the wait under.
  virtual WaitKind kind() const noexcept { return WaitKind::Sync; }

  // As a case of corelet.select (only operations that say selectable()):
  // try_now completes at once if it can (1: *value set; -1: t.raise set; 0:
  // it would wait); link puts w (tasklet and sibling already set) in the
  // primitive's queue; fired turns w's Done/Closed into *value or t.raise.
  virtual bool selectable() const noexcept { return false; }
  virtual int try_now(PyTasklet&, PyObject**) { return 0; }
  virtual void link(PyTasklet&, primitive::Waiter&) {}
  virtual int fired(PyTasklet&, primitive::Waiter&, PyObject**) { return 0; }

  int await_stage = 0;  // the awaitable protocol: 0 before the yield, 1 after
};

struct PyTasklet final : detail::Tasklet {
  // fn(*args) is called by the first step; a generator or coroutine it returns
  // is then driven, any other value is the tasklet's result.
  PyTasklet(PyObject* fn, PyObject* args);
  ~PyTasklet() override;
  void invoke() override {}
  bool step() override;

  // The outcome the tasklet resumes with (references are stolen).
  void give(PyObject* value) noexcept;
  void raise(PyObject* exc) noexcept;
  void raise_new(PyObject* type, const std::string& msg) noexcept;
  void raise_cancelled() noexcept;

  // The result for a joiner: a new reference to the value, or nullptr with the
  // tasklet's exception set as the Python error (its traceback kept).
  PyObject* outcome() noexcept;
  // A done tasklet's exc_ is set if it failed (also if it was cancelled
  // before its first step, which the scheduler ends without running it).
  void settle() noexcept;

  PyObject* fn_ = nullptr;  // until the first step
  PyObject* args_ = nullptr;
  PyObject* coro_ = nullptr;  // the generator or coroutine, while it runs
  PyObject* send_ = nullptr;  // next value to send (nullptr: None)
  PyObject* throw_ = nullptr;  // next exception to throw in
  PyObject* result_ = nullptr;
  PyObject* exc_ = nullptr;  // the exception it ended with
  bool retrieved_ = false;  // a joiner or result() saw exc_
  Op* op_ = nullptr;  // the operation it is parked on...
  PyObject* op_obj_ = nullptr;  // ...kept alive by this reference
  // Generators and coroutines the tasklet yielded run as calls (Beazley's
  // trampoline): coro_ is the innermost, callers_ the ones waiting for it.
  std::vector<PyObject*> callers_;
  primitive::Waiter join_w_;  // its waiter while it joins another tasklet
  PyObject* spawn_file_obj_ = nullptr;  // keeps spawn_file's text alive

 private:
  void capture_exception() noexcept;
  void capture_pending_into_throw() noexcept;  // the Python error set now is thrown in next
  void clear_op() noexcept;
  // The innermost generator returned (result, owned) or raised (nullptr, the
  // error set): resume its caller, or end the tasklet (true).
  bool frame_ended(PyObject* result) noexcept;
};

// The Python exception types (set up by the module).
struct Exceptions {
  PyObject* cancelled = nullptr;       // corelet.Cancelled (BaseException)
  PyObject* channel_closed = nullptr;  // corelet.ChannelClosed
  PyObject* deadlock = nullptr;        // corelet.Deadlock
  PyObject* usage = nullptr;           // corelet.UsageError
};
extern Exceptions g_exc;

// fetch_exception — takes the Python error being raised: the exception
// object, normalized, with its traceback attached (new reference; the error
// indicator is cleared). Only while an error is set.
PyObject* fetch_exception() noexcept;

// The running tasklet if it is a Python one, else nullptr.
PyTasklet* current_py() noexcept;

// Python's view of a tasklet: holds one reference to it.
// It is also the operation that joins the tasklet (`yield task.join()`,
// `await task`), so a join allocates nothing: the joiner waits with its own
// PyTasklet::join_w_.
class TaskRef final : public Op {
 public:
  explicit TaskRef(PyTasklet* t) noexcept : t_(t) {}  // adopts a reference
  ~TaskRef() override { detail::release(t_); }
  PyTasklet* get() const noexcept { return t_; }
  Begin begin(PyTasklet& t) override;
  bool end(PyTasklet& t) override;
  const char* what() const noexcept override { return "Task.join"; }

 private:
  PyTasklet* t_;
};

// RunScope — one corelet.run (or a cluster's worker) on this thread: the GIL
// is released while the scheduler sleeps, and a KeyboardInterrupt or
// SystemExit is routed to the main tasklet (set_main). ValueError if one is
// active already.
class RunScope {
 public:
  RunScope();
  ~RunScope();
  RunScope(const RunScope&) = delete;
  RunScope& operator=(const RunScope&) = delete;
  void set_main(PyTasklet* t) noexcept;
  // A KeyboardInterrupt / SystemExit that came after main had ended (new
  // reference, or nullptr): run() raises it.
  PyObject* take_interrupt() noexcept;

 private:
  struct Impl;
  Impl* impl_;
};

// Makes a tasklet for fn(*args) named `name` (None: fn.__qualname__).
PyTasklet* make_tasklet(const pyb::object& fn, const pyb::args& args, const pyb::object& name);

// Deadline for a Python timeout argument (None: none; negative or NaN:
// ValueError naming `call`), the one conversion of py/.
Clock::time_point deadline_from(const pyb::object& timeout, const char* call);
Clock::time_point deadline_from(PyObject* timeout, const char* call);

// set_python_error — inside a catch block: the C++ exception in flight as the
// Python error (the one translation of py/): error_already_set as it was,
// pybind11's builtin exceptions as theirs, UsageError / ChannelClosed /
// Deadlock / Cancelled as corelet's, BrokenBarrier as threading's
// BrokenBarrierError, std::system_error as OSError (errno) or
// TimeoutError, invalid_argument / length_error as ValueError, out_of_range
// as IndexError, bad_alloc as MemoryError, anything else as RuntimeError.
// Returns nullptr, for `return set_python_error();` in C functions.
PyObject* set_python_error() noexcept;

// park — park_stackless for an Op; false (with Cancelled given to t) if a
// cancellation was pending.
bool park(PyTasklet& t, Op& op, const void* obj, Clock::time_point deadline);

// The standard end() for an Op parked on one waiter: the wake's reason and the
// waiter's state give None / the value in *slot, TimeoutError, ChannelClosed or
// Cancelled.
bool end_waiter(PyTasklet& t, const primitive::Waiter& w, PyObject*& slot, const char* call, PyObject* closed_type);

// For dumps and stall reports (profile.cpp): the describer of Python
// tasklets, and the spawn site of a new one (the calling Python frame).
detail::TaskletDescriber* python_describer() noexcept;
void set_spawn_site(PyTasklet& t) noexcept;

void bind_tasklets(pyb::module_& m);
void bind_profile(pyb::module_& m);
void bind_channel(pyb::module_& m);
// as_cfunction — a C function of any METH_ signature as PyMethodDef's ml_meth.
template <class F>
PyCFunction as_cfunction(F f) noexcept {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}

// op_object — a new operation (an Op subclass bound with pybind11) as the
// Python object that owns it.
template <class O>
PyObject* op_object(O* op) {
  return pyb::cast(op, pyb::return_value_policy::take_ownership).release().ptr();
}

// not_here_message — what a primitive says when tasklets of another
// scheduler wait on it (a wake-up would go to the wrong ready queue): every
// primitive of the binding belongs to one corelet.run.
std::string not_here_message(const char* what);
// check_here — true if p's waiters (p.waiters_are_here()) are this
// scheduler's; else UsageError set, false.
template <class P>
bool check_here(const P& p, const char* what) {
  if (p.waiters_are_here()) return true;
  PyErr_SetString(g_exc.usage, not_here_message(what).c_str());
  return false;
}

void bind_sync(pyb::module_& m);
void bind_queue(pyb::module_& m);
void bind_blocking(pyb::module_& m);
void bind_io(pyb::module_& m);
void bind_cluster(pyb::module_& m);
void bind_shm(pyb::module_& m);

}  // namespace corelet::py
