// corelet::io — the public I/O calls, and the choice of the reactor backend.

#include <corelet/sched/io.hpp>

#include "reactor.hpp"
#include "scheduler.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace corelet::detail {

FdState& FdTable::operator[](int fd) {
  const auto i = static_cast<std::size_t>(fd);
  const std::size_t c = i / kChunk;
  if (c >= chunks_.size()) chunks_.resize(c + 1);
  if (!chunks_[c]) chunks_[c] = std::make_unique<FdState[]>(kChunk);
  return chunks_[c][i % kChunk];
}

FdState* FdTable::find(int fd) noexcept {
  const auto i = static_cast<std::size_t>(fd);
  const std::size_t c = i / kChunk;
  if (fd < 0 || c >= chunks_.size() || !chunks_[c]) return nullptr;
  return &chunks_[c][i % kChunk];
}

std::unique_ptr<Reactor> make_reactor(Scheduler& s, int wake_fd, std::string* fallback_reason) {
  const char* env = std::getenv("CORELET_IO");
  const std::string mode = env ? env : "";
  if (mode == "epoll") return make_epoll_reactor(s, wake_fd);
  if (!mode.empty() && mode != "auto" && mode != "io_uring")
    throw UsageError("corelet: CORELET_IO=" + mode + " is not one of auto, io_uring, epoll");
  std::string why;
  if (auto r = make_uring_reactor(s, wake_fd, &why)) return r;
  if (mode == "io_uring")
    throw std::runtime_error("corelet: CORELET_IO=io_uring, but io_uring cannot be used here: " + why);
  *fallback_reason = why;
  return make_epoll_reactor(s, wake_fd);
}

}  // namespace corelet::detail

namespace corelet::io {
namespace {

using detail::IoOp;
using detail::IoRequest;

// Linux transfers at most this much in one read or write (MAX_RW_COUNT); a
// larger request is a short one, as POSIX allows.
constexpr std::size_t kMaxTransfer = 0x7ffff000;

[[noreturn]] void fail(int err, const char* name, bool closed = false) {
  if (closed) throw std::system_error(err, std::system_category(), std::string(name) + " (the fd was closed while waiting)");
  throw std::system_error(err, std::system_category(), name);
}

// I/O calls in a row, on this thread, that returned without parking.
constexpr int kIoBudget = 64;
thread_local int io_streak = 0;

detail::Scheduler& scheduler_for(const char* name) {
  primitive::require_tasklet(name);
  return *detail::this_scheduler();
}

long perform(IoRequest& r, Timeout t) {
  detail::Scheduler& s = scheduler_for(r.name);
  detail::Tasklet* self = s.current();
  if (self->cancel_pending) {  // nothing reaches the kernel for a cancelled tasklet
    self->cancel_pending = false;
    throw Cancelled{};
  }
  const Clock::time_point deadline = t.is_none() ? Clock::time_point::max() : primitive::deadline_after(t.duration());
  bool closed = false;
  const std::uint64_t parks = s.parks();
  const long rc = s.reactor().perform(r, deadline, &closed);
  // Fairness: a tasklet whose socket always has data (or whose peer always
  // has room) would never park, and timers, I/O completions and the other
  // tasklets would wait for it. After kIoBudget calls in a row that did not
  // park, it goes to the back of the queue through the loop (as Tokio's
  // coop budget). The result is kept: no data is lost.
  if (s.parks() != parks) {
    io_streak = 0;
  } else if (++io_streak >= kIoBudget) {
    io_streak = 0;
    s.yield_to_loop();
  }
  if (rc < 0) fail(static_cast<int>(-rc), r.name, closed);
  return rc;
}

std::size_t transfer(IoOp op, const char* name, int fd, const void* buf, std::size_t n, off_t off, int flags,
                     Timeout t) {
  IoRequest r{op, name, fd};
  r.buf = const_cast<void*>(buf);
  r.len = n < kMaxTransfer ? n : kMaxTransfer;
  r.off = off;
  r.flags = flags;
  return static_cast<std::size_t>(perform(r, t));
}

std::size_t vector_transfer(IoOp op, const char* name, int fd, const iovec* iov, int iovcnt, Timeout t) {
  if (iovcnt < 0 || iovcnt > IOV_MAX) fail(EINVAL, name);
  IoRequest r{op, name, fd};
  r.buf = const_cast<iovec*>(iov);
  r.len = static_cast<std::size_t>(iovcnt);
  return static_cast<std::size_t>(perform(r, t));
}

void check_offset(off_t off, const char* name) {
  if (off < 0) fail(EINVAL, name);
}

}  // namespace

Backend backend() { return scheduler_for("corelet::io::backend").reactor().backend(); }

std::string_view backend_name(Backend b) noexcept { return b == Backend::io_uring ? "io_uring" : "epoll"; }

std::string fallback_reason() {
  detail::Scheduler& s = scheduler_for("corelet::io::fallback_reason");
  s.reactor();
  return s.io_fallback_reason();
}

std::size_t read(int fd, void* buf, std::size_t n, Timeout t) {
  return transfer(IoOp::Read, "corelet::io::read", fd, buf, n, -1, 0, t);
}
std::size_t write(int fd, const void* buf, std::size_t n, Timeout t) {
  return transfer(IoOp::Write, "corelet::io::write", fd, buf, n, -1, 0, t);
}
std::size_t pread(int fd, void* buf, std::size_t n, off_t offset, Timeout t) {
  check_offset(offset, "corelet::io::pread");
  return transfer(IoOp::Read, "corelet::io::pread", fd, buf, n, offset, 0, t);
}
std::size_t pwrite(int fd, const void* buf, std::size_t n, off_t offset, Timeout t) {
  check_offset(offset, "corelet::io::pwrite");
  return transfer(IoOp::Write, "corelet::io::pwrite", fd, buf, n, offset, 0, t);
}
std::size_t readv(int fd, const iovec* iov, int iovcnt, Timeout t) {
  return vector_transfer(IoOp::Readv, "corelet::io::readv", fd, iov, iovcnt, t);
}
std::size_t writev(int fd, const iovec* iov, int iovcnt, Timeout t) {
  return vector_transfer(IoOp::Writev, "corelet::io::writev", fd, iov, iovcnt, t);
}

int open(const char* path, int flags, mode_t mode, Timeout t) {
  if (!path) fail(EFAULT, "corelet::io::open");
  IoRequest r{IoOp::Open, "corelet::io::open"};
  r.path = path;
  r.flags = flags | O_CLOEXEC;
  r.mode = mode;
  return static_cast<int>(perform(r, t));
}

void fsync(int fd, Timeout t) {
  IoRequest r{IoOp::Fsync, "corelet::io::fsync", fd};
  perform(r, t);
}

void close(int fd) {
  if (fd < 0) return;
  // Closing never waits and is never refused to a cancelled tasklet: an fd
  // must not leak. The operations still waiting on it end with EBADF.
  if (detail::Scheduler* s = detail::this_scheduler(); s && s->has_reactor()) s->reactor().closing(fd);
  if (::close(fd) < 0 && errno != EINTR) fail(errno, "corelet::io::close");  // EINTR: closed all the same
}

int socket(int domain, int type, int protocol) {
  const int fd = ::socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) fail(errno, "corelet::io::socket");
  return fd;
}

void bind(int fd, const sockaddr* addr, socklen_t len) {
  if (::bind(fd, addr, len) < 0) fail(errno, "corelet::io::bind");
}

void listen(int fd, int backlog) {
  if (::listen(fd, backlog) < 0) fail(errno, "corelet::io::listen");
}

int accept(int fd, sockaddr* addr, socklen_t* len, Timeout t) {
  if ((addr == nullptr) != (len == nullptr)) fail(EINVAL, "corelet::io::accept");
  IoRequest r{IoOp::Accept, "corelet::io::accept", fd};
  r.addr = addr;
  r.addrlen = len;
  r.flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
  return static_cast<int>(perform(r, t));
}

void connect(int fd, const sockaddr* addr, socklen_t len, Timeout t) {
  if (!addr) fail(EFAULT, "corelet::io::connect");
  IoRequest r{IoOp::Connect, "corelet::io::connect", fd};
  r.addr = const_cast<sockaddr*>(addr);
  r.addrlen_in = len;
  perform(r, t);
}

std::size_t recv(int fd, void* buf, std::size_t n, int flags, Timeout t) {
  return transfer(IoOp::Recv, "corelet::io::recv", fd, buf, n, -1, flags, t);
}
std::size_t send(int fd, const void* buf, std::size_t n, int flags, Timeout t) {
  return transfer(IoOp::Send, "corelet::io::send", fd, buf, n, -1, flags | MSG_NOSIGNAL, t);
}

std::size_t recvmsg(int fd, msghdr* msg, int flags, Timeout t) {
  if (!msg) fail(EFAULT, "corelet::io::recvmsg");
  IoRequest r{IoOp::RecvMsg, "corelet::io::recvmsg", fd};
  r.buf = msg;
  r.flags = flags;
  return static_cast<std::size_t>(perform(r, t));
}

std::size_t sendmsg(int fd, const msghdr* msg, int flags, Timeout t) {
  if (!msg) fail(EFAULT, "corelet::io::sendmsg");
  IoRequest r{IoOp::SendMsg, "corelet::io::sendmsg", fd};
  r.buf = const_cast<msghdr*>(msg);
  r.flags = flags | MSG_NOSIGNAL;
  return static_cast<std::size_t>(perform(r, t));
}

void shutdown(int fd, int how) {
  if (::shutdown(fd, how) < 0) fail(errno, "corelet::io::shutdown");
}

void wait_readable(int fd, Timeout t) {
  IoRequest r{IoOp::PollIn, "corelet::io::wait_readable", fd};
  perform(r, t);
}

void wait_writable(int fd, Timeout t) {
  IoRequest r{IoOp::PollOut, "corelet::io::wait_writable", fd};
  perform(r, t);
}

OwnedFd& OwnedFd::operator=(OwnedFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) try { io::close(fd_); } catch (...) {}
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) try { io::close(fd_); } catch (...) {}
}

void OwnedFd::close() {
  if (fd_ >= 0) io::close(std::exchange(fd_, -1));
}

int OwnedFd::checked_fd(const char* call, const char* kind) const {
  if (fd_ < 0) fail(EBADF, (std::string(call) + ": the " + kind + " is closed").c_str());
  return fd_;
}

}  // namespace corelet::io
