// The io_uring backend of the reactor.
//
// An operation is a UringOp on the parked tasklet's stack; its address is the
// SQE's user_data. SQEs are queued by perform() and submitted together by the
// scheduler loop's poll() (once per batch) or wait(). The tasklet stays parked,
// uncancellably, until the kernel's CQE for its operation has arrived: a
// timeout or a cancellation submits IORING_OP_ASYNC_CANCEL for it and then
// waits for the original CQE, so no completion lands in memory that is gone.
//
// Single-threaded: the ring belongs to one scheduler thread (SINGLE_ISSUER);
// helpers wake the scheduler through its eventfd, watched with a POLL_ADD.

#include "reactor.hpp"
#include "scheduler.hpp"

#include <liburing.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace corelet::detail {

struct UringOp {
  UringOp* prev = nullptr;  // this fd's operations in flight (FdState::ops)
  UringOp* next = nullptr;
  Tasklet* tasklet = nullptr;
  int res = 0;
  bool done = false;
  bool closed = false;       // io::close of the fd cancelled it
};

namespace {

// user_data values that are not operations.
constexpr std::uint64_t kIgnore = 0;  // cancel requests: their own CQEs carry nothing
constexpr std::uint64_t kWake = 1;    // the POLL_ADD on the scheduler's eventfd

// IORING_OP_FUTEX_WAIT (Linux 6.7), newer than liburing 2.3's headers: the
// opcode and futex2 flag values of the kernel's uapi.
constexpr int kOpFutexWait = 51;
constexpr int kFutex2SizeU32 = 0x02;
constexpr __u64 kFutexBitsetAny = 0xffffffffu;

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 4096;

// The opcodes corelet uses: a kernel without any of them gets the epoll backend.
constexpr struct {
  int op;
  const char* name;
} kRequiredOps[] = {
    {IORING_OP_READ, "READ"},       {IORING_OP_WRITE, "WRITE"},
    {IORING_OP_READV, "READV"},     {IORING_OP_WRITEV, "WRITEV"},
    {IORING_OP_OPENAT, "OPENAT"},   {IORING_OP_FSYNC, "FSYNC"},
    {IORING_OP_ACCEPT, "ACCEPT"},
    {IORING_OP_CONNECT, "CONNECT"}, {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},       {IORING_OP_RECVMSG, "RECVMSG"},
    {IORING_OP_SENDMSG, "SENDMSG"},
    {IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
};

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

class UringReactor final : public Reactor {
 public:
  UringReactor(Scheduler& s, int wake_fd) : Reactor(s), wake_fd_(wake_fd) {}
  ~UringReactor() override;

  // Sets the ring up; on failure returns false with the reason.
  bool init(std::string* why_not);

  io::Backend backend() const noexcept override { return io::Backend::io_uring; }
  long perform(IoRequest& req, Clock::time_point deadline, bool* closed_while_waiting) override;
  void closing(int fd) noexcept override;
  void poll() override;
  void wait(const timespec* timeout) override;
  std::size_t in_flight() const noexcept override { return in_flight_; }
  long wait_word(const std::atomic<std::uint32_t>& word, std::uint32_t expected, Clock::time_point deadline,
                 const char* what, WaitKind kind) override;
  const char* word_wait_mechanism() const noexcept override { return futex_ok_ ? "io_uring" : "proxy thread"; }

 private:
  io_uring_sqe* sqe();  // a free SQE, flushing the queue to the kernel if full; may throw
  void prep(io_uring_sqe* s, const IoRequest& req) noexcept;
  void cancel(UringOp* op) noexcept;
  int enter() noexcept;
  [[noreturn]] static void fatal(int err) noexcept;
  io_uring_sqe* sqe_noexcept() noexcept;
  void arm_wake() noexcept;
  void reap() noexcept;
  FdState& link(UringOp* op, int fd);
  void unlink(UringOp* op, int fd) noexcept;

  io_uring ring_{};
  bool ring_ok_ = false;
  int wake_fd_;
  bool wake_armed_ = false;
  bool wake_by_read_ = true;  // see arm_wake
  bool poll_first_ = false;    // the kernel knows IORING_RECVSEND_POLL_FIRST
  bool futex_ok_ = false;      // the kernel knows IORING_OP_FUTEX_WAIT
  std::size_t in_flight_ = 0;  // operations whose CQE has not arrived (not cancels)
};

std::unique_ptr<Reactor> make_uring_reactor(Scheduler& s, int wake_fd, std::string* why_not) {
  auto r = std::make_unique<UringReactor>(s, wake_fd);
  if (!r->init(why_not)) return nullptr;
  return r;
}

bool UringReactor::init(std::string* why_not) {
  // The flags that suit one ring per thread, newest first; older kernels
  // reject them with EINVAL and get the next set.
  static constexpr unsigned kFlagSets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
          IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      0,
  };
  int rc = -EINVAL;
  for (unsigned flags : kFlagSets) {
    io_uring_params p{};
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (rc != -EINVAL) break;
  }
  if (rc < 0) {
    *why_not = errno_text("io_uring_queue_init", -rc);
    return false;
  }
  ring_ok_ = true;
  // EXT_ARG (5.11): a wait with a timeout is one system call and no SQE;
  // NODROP (5.5): the kernel never drops a CQE when the CQ ring is full.
  if (!(ring_.features & IORING_FEAT_EXT_ARG) || !(ring_.features & IORING_FEAT_NODROP)) {
    *why_not = "io_uring: the kernel lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP (Linux < 5.11)";
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (!probe) {
    *why_not = "io_uring_get_probe_ring failed (Linux < 5.6)";
    return false;
  }
  for (const auto& op : kRequiredOps) {
    if (!io_uring_opcode_supported(probe, op.op)) {
      *why_not = std::string("io_uring: the kernel lacks the opcode IORING_OP_") + op.name;
      io_uring_free_probe(probe);
      return false;
    }
  }
  // IORING_RECVSEND_POLL_FIRST came with Linux 5.19, as did IORING_OP_SOCKET.
  poll_first_ = io_uring_opcode_supported(probe, IORING_OP_SOCKET);
  // The probe covers opcodes up to probe->last_op; later ones read as absent.
  futex_ok_ = probe->last_op >= kOpFutexWait && io_uring_opcode_supported(probe, kOpFutexWait);
  io_uring_free_probe(probe);
  return true;
}

UringReactor::~UringReactor() {
  if (!ring_ok_) return;
  // Normally every tasklet has ended and no operation is in flight; only the
  // wake poll may be armed, and it writes no memory of ours. If run() is left
  // by an exception, operations may still point into tasklet stacks (still
  // mapped: the stack pool outlives the reactor). Cancel them all and wait for
  // their CQEs, so that nothing writes there once the stacks are unmapped.
  for (int round = 0; in_flight_ > 0 && round < 100; ++round) {
    io_uring_sqe* s = sqe_noexcept();
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, kIgnore);
    __kernel_timespec ts{0, 100'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++n;
      const std::uint64_t ud = cqe->user_data;
      if (ud == kIgnore || ud == kWake || ud == LIBURING_UDATA_TIMEOUT) continue;
      reinterpret_cast<UringOp*>(static_cast<std::uintptr_t>(ud))->done = true;
      --in_flight_;
    }
    io_uring_cq_advance(&ring_, n);
  }
  io_uring_queue_exit(&ring_);
}

// Enters the kernel: submits every queued SQE and runs the completions it
// holds back, making room in the CQ ring when it asks (EBUSY). Returns 0, or
// -errno if the ring cannot submit at all. The one loop for every caller:
// those that may throw turn the error into std::system_error, those that must
// not (a cancel, closing an fd: an exception would leave a completion pointing
// into a stack that unwinds) treat it as fatal.
int UringReactor::enter() noexcept {
  for (int attempt = 0;; ++attempt) {
    const int rc = io_uring_submit_and_get_events(&ring_);
    if (rc == -EBUSY || rc == -EAGAIN) reap();
    else if (rc < 0 && rc != -EINTR) return rc;
    if (rc >= 0 && io_uring_sq_ready(&ring_) == 0) return 0;
    if (attempt > 1000000) return -EBUSY;
  }
}

void UringReactor::fatal(int err) noexcept {
  std::fprintf(stderr, "corelet: io_uring_submit cannot submit: %s\n", std::strerror(-err));
  std::abort();
}

io_uring_sqe* UringReactor::sqe() {
  io_uring_sqe* s;
  while (!(s = io_uring_get_sqe(&ring_)))  // the SQ ring is full: hand it over
    if (const int err = enter()) throw std::system_error(-err, std::system_category(), "corelet: io_uring_submit");
  return s;
}

void UringReactor::prep(io_uring_sqe* s, const IoRequest& r) noexcept {
  switch (r.op) {
    case IoOp::Read: io_uring_prep_read(s, r.fd, r.buf, static_cast<unsigned>(r.len), static_cast<__u64>(r.off)); break;
    case IoOp::Write: io_uring_prep_write(s, r.fd, r.buf, static_cast<unsigned>(r.len), static_cast<__u64>(r.off)); break;
    case IoOp::Readv:
      io_uring_prep_readv(s, r.fd, static_cast<const iovec*>(r.buf), static_cast<unsigned>(r.len), static_cast<__u64>(r.off));
      break;
    case IoOp::Writev:
      io_uring_prep_writev(s, r.fd, static_cast<const iovec*>(r.buf), static_cast<unsigned>(r.len), static_cast<__u64>(r.off));
      break;
    case IoOp::Open: io_uring_prep_openat(s, AT_FDCWD, r.path, r.flags, r.mode); break;
    case IoOp::Fsync: io_uring_prep_fsync(s, r.fd, 0); break;
    case IoOp::Accept: io_uring_prep_accept(s, r.fd, r.addr, r.addrlen, r.flags); break;
    case IoOp::Connect: io_uring_prep_connect(s, r.fd, r.addr, r.addrlen_in); break;
    case IoOp::Recv: io_uring_prep_recv(s, r.fd, r.buf, r.len, r.flags); break;
    case IoOp::Send: io_uring_prep_send(s, r.fd, r.buf, r.len, r.flags); break;
    case IoOp::RecvMsg: io_uring_prep_recvmsg(s, r.fd, static_cast<msghdr*>(r.buf), static_cast<unsigned>(r.flags)); break;
    case IoOp::SendMsg: io_uring_prep_sendmsg(s, r.fd, static_cast<const msghdr*>(r.buf), static_cast<unsigned>(r.flags)); break;
    case IoOp::PollIn: io_uring_prep_poll_add(s, r.fd, POLLIN | POLLRDHUP); break;
    case IoOp::PollOut: io_uring_prep_poll_add(s, r.fd, POLLOUT); break;
    case IoOp::FutexWait:
      // liburing 2.3 has no helper: the kernel reads the futex2 flags from
      // fd, the word from addr, the value from addr2 (off) and the bit mask
      // from addr3; futex_flags (rw_flags), len and buf_index must be 0,
      // which prep_rw leaves them. Not FUTEX2_PRIVATE: the word is shared
      // with other processes.
      io_uring_prep_rw(kOpFutexWait, s, kFutex2SizeU32, r.buf, 0, static_cast<__u64>(r.len));
      s->addr3 = kFutexBitsetAny;
      break;
  }
}

FdState& UringReactor::link(UringOp* op, int fd) {
  FdState& st = fds_[fd];
  op->prev = nullptr;
  op->next = st.ops;
  if (st.ops) st.ops->prev = op;
  st.ops = op;
  return st;
}

void UringReactor::unlink(UringOp* op, int fd) noexcept {
  FdState* st = fds_.find(fd);
  if (op->prev) op->prev->next = op->next; else st->ops = op->next;
  if (op->next) op->next->prev = op->prev;
  op->prev = op->next = nullptr;
}

// A free SQE for a request that must not fail (a cancel, the wake poll).
io_uring_sqe* UringReactor::sqe_noexcept() noexcept {
  io_uring_sqe* s;
  while (!(s = io_uring_get_sqe(&ring_)))
    if (const int err = enter()) fatal(err);
  return s;
}

// Cancels op in the kernel. Its CQE still comes, with -ECANCELED or, if the
// cancel came too late, its result.
void UringReactor::cancel(UringOp* op) noexcept {
  io_uring_sqe* s = sqe_noexcept();
  io_uring_prep_cancel64(s, reinterpret_cast<std::uintptr_t>(op), 0);
  io_uring_sqe_set_data64(s, kIgnore);
}

long UringReactor::perform(IoRequest& req, Clock::time_point deadline, bool* closed_while_waiting) {
  Tasklet* t = sched_.current();
  const bool on_fd = req.fd >= 0 && req.op != IoOp::Open;
  bool cancelled = false;
  // The fast path: try the call at once, non-blocking, where it will likely
  // succeed — a send (sockets mostly have room), an accept (under load the
  // backlog is seldom empty) and a receive after one that filled its buffer
  // (more data is waiting). The tasklet then goes on without a round through
  // the ring and the ready queue: under load that round is a trip behind
  // every other ready tasklet, and an accept loop that took one connection
  // per round fell behind a burst of connects. EAGAIN costs one system call,
  // and the ring waits for readiness.
  FdState* hint = on_fd ? &fds_[req.fd] : nullptr;
  if (req.op == IoOp::Accept && hint && hint->nonblocking < 0) {
    // accept4 has no MSG_DONTWAIT: try it only on a non-blocking listener.
    const int fl = ::fcntl(req.fd, F_GETFL);
    hint->nonblocking = fl >= 0 && (fl & O_NONBLOCK) ? 1 : 0;
  }
  const bool try_first = on_fd && (req.op == IoOp::Send || req.op == IoOp::SendMsg ||
                                   (req.op == IoOp::Accept && hint->nonblocking == 1) ||
                                   (req.op == IoOp::Recv && !hint->drained));
  if (try_first) {
    const long rc = io_syscall(req);
    if (rc != -EAGAIN) {
      if (req.op == IoOp::Recv) hint->drained = rc >= 0 && static_cast<std::size_t>(rc) < req.len;
      return rc;
    }
    if (req.op == IoOp::Recv) hint->drained = true;
  }
  for (;;) {
    UringOp op;
    op.tasklet = t;
    io_uring_sqe* s = sqe();  // may throw: nothing is queued then
    FdState* st = nullptr;
    if (on_fd) {
      try {
        st = &link(&op, req.fd);
      } catch (...) {
        io_uring_prep_nop(s);  // the SQE is taken; make it harmless
        io_uring_sqe_set_data64(s, kIgnore);
        throw;
      }
    }
    prep(s, req);
    // A receive right after one that emptied the socket (or a send after
    // EAGAIN) would fail at once: wait for readiness first.
    const bool is_recv = req.op == IoOp::Recv && st;
    if (poll_first_ && ((is_recv && st->drained) || (try_first && req.op == IoOp::Send)))
      s->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data(s, &op);
    ++in_flight_;
    Wake w;
    try {
      w = primitive::park(req.name, &op, deadline, req.kind);  // may throw bad_alloc (the timer heap)
    } catch (...) {
      // The SQE is queued and points at op, on this stack: it must be
      // cancelled and its CQE seen before the exception may unwind.
      cancel(&op);
      while (!op.done) primitive::park(req.name, &op, Clock::time_point::max(), req.kind);  // allocates nothing
      if (on_fd) unlink(&op, req.fd);
      throw;
    }
    bool timed_out = false;
    if (!op.done) {
      // Timed out or cancelled with the operation still in the kernel: cancel
      // it there and wait, uncancellably, for its CQE.
      cancel(&op);
      if (w == Wake::Cancelled) cancelled = true; else timed_out = true;
      while (!op.done)
        if (primitive::park(req.name, &op, Clock::time_point::max(), req.kind) == Wake::Cancelled) cancelled = true;
    }
    if (on_fd) unlink(&op, req.fd);
    int res = op.res;
    if (is_recv) st->drained = res >= 0 && static_cast<std::size_t>(res) < req.len;
    // A cancelled operation that was running on an io-wq worker may end with
    // -EINTR (the worker is interrupted) rather than -ECANCELED.
    if (res == -EINTR && (cancelled || timed_out || op.closed)) res = -ECANCELED;
    if (res == -ECANCELED && cancelled) throw Cancelled{};
    if (res < 0 && op.closed) {
      // Cancelled by io::close, or refused at submission (the fd was gone).
      *closed_while_waiting = true;
      return -EBADF;
    }
    if (res == -ECANCELED && timed_out) return -ETIMEDOUT;
    if (cancelled) {
      // It completed anyway: keep its result, deliver the cancellation at the
      // next blocking call.
      t->cancel_pending = true;
      return res;
    }
    // Some kernels answer -EAGAIN for a non-blocking fd instead of waiting
    // for it: wait for readiness, then try again (within the deadline). Not
    // for connect: EAGAIN there means a Unix listener's backlog is full, and
    // an unconnected socket is always writable (as on epoll, it is the result).
    if (res == -EAGAIN && req.op != IoOp::PollIn && req.op != IoOp::PollOut && req.op != IoOp::Connect &&
        on_fd) {
      if (Clock::now() >= deadline) return -ETIMEDOUT;
      IoRequest p{wants_output(req.op) ? IoOp::PollOut : IoOp::PollIn, req.name, req.fd};
      const long pr = perform(p, deadline, closed_while_waiting);
      if (pr < 0) return pr;
      continue;
    }
    return res;
  }
}

long UringReactor::wait_word(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                             Clock::time_point deadline, const char* what, WaitKind kind) {
  if (!futex_ok_) return Reactor::wait_word(word, expected, deadline, what, kind);
  IoRequest r{IoOp::FutexWait, what};
  r.buf = const_cast<std::atomic<std::uint32_t>*>(&word);  // the kernel only reads it
  r.len = expected;
  r.kind = kind;
  bool closed = false;
  // 0: woken; -EAGAIN: the word differed already (both "look again").
  const long rc = perform(r, deadline, &closed);
  return rc == -EAGAIN ? 0 : rc;
}

void UringReactor::closing(int fd) noexcept {
  FdState* st = fds_.find(fd);
  if (!st) return;
  st->drained = false;  // the next file with this number starts afresh
  st->nonblocking = -1;
  // Operations on fd may still sit in the SQ ring, naming the fd by number:
  // submitted after close(2), they would act on whatever file gets the number
  // next. Submit them now; once issued, each holds its own reference to the
  // file, and the cancels below end them.
  if (st->ops && io_uring_sq_ready(&ring_) > 0)
    if (const int err = enter()) fatal(err);
  for (UringOp* op = st->ops; op; op = op->next) {
    if (op->done) continue;
    op->closed = true;
    cancel(op);
  }
}

// The wake read's destination: process-wide and never freed, so that a read
// that completes while a ring is being torn down writes nowhere that matters.
// Nobody reads it (concurrent kernel writes to it are harmless).
std::uint64_t g_wake_sink;

void UringReactor::arm_wake() noexcept {
  io_uring_sqe* s = sqe_noexcept();
  // A read, not a poll: its completion has consumed the counter already, so
  // a wakeup costs one io_uring_enter and no read(2) (the sleeping side of a
  // cluster's ping-pong). Where the kernel will not wait in the read (it
  // returns -EAGAIN for the non-blocking eventfd), POLL_ADD and a read.
  if (wake_by_read_) {
    io_uring_prep_read(s, wake_fd_, &g_wake_sink, sizeof g_wake_sink, 0);
  } else {
    io_uring_prep_poll_add(s, wake_fd_, POLLIN);
  }
  io_uring_sqe_set_data64(s, kWake);
  wake_armed_ = true;
}

void UringReactor::reap() noexcept {
  unsigned head;
  unsigned n = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++n;
    const std::uint64_t ud = cqe->user_data;
    if (ud == kIgnore || ud == LIBURING_UDATA_TIMEOUT) continue;
    if (ud == kWake) {
      wake_armed_ = false;  // re-armed by wait() when it sleeps next
      if (wake_by_read_ && cqe->res == -EAGAIN) wake_by_read_ = false;  // this kernel does not wait in it
      if (!wake_by_read_) {
        std::uint64_t v;
        ssize_t r = ::read(wake_fd_, &v, sizeof v);  // one read resets the counter (one reader: us)
        (void)r;
      }
      continue;
    }
    auto* op = reinterpret_cast<UringOp*>(static_cast<std::uintptr_t>(ud));
    op->res = cqe->res;
    op->done = true;
    --in_flight_;
    sched_.unpark(op->tasklet, Wake::Notified);
  }
  io_uring_cq_advance(&ring_, n);
}

void UringReactor::poll() {
  // Enter the kernel only with SQEs to submit, or completions it holds back
  // (deferred task work, an overflowed CQ ring): it says so in the SQ flags.
  // The kernel sets them concurrently (READ_ONCE, no ordering needed): a flag
  // read too early only moves the flush to the next loop iteration, and the
  // idle wait always enters the kernel. The SQ and CQ rings themselves are
  // published with liburing's acquire/release accessors.
  const unsigned kflags = IO_URING_READ_ONCE(*ring_.sq.kflags);
  if (io_uring_sq_ready(&ring_) || (kflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
    if (const int err = enter()) throw std::system_error(-err, std::system_category(), "corelet: io_uring_submit");
  reap();
}

void UringReactor::wait(const timespec* timeout) {
  if (!wake_armed_) arm_wake();
  __kernel_timespec kts{};
  __kernel_timespec* ktsp = nullptr;
  if (timeout) {
    kts.tv_sec = timeout->tv_sec;
    kts.tv_nsec = timeout->tv_nsec;
    ktsp = &kts;
  }
  io_uring_cqe* cqe = nullptr;
  int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, ktsp, nullptr);
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
    throw std::system_error(-rc, std::system_category(), "corelet: io_uring_submit_and_wait_timeout");
  reap();
}

}  // namespace corelet::detail
