// Multicore Python on ipc's cluster: corelet.run(main, workers=N) forks one
// interpreter per worker, and Python callables run on other workers by remote
// call. The payloads are pickles made and read by py/corelet/_cluster.py; the
// C++ side moves bytes.
//
// A remote call is the C++ remote function py_call(bytes) -> bytes. On the
// callee it runs, like every remote call, in a fiber tasklet; that fiber
// starts a stackless Python tasklet for the handler (_cluster._serve_call)
// and waits for it, so no Python frame runs on the fiber's stack. On the
// caller, RemoteCallOp runs spawn_on(...).get() in a fiber (fiber_op.hpp).

#include "fiber_op.hpp"

#include <corelet/ipc/cluster.hpp>
#include <corelet/ipc/remote.hpp>

#include <string>
#include <string_view>

namespace corelet::py {
namespace {

PyObject* g_handler = nullptr;      // _cluster._serve_call(payload: bytes) -> bytes
PyObject* g_worker_lost = nullptr;  // corelet.WorkerLost

// Runs fn(payload) as a stackless Python tasklet and waits for it (called on a
// fiber, which only waits). Returns the bytes it returned.
std::string run_python(PyObject* fn, std::string_view payload, const char* name) {
  if (!fn) throw std::runtime_error("corelet: no Python handler for remote calls in this worker");
  PyObject* arg = PyBytes_FromStringAndSize(payload.data(), static_cast<Py_ssize_t>(payload.size()));
  if (!arg) throw std::bad_alloc();
  PyObject* args = PyTuple_Pack(1, arg);
  Py_DECREF(arg);
  if (!args) throw std::bad_alloc();
  auto* t = new PyTasklet(fn, args);
  Py_DECREF(args);
  t->name = name;
  struct Ref {
    PyTasklet* t;
    ~Ref() { detail::release(t); }
  } ref{t};
  detail::start(t, name);
  detail::wait_done(t, name, Clock::time_point::max());
  if (t->exc_ || !t->result_ || !PyBytes_Check(t->result_)) {
    t->retrieved_ = true;
    std::string why = "corelet: the Python side of a remote call failed";
    if (t->exc_) {
      if (PyObject* r = PyObject_Repr(t->exc_)) {
        if (const char* c = PyUnicode_AsUTF8(r)) why += std::string(": ") + c;
        Py_DECREF(r);
      }
      PyErr_Clear();
    }
    throw std::runtime_error(why);
  }
  return std::string(PyBytes_AS_STRING(t->result_), static_cast<std::size_t>(PyBytes_GET_SIZE(t->result_)));
}

}  // namespace

std::string py_call(std::string payload) { return run_python(g_handler, payload, "corelet remote call"); }

}  // namespace corelet::py

CORELET_REMOTE(corelet::py::py_call);

namespace corelet::py {
namespace {

class RemoteCallOp final : public FiberOp {
 public:
  // what: the user's function, named in WorkerLost's message (else the C++
  // remote function's name, corelet::py::py_call, would be).
  RemoteCallOp(int worker, std::string payload, std::string what)
      : FiberOp("remote call on worker " + std::to_string(worker)),
        worker_(worker),
        payload_(std::move(payload)),
        what_(std::move(what)) {}
  WaitKind kind() const noexcept override { return WaitKind::Remote; }
  long run() override {
    Future<std::string> f;
    try {
      f = corelet::spawn_on(worker_, py_call, std::move(payload_));
    } catch (const WorkerLost&) {
      sent_ = false;  // refused before anything went out: safe to send again
      throw;
    }
    result_ = f.get();
    return 0;
  }
  PyObject* value(long) override {
    PyObject* b = PyBytes_FromStringAndSize(result_.data(), static_cast<Py_ssize_t>(result_.size()));
    std::string().swap(result_);
    return b;
  }
  bool translate(PyTasklet& t, const std::exception_ptr& e) override {
    try {
      std::rethrow_exception(e);
    } catch (const WorkerLost& lost) {
      const std::string message =
          what_.empty() ? std::string(lost.what()) : "corelet: " + lost.exit().describe() + " while running " + what_;
      PyObject* exc = PyObject_CallFunction(g_worker_lost, "s", message.c_str());
      if (!exc) return false;
      const WorkerExit& x = lost.exit();
      auto set = [exc](const char* name, PyObject* v) {  // SetAttr does not steal v
        if (v) {
          PyObject_SetAttrString(exc, name, v);
          Py_DECREF(v);
        }
      };
      set("worker", PyLong_FromLong(x.worker));
      set("pid", PyLong_FromLong(x.pid));
      set("signal", PyLong_FromLong(x.signal));
      set("exitcode", PyLong_FromLong(x.exit_code));
      set("sent", PyBool_FromLong(sent_));
      PyErr_Clear();
      t.raise(exc);
      return true;
    } catch (const RemoteError& r) {
      t.raise_new(PyExc_RuntimeError, r.what());
      return true;
    } catch (...) {
      return false;
    }
  }

 private:
  int worker_;
  std::string payload_;
  std::string what_;
  std::string result_;
  bool sent_ = true;
};

void flush_python_streams() noexcept {
  for (const char* name : {"stdout", "stderr"}) {
    PyObject* stream = PySys_GetObject(name);  // borrowed
    if (!stream || stream == Py_None) continue;
    PyObject* r = PyObject_CallMethod(stream, "flush", nullptr);
    if (r) Py_DECREF(r); else PyErr_Clear();
  }
}

}  // namespace

void bind_cluster(pyb::module_& m) {
  g_worker_lost = PyErr_NewExceptionWithDoc(
      "corelet.WorkerLost",
      "The worker process a call, a task or a message depended on died (killed by a signal, or\n"
      "exited): raised within a second instead of waiting forever. Attributes: worker, pid,\n"
      "signal (0 if it exited), exitcode; for a call, sent (False: the worker was known dead and\n"
      "the call never left, so sending it again is safe).",
      PyExc_Exception, nullptr);
  if (!g_worker_lost) throw pyb::error_already_set();
  m.add_object("WorkerLost", pyb::reinterpret_borrow<pyb::object>(g_worker_lost));

  pyb::class_<RemoteCallOp, FiberOp>(m, "_RemoteCall");
  m.def(
      "_set_remote_handler",
      [](pyb::object fn) {
        Py_XSETREF(g_handler, Py_NewRef(fn.ptr()));
      },
      "Installs the function that serves remote calls in this process (corelet._cluster).");
  m.def(
      "_remote_call",
      [](int worker, pyb::bytes payload, std::string what) {
        if (corelet::this_worker() < 0) throw pyb::value_error("corelet: remote calls need corelet.run(..., workers=N)");
        if (worker < 0 || worker >= corelet::num_workers())
          throw pyb::value_error("corelet: no worker " + std::to_string(worker) + " (workers: " +
                                 std::to_string(corelet::num_workers()) + ")");
        return new RemoteCallOp(worker, std::string(payload), std::move(what));
      },
      pyb::arg("worker"), pyb::arg("payload"), pyb::arg("what") = std::string(),
      "_remote_call(worker, payload, what='') -> operation giving the handler's bytes from that worker;\n"
      "WorkerLost (naming `what`, the user's function) if it dies first.");
  m.def("this_worker", &corelet::this_worker, "This process's worker id, or -1 outside corelet.run(workers=N).");
  m.def("num_workers", &corelet::num_workers, "The workers of the cluster, or 0 outside one.");
  m.def("worker_pid", &corelet::worker_pid, pyb::arg("worker"), "The pid of a worker now (0 while restarting).");
  m.def("worker_alive", &corelet::worker_alive, pyb::arg("worker"));

  m.def(
      "_run_cluster",
      [](pyb::object main, int workers, bool pin, bool restart, double shutdown_timeout, double idle_spin,
         std::size_t ring_bytes, bool quiet) -> int {
        if (workers < 0) throw pyb::value_error("corelet.run: workers must be >= 0 (0: one per CPU)");
        Config cfg;
        cfg.workers = workers;
        cfg.pin = pin;
        cfg.on_worker_death = restart ? OnWorkerDeath::restart : OnWorkerDeath::shutdown;
        cfg.shutdown_timeout = std::chrono::milliseconds(static_cast<long>(shutdown_timeout * 1000));
        cfg.idle_spin = std::chrono::microseconds(static_cast<long>(idle_spin * 1e6));
        cfg.ring_bytes = ring_bytes;
        cfg.quiet = quiet;
        // The interpreter forks as os.fork() does it: at-fork handlers, the
        // import lock, and in the child a fresh GIL and threading state.
        cfg.hooks.prepare = [] { PyOS_BeforeFork(); };
        cfg.hooks.parent = [] { PyOS_AfterFork_Parent(); };
        cfg.hooks.child = [] { PyOS_AfterFork_Child(); };
        cfg.hooks.exit = [] { flush_python_streams(); };
        RunScope scope;  // copied into every worker by fork
        PyObject* fn = main.ptr();
        return corelet::run(cfg, [fn, &scope]() -> int {
          // Worker 0, in the cluster's main fiber: main runs as a Python tasklet.
          PyObject* args = PyTuple_New(0);
          auto* t = new PyTasklet(fn, args);
          Py_DECREF(args);
          t->name = "main";
          scope.set_main(t);
          struct Ref {
            PyTasklet* t;
            ~Ref() { detail::release(t); }
          } ref{t};
          detail::start(t, "corelet.run");
          detail::wait_done(t, "corelet.run", Clock::time_point::max());
          if (t->exc_) {
            t->retrieved_ = true;
            return 1;
          }
          if (!t->result_ || !PyLong_Check(t->result_)) return 0;
          const long code = PyLong_AsLong(t->result_);
          if (code == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
          }
          return static_cast<int>(code & 0xff);
        });
      },
      pyb::arg("main"), pyb::arg("workers"), pyb::arg("pin"), pyb::arg("restart"), pyb::arg("shutdown_timeout"),
      pyb::arg("idle_spin"), pyb::arg("ring_bytes"), pyb::arg("quiet") = false);
}

}  // namespace corelet::py
