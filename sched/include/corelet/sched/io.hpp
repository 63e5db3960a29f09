#pragma once
// corelet/sched/io.hpp — I/O that parks the tasklet, not the thread.
//
// Each call below is the POSIX call of the same name, made from a tasklet: the
// tasklet parks while the kernel works, and the scheduler runs the others. The
// scheduler's reactor is io_uring (liburing) or, where io_uring cannot be set
// up, epoll with the same semantics (see backend()).
//
// Common rules:
// - Call them inside a tasklet (UsageError otherwise).
// - Errors throw std::system_error whose code() is the errno value
//   (std::system_category) and whose what() names the call, e.g.
//   "corelet::io::connect: Connection refused".
// - Every call takes a timeout (default: none). When it passes, the kernel
//   operation is cancelled and the call throws std::system_error with
//   std::errc::timed_out. A zero or negative timeout only polls.
// - Every call is a cancellation point: Task::cancel() cancels the kernel
//   operation before the tasklet resumes with Cancelled, so no completion ever
//   writes into a buffer that is gone. An operation that completed although it
//   was cancelled returns its result (no data is lost) and the cancellation
//   comes out of the tasklet's next blocking call.
// - An fd that tasklets wait on must be closed with io::close (or through the
//   wrappers of <corelet/sched/net.hpp> and <corelet/sched/file.hpp>): the
//   calls still waiting on it then fail with EBADF, "closed while waiting".
//   On the epoll backend a pollable fd is switched to O_NONBLOCK on first use
//   (and back at the end of the run if it was blocking and is still open).
// - Short reads and writes are returned as they are, as POSIX does; the
//   wrappers offer read_exact/write_all.
// - corelet::run blocks SIGPIPE on its thread: a write to a closed pipe or
//   socket throws EPIPE instead of killing the process.
// - Fairness: after 64 calls in a row that did not have to wait, the tasklet
//   yields to the others (the result is kept).

#include <corelet/sched/primitive.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <sys/socket.h>
#include <sys/types.h>

struct iovec;
struct msghdr;

namespace corelet::io {

// Timeout — any std::chrono duration (20ms, 1.5s as duration<double>...);
// no_timeout (the default) waits forever. Saturating: a duration too long for
// nanoseconds (seconds::max()) is no timeout; a negative one is zero (poll).
class Timeout {
 public:
  constexpr Timeout() noexcept = default;  // none
  template <class Rep, class Period>
  constexpr Timeout(std::chrono::duration<Rep, Period> d) noexcept : ns_(clamp(d)) {}  // NOLINT: implicit by design

  constexpr bool is_none() const noexcept { return ns_ == std::chrono::nanoseconds::max(); }
  constexpr std::chrono::nanoseconds duration() const noexcept { return ns_; }
  friend constexpr bool operator==(Timeout, Timeout) noexcept = default;

  // The deadline it sets from now (Clock::time_point::max() for none), and
  // back: what is left of a deadline, for one timeout spread over several
  // calls (write_all, read_exact, connect to each address of a name).
  Clock::time_point deadline() const noexcept {
    return is_none() ? Clock::time_point::max() : primitive::deadline_after(ns_);
  }
  static Timeout until(Clock::time_point deadline) noexcept { return Timeout(primitive::remaining(deadline)); }

 private:
  template <class Rep, class Period>
  static constexpr std::chrono::nanoseconds clamp(std::chrono::duration<Rep, Period> d) noexcept {
    using Wide = std::chrono::duration<long double, std::nano>;  // compares without overflow
    const Wide w = std::chrono::duration_cast<Wide>(d);
    if (!(w < Wide(static_cast<long double>(std::chrono::nanoseconds::max().count()))))
      return std::chrono::nanoseconds::max();
    if (w <= Wide::zero()) return std::chrono::nanoseconds::zero();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d);
  }
  std::chrono::nanoseconds ns_ = std::chrono::nanoseconds::max();
};
inline constexpr Timeout no_timeout{};

enum class Backend : std::uint8_t { io_uring, epoll };

// The backend of the running scheduler's reactor: chosen (and the reactor set
// up) at the first I/O call of a run, from the environment variable
// CORELET_IO = auto (default) | io_uring | epoll. auto takes io_uring unless
// setting it up fails for any reason (EPERM from seccomp or
// kernel.io_uring_disabled, ENOSYS, ENOMEM from the memlock limit, an opcode
// the kernel lacks...), and then epoll. CORELET_IO=io_uring makes that failure
// an error. Call inside corelet::run.
Backend backend();
std::string_view backend_name(Backend b) noexcept;  // "io_uring", "epoll"
// Why auto fell back to epoll in this run, e.g. "io_uring_queue_init:
// Operation not permitted"; empty if it did not.
std::string fallback_reason();

// ---- files and any fd ----
std::size_t read(int fd, void* buf, std::size_t n, Timeout t = no_timeout);
std::size_t write(int fd, const void* buf, std::size_t n, Timeout t = no_timeout);
std::size_t pread(int fd, void* buf, std::size_t n, off_t offset, Timeout t = no_timeout);
std::size_t pwrite(int fd, const void* buf, std::size_t n, off_t offset, Timeout t = no_timeout);
std::size_t readv(int fd, const iovec* iov, int iovcnt, Timeout t = no_timeout);
std::size_t writev(int fd, const iovec* iov, int iovcnt, Timeout t = no_timeout);
// open adds O_CLOEXEC. Returns the new fd.
int open(const char* path, int flags, mode_t mode = 0644, Timeout t = no_timeout);
void fsync(int fd, Timeout t = no_timeout);
// Closes fd; calls still waiting on it fail with EBADF. Closing -1 is a no-op.
void close(int fd);

// ---- sockets ----
// socket adds SOCK_NONBLOCK and SOCK_CLOEXEC. Returns the new fd.
int socket(int domain, int type, int protocol = 0);
void bind(int fd, const sockaddr* addr, socklen_t len);
void listen(int fd, int backlog = SOMAXCONN);
// The accepted socket is SOCK_NONBLOCK | SOCK_CLOEXEC. addr/len may be null.
int accept(int fd, sockaddr* addr, socklen_t* len, Timeout t = no_timeout);
void connect(int fd, const sockaddr* addr, socklen_t len, Timeout t = no_timeout);
std::size_t recv(int fd, void* buf, std::size_t n, int flags = 0, Timeout t = no_timeout);
// send adds MSG_NOSIGNAL: a reset peer is an EPIPE error, never SIGPIPE.
std::size_t send(int fd, const void* buf, std::size_t n, int flags = 0, Timeout t = no_timeout);
std::size_t recvmsg(int fd, msghdr* msg, int flags = 0, Timeout t = no_timeout);
std::size_t sendmsg(int fd, const msghdr* msg, int flags = 0, Timeout t = no_timeout);
void shutdown(int fd, int how);

// ---- readiness, for non-blocking libraries that do their own I/O ----
// Park until fd is readable (or writable), or has an error or hang-up pending
// (the library's next call then reports it).
void wait_readable(int fd, Timeout t = no_timeout);
void wait_writable(int fd, Timeout t = no_timeout);

// OwnedFd — an owned fd, closed through io::close when destroyed (errors of
// that close cannot be reported and are dropped; call close() to see them).
// Moves, does not copy. The base of File and of the sockets.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept;
  ~OwnedFd();

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return is_open(); }
  int release() noexcept { return std::exchange(fd_, -1); }  // the caller owns the fd
  void close();                                              // no-op if closed

 protected:
  // fd_, or std::system_error(EBADF) "<call>: the <kind> is closed".
  int checked_fd(const char* call, const char* kind) const;
  int fd_ = -1;
};

}  // namespace corelet::io
