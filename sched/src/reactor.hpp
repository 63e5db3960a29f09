#pragma once
// Internal: the I/O reactor of one Scheduler, with two backends behind one
// interface: io_uring (uring_reactor.cpp) and epoll (epoll_reactor.cpp).
//
// The public calls of <corelet/sched/io.hpp> describe an operation as an
// IoRequest and hand it to Reactor::perform, which parks the calling tasklet
// until the operation is complete, timed out or cancelled, and returns the
// kernel's result (>= 0, or -errno). The reactor's other half runs in the
// scheduler's loop: poll() (no waiting, once per batch) and wait() (the idle
// scheduler's sleep, until an I/O completion, the wake eventfd or a deadline).

#include <corelet/sched/primitive.hpp>
#include <corelet/sched/io.hpp>

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

struct iovec;
struct msghdr;

namespace corelet::detail {

class Scheduler;

enum class IoOp : std::uint8_t {
  Read, Write,       // off < 0: at the file position
  Readv, Writev,
  Open, Fsync,
  Accept, Connect, Recv, Send, RecvMsg, SendMsg,
  PollIn, PollOut,   // wait_readable / wait_writable
  FutexWait,         // buf: the word, len: the value expected (io_uring only; see wait_word)
};

// Whether op waits for room to write (else for data to read).
inline bool wants_output(IoOp op) noexcept {
  return op == IoOp::Write || op == IoOp::Writev || op == IoOp::Send || op == IoOp::SendMsg ||
         op == IoOp::Connect || op == IoOp::PollOut;
}

struct IoRequest {
  IoOp op;
  const char* name;                  // "corelet::io::recv", for errors and reports
  int fd = -1;
  void* buf = nullptr;               // Read/Write/Recv/Send; iovec* for Readv/Writev; msghdr* for *Msg
  std::size_t len = 0;               // bytes, or iovec count
  off_t off = -1;
  int flags = 0;                     // recv/send/accept4/open flags
  mode_t mode = 0;                   // open
  const char* path = nullptr;        // open
  sockaddr* addr = nullptr;          // accept (out), connect (in)
  socklen_t* addrlen = nullptr;      // accept
  socklen_t addrlen_in = 0;          // connect
  WaitKind kind = WaitKind::Io;      // what accounting files the wait under
};

// One fd's entry in the reactor's table. Entries never move (the table grows
// in chunks), so wait queues and op lists may point into them.
struct UringOp;
struct FdState {
  enum class Poll : std::uint8_t { Unknown, Registered, Unpollable };
  Poll poll = Poll::Unknown;       // epoll: registration of this fd
  bool made_nonblocking = false;   // epoll: we set O_NONBLOCK (restored at the end of the run)
  dev_t dev = 0;                   // epoll: the file we set it on
  ino_t ino = 0;
  WaitQueue readers, writers;      // epoll: tasklets waiting for readiness
  UringOp* ops = nullptr;       // io_uring: operations in flight on this fd
  bool drained = false;            // io_uring: the last recv emptied the socket
  std::int8_t nonblocking = -1;    // io_uring: O_NONBLOCK set on the fd? -1: not looked at yet
};

class FdTable {
 public:
  // The entry of fd (>= 0), created on first use.
  FdState& operator[](int fd);
  // The entry of fd if it was ever created, else nullptr.
  FdState* find(int fd) noexcept;
  // Calls f(fd, state) for every entry created.
  template <class F>
  void for_each(F f) {
    for (std::size_t c = 0; c < chunks_.size(); ++c)
      if (chunks_[c])
        for (std::size_t i = 0; i < kChunk; ++i) f(static_cast<int>(c * kChunk + i), chunks_[c][i]);
  }

 private:
  static constexpr std::size_t kChunk = 1024;
  std::vector<std::unique_ptr<FdState[]>> chunks_;
};

class Reactor {
 public:
  explicit Reactor(Scheduler& s) : sched_(s) {}
  virtual ~Reactor() = default;
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  virtual io::Backend backend() const noexcept = 0;

  // Runs req for the current tasklet, parking it until the result is in.
  // Returns the result (>= 0) or -errno; -ETIMEDOUT once `deadline` passed
  // (the kernel operation is cancelled first); throws Cancelled if the
  // tasklet is cancelled (likewise). An operation that completes although it
  // was cancelled returns its result, and the cancellation is delivered at
  // the tasklet's next blocking call: no data is lost. -EBADF with
  // *closed_while_waiting set: another tasklet closed the fd meanwhile.
  virtual long perform(IoRequest& req, Clock::time_point deadline, bool* closed_while_waiting) = 0;

  // The fd is about to be closed by corelet::io::close: every operation
  // still waiting on it ends with EBADF, and the fd leaves the reactor.
  virtual void closing(int fd) noexcept = 0;

  // Submits queued work and dispatches completions, without waiting.
  virtual void poll() = 0;
  // Sleeps until a completion, a write to the scheduler's wake eventfd, or
  // the timeout (nullptr: none), then dispatches what came.
  virtual void wait(const timespec* timeout) = 0;
  // wait_word — parks the current (fiber) tasklet while *word == expected,
  // until a futex wake on it, the deadline or cancellation: 0 (woken, or the
  // word differed), -ETIMEDOUT, or throws Cancelled (see futex.hpp). This
  // default hands the wait to a proxy thread (futex.cpp); the io_uring
  // backend waits on its ring where the kernel can.
  virtual long wait_word(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                         Clock::time_point deadline, const char* what, WaitKind kind);
  virtual const char* word_wait_mechanism() const noexcept { return "proxy thread"; }

  // Operations in flight: while there are any, the scheduler cannot be
  // deadlocked, something can still wake a tasklet.
  virtual std::size_t in_flight() const noexcept = 0;

 protected:
  Scheduler& sched_;
  FdTable fds_;
};

// The reactor for this scheduler: CORELET_IO=auto|io_uring|epoll (default
// auto) decides; auto takes io_uring unless setting it up fails for any reason,
// which is then kept in *fallback_reason. wake_fd is the scheduler's eventfd.
std::unique_ptr<Reactor> make_reactor(Scheduler& s, int wake_fd, std::string* fallback_reason);

std::unique_ptr<Reactor> make_uring_reactor(Scheduler& s, int wake_fd, std::string* why_not);
std::unique_ptr<Reactor> make_epoll_reactor(Scheduler& s, int wake_fd);

// The operation as a plain non-blocking system call: the result or -errno.
// The epoll backend's first try, and the body of file operations that it
// hands to run_blocking's helpers.
long io_syscall(const IoRequest& req) noexcept;

}  // namespace corelet::detail
