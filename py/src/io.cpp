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

#include "fiber_op.hpp"

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
        if (primitive::current()) {
          io::close(fd);  // tasklets waiting on it get EBADF, and the reactor forgets it
        } else if (::close(fd) < 0) {
          PyErr_SetFromErrno(PyExc_OSError);
          throw pyb::error_already_set();
        }
      },
      pyb::arg("fd"), "Closes fd; operations still waiting on it fail with EBADF.");
}

}  // namespace corelet::py
