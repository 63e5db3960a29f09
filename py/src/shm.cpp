// Cross-process building blocks for corelet's Python primitives (Queue, Pipe,
// Lock, Event, Semaphore, Condition, Value, Array between processes):
//
// - SharedMemory: an anonymous MAP_SHARED mapping, inherited by processes
//   forked after it is made (corelet.Process, corelet.run(workers=N)).
// - futex_wait / futex_wake / atomic operations on 32-bit words in it.
// - ShmQueue: a message queue in one such mapping: a byte ring of
//   length-prefixed messages under a robust process-shared mutex, with futex
//   words that count puts and gets for waiters.
//
// Memory ordering. Every field of a ShmQueue except the futex words is read
// and written under the mutex, whose lock/unlock order them. The futex words
// are bumped (seq_cst) under the mutex after the change they announce; a
// waiter reads the word under the mutex, unlocks, and futex_waits for it to
// differ: the kernel compares atomically, so a bump between the unlock and
// the wait is not lost. The waiter counts (getters/putters) are read by the
// notifier under the same mutex, so a wake is skipped only when nobody was
// registered before the change.

#include "tasklet.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <string>

namespace corelet::py {
namespace {

constexpr std::size_t kCacheLine = 64;

class SharedMemory {
 public:
  explicit SharedMemory(std::size_t size) : size_(size) {
    if (size == 0) throw pyb::value_error("corelet: shared memory of size 0");
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      PyErr_SetFromErrno(PyExc_OSError);
      throw pyb::error_already_set();
    }
    base_ = static_cast<std::byte*>(p);
  }
  ~SharedMemory() {
    if (base_) ::munmap(base_, size_);
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  std::byte* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }

  std::atomic<std::uint32_t>& word(std::size_t offset) const {
    if (offset % 4 != 0 || offset + 4 > size_) throw pyb::value_error("corelet: bad shared word offset");
    return *reinterpret_cast<std::atomic<std::uint32_t>*>(base_ + offset);
  }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_;
};

// The GIL around a blocking wait, without RAII and outside noexcept code: a
// daemon thread that wakes while the interpreter finalizes must not take it
// back (Python 3.11 would end the thread with pthread_exit, whose unwinding
// cannot pass a destructor or a noexcept frame): it waits for the process
// to end instead, as CPython 3.14 makes such threads do.
PyThreadState* release_gil() { return PyEval_SaveThread(); }
void restore_gil(PyThreadState* st) {
  if (_Py_IsFinalizing()) {
    for (;;) ::pause();
  }
  PyEval_RestoreThread(st);
}

// A timeout as an absolute CLOCK_MONOTONIC deadline, so that a wait woken
// for nothing does not start the whole timeout again.
struct Timeout {
  bool forever = true;
  bool zero = false;
  timespec end{};
  timespec rel{};
  explicit Timeout(const pyb::object& seconds) {
    if (seconds.is_none()) return;
    double s = seconds.cast<double>();
    if (std::isnan(s) || s < 0) s = 0;
    if (s > 1e9) return;
    forever = false;
    zero = s == 0;
    clock_gettime(CLOCK_MONOTONIC, &end);
    const long add = static_cast<long>(s * 1e9);
    const long ns = end.tv_nsec + add % 1000000000L;
    end.tv_sec += add / 1000000000L + ns / 1000000000L;
    end.tv_nsec = ns % 1000000000L;
  }
  // A zero timeout: only look, never wait.
  bool poll_only() const noexcept { return zero; }
  // What is left (nullptr: forever); {0, 0} once the deadline passed.
  const timespec* left() {
    if (forever) return nullptr;
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ns = (end.tv_sec - now.tv_sec) * 1000000000L + (end.tv_nsec - now.tv_nsec);
    if (ns < 0) ns = 0;
    rel.tv_sec = ns / 1000000000L;
    rel.tv_nsec = ns % 1000000000L;
    return &rel;
  }
};

enum class Wait { Woke, TimedOut, Interrupted };

// futex_wait on a shared (not process-private) word while it equals
// `expected`, the GIL released. Interrupted: a signal handler raised (the
// Python error is set), as time.sleep would report Ctrl-C.
Wait futex_wait(std::atomic<std::uint32_t>& w, std::uint32_t expected, Timeout& t) {
  const timespec* tp = t.left();
  if (tp && tp->tv_sec == 0 && tp->tv_nsec == 0) return Wait::TimedOut;
  PyThreadState* st = release_gil();
  const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT, expected, tp, nullptr, 0);
  const int err = errno;
  restore_gil(st);
  if (r < 0 && err == ETIMEDOUT) return Wait::TimedOut;
  if (r < 0 && err == EINTR && PyErr_CheckSignals() < 0) return Wait::Interrupted;
  return Wait::Woke;
}

void futex_wake(std::atomic<std::uint32_t>& w, int n) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

// Robust process-shared mutex helpers.
void init_mutex(pthread_mutex_t* m) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
}

// Locks m; a holder that died left it EOWNERDEAD: the data it guards is
// consistent (writers update the counters last), so it is marked consistent.
void lock_mutex(pthread_mutex_t* m) {
  // The critical sections are a few hundred nanoseconds: try a while before
  // letting the kernel put us to sleep (a contended robust mutex costs two
  // system calls, and the other side usually leaves it sooner than that).
  for (int i = 0; i < 200; ++i) {
    const int t = pthread_mutex_trylock(m);
    if (t == 0) return;
    if (t == EOWNERDEAD) {
      pthread_mutex_consistent(m);
      return;
    }
    if (t != EBUSY) break;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  int r = pthread_mutex_lock(m);
  if (r == EOWNERDEAD) r = pthread_mutex_consistent(m);
  if (r != 0) throw std::runtime_error(std::string("corelet: shared mutex: ") + std::strerror(r));
}

class MutexGuard {
 public:
  explicit MutexGuard(pthread_mutex_t* m) : m_(m) { lock_mutex(m_); }
  ~MutexGuard() { pthread_mutex_unlock(m_); }
  MutexGuard(const MutexGuard&) = delete;
  MutexGuard& operator=(const MutexGuard&) = delete;

 private:
  pthread_mutex_t* m_;
};

// bump — the futex words change only under the queue's mutex, so a plain
// release store is enough: the mutex orders the bump against the waiters'
// reads of it, and spinners see it with their acquire loads.
inline void bump(std::atomic<std::uint32_t>& w) noexcept {
  w.store(w.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

// spin_for_change — polls w (GIL released) for 4,000 pauses (tens of
// microseconds, by the CPU's pause latency); true if it
// moved away from `seen`.
bool spin_for_change(const std::atomic<std::uint32_t>& w, std::uint32_t seen) {
  PyThreadState* st = release_gil();
  bool moved = false;
  for (int i = 0; i < 4000 && !moved; ++i) {
    moved = w.load(std::memory_order_acquire) != seen;  // pairs with bump()'s release
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  restore_gil(st);
  return moved;
}

struct QueueHeader {
  pthread_mutex_t mu;
  std::uint64_t cap;       // data bytes
  std::uint64_t head;      // read position, 0 .. cap-1
  std::uint64_t used;      // bytes in use (messages with their length words)
  std::uint64_t count;     // messages
  std::uint64_t maxsize;   // most messages (0: only the bytes bound)
  std::int64_t unfinished; // put and not yet task_done (JoinableQueue)
  std::uint32_t closed;
  std::uint32_t getters;   // waiters in futex_wait on `items`
  std::uint32_t putters;   // ... on `space`
  std::uint32_t joiners;   // ... on `done`
  std::uint32_t writers;   // Pipe ends that may still send (see add_writer)
  std::uint32_t pollers;   // waiters in poll() on `items` (woken all by a put)
  alignas(kCacheLine) std::atomic<std::uint32_t> items;  // bumped by every put
  alignas(kCacheLine) std::atomic<std::uint32_t> space;  // bumped by every get
  alignas(kCacheLine) std::atomic<std::uint32_t> done;   // bumped when unfinished reaches 0
};

class ShmQueue {
 public:
  ShmQueue(std::size_t capacity, std::size_t maxsize)
      : mem_(round_up(sizeof(QueueHeader)) + capacity), h_(reinterpret_cast<QueueHeader*>(mem_.base())) {
    if (capacity < 64) throw pyb::value_error("corelet: a shared queue needs a buffer of at least 64 bytes");
    init_mutex(&h_->mu);
    h_->cap = capacity;
    h_->maxsize = maxsize;
    h_->writers = 1;
    data_ = mem_.base() + round_up(sizeof(QueueHeader));
  }

  // put — 1: done; 0: it would wait (no room) and timeout ran out; raises if
  // closed or if the message can never fit.
  // Message kinds (the byte after the length word): how get() turns it back
  // into an object.
  static constexpr std::uint8_t kPickle = 1, kStr = 2, kBytes = 3, kWire = 4;
  static constexpr std::uint8_t kDecoded = 255;  // get_msg gave the object itself

  int put_msg(std::uint8_t tag, const char* p, std::size_t payload, bool block, Timeout& t) {
    const std::size_t n = payload + 1;
    const std::uint64_t need = n + 8;
    if (need > h_->cap)
      throw pyb::value_error("corelet: a message of " + std::to_string(payload) +
                             " bytes does not fit the shared queue's buffer (" + std::to_string(h_->cap) +
                             " bytes, 9 of them per message for framing); make the queue with a larger buffer");
    lock_mutex(&h_->mu);
    for (;;) {
      if (h_->closed) {
        pthread_mutex_unlock(&h_->mu);
        throw pyb::value_error("corelet: put on a closed queue");
      }
      if (h_->cap - h_->used >= need && (h_->maxsize == 0 || h_->count < h_->maxsize)) break;
      if (!block || t.poll_only()) {
        pthread_mutex_unlock(&h_->mu);
        return 0;
      }
      const std::uint32_t seen = h_->space.load(std::memory_order_seq_cst);
      ++h_->putters;
      pthread_mutex_unlock(&h_->mu);
      const Wait w = futex_wait(h_->space, seen, t);
      lock_mutex(&h_->mu);
      --h_->putters;
      if (w == Wait::Interrupted) {
        pthread_mutex_unlock(&h_->mu);
        throw pyb::error_already_set();
      }
      if (w == Wait::TimedOut && !(h_->cap - h_->used >= need && (h_->maxsize == 0 || h_->count < h_->maxsize))) {
        pthread_mutex_unlock(&h_->mu);
        return 0;
      }
    }
    const std::uint64_t len = n;
    write_at((h_->head + h_->used) % h_->cap, &len, 8);
    write_at((h_->head + h_->used + 8) % h_->cap, &tag, 1);
    write_at((h_->head + h_->used + 9) % h_->cap, p, payload);
    h_->used += need;  // the counters last: a holder that dies mid-copy leaves them as they were
    ++h_->count;
    ++h_->unfinished;
    bump(h_->items);
    const int wake = h_->pollers != 0 ? INT32_MAX : (h_->getters != 0 ? 1 : 0);
    pthread_mutex_unlock(&h_->mu);
    if (wake) futex_wake(h_->items, wake);
    return 1;
  }

  // get_msg — a new bytes object with the next message's payload and *tag,
  // or nullptr (none: timeout or not blocking). Throws on EOF (EOFError set).
  PyObject* get_msg(bool block, Timeout& t, std::uint8_t* tag) {
    lock_mutex(&h_->mu);
    for (;;) {
      if (h_->count != 0) break;
      if (h_->closed) {
        pthread_mutex_unlock(&h_->mu);
        PyErr_SetString(PyExc_EOFError, "corelet: the queue is closed and empty");
        throw pyb::error_already_set();
      }
      if (!block || t.poll_only()) {
        pthread_mutex_unlock(&h_->mu);
        return nullptr;
      }
      const std::uint32_t seen = h_->items.load(std::memory_order_seq_cst);
      pthread_mutex_unlock(&h_->mu);
      // A busy producer's next message usually comes within microseconds:
      // look for it (GIL released) before paying two system calls for a sleep.
      if (spin_for_change(h_->items, seen)) {
        lock_mutex(&h_->mu);
        continue;
      }
      lock_mutex(&h_->mu);
      if (h_->count != 0 || h_->closed) continue;
      const std::uint32_t seen2 = h_->items.load(std::memory_order_seq_cst);
      ++h_->getters;
      pthread_mutex_unlock(&h_->mu);
      const Wait w = futex_wait(h_->items, seen2, t);
      lock_mutex(&h_->mu);
      --h_->getters;
      if (w == Wait::Interrupted) {
        pthread_mutex_unlock(&h_->mu);
        throw pyb::error_already_set();
      }
      if (w == Wait::TimedOut && h_->count == 0) {
        pthread_mutex_unlock(&h_->mu);
        if (h_->closed) {
          PyErr_SetString(PyExc_EOFError, "corelet: the queue is closed and empty");
          throw pyb::error_already_set();
        }
        return nullptr;
      }
    }
    std::uint64_t len = 0;
    read_at(h_->head, &len, 8);
    read_at((h_->head + 8) % h_->cap, tag, 1);
    const std::uint64_t at = (h_->head + 9) % h_->cap;
    PyObject* b;
    if (*tag == kStr && at + len - 1 <= h_->cap) {
      // A str in one piece: decoded straight from the ring.
      b = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(data_ + at), static_cast<Py_ssize_t>(len - 1), "strict");
      *tag = kDecoded;
    } else {
      b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(len - 1));
      if (b) read_at(at, PyBytes_AS_STRING(b), len - 1);
    }
    if (!b) {
      pthread_mutex_unlock(&h_->mu);
      throw pyb::error_already_set();
    }
    h_->head = (h_->head + 8 + len) % h_->cap;
    h_->used -= 8 + len;
    --h_->count;
    bump(h_->space);
    const bool wake = h_->putters != 0;
    pthread_mutex_unlock(&h_->mu);
    if (wake) futex_wake(h_->space, 1);
    return b;
  }

  // poll — true once a message is there or the queue is closed (false:
  // timeout); takes nothing.
  bool poll(const pyb::object& timeout) {
    Timeout t(timeout);
    lock_mutex(&h_->mu);
    while (h_->count == 0 && !h_->closed) {
      if (t.poll_only()) break;
      const std::uint32_t seen = h_->items.load(std::memory_order_seq_cst);
      ++h_->pollers;  // woken all by every put: a poller must not take a getter's wake
      pthread_mutex_unlock(&h_->mu);
      const Wait w = futex_wait(h_->items, seen, t);
      lock_mutex(&h_->mu);
      --h_->pollers;
      if (w == Wait::Interrupted) {
        pthread_mutex_unlock(&h_->mu);
        throw pyb::error_already_set();
      }
      if (w == Wait::TimedOut) break;
    }
    const bool ready = h_->count != 0 || h_->closed;
    pthread_mutex_unlock(&h_->mu);
    return ready;
  }

  void task_done() {
    MutexGuard g(&h_->mu);
    if (h_->unfinished <= 0) throw pyb::value_error("task_done() called too many times");
    if (--h_->unfinished == 0) {
      h_->done.fetch_add(1, std::memory_order_seq_cst);
      if (h_->joiners) futex_wake(h_->done, INT32_MAX);
    }
  }

  // join — true once every message put was marked task_done (false: timeout).
  bool join(const pyb::object& timeout) {
    Timeout t(timeout);
    lock_mutex(&h_->mu);
    while (h_->unfinished > 0) {
      const std::uint32_t seen = h_->done.load(std::memory_order_seq_cst);
      ++h_->joiners;
      pthread_mutex_unlock(&h_->mu);
      const Wait w = futex_wait(h_->done, seen, t);
      lock_mutex(&h_->mu);
      --h_->joiners;
      if (w == Wait::Interrupted) {
        pthread_mutex_unlock(&h_->mu);
        throw pyb::error_already_set();
      }
      if (w == Wait::TimedOut && h_->unfinished > 0) {
        pthread_mutex_unlock(&h_->mu);
        return false;
      }
    }
    pthread_mutex_unlock(&h_->mu);
    return true;
  }

  // A Pipe end's sender handles, counted as a process counts the fds of a
  // pipe: one more for each fork while it is open (the fork's "before"
  // hook), one less at each close; the last close closes the queue, and the
  // reader then sees the end (EOFError) once it is empty.
  void add_writer() {
    MutexGuard g(&h_->mu);
    ++h_->writers;
  }
  void close_writer() {
    bool last;
    {
      MutexGuard g(&h_->mu);
      last = h_->writers == 0 || --h_->writers == 0;
    }
    if (last) close();
  }

  void close() {
    {
      MutexGuard g(&h_->mu);
      h_->closed = 1;
      h_->items.fetch_add(1, std::memory_order_seq_cst);
      h_->space.fetch_add(1, std::memory_order_seq_cst);
    }
    futex_wake(h_->items, INT32_MAX);
    futex_wake(h_->space, INT32_MAX);
  }

  std::size_t qsize() const {
    MutexGuard g(&h_->mu);
    return h_->count;
  }
  bool full() const {
    MutexGuard g(&h_->mu);
    return (h_->maxsize != 0 && h_->count >= h_->maxsize) || h_->cap - h_->used < 9;
  }
  std::int64_t unfinished() const {
    MutexGuard g(&h_->mu);
    return h_->unfinished;
  }
  bool closed() const { return h_->closed != 0; }
  std::size_t capacity() const { return h_->cap; }
  std::size_t maxsize() const { return h_->maxsize; }

 private:
  static std::size_t round_up(std::size_t n) { return (n + 4095) & ~std::size_t{4095}; }
  void write_at(std::uint64_t pos, const void* src, std::size_t n) {
    const std::size_t first = std::min<std::size_t>(n, h_->cap - pos);
    std::memcpy(data_ + pos, src, first);
    if (first < n) std::memcpy(data_, static_cast<const char*>(src) + first, n - first);
  }
  void read_at(std::uint64_t pos, void* dst, std::size_t n) const {
    const std::size_t first = std::min<std::size_t>(n, h_->cap - pos);
    std::memcpy(dst, data_ + pos, first);
    if (first < n) std::memcpy(static_cast<char*>(dst) + first, data_, n - first);
  }

  SharedMemory mem_;
  QueueHeader* h_;
  std::byte* data_;
};

// lock_word — Drepper's mutex on a futex word (0 free, 1 held, 2 held with
// waiters), the GIL released while it sleeps; false on timeout; a signal
// handler that raises ends the wait with the Python error set (thrown).
bool lock_word(std::atomic<std::uint32_t>& w, Timeout& t) {
  while (w.exchange(2, std::memory_order_acquire) != 0) {
    const timespec* tp = t.left();
    if (tp && tp->tv_sec == 0 && tp->tv_nsec == 0) return false;  // the word stays 2: a release then wakes nobody
    PyThreadState* st = release_gil();
    const long r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&w), FUTEX_WAIT, 2, tp, nullptr, 0);
    const int err = errno;
    restore_gil(st);
    if (r < 0 && err == EINTR && PyErr_CheckSignals() < 0) throw pyb::error_already_set();
  }
  return true;
}

// ShmLock — a lock in shared memory that any process (or thread) may
// release, as multiprocessing's Lock: a futex word, 0 free, 1 held, 2 held
// with waiters (Drepper's mutex). exchange/compare_exchange with acquire
// order take it, the exchange(0) with release order gives it back, so the
// holder's writes are seen by the next holder.
class ShmLock {
 public:
  ShmLock() : mem_(64), w_(mem_.word(0)) {}
  bool try_acquire() noexcept {
    std::uint32_t free = 0;
    return w_.compare_exchange_strong(free, 1, std::memory_order_acquire);
  }
  // acquire(blocking, timeout) -> bool; the GIL is released while it waits.
  bool acquire(bool blocking, const pyb::object& timeout) {
    if (try_acquire()) return true;
    if (!blocking) return false;
    Timeout t(timeout);
    return lock_word(w_, t);
  }
  void release() {
    std::uint32_t cur = w_.load(std::memory_order_relaxed);
    if (cur == 0) throw pyb::value_error("release unlocked lock");
    if (w_.exchange(0, std::memory_order_release) == 2) futex_wake(w_, 1);
  }
  bool locked() const noexcept { return w_.load(std::memory_order_relaxed) != 0; }

 private:
  SharedMemory mem_;
  std::atomic<std::uint32_t>& w_;
};

// ShmRLock — a recursive lock in shared memory: a futex word as ShmLock's,
// plus its holder (process id, and the tasklet id or else the thread id) and
// the depth. The holder fields are written only by the holder while it holds
// the lock, the depth last (release) and cleared first on the way out; a
// reader loads the depth first (acquire), so if it sees a depth it sees the
// holder written with it, and it can only match its own identity if it is
// the holder.
class ShmRLock {
 public:
  ShmRLock()
      : mem_(64), w_(mem_.word(0)), pid_(mem_.word(4)), id_lo_(mem_.word(8)), id_hi_(mem_.word(12)),
        depth_(mem_.word(16)) {}
  static std::uint64_t me_id() noexcept {
    if (detail::Tasklet* t = detail::current()) return t->running.id;
    return static_cast<std::uint64_t>(pthread_self());
  }
  bool mine() const noexcept {
    if (depth_.load(std::memory_order_acquire) == 0) return false;  // pairs with take()'s release store
    const std::uint64_t id = me_id();
    return pid_.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(::getpid()) &&
           id_lo_.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(id) &&
           id_hi_.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(id >> 32);
  }
  bool try_acquire() noexcept {
    if (mine()) {
      depth_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    std::uint32_t free = 0;
    if (!w_.compare_exchange_strong(free, 1, std::memory_order_acquire)) return false;
    take(1);
    return true;
  }
  bool acquire(bool blocking, const pyb::object& timeout) {
    if (try_acquire()) return true;
    if (!blocking) return false;
    Timeout t(timeout);
    if (!lock_word(w_, t)) return false;
    take(1);
    return true;
  }
  void release() {
    if (!mine()) throw pyb::value_error("cannot release un-acquired lock");
    if (depth_.fetch_sub(1, std::memory_order_relaxed) != 1) return;
    give_back();
  }
  // Condition's protocol: give the lock up whatever its depth (returned)...
  std::uint32_t release_all() {
    if (!mine()) throw pyb::value_error("cannot release un-acquired lock");
    const std::uint32_t d = depth_.exchange(0, std::memory_order_relaxed);
    give_back();
    return d;
  }
  // ...and, once it is held again, restore the depth.
  void set_depth(std::uint32_t d) { take(d); }
  bool owned() const noexcept { return mine(); }

 private:
  void take(std::uint32_t depth) noexcept {
    const std::uint64_t id = me_id();
    pid_.store(static_cast<std::uint32_t>(::getpid()), std::memory_order_relaxed);
    id_lo_.store(static_cast<std::uint32_t>(id), std::memory_order_relaxed);
    id_hi_.store(static_cast<std::uint32_t>(id >> 32), std::memory_order_relaxed);
    depth_.store(depth, std::memory_order_release);  // last: a reader that sees it sees the holder
  }
  void give_back() noexcept {
    depth_.store(0, std::memory_order_relaxed);
    pid_.store(0, std::memory_order_relaxed);
    if (w_.exchange(0, std::memory_order_release) == 2) futex_wake(w_, 1);
  }
  SharedMemory mem_;
  std::atomic<std::uint32_t>& w_;
  std::atomic<std::uint32_t>& pid_;
  std::atomic<std::uint32_t>& id_lo_;
  std::atomic<std::uint32_t>& id_hi_;
  std::atomic<std::uint32_t>& depth_;
};

// ---- the fast path of SharedQueue.put / get (and Connection.send / recv) ----
//
// METH_FASTCALL functions, bound as methods of the Python classes: no
// pybind11 argument packing, and str and bytes cross without pickle.

struct Cached {
  PyObject* dumps = nullptr;  // pickle.dumps
  PyObject* loads = nullptr;  // pickle.loads
  PyObject* wire_dumps = nullptr;  // corelet._wire.dumps (cloudpickle where pickle fails)
  PyObject* wire_loads = nullptr;
  PyObject* full = nullptr;   // queue.Full
  PyObject* empty = nullptr;  // queue.Empty
  PyObject* protocol = nullptr;  // 5
  PyObject* put_wait = nullptr;  // "_put_wait"
  PyObject* get_wait = nullptr;  // "_get_wait"
  PyObject* ready_none = nullptr;  // an operation complete at once, giving None
  PyObject* ready = nullptr;  // corelet._corelet.ready
};
Cached g_c;

bool load_cache() {
  if (g_c.wire_dumps) return true;
  PyObject* pk = PyImport_ImportModule("pickle");
  PyObject* q = PyImport_ImportModule("queue");
  PyObject* w = PyImport_ImportModule("corelet._wire");
  PyObject* c = PyImport_ImportModule("corelet._corelet");
  bool ok = pk && q && w && c;
  if (ok) {
    g_c.dumps = PyObject_GetAttrString(pk, "dumps");
    g_c.loads = PyObject_GetAttrString(pk, "loads");
    g_c.full = PyObject_GetAttrString(q, "Full");
    g_c.empty = PyObject_GetAttrString(q, "Empty");
    g_c.ready = PyObject_GetAttrString(c, "ready");
    g_c.protocol = PyLong_FromLong(5);
    g_c.put_wait = PyUnicode_InternFromString("_put_wait");
    g_c.get_wait = PyUnicode_InternFromString("_get_wait");
    g_c.ready_none = g_c.ready ? PyObject_CallOneArg(g_c.ready, Py_None) : nullptr;
    PyObject* wd = PyObject_GetAttrString(w, "dumps");
    PyObject* wl = PyObject_GetAttrString(w, "loads");
    ok = g_c.dumps && g_c.loads && g_c.full && g_c.empty && g_c.ready && g_c.ready_none && wd && wl;
    g_c.wire_loads = wl;
    g_c.wire_dumps = ok ? wd : nullptr;
    if (!ok) Py_XDECREF(wd);
  }
  Py_XDECREF(pk);
  Py_XDECREF(q);
  Py_XDECREF(w);
  Py_XDECREF(c);
  return ok;
}

// Parses (self, [first], block=True, timeout=None) of a FASTCALL method call.
// minus_one_forever: threading's convention for locks (timeout=-1 waits
// forever); a queue, as multiprocessing's, refuses every negative timeout.
bool parse(const char* name, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, Py_ssize_t fixed,
           bool* block, PyObject** timeout, bool minus_one_forever = false) {
  *block = true;
  *timeout = Py_None;
  if (nargs < fixed) {
    PyErr_Format(PyExc_TypeError, "%s: missing arguments", name);
    return false;
  }
  if (nargs > fixed) *block = PyObject_IsTrue(args[fixed]) == 1;
  if (nargs > fixed + 1) *timeout = args[fixed + 1];
  if (nargs > fixed + 2) {
    PyErr_Format(PyExc_TypeError, "%s: too many arguments", name);
    return false;
  }
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* k = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(k, "block") == 0) {
      *block = PyObject_IsTrue(args[nargs + i]) == 1;
    } else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0) {
      *timeout = args[nargs + i];
    } else {
      PyErr_Format(PyExc_TypeError, "%s: unexpected keyword argument '%U'", name, k);
      return false;
    }
  }
  if (*timeout != Py_None) {
    const double v = PyFloat_AsDouble(*timeout);
    if (v == -1.0 && PyErr_Occurred()) return false;
    if (v == -1.0 && minus_one_forever) {
      *timeout = Py_None;
    } else if (v < 0) {
      PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
      return false;
    }
  }
  return true;
}

// The C++ object behind a SharedQueue (attribute `_qp`) or a SharedLock
// (`_lp`): the address of the ShmQueue / ShmLock that its `_q` / `_core`
// attribute owns, set together in __init__ (so it lives as long as the
// object); reading an int is far cheaper than a pybind11 cast on every call.
template <class T>
T* address_of(PyObject* self, PyObject* attr, const char* what) {
  PyObject* a = PyObject_GetAttr(self, attr);
  if (!a) return nullptr;
  void* p = PyLong_AsVoidPtr(a);
  Py_DECREF(a);
  if (!p && !PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "corelet: not a %s", what);
  return static_cast<T*>(p);
}

ShmQueue* queue_of(PyObject* self) {
  static PyObject* name = PyUnicode_InternFromString("_qp");
  return address_of<ShmQueue>(self, name, "shared queue");
}

// Translates what a ShmQueue call threw into the Python error (returns nullptr).
PyObject* translate() {
  try {
    throw;
  } catch (pyb::error_already_set& e) {
    e.restore();
  } catch (const pyb::builtin_exception& e) {
    e.set_error();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// put(self, obj, block=True, timeout=None): the object goes as str / bytes /
// pickle / corelet wire (cloudpickle). In plain code it waits (GIL released)
// while full and raises queue.Full after timeout; in a tasklet it is done at
// once if there is room (returning a complete operation), else it returns
// self._put_wait(tag, payload, timeout), an operation that polls.
PyObject* shmq_put(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block;
  PyObject* timeout;
  if (!parse("put", args, nargs, kwnames, 2, &block, &timeout) || !load_cache()) return nullptr;
  ShmQueue* q = queue_of(args[0]);
  if (!q) return nullptr;
  PyObject* obj = args[1];
  std::uint8_t tag;
  PyObject* holder = nullptr;  // keeps the payload's memory alive
  const char* p;
  Py_ssize_t n;
  if (PyUnicode_CheckExact(obj)) {
    tag = ShmQueue::kStr;
    p = PyUnicode_AsUTF8AndSize(obj, &n);
    if (!p) return nullptr;
  } else if (PyBytes_CheckExact(obj)) {
    tag = ShmQueue::kBytes;
    p = PyBytes_AS_STRING(obj);
    n = PyBytes_GET_SIZE(obj);
  } else {
    tag = ShmQueue::kPickle;
    PyObject* a[2] = {obj, g_c.protocol};
    holder = PyObject_Vectorcall(g_c.dumps, a, 2, nullptr);
    if (!holder) {
      PyErr_Clear();
      tag = ShmQueue::kWire;
      holder = PyObject_CallOneArg(g_c.wire_dumps, obj);  // TypeError naming the object if it cannot cross
      if (!holder) return nullptr;
    }
    p = PyBytes_AS_STRING(holder);
    n = PyBytes_GET_SIZE(holder);
  }
  PyObject* result = nullptr;
  try {
    if (detail::current()) {
      Timeout none{pyb::none()};
      if (q->put_msg(tag, p, static_cast<std::size_t>(n), false, none)) {
        result = Py_NewRef(g_c.ready_none);
      } else if (!block) {
        PyErr_SetNone(g_c.full);
      } else {
        PyObject* payload = holder ? Py_NewRef(holder) : PyBytes_FromStringAndSize(p, n);
        PyObject* tg = PyLong_FromLong(tag);
        if (payload && tg) {
          PyObject* a[4] = {args[0], tg, payload, timeout};
          result = PyObject_VectorcallMethod(g_c.put_wait, a, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
        }
        Py_XDECREF(payload);
        Py_XDECREF(tg);
      }
    } else {
      Timeout t(pyb::reinterpret_borrow<pyb::object>(timeout));
      if (q->put_msg(tag, p, static_cast<std::size_t>(n), block, t)) result = Py_NewRef(Py_None);
      else PyErr_SetNone(g_c.full);
    }
  } catch (...) {
    result = translate();
  }
  Py_XDECREF(holder);
  return result;
}

// put_tagged(self_queue_holder, tag, payload) -> bool: a non-blocking put of a
// payload encoded by shmq_put (the polling operation's retry).
PyObject* shmq_put_tagged(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3 || !PyBytes_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "_put_tagged(queue_holder, tag, payload)");
    return nullptr;
  }
  ShmQueue* q = queue_of(args[0]);
  if (!q) return nullptr;
  try {
    Timeout none{pyb::none()};
    const int ok = q->put_msg(static_cast<std::uint8_t>(PyLong_AsLong(args[1])), PyBytes_AS_STRING(args[2]),
                              static_cast<std::size_t>(PyBytes_GET_SIZE(args[2])), false, none);
    return PyBool_FromLong(ok);
  } catch (...) {
    return translate();
  }
}

PyObject* decode(std::uint8_t tag, PyObject* bytes) {
  PyObject* r = nullptr;
  switch (tag) {
    case ShmQueue::kStr:
      r = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes), "strict");
      break;
    case ShmQueue::kBytes:
    case ShmQueue::kDecoded:
      return bytes;  // the reference passes on
    case ShmQueue::kPickle:
      r = PyObject_CallOneArg(g_c.loads, bytes);
      break;
    default:
      r = PyObject_CallOneArg(g_c.wire_loads, bytes);
      break;
  }
  Py_DECREF(bytes);
  return r;
}

// get(self, block=True, timeout=None): the next object. In plain code it
// waits (GIL released) and raises queue.Empty after timeout; in a tasklet it
// returns a complete operation when an item is there, else
// self._get_wait(timeout). EOFError once the queue is closed and empty.
PyObject* shmq_get(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block;
  PyObject* timeout;
  if (!parse("get", args, nargs, kwnames, 1, &block, &timeout) || !load_cache()) return nullptr;
  ShmQueue* q = queue_of(args[0]);
  if (!q) return nullptr;
  try {
    std::uint8_t tag = 0;
    if (detail::current()) {
      Timeout none{pyb::none()};
      PyObject* b = q->get_msg(false, none, &tag);
      if (!b) {
        if (!block) {
          PyErr_SetNone(g_c.empty);
          return nullptr;
        }
        PyObject* a[2] = {args[0], timeout};
        return PyObject_VectorcallMethod(g_c.get_wait, a, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
      }
      PyObject* v = decode(tag, b);
      if (!v) return nullptr;
      PyObject* op = PyObject_CallOneArg(g_c.ready, v);
      Py_DECREF(v);
      return op;
    }
    Timeout t(pyb::reinterpret_borrow<pyb::object>(timeout));
    PyObject* b = q->get_msg(block, t, &tag);
    if (!b) {
      PyErr_SetNone(g_c.empty);
      return nullptr;
    }
    return decode(tag, b);
  } catch (...) {
    return translate();
  }
}

// get_nowait_decoded(queue_holder) -> (True, obj) or (False, None): the
// polling operation's retry.
PyObject* shmq_try_get(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1 || !load_cache()) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_try_get(queue_holder)");
    return nullptr;
  }
  ShmQueue* q = queue_of(args[0]);
  if (!q) return nullptr;
  try {
    std::uint8_t tag = 0;
    Timeout none{pyb::none()};
    PyObject* b = q->get_msg(false, none, &tag);
    if (!b) return Py_BuildValue("(OO)", Py_False, Py_None);
    PyObject* v = decode(tag, b);
    if (!v) return nullptr;
    return Py_BuildValue("(ON)", Py_True, v);
  } catch (...) {
    return translate();
  }
}

// SharedLock's acquire / release / __enter__ / __exit__: `_lp` holds the
// address of the ShmLock its `_core` owns. In a tasklet acquire returns an
// operation (complete at once if the lock was free, else self._acquire_op's).
ShmLock* lock_of(PyObject* self) {
  static PyObject* name = PyUnicode_InternFromString("_lp");
  return address_of<ShmLock>(self, name, "shared lock");
}

PyObject* lock_acquire(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block;
  PyObject* timeout;
  if (!parse("acquire", args, nargs, kwnames, 1, &block, &timeout, true) || !load_cache()) return nullptr;
  ShmLock* l = lock_of(args[0]);
  if (!l) return nullptr;
  if (detail::current()) {
    static PyObject* ready_true = PyObject_CallOneArg(g_c.ready, Py_True);
    static PyObject* ready_false = PyObject_CallOneArg(g_c.ready, Py_False);
    static PyObject* slow = PyUnicode_InternFromString("_acquire_op");
    if (l->try_acquire()) return Py_NewRef(ready_true);
    if (!block) return Py_NewRef(ready_false);
    PyObject* a[2] = {args[0], timeout};
    return PyObject_VectorcallMethod(slow, a, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
  }
  try {
    return PyBool_FromLong(l->acquire(block, pyb::reinterpret_borrow<pyb::object>(timeout)));
  } catch (...) {
    return translate();
  }
}

PyObject* lock_release(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "lock_release: missing self");
    return nullptr;
  }
  ShmLock* l = lock_of(args[0]);
  if (!l) return nullptr;
  try {
    l->release();
  } catch (...) {
    return translate();
  }
  Py_RETURN_NONE;
}

// __enter__: plain code waits; a tasklet takes a free lock or gets UsageError.
PyObject* lock_enter(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "lock_enter: missing self");
    return nullptr;
  }
  ShmLock* l = lock_of(args[0]);
  if (!l) return nullptr;
  if (detail::current()) {
    if (l->try_acquire()) Py_RETURN_TRUE;
    PyErr_SetString(g_exc.usage, "corelet: `with` on a held Lock cannot wait in a tasklet; use `async with`");
    return nullptr;
  }
  try {
    return PyBool_FromLong(l->acquire(true, pyb::none()));
  } catch (...) {
    return translate();
  }
}

PyMethodDef g_fast[] = {
    {"_lock_acquire", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&lock_acquire)),
     METH_FASTCALL | METH_KEYWORDS, "acquire(block=True, timeout=None)"},
    {"_lock_release", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&lock_release)), METH_FASTCALL,
     "release()"},
    {"_lock_enter", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&lock_enter)), METH_FASTCALL,
     "__enter__()"},
    {"_shmq_put", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&shmq_put)),
     METH_FASTCALL | METH_KEYWORDS, "put(obj, block=True, timeout=None)"},
    {"_shmq_get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&shmq_get)),
     METH_FASTCALL | METH_KEYWORDS, "get(block=True, timeout=None)"},
    {"_shmq_put_tagged", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&shmq_put_tagged)), METH_FASTCALL,
     nullptr},
    {"_shmq_try_get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&shmq_try_get)), METH_FASTCALL,
     nullptr},
};

}  // namespace

void bind_shm(pyb::module_& m) {
  for (PyMethodDef& d : g_fast) {
    PyObject* f = PyCFunction_NewEx(&d, nullptr, m.ptr());
    if (!f) throw pyb::error_already_set();
    m.add_object(d.ml_name, pyb::reinterpret_steal<pyb::object>(f));
  }
  m.def(
      "instancemethod",
      [](pyb::object f) { return pyb::reinterpret_steal<pyb::object>(PyInstanceMethod_New(f.ptr())); },
      "Binds a builtin function as a method (its first argument is self).");
  pyb::class_<SharedMemory>(m, "SharedMemory", pyb::buffer_protocol(),
                            "An anonymous shared mapping, inherited by processes forked after it is made.")
      .def(pyb::init<std::size_t>(), pyb::arg("size"))
      .def_buffer([](SharedMemory& s) {
        return pyb::buffer_info(s.base(), 1, pyb::format_descriptor<unsigned char>::format(), 1,
                                {static_cast<pyb::ssize_t>(s.size())}, {1});
      })
      .def("__len__", &SharedMemory::size)
      // seq_cst throughout: these words carry the Python-level protocols of
      // Event, Semaphore, Condition and Barrier (_shared.py), written as if
      // every operation happened in one order; futex_wait compares in the
      // kernel, so a change between a load and a wait is never missed.
      .def(
          "load", [](SharedMemory& s, std::size_t off) { return s.word(off).load(std::memory_order_seq_cst); },
          pyb::arg("offset"))
      .def(
          "store",
          [](SharedMemory& s, std::size_t off, std::uint32_t v) { s.word(off).store(v, std::memory_order_seq_cst); },
          pyb::arg("offset"), pyb::arg("value"))
      .def(
          "add",
          [](SharedMemory& s, std::size_t off, std::int64_t d) {
            return s.word(off).fetch_add(static_cast<std::uint32_t>(d), std::memory_order_seq_cst);
          },
          pyb::arg("offset"), pyb::arg("delta"), "Atomic add; gives the value before.")
      .def(
          "cas",
          [](SharedMemory& s, std::size_t off, std::uint32_t expected, std::uint32_t desired) {
            return s.word(off).compare_exchange_strong(expected, desired, std::memory_order_seq_cst);
          },
          pyb::arg("offset"), pyb::arg("expected"), pyb::arg("desired"))
      .def(
          "wait",
          [](SharedMemory& s, std::size_t off, std::uint32_t expected, pyb::object timeout) {
            Timeout t(timeout);
            const Wait w = futex_wait(s.word(off), expected, t);
            if (w == Wait::Interrupted) throw pyb::error_already_set();
            return w == Wait::Woke;
          },
          pyb::arg("offset"), pyb::arg("expected"), pyb::arg("timeout") = pyb::none(),
          "futex_wait while the word equals expected (the GIL released); False on timeout.")
      .def(
          "wake", [](SharedMemory& s, std::size_t off, int n) { futex_wake(s.word(off), n); }, pyb::arg("offset"),
          pyb::arg("n") = INT32_MAX);

  pyb::class_<ShmLock>(m, "ShmLock", "A lock in shared memory that any process may release (a futex).")
      .def(pyb::init<>())
      .def("acquire", &ShmLock::acquire, pyb::arg("blocking") = true, pyb::arg("timeout") = pyb::none())
      .def("try_acquire", &ShmLock::try_acquire)
      .def("release", &ShmLock::release)
      .def("locked", &ShmLock::locked)
      .def("_address", [](ShmLock& l) { return reinterpret_cast<std::uintptr_t>(&l); });

  pyb::class_<ShmRLock>(m, "ShmRLock", "A recursive lock in shared memory (holder: process and thread or tasklet).")
      .def(pyb::init<>())
      .def("acquire", &ShmRLock::acquire, pyb::arg("blocking") = true, pyb::arg("timeout") = pyb::none())
      .def("try_acquire", &ShmRLock::try_acquire)
      .def("release", &ShmRLock::release)
      .def("release_all", &ShmRLock::release_all)
      .def("set_depth", &ShmRLock::set_depth)
      .def("owned", &ShmRLock::owned);

  pyb::class_<ShmQueue>(m, "ShmQueue", "A message queue in shared memory (see py/src/shm.cpp).")
      .def(pyb::init<std::size_t, std::size_t>(), pyb::arg("capacity"), pyb::arg("maxsize") = 0)
      .def("poll", &ShmQueue::poll, pyb::arg("timeout") = pyb::none())
      .def("task_done", &ShmQueue::task_done)
      .def("join", &ShmQueue::join, pyb::arg("timeout") = pyb::none())
      .def("close", &ShmQueue::close)
      .def("add_writer", &ShmQueue::add_writer)
      .def("close_writer", &ShmQueue::close_writer)
      .def("qsize", &ShmQueue::qsize)
      .def("full", &ShmQueue::full)
      .def_property_readonly("unfinished", &ShmQueue::unfinished)
      .def_property_readonly("closed", &ShmQueue::closed)
      .def_property_readonly("capacity", &ShmQueue::capacity)
      .def_property_readonly("maxsize", &ShmQueue::maxsize)
      .def("_address", [](ShmQueue& q) { return reinterpret_cast<std::uintptr_t>(&q); });
}

}  // namespace corelet::py
