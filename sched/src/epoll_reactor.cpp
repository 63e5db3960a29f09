// The epoll backend of the reactor, for kernels and sandboxes without io_uring.
//
// A pollable fd is registered once, edge-triggered, for input and output, and
// switched to O_NONBLOCK. An operation first tries the system call; on EAGAIN
// the tasklet parks on the fd's readers or writers queue, and the loop's
// epoll_wait wakes the whole queue at the next edge, to try again. No edge can
// be missed: the loop and the tasklets run on one thread, so an edge that
// comes after the try is reported by a later epoll_wait, after the park.
//
// Files that epoll cannot watch (regular files, directories) and the calls
// that have no readiness (open, fsync) run on run_blocking's helper threads.

#include "reactor.hpp"
#include "scheduler.hpp"

#include <corelet/sched/detail/blocking.hpp>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace corelet::detail {

long io_syscall(const IoRequest& r) noexcept {
  long rc = -1;
  switch (r.op) {
    case IoOp::Read:
      rc = r.off < 0 ? ::read(r.fd, r.buf, r.len) : ::pread(r.fd, r.buf, r.len, r.off);
      break;
    case IoOp::Write:
      rc = r.off < 0 ? ::write(r.fd, r.buf, r.len) : ::pwrite(r.fd, r.buf, r.len, r.off);
      break;
    case IoOp::Readv: {
      auto* iov = static_cast<const iovec*>(r.buf);
      const int n = static_cast<int>(r.len);
      rc = r.off < 0 ? ::readv(r.fd, iov, n) : ::preadv(r.fd, iov, n, r.off);
      break;
    }
    case IoOp::Writev: {
      auto* iov = static_cast<const iovec*>(r.buf);
      const int n = static_cast<int>(r.len);
      rc = r.off < 0 ? ::writev(r.fd, iov, n) : ::pwritev(r.fd, iov, n, r.off);
      break;
    }
    case IoOp::Open: rc = ::open(r.path, r.flags, r.mode); break;
    case IoOp::Fsync: rc = ::fsync(r.fd); break;
    case IoOp::Accept: rc = ::accept4(r.fd, r.addr, r.addrlen, r.flags); break;
    case IoOp::Connect: rc = ::connect(r.fd, r.addr, r.addrlen_in); break;
    case IoOp::Recv: rc = ::recv(r.fd, r.buf, r.len, r.flags | MSG_DONTWAIT); break;
    case IoOp::Send: rc = ::send(r.fd, r.buf, r.len, r.flags | MSG_DONTWAIT); break;
    case IoOp::RecvMsg: rc = ::recvmsg(r.fd, static_cast<msghdr*>(r.buf), r.flags | MSG_DONTWAIT); break;
    case IoOp::SendMsg: rc = ::sendmsg(r.fd, static_cast<const msghdr*>(r.buf), r.flags | MSG_DONTWAIT); break;
    case IoOp::PollIn:
    case IoOp::PollOut: rc = 0; break;
    case IoOp::FutexWait: rc = -ENOSYS; break;  // never a plain call: see Reactor::wait_word
  }
  return rc < 0 ? -errno : rc;
}

namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};  // epoll data of the wake eventfd
constexpr int kMaxEvents = 256;

// A file operation run on a helper thread.
struct IoJob final : BlockingJob {
  const IoRequest* req = nullptr;
  long result = 0;
  void execute() noexcept override { result = io_syscall(*req); }
};

}  // namespace

class EpollReactor final : public Reactor {
 public:
  EpollReactor(Scheduler& s, int wake_fd);
  ~EpollReactor() override;

  io::Backend backend() const noexcept override { return io::Backend::epoll; }
  long perform(IoRequest& req, Clock::time_point deadline, bool* closed_while_waiting) override;
  void closing(int fd) noexcept override;
  void poll() override;
  void wait(const timespec* timeout) override;
  std::size_t in_flight() const noexcept override { return waiting_; }

 private:
  bool register_fd(FdState& st, int fd);  // false: epoll cannot watch this fd
  long on_helper(const IoRequest& req);
  long park_ready(FdState& st, bool out, const IoRequest& req, Clock::time_point deadline,
                  bool* closed_while_waiting);
  void dispatch(int n) noexcept;

  int epfd_ = -1;
  int wake_fd_;
  std::size_t waiting_ = 0;  // tasklets parked on a readiness queue
  epoll_event events_[kMaxEvents];
};

std::unique_ptr<Reactor> make_epoll_reactor(Scheduler& s, int wake_fd) {
  return std::make_unique<EpollReactor>(s, wake_fd);
}

EpollReactor::EpollReactor(Scheduler& s, int wake_fd) : Reactor(s), wake_fd_(wake_fd) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "corelet: epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: drained by dispatch
  ev.data.u64 = kWakeTag;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev) < 0) {
    const int e = errno;
    ::close(epfd_);
    throw std::system_error(e, std::system_category(), "corelet: epoll_ctl on the wake eventfd");
  }
}

EpollReactor::~EpollReactor() {
  // An fd the program handed us blocking (stdin, say) is blocking again for
  // whoever uses it after the run (the shell, for a terminal).
  // Only if the fd is still the same file: one closed behind corelet's back
  // may have been reused by a file that must stay as it is.
  fds_.for_each([](int fd, FdState& st) {
    struct stat now;
    if (st.made_nonblocking && st.poll == FdState::Poll::Registered && ::fstat(fd, &now) == 0 &&
        now.st_dev == st.dev && now.st_ino == st.ino) {
      const int fl = ::fcntl(fd, F_GETFL);
      if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
  });
  if (epfd_ >= 0) ::close(epfd_);
}

bool EpollReactor::register_fd(FdState& st, int fd) {
  if (st.poll == FdState::Poll::Registered) return true;
  if (st.poll == FdState::Poll::Unpollable) return false;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = static_cast<std::uint64_t>(fd);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    if (errno == EEXIST) {
      // Registered by an earlier owner of this fd number that was closed
      // without io::close while a dup kept it open: take it over.
      if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) < 0) return false;
    } else if (errno == EPERM) {
      st.poll = FdState::Poll::Unpollable;  // a regular file or a directory
      return false;
    } else {
      return false;  // EBADF and the like: the system call will report it
    }
  }
  const int fl = ::fcntl(fd, F_GETFL);
  struct stat id;
  if (fl >= 0 && !(fl & O_NONBLOCK) && ::fstat(fd, &id) == 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0) {
    st.made_nonblocking = true;
    st.dev = id.st_dev;
    st.ino = id.st_ino;
  }
  st.poll = FdState::Poll::Registered;
  return true;
}

long EpollReactor::on_helper(const IoRequest& req) {
  IoJob job;
  IoRequest copy = req;
  job.req = &copy;
  // The helper works on a duplicate of the fd: should the program close the
  // fd while the job waits for a helper, the number may be reused by another
  // file, and the job must not act on that one. (As on io_uring, an operation
  // under way keeps the file it started on.)
  int dup = -1;
  if (req.fd >= 0) {
    dup = ::fcntl(req.fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return -errno;
    copy.fd = dup;
  }
  struct CloseDup {
    int fd;
    ~CloseDup() {
      if (fd >= 0) ::close(fd);
    }
  } close_dup{dup};
  // Like run_blocking, but the result of a call that ran although the tasklet
  // was cancelled is kept, and the cancellation re-armed, as on io_uring.
  if (run_job_keep_result(job, req.name)) sched_.current()->cancel_pending = true;
  return job.result;
}

long EpollReactor::perform(IoRequest& req, Clock::time_point deadline, bool* closed_while_waiting) {
  switch (req.op) {
    case IoOp::Open:
    case IoOp::Fsync: return on_helper(req);
    default: break;
  }
  if (req.fd < 0) return -EBADF;
  FdState& st = fds_[req.fd];
  if (!register_fd(st, req.fd)) {
    if (st.poll == FdState::Poll::Unpollable) {
      if (req.op == IoOp::PollIn || req.op == IoOp::PollOut) return 0;  // always ready, as poll(2) says
      return on_helper(req);
    }
    return io_syscall(req);  // a bad fd: the call reports the error
  }
  const bool out = wants_output(req.op);
  if (req.op == IoOp::PollIn || req.op == IoOp::PollOut) {
    // Re-arm: MOD re-checks readiness and reports an fd that is ready now,
    // even if its edge was consumed before anyone waited.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<std::uint64_t>(req.fd);
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, req.fd, &ev) < 0) return -errno;
    return park_ready(st, out, req, deadline, closed_while_waiting);
  }
  if (req.op == IoOp::Connect) {
    const long rc = io_syscall(req);
    if (rc != -EINPROGRESS) return rc;
    for (;;) {
      if (long w = park_ready(st, true, req, deadline, closed_while_waiting); w < 0) return w;
      // Writable: the connect has finished, with SO_ERROR as its result.
      // A spurious wake-up leaves SO_ERROR 0 too: ask whether it is connected.
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(req.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
      if (err) return -err;
      sockaddr_storage peer;
      socklen_t plen = sizeof peer;
      if (::getpeername(req.fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return 0;
      if (errno != ENOTCONN) return -errno;
    }
  }
  for (;;) {
    const long rc = io_syscall(req);
    if (rc != -EAGAIN) return rc;
    if (long w = park_ready(st, out, req, deadline, closed_while_waiting); w < 0) return w;
  }
}

// Parks until the next edge of the fd's input (or output). Returns 0, or
// -ETIMEDOUT, or -EBADF when the fd was closed meanwhile; throws Cancelled.
long EpollReactor::park_ready(FdState& st, bool out, const IoRequest& req, Clock::time_point deadline,
                              bool* closed_while_waiting) {
  Waiter w;
  enlist(w, sched_.current(), out ? st.writers : st.readers);
  struct Count {  // waiting_ counts this park, also if park throws (bad_alloc)
    std::size_t& n;
    explicit Count(std::size_t& c) : n(c) { ++n; }
    ~Count() { --n; }
  } counted(waiting_);
  const Wake wk = primitive::park(req.name, &st, deadline, WaitKind::Io);
  if (wk == Wake::Cancelled) throw Cancelled{};
  if (wk == Wake::Timeout) return -ETIMEDOUT;
  if (w.state == Waiter::State::Closed) {
    *closed_while_waiting = true;
    return -EBADF;
  }
  return 0;
}

void EpollReactor::closing(int fd) noexcept {
  FdState* st = fds_.find(fd);
  if (!st) return;
  wake_all(st->readers, Waiter::State::Closed);
  wake_all(st->writers, Waiter::State::Closed);
  if (st->poll == FdState::Poll::Registered) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  st->poll = FdState::Poll::Unknown;
  st->made_nonblocking = false;
}

void EpollReactor::dispatch(int n) noexcept {
  for (int i = 0; i < n; ++i) {
    const epoll_event& ev = events_[i];
    if (ev.data.u64 == kWakeTag) {
      std::uint64_t v;
      ssize_t r = ::read(wake_fd_, &v, sizeof v);  // one read resets the counter (one reader: us)
      (void)r;
      continue;
    }
    FdState* st = fds_.find(static_cast<int>(ev.data.u64));
    if (!st) continue;
    if (ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) wake_all(st->readers);
    if (ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) wake_all(st->writers);
  }
}

void EpollReactor::poll() {
  if (waiting_ == 0) return;  // nobody to wake: leave the events for later
  int n = ::epoll_wait(epfd_, events_, kMaxEvents, 0);
  if (n > 0) dispatch(n);
}

void EpollReactor::wait(const timespec* timeout) {
  int n = ::epoll_pwait2(epfd_, events_, kMaxEvents, timeout, nullptr);
  if (n < 0 && errno == ENOSYS) {  // Linux < 5.11: millisecond resolution, rounded up
    int ms = -1;
    if (timeout) {
      const long long t = (static_cast<long long>(timeout->tv_sec) * 1000000000 + timeout->tv_nsec + 999999) / 1000000;
      ms = t > 0x7fffffff ? 0x7fffffff : static_cast<int>(t);
    }
    n = ::epoll_wait(epfd_, events_, kMaxEvents, ms);
  }
  if (n < 0) {
    if (errno == EINTR) return;
    throw std::system_error(errno, std::system_category(), "corelet: epoll_wait");
  }
  dispatch(n);
}

}  // namespace corelet::detail
