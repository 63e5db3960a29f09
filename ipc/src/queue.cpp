// ipc::Queue (queue.hpp). The protocol and its memory-ordering argument are
// in the header's comment; here: futex words change only under mu_, so a
// plain release store bumps them (the mutex orders the bump against the
// waiters' reads of it, and futex_spin's acquire loads see it).

#include <corelet/ipc/queue.hpp>
#include <corelet/sched/futex.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>

namespace corelet::ipc {
namespace {

inline void bump(std::atomic<std::uint32_t>& w) noexcept {
  w.store(w.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

// A deadline that has passed (min(): never wait, without reading the clock).
inline bool expired(Clock::time_point deadline) noexcept {
  return deadline == Clock::time_point::min() || (deadline != Clock::time_point::max() && Clock::now() >= deadline);
}

[[noreturn]] void throw_closed(const char* what) { throw QueueShutDown(std::string(what) + ": the queue is closed"); }

}  // namespace

Queue::Queue(std::size_t capacity, std::size_t maxsize) : cap_(capacity), maxsize_(maxsize) {
  if (capacity < kMinCapacity)
    throw std::invalid_argument("corelet::ipc::Queue: a queue needs a ring of at least " +
                                std::to_string(kMinCapacity) + " bytes (asked for " + std::to_string(capacity) + ")");
}

void Queue::write_at(std::uint64_t pos, const void* src, std::size_t n) noexcept {
  const std::size_t first = std::min<std::size_t>(n, cap_ - pos);
  std::memcpy(ring() + pos, src, first);
  if (first < n) std::memcpy(ring(), static_cast<const char*>(src) + first, n - first);
}

void Queue::read_at(std::uint64_t pos, void* dst, std::size_t n) const noexcept {
  const std::size_t first = std::min<std::size_t>(n, cap_ - pos);
  std::memcpy(dst, ring() + pos, first);
  if (first < n) std::memcpy(static_cast<char*>(dst) + first, ring(), n - first);
}

bool Queue::put(const void* data, std::size_t n, Clock::time_point deadline, std::uint8_t kind) {
  const std::uint64_t need = static_cast<std::uint64_t>(n) + kFrameBytes;
  if (need > cap_)
    throw std::length_error("corelet::ipc::Queue::put: a message of " + std::to_string(n) +
                            " bytes does not fit the queue's ring (" + std::to_string(cap_) + " bytes, " +
                            std::to_string(kFrameBytes) +
                            " of them per message for framing); make the queue with a larger capacity");
  mu_.lock();
  for (;;) {
    if (closed_) {
      mu_.unlock();
      throw_closed("corelet::ipc::Queue::put");
    }
    if (has_room(need)) break;
    if (expired(deadline)) {
      mu_.unlock();
      return false;
    }
    const FutexWait w = wait_locked(space_, putters_, deadline, "corelet::ipc::Queue::put");
    if (w == FutexWait::TimedOut && !closed_ && !has_room(need)) {
      mu_.unlock();
      return false;
    }
  }
  const std::uint64_t len = static_cast<std::uint64_t>(n) + 1;
  const std::uint64_t tail = (head_ + used_) % cap_;
  write_at(tail, &len, 8);
  write_at((tail + 8) % cap_, &kind, 1);
  write_at((tail + kFrameBytes) % cap_, data, n);
  touched_ = std::max(touched_, std::min(tail + need, cap_));
  used_ += need;  // the counters last: a holder that dies mid-copy leaves them as they were
  ++count_;
  ++unfinished_;
  bump(items_);
  // A poller takes nothing, so it must not take a getter's wake: wake all then.
  const int wake = pollers_ != 0 ? INT_MAX : (getters_ != 0 ? 1 : 0);
  mu_.unlock();
  if (wake) futex_wake(items_, wake);
  return true;
}

FutexWait Queue::wait_locked(std::atomic<std::uint32_t>& word, std::uint32_t& waiters, Clock::time_point deadline,
                             const char* what) {
  const std::uint32_t seen = word.load(std::memory_order_relaxed);
  ++waiters;
  mu_.unlock();
  FutexWait w;
  try {
    w = futex_wait(word, seen, deadline, what, WaitKind::Sync);
  } catch (...) {
    mu_.lock();
    --waiters;
    mu_.unlock();
    throw;
  }
  mu_.lock();
  --waiters;
  return w;
}

Queue::Got Queue::wait_for_message(Clock::time_point deadline) {
  for (;;) {
    if (count_ != 0) return Got::Message;
    if (closed_) {
      mu_.unlock();
      throw QueueShutDown("corelet::ipc::Queue::get: the queue is closed and empty");
    }
    if (expired(deadline)) return Got::TimedOut;
    const std::uint32_t seen = items_.load(std::memory_order_relaxed);
    mu_.unlock();
    // A busy producer's next message usually comes within microseconds: a
    // thread looks for it before it registers (the putter then skips its
    // wake) and pays two system calls for a sleep.
    const bool moved = futex_spin(items_, seen);
    mu_.lock();
    if (moved || count_ != 0 || closed_) continue;
    const FutexWait w = wait_locked(items_, getters_, deadline, "corelet::ipc::Queue::get");
    if (w == FutexWait::TimedOut && count_ == 0 && !closed_) return Got::TimedOut;
  }
}

void Queue::consumed(std::uint64_t len) noexcept {
  head_ = (head_ + 8 + len) % cap_;
  used_ -= 8 + len;
  --count_;
  if (used_ == 0) drained();
  bump(space_);
  const bool wake = putters_ != 0;
  mu_.unlock();
  if (wake) futex_wake(space_, 1);
}

void Queue::drained() noexcept {
  // After the counters: a holder that dies here leaves an empty queue whose
  // next message goes where the last one ended, as before.
  head_ = 0;
  if (touched_ > kKeepBytes) {
    static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto from = (reinterpret_cast<std::uintptr_t>(ring()) + kKeepBytes + page - 1) & ~(page - 1);
    const auto to = (reinterpret_cast<std::uintptr_t>(ring()) + touched_) & ~(page - 1);
    // Shared memory (shmem or a memfd): MADV_REMOVE frees the pages, and the
    // ring reads as zeros there afterwards; nothing in the ring is live now.
    // Under mu, though it is a system call: a put let in meanwhile would
    // write where the pages are going. Only after a drain of more than
    // kKeepBytes, so not on the path of a queue's usual messages.
    // Best effort: where the kernel refuses, the pages stay.
    if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_REMOVE);
  }
  touched_ = 0;
}

std::optional<Queue::Message> Queue::get(Clock::time_point deadline) {
  Message m;
  const bool got = get_with(
      [&](std::uint8_t kind, std::span<const std::byte> a, std::span<const std::byte> b) {
        m.kind = kind;
        m.bytes.reserve(a.size() + b.size());
        m.bytes.insert(m.bytes.end(), a.begin(), a.end());
        m.bytes.insert(m.bytes.end(), b.begin(), b.end());
      },
      deadline);
  if (!got) return std::nullopt;
  return m;
}

bool Queue::wait_readable(Clock::time_point deadline) {
  mu_.lock();
  while (count_ == 0 && !closed_) {
    if (expired(deadline)) break;
    // Counted apart from getters: a put wakes every poller (a poller must
    // not take a getter's wake).
    if (wait_locked(items_, pollers_, deadline, "corelet::ipc::Queue::wait_readable") == FutexWait::TimedOut) break;
  }
  const bool ready = count_ != 0 || closed_;
  mu_.unlock();
  return ready;
}

void Queue::close() {
  mu_.lock();
  closed_ = 1;
  bump(items_);
  bump(space_);
  mu_.unlock();
  futex_wake(items_, INT_MAX);
  futex_wake(space_, INT_MAX);
}

bool Queue::closed() const {
  mu_.lock();
  const bool c = closed_ != 0;
  mu_.unlock();
  return c;
}

void Queue::add_writer() {
  mu_.lock();
  ++writers_;
  mu_.unlock();
}

void Queue::close_writer() {
  mu_.lock();
  const bool last = writers_ == 0 || --writers_ == 0;
  mu_.unlock();
  if (last) close();
}

std::size_t Queue::size() const {
  mu_.lock();
  const auto n = static_cast<std::size_t>(count_);
  mu_.unlock();
  return n;
}

bool Queue::full() const {
  mu_.lock();
  const bool f = (maxsize_ != 0 && count_ >= maxsize_) || cap_ - used_ < kFrameBytes;
  mu_.unlock();
  return f;
}

void Queue::task_done() {
  mu_.lock();
  if (unfinished_ <= 0) {
    mu_.unlock();
    throw UsageError("corelet::ipc::Queue::task_done: called more times than there were puts");
  }
  bool wake = false;
  if (--unfinished_ == 0) {
    bump(done_);
    wake = joiners_ != 0;
  }
  mu_.unlock();
  if (wake) futex_wake(done_, INT_MAX);
}

bool Queue::join(Clock::time_point deadline) {
  mu_.lock();
  while (unfinished_ > 0) {
    if (expired(deadline)) {
      mu_.unlock();
      return false;
    }
    const FutexWait w = wait_locked(done_, joiners_, deadline, "corelet::ipc::Queue::join");
    if (w == FutexWait::TimedOut && unfinished_ > 0) {
      mu_.unlock();
      return false;
    }
  }
  mu_.unlock();
  return true;
}

std::int64_t Queue::unfinished() const {
  mu_.lock();
  const std::int64_t n = unfinished_;
  mu_.unlock();
  return n;
}

}  // namespace corelet::ipc
