// I/O for Python tasklets through the scheduler's reactor (io_uring, or
// epoll): readiness waits for sockets (py/corelet/_io.py makes the socket
// calls themselves, non-blocking) and reads and writes for files.
//
// Each operation runs its C++ call (corelet::io::...) in a small fiber
// tasklet, which parks in the reactor, while the Python tasklet waits for
// that fiber to end. Only C++ runs on the fiber's stack; the Python frames
// stay on the loop's. A cancelled Python tasklet cancels the fiber and waits
// for it (the kernel operation is cancelled before a buffer can go away),
// and a result that came in anyway is kept: the cancellation then hits the
// tasklet's next wait, as in C++.

#include "tasklet.hpp"

#include <corelet/sched/io.hpp>
#include <corelet/sched/task.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <system_error>

#include <unistd.h>

namespace corelet::py {
namespace {

io::Timeout timeout_from(const pyb::object& timeout, const char* call) {
  if (timeout.is_none()) return io::no_timeout;
  const double s = timeout.cast<double>();
  if (!(s >= 0)) throw pyb::value_error(std::string(call) + ": timeout must be a non-negative number of seconds");
  return io::Timeout(std::chrono::duration<double>(s));
}

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
    if (t.wake == detail::Wake::Cancelled) {
      cancelled_ = true;
      detail::cancel(fiber_);  // no effect if it ended meanwhile
    }
    if (fiber_->state != detail::State::Done) {
      detail::enlist(w_, &t, fiber_->joiners);
      detail::park_stackless(what(), fiber_, Clock::time_point::max());  // the cancellation was consumed
      return false;
    }
    finish(t);
    return true;
  }
  const char* what() const noexcept override { return what_.c_str(); }

 protected:
  // Under the GIL, before the fiber starts: take buffers etc. False (with
  // t.raise set) to fail at once.
  virtual bool prepare(PyTasklet&) { return true; }
  // In the fiber (no GIL use): the call.
  virtual long run() = 0;
  // Under the GIL, after a successful run: the value for the tasklet.
  virtual PyObject* value(long result) { return PyLong_FromLong(result); }

 private:
  bool wait_fiber(PyTasklet& t) {
    detail::enlist(w_, &t, fiber_->joiners);
    if (detail::park_stackless(what(), fiber_, Clock::time_point::max())) return true;
    // A cancellation was pending: cancel the fiber too, and still wait for it.
    cancelled_ = true;
    detail::cancel(fiber_);
    detail::enlist(w_, &t, fiber_->joiners);
    detail::park_stackless(what(), fiber_, Clock::time_point::max());
    return true;
  }
  void finish(PyTasklet& t) {
    fiber_->joined = true;  // its error is ours to report
    if (!fiber_->error) {
      if (cancelled_) t.cancel_pending = true;  // the result came in anyway: keep it, cancel at the next wait
      PyObject* v = value(result_);
      if (v) t.give(v); else t.raise_new(PyExc_MemoryError, "corelet: " + what_);
      return;
    }
    if (cancelled_) {  // an error after our cancellation (the fd closed meanwhile...): cancelled wins
      t.raise_cancelled();
      return;
    }
    try {
      std::rethrow_exception(fiber_->error);
    } catch (const Cancelled&) {
      t.raise_cancelled();
    } catch (const std::system_error& e) {
      const int err = e.code().value();
      if (e.code() == std::errc::timed_out) {
        t.raise_new(PyExc_TimeoutError, e.what());
        return;
      }
      PyObject* exc = PyObject_CallFunction(PyExc_OSError, "is", err, e.what());
      if (exc) t.raise(exc); else t.raise_new(PyExc_OSError, e.what());
    } catch (const UsageError& e) {
      t.raise_new(g_exc.usage, e.what());
    } catch (const std::exception& e) {
      t.raise_new(PyExc_RuntimeError, e.what());
    }
  }

  std::string what_;
  detail::Tasklet* fiber_ = nullptr;
  detail::Waiter w_;
  long result_ = 0;
  bool cancelled_ = false;
};

class WaitIoOp final : public FiberOp {
 public:
  WaitIoOp(int fd, bool out, io::Timeout timeout)
      : FiberOp(out ? "wait_writable" : "wait_readable"), fd_(fd), out_(out), timeout_(timeout) {}
  long run() override {
    if (out_) io::wait_writable(fd_, timeout_); else io::wait_readable(fd_, timeout_);
    return 0;
  }
  PyObject* value(long) override { return Py_NewRef(Py_None); }

 private:
  int fd_;
  bool out_;
  io::Timeout timeout_;
};

class ReadOp final : public FiberOp {
 public:
  ReadOp(int fd, std::size_t n, off_t offset, io::Timeout timeout)
      : FiberOp("read"), fd_(fd), n_(n), offset_(offset), timeout_(timeout) {}
  ~ReadOp() override { Py_XDECREF(bytes_); }
  bool prepare(PyTasklet& t) override {
    bytes_ = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(n_));
    if (!bytes_) {
      t.raise_new(PyExc_MemoryError, "corelet: read: no memory for " + std::to_string(n_) + " bytes");
      return false;
    }
    buf_ = PyBytes_AS_STRING(bytes_);
    return true;
  }
  long run() override {
    const std::size_t got = offset_ < 0 ? io::read(fd_, buf_, n_, timeout_) : io::pread(fd_, buf_, n_, offset_, timeout_);
    return static_cast<long>(got);
  }
  PyObject* value(long got) override {
    if (static_cast<std::size_t>(got) != n_ && _PyBytes_Resize(&bytes_, got) < 0) {
      PyErr_Clear();
      return nullptr;
    }
    return steal(bytes_);
  }

 private:
  int fd_;
  std::size_t n_;
  off_t offset_;
  io::Timeout timeout_;
  PyObject* bytes_ = nullptr;
  char* buf_ = nullptr;
};

class WriteOp final : public FiberOp {
 public:
  WriteOp(int fd, const pyb::object& data, off_t offset, io::Timeout timeout)
      : FiberOp("write"), fd_(fd), offset_(offset), timeout_(timeout) {
    if (PyObject_GetBuffer(data.ptr(), &view_, PyBUF_SIMPLE) < 0) throw pyb::error_already_set();
    have_view_ = true;
  }
  ~WriteOp() override {
    if (have_view_) PyBuffer_Release(&view_);
  }
  long run() override {
    const auto* p = static_cast<const char*>(view_.buf);
    const std::size_t n = static_cast<std::size_t>(view_.len);
    const std::size_t put = offset_ < 0 ? io::write(fd_, p, n, timeout_) : io::pwrite(fd_, p, n, offset_, timeout_);
    return static_cast<long>(put);
  }

 private:
  int fd_;
  off_t offset_;
  io::Timeout timeout_;
  Py_buffer view_{};
  bool have_view_ = false;
};

void check_fd(int fd, const char* call) {
  if (fd < 0) throw pyb::value_error(std::string("corelet.") + call + ": bad file descriptor " + std::to_string(fd));
}

}  // namespace

void bind_io(pyb::module_& m) {
  pyb::class_<FiberOp, Op>(m, "_FiberOp");
  pyb::class_<WaitIoOp, FiberOp>(m, "_WaitIo");
  pyb::class_<ReadOp, FiberOp>(m, "_Read");
  pyb::class_<WriteOp, FiberOp>(m, "_Write");
  m.def(
      "wait_readable",
      [](int fd, pyb::object timeout) {
        check_fd(fd, "wait_readable");
        return new WaitIoOp(fd, false, timeout_from(timeout, "corelet.wait_readable"));
      },
      pyb::arg("fd"), pyb::arg("timeout") = pyb::none(),
      "wait_readable(fd, timeout=None) -> operation: waits in the reactor until fd has data (or\n"
      "end of stream, or an error) to read; TimeoutError after timeout seconds.");
  m.def(
      "wait_writable",
      [](int fd, pyb::object timeout) {
        check_fd(fd, "wait_writable");
        return new WaitIoOp(fd, true, timeout_from(timeout, "corelet.wait_writable"));
      },
      pyb::arg("fd"), pyb::arg("timeout") = pyb::none(),
      "wait_writable(fd, timeout=None) -> operation: waits until fd can take data.");
  m.def(
      "read",
      [](int fd, long n, long offset, pyb::object timeout) {
        check_fd(fd, "read");
        if (n < 0) throw pyb::value_error("corelet.read: n must be >= 0");
        return new ReadOp(fd, static_cast<std::size_t>(n), offset, timeout_from(timeout, "corelet.read"));
      },
      pyb::arg("fd"), pyb::arg("n"), pyb::arg("offset") = -1, pyb::arg("timeout") = pyb::none(),
      "read(fd, n, offset=-1, timeout=None) -> operation giving up to n bytes (b'' at the end):\n"
      "read(2), or pread(2) at offset >= 0, through the reactor (io_uring: no thread).");
  m.def(
      "write",
      [](int fd, pyb::object data, long offset, pyb::object timeout) {
        check_fd(fd, "write");
        return new WriteOp(fd, data, offset, timeout_from(timeout, "corelet.write"));
      },
      pyb::arg("fd"), pyb::arg("data"), pyb::arg("offset") = -1, pyb::arg("timeout") = pyb::none(),
      "write(fd, data, offset=-1, timeout=None) -> operation giving the bytes written (maybe fewer).");
  m.def(
      "close_fd",
      [](int fd) {
        check_fd(fd, "close_fd");
        if (detail::current()) {
          io::close(fd);  // tasklets waiting on it get EBADF, and the reactor forgets it
        } else if (::close(fd) < 0) {
          PyErr_SetFromErrno(PyExc_OSError);
          throw pyb::error_already_set();
        }
      },
      pyb::arg("fd"), "Closes fd; operations still waiting on it fail with EBADF.");
}

}  // namespace corelet::py
