// corelet.stats(), corelet.dump(), the stall detector's settings, and what
// dumps and stall reports say about Python tasklets (their stacks).

#include "tasklet.hpp"

#include <corelet/sched/detail/loop_hook.hpp>
#include <corelet/sched/profile.hpp>

#include <dlfcn.h>

#include <cmath>
#include <string>
#include <string_view>

namespace corelet::py {
namespace {

// CPython's faulthandler writes tracebacks with this (async-signal-safe, no
// GIL needed); exported by the interpreter but not in the public headers, so
// looked up at import and used only if present.
using DumpTracebackFn = void (*)(int fd, PyThreadState* tstate);
DumpTracebackFn g_dump_traceback = nullptr;

// One frame line per generator/coroutine frame, following what each one
// awaits or yields from (the innermost last).
void append_frames(PyObject* obj, std::string& out, int depth = 0) {
  if (!obj || obj == Py_None || depth > 64) return;
  static const char* const frame_attrs[] = {"cr_frame", "gi_frame", "ag_frame"};
  static const char* const inner_attrs[] = {"cr_await", "gi_yieldfrom", "ag_await"};
  for (int i = 0; i < 3; ++i) {
    PyObject* frame = PyObject_GetAttrString(obj, frame_attrs[i]);
    if (!frame) {
      PyErr_Clear();
      continue;
    }
    if (frame != Py_None && PyFrame_Check(frame)) {
      auto* f = reinterpret_cast<PyFrameObject*>(frame);
      PyCodeObject* code = PyFrame_GetCode(f);
      const char* file = PyUnicode_AsUTF8(code->co_filename);
      const char* name = PyUnicode_AsUTF8(code->co_name);
      if (!file || !name) PyErr_Clear();
      out += "File \"";
      out += file ? file : "?";
      out += "\", line " + std::to_string(PyFrame_GetLineNumber(f)) + ", in ";
      out += name ? name : "?";
      out += "\n";
      Py_DECREF(code);
    }
    Py_DECREF(frame);
    PyObject* inner = PyObject_GetAttrString(obj, inner_attrs[i]);
    if (!inner) {
      PyErr_Clear();
      return;
    }
    append_frames(inner, out, depth + 1);
    Py_DECREF(inner);
    return;
  }
}

struct PyDescriber final : detail::TaskletDescriber {
  std::string stack(const detail::Tasklet& t) override {
    const auto& p = static_cast<const PyTasklet&>(t);
    std::string out;
    if (p.fn_) return "(not started)\n";
    for (PyObject* c : p.callers_) append_frames(c, out);
    append_frames(p.coro_, out);
    return out;
  }
  void write_running_stack(int fd) noexcept override {
    if (g_dump_traceback) {
      g_dump_traceback(fd, PyGILState_GetThisThreadState());
    } else {
      static const char msg[] = "  (this Python has no _Py_DumpTraceback)\n";
      ssize_t n = ::write(fd, msg, sizeof msg - 1);
      (void)n;
    }
  }
};
PyDescriber g_describer;

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

pyb::dict waits_dict(const std::uint64_t (&wait)[kWaitKinds], std::uint64_t ready) {
  pyb::dict d;
  for (int k = 0; k < kWaitKinds; ++k) d[to_string(static_cast<WaitKind>(k))] = seconds(wait[k]);
  d["ready"] = seconds(ready);
  return d;
}

pyb::dict stats_dict(const Stats& st) {
  const WorkerStats& w = st.worker;
  pyb::dict wd;
  wd["worker"] = w.worker >= 0 ? pyb::object(pyb::int_(w.worker)) : pyb::object(pyb::none());
  wd["pid"] = w.pid;
  wd["accounting"] = w.accounting;
  wd["uptime"] = seconds(w.uptime_ns);
  wd["busy"] = seconds(w.busy_ns);
  wd["polling"] = seconds(w.poll_ns);
  wd["idle"] = seconds(w.idle_ns);
  wd["waits"] = waits_dict(w.wait_ns, w.ready_ns);
  wd["wakeups"] = w.wakeups;
  wd["resumes"] = w.resumes;
  wd["parks"] = w.parks;
  wd["spawned"] = w.spawned;
  wd["finished"] = w.finished;
  wd["live"] = w.live;
  wd["stalls"] = w.stalls;
  // time.monotonic()'s clock (CLOCK_MONOTONIC), or None before the first.
  wd["last_stall"] = w.last_stall_ns ? pyb::object(pyb::float_(seconds(w.last_stall_ns))) : pyb::object(pyb::none());
  wd["ring_in_bytes"] = w.ring_in_bytes;
  wd["ring_out_bytes"] = w.ring_out_bytes;
  wd["messages_in"] = w.messages_in;
  wd["messages_out"] = w.messages_out;
  wd["wakes_sent"] = w.wakes_sent;
  pyb::list tl;
  for (const TaskletStats& t : st.tasklets) {
    pyb::dict d;
    d["id"] = t.id;
    d["name"] = t.name;
    d["state"] = t.state;
    d["waits_on"] = t.waits_on.empty() ? pyb::object(pyb::none()) : pyb::object(pyb::str(t.waits_on));
    d["spawned_at"] = t.spawned_at.empty() ? pyb::object(pyb::none()) : pyb::object(pyb::str(t.spawned_at));
    d["parent"] = t.parent ? pyb::object(pyb::int_(t.parent)) : pyb::object(pyb::none());
    d["run"] = seconds(t.run_ns);
    d["resumes"] = t.resumes;
    d["waits"] = waits_dict(t.wait_ns, t.ready_ns);
    d["stalls"] = t.stalls;
    d["stack"] = t.stack;
    tl.append(std::move(d));
  }
  pyb::dict out;
  out["worker"] = std::move(wd);
  out["tasklets"] = std::move(tl);
  return out;
}

}  // namespace

detail::TaskletDescriber* python_describer() noexcept { return &g_describer; }

// The corelet package's directory ("/.../corelet/"): frames of its own
// modules are not spawn sites (corelet.run makes main, the Pool its helpers).
std::string g_package_dir;

void set_spawn_site(PyTasklet& t) noexcept {
  PyFrameObject* f = PyEval_GetFrame();  // borrowed; nullptr outside Python code
  PyFrameObject* back = nullptr;         // owned: the frame we moved to
  while (f) {
    PyCodeObject* code = PyFrame_GetCode(f);
    const char* file = PyUnicode_AsUTF8(code->co_filename);  // kept alive by spawn_file_obj_
    if (!file) PyErr_Clear();
    const bool ours = file && !g_package_dir.empty() && std::string_view(file).starts_with(g_package_dir);
    if (file && !ours) {
      t.spawn_file_obj_ = Py_NewRef(code->co_filename);
      t.spawn_file = file;
      t.spawn_line = static_cast<unsigned>(PyFrame_GetLineNumber(f));
    }
    Py_DECREF(code);
    if (!ours) break;
    PyFrameObject* up = PyFrame_GetBack(f);  // new reference or nullptr
    Py_XDECREF(back);
    back = up;
    f = up;
  }
  Py_XDECREF(back);
}

void bind_profile(pyb::module_& m) {
  g_dump_traceback = reinterpret_cast<DumpTracebackFn>(::dlsym(RTLD_DEFAULT, "_Py_DumpTraceback"));
  m.def("_set_package_dir", [](std::string dir) { g_package_dir = std::move(dir); });
  m.def(
      "stats",
      [](bool tasklets) {
        if (!primitive::current()) throw UsageError("corelet: corelet.stats called outside corelet.run");
        return stats_dict(corelet::stats(tasklets));
      },
      pyb::arg("tasklets") = true);
  m.def("dump", [] {
    if (!primitive::current()) throw UsageError("corelet: corelet.dump called outside corelet.run");
    return corelet::dump();
  });
  m.def("set_stall_threshold", [](double s) {
    if (std::isnan(s) || s < 0 || s > 1000) throw pyb::value_error("corelet.set_stall_threshold: seconds must be from 0 to 1000");
    corelet::set_stall_threshold(std::chrono::milliseconds(static_cast<long>(std::llround(s * 1000))));
  });
  m.def("stall_threshold", [] { return static_cast<double>(corelet::stall_threshold().count()) / 1000.0; });
  m.def("set_accounting", [](bool on) { corelet::set_accounting(on); });
  m.def("accounting", [] { return corelet::accounting(); });
}

}  // namespace corelet::py
