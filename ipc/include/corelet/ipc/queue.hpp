#pragma once
// corelet/ipc/queue.hpp — Queue: a FIFO of byte messages between processes,
// for threads and tasklets alike (multiprocessing.Queue's core; corelet's
// Python Queue, JoinableQueue and Pipe are this queue with Python's encodings
// on top, so C++ and Python processes can share one).
//
//   auto q = corelet::ipc::Shared<corelet::ipc::Queue>::make(1 << 16);
//   if (fork() == 0) { q->put("job", 3); q->close(); _exit(0); }
//   while (auto m = q->get()) use(m->bytes);     // std::nullopt: timed out
//                                                // QueueShutDown: closed and drained
//
// Layout in shared memory (one mapping, no pointers: any address works):
//
//   | mu, bounds, counters (64 B lines) | items | space | done | ring: capacity bytes ...
//                                         futex words, a line each
//   ring frame: | length u64 (payload + 1) | kind u8 | payload ... |  (wraps at the end)
//
// Every field but the three futex words is read and written under `mu`, a
// RobustMutex held for a few hundred nanoseconds, never across a wait. A
// waiter registers (getters, putters...) and reads the futex word under mu,
// unlocks, then futex_waits for the word to move: the kernel compares the word
// atomically, so a bump between the unlock and the wait is not lost. Changes
// are bumped under mu after the change they announce, and the notifier reads
// the waiter counts under the same mutex, so a wake is skipped only when
// nobody was registered before the change. A process killed in the middle of
// a put or get leaves the queue as it was before that call: the counters
// (used, count, head) are written last, after the bytes.
//
// Memory: only the ring's touched pages use memory, so a queue may be made
// with a large ring (a Pool's are 1 GiB) and costs what it holds at its
// peak. Each time the queue drains, the next message is written at the
// ring's start again (a queue that carries one message at a time touches
// only the pages of its largest message), and pages touched beyond the
// first kKeepBytes are given back to the kernel (madvise MADV_REMOVE).
//
// Blocking calls wait as <corelet/ipc/sync.hpp> says: a plain thread blocks,
// a fiber tasklet parks alone and is woken by the other side's change
// (cancellation: corelet::Cancelled, nothing taken or put), a stackless
// tasklet is refused. Deadlines are steady_clock time points.

#include <corelet/sched/primitive.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/ipc/robust_mutex.hpp>
#include <corelet/sched/futex.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

namespace corelet::ipc {

class Queue {
 public:
  // The framing each message costs in the ring: its length word and kind byte.
  static constexpr std::size_t kFrameBytes = 9;
  static constexpr std::size_t kMinCapacity = 64;
  // Ring bytes a drained queue keeps in memory (see the top of this file).
  static constexpr std::size_t kKeepBytes = std::size_t{8} << 20;

  // The memory a Queue of `capacity` ring bytes needs (ipc::Shared uses it).
  static std::size_t footprint(std::size_t capacity, std::size_t /*maxsize*/ = 0) noexcept {
    return sizeof(Queue) + capacity;
  }
  // Queue(capacity, maxsize) — in memory of footprint(capacity) bytes: a ring
  // of `capacity` bytes (>= 64; std::invalid_argument otherwise) holding at
  // most `maxsize` messages (0: as many as fit).
  explicit Queue(std::size_t capacity, std::size_t maxsize = 0);
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // put — appends a copy of the n bytes at data, waiting while the queue is
  // full. `kind` is a byte the getter gets back with the message (0: plain
  // bytes; corelet's Python layer uses others for its encodings). Returns
  // false at the deadline (nothing put). Throws QueueShutDown once closed,
  // std::length_error for a message that can never fit the ring.
  bool put(const void* data, std::size_t n, Clock::time_point deadline = Clock::time_point::max(),
           std::uint8_t kind = 0);
  bool put(std::string_view s, Clock::time_point deadline = Clock::time_point::max()) {
    return put(s.data(), s.size(), deadline);
  }
  // try_put — put without waiting: false if it is full.
  bool try_put(const void* data, std::size_t n, std::uint8_t kind = 0) {
    return put(data, n, Clock::time_point::min(), kind);
  }

  // get_with — waits for a message and hands it to consume(kind, first,
  // second) (std::span<const std::byte> each: the payload, in two pieces when
  // it wraps around the ring's end, else second is empty), under the queue's
  // lock: consume must copy what it keeps and neither block nor park. If
  // consume throws, the message stays in the queue. Returns false at the
  // deadline; throws QueueShutDown once the queue is closed and empty.
  template <class F>
  bool get_with(F&& consume, Clock::time_point deadline = Clock::time_point::max());

  struct Message {
    std::uint8_t kind = 0;
    std::vector<std::byte> bytes;
  };
  // get — the next message, std::nullopt at the deadline; QueueShutDown once
  // closed and empty.
  std::optional<Message> get(Clock::time_point deadline = Clock::time_point::max());
  std::optional<Message> try_get() { return get(Clock::time_point::min()); }

  // wait_readable — true once a message is there or the queue is closed,
  // false at the deadline; takes nothing (Connection.poll).
  bool wait_readable(Clock::time_point deadline = Clock::time_point::max());

  // close — no more puts (they throw QueueShutDown); getters drain what is
  // there, then get QueueShutDown. Wakes every waiter. Idempotent.
  void close();
  bool closed() const;
  // Writers: the ends that may still put (a Pipe end is counted once per
  // process that holds it); close_writer() by the last one closes the queue.
  void add_writer();
  void close_writer();

  std::size_t size() const;
  bool empty() const { return size() == 0; }
  bool full() const;
  std::size_t capacity() const noexcept { return static_cast<std::size_t>(cap_); }
  std::size_t maxsize() const noexcept { return static_cast<std::size_t>(maxsize_); }  // most messages (0: only the bytes bound); fixed at construction

  // JoinableQueue: every put counts as unfinished until a task_done().
  // task_done — UsageError if called more times than there were puts.
  void task_done();
  // join — true once nothing is unfinished, false at the deadline.
  bool join(Clock::time_point deadline = Clock::time_point::max());
  std::int64_t unfinished() const;

 private:
  enum class Got { Message, TimedOut };
  // wait_for_message — with mu_ held on entry and on return: Message (one is
  // there) or TimedOut. Throws QueueShutDown (closed and empty), or what the
  // wait threw (Cancelled), with mu_ released.
  Got wait_for_message(Clock::time_point deadline);
  // wait_locked — with mu_ held on entry and on return: counts the caller in
  // `waiters`, unlocks, waits for `word` to move from its value now, locks
  // again and counts it out. If the wait throws, mu_ is released.
  FutexWait wait_locked(std::atomic<std::uint32_t>& word, std::uint32_t& waiters, Clock::time_point deadline,
                        const char* what);
  void consumed(std::uint64_t len) noexcept;  // under mu: the head message is gone
  void drained() noexcept;                    // under mu, the queue empty: back to the ring's start
  std::byte* ring() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* ring() const noexcept { return reinterpret_cast<const std::byte*>(this + 1); }
  void write_at(std::uint64_t pos, const void* src, std::size_t n) noexcept;
  void read_at(std::uint64_t pos, void* dst, std::size_t n) const noexcept;
  bool has_room(std::uint64_t need) const noexcept {
    return cap_ - used_ >= need && (maxsize_ == 0 || count_ < maxsize_);
  }

  mutable RobustMutex mu_;
  std::uint64_t cap_;           // ring bytes
  std::uint64_t head_ = 0;      // read position, 0 .. cap-1
  std::uint64_t used_ = 0;      // bytes in use (messages with their framing)
  std::uint64_t count_ = 0;     // messages
  std::uint64_t maxsize_;       // most messages (0: only the bytes bound)
  std::int64_t unfinished_ = 0; // put and not yet task_done
  std::uint64_t touched_ = 0;   // ring bytes 0 .. touched_ written since the queue last drained
  std::uint32_t closed_ = 0;
  std::uint32_t getters_ = 0;   // waiters on items_ that take one message
  std::uint32_t putters_ = 0;   // ... on space_
  std::uint32_t joiners_ = 0;   // ... on done_
  std::uint32_t writers_ = 1;   // see add_writer
  std::uint32_t pollers_ = 0;   // waiters on items_ that take nothing (woken all by a put)
  // The futex words, each on its own cache line (waiters read them while
  // the other side writes the counters above).
  alignas(64) std::atomic<std::uint32_t> items_{0};  // bumped by every put and by close
  alignas(64) std::atomic<std::uint32_t> space_{0};  // bumped by every get and by close
  alignas(64) std::atomic<std::uint32_t> done_{0};   // bumped when unfinished reaches 0

  static void layout_checks() noexcept {
    static_assert(offsetof(Queue, items_) % 64 == 0 && offsetof(Queue, space_) % 64 == 0 &&
                      offsetof(Queue, done_) % 64 == 0 && offsetof(Queue, items_) >= 64,
                  "each futex word on a cache line of its own, apart from the counters");
  }
};

static_assert(std::is_standard_layout_v<Queue>);
static_assert(sizeof(Queue) % 64 == 0, "the ring starts on a cache line");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

template <class F>
bool Queue::get_with(F&& consume, Clock::time_point deadline) {
  mu_.lock();
  if (wait_for_message(deadline) != Got::Message) {
    mu_.unlock();
    return false;
  }
  std::uint64_t len = 0;
  std::uint8_t kind = 0;
  read_at(head_, &len, 8);
  read_at((head_ + 8) % cap_, &kind, 1);
  const std::uint64_t at = (head_ + kFrameBytes) % cap_;
  const std::uint64_t n = len - 1;
  const std::uint64_t first = n <= cap_ - at ? n : cap_ - at;
  try {
    consume(kind, std::span<const std::byte>(ring() + at, first), std::span<const std::byte>(ring(), n - first));
  } catch (...) {
    mu_.unlock();
    throw;
  }
  consumed(len);  // unlocks
  return true;
}

}  // namespace corelet::ipc
