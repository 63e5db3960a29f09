// The extension module corelet._corelet. The package corelet (py/corelet/)
// re-exports what users call.

#include "tasklet.hpp"

#include <corelet/sched/errors.hpp>

namespace corelet::py {
namespace {

PyObject* new_exception(pyb::module_& m, const char* name, PyObject* base, const char* doc) {
  const std::string qualified = std::string("corelet.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (!type) throw pyb::error_already_set();
  m.add_object(name, pyb::reinterpret_borrow<pyb::object>(type));
  return type;  // the module keeps a reference; this one is never released
}

}  // namespace
}  // namespace corelet::py

PYBIND11_MODULE(_corelet, m) {
  using namespace corelet::py;
  m.doc() = "corelet's extension module: tasklets on the C++ scheduler. Use the package `corelet`.";

  g_exc.cancelled = new_exception(
      m, "Cancelled", PyExc_BaseException,
      "Raised in a tasklet at its current or next wait after Task.cancel(). A BaseException, as\n"
      "asyncio.CancelledError, so that `except Exception` does not swallow it.");
  g_exc.channel_closed = new_exception(m, "ChannelClosed", PyExc_Exception,
                                       "send on a closed channel, or recv on a closed and empty one.");
  g_exc.deadlock = new_exception(
      m, "Deadlock", PyExc_RuntimeError,
      "Raised by corelet.run when no tasklet can ever run again while some still wait; the\n"
      "message lists every waiting tasklet and what it waits on.");
  g_exc.usage = new_exception(m, "UsageError", PyExc_RuntimeError,
                              "A corelet call used where it cannot work (outside corelet.run, ...).");

  // Every C++ exception that reaches Python through pybind11 is translated
  // as the C functions and operations translate theirs (set_python_error).
  pyb::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (...) {
      set_python_error();
    }
  });

  bind_tasklets(m);
  bind_channel(m);
  bind_sync(m);
  bind_queue(m);
  bind_blocking(m);
  bind_io(m);
  bind_cluster(m);
  bind_shm(m);
  bind_profile(m);
}
