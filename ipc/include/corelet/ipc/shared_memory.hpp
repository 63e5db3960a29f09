#pragma once
// corelet/ipc/shared_memory.hpp — SharedValue<T> and SharedArray<T>: memory
// every worker sees, with an optional process-shared lock (the seeds'
// processing.Value and processing.Array).
//
//   corelet::SharedArray<double> totals(4);          // before run(), or in a worker
//   corelet::run(cfg, [totals] {
//     ... corelet::spawn_on(1, add_into, totals, 2, 1.5) ...
//   });
//   void add_into(corelet::SharedArray<double> t, int i, double x) {
//     std::lock_guard lock(t.get_lock());            // or t.with_lock([&](double* d) {...})
//     t[i] += x;
//   }
//
// The memory comes from one shared arena that exists before the workers are
// forked (it is made by the first SharedValue/SharedArray or by
// corelet::run(Config)), so a handle made anywhere — before run(), or inside
// any worker — refers to the same bytes in every worker: handles are small
// trivially copyable values that cross in messages and arrive usable.
// Memory is returned by destroy() (once, by one owner; other handles must
// not be used after it) or when the process tree ends. T must be trivially
// copyable (no pointers into one process's heap).
//
// get_lock(): a process-shared lock (an ipc::Mutex, <corelet/ipc/sync.hpp>).
// lock() parks only the tasklet inside one (woken by the unlock itself, never
// blocking the thread), blocks the thread outside one. If a worker dies
// holding it, the next locker gets it (the data may be half-updated, as with
// any lock whose holder was killed). Without the lock (`lock = false`) the
// memory is raw: use std::atomic_ref or your own protocol.

#include <corelet/ipc/sync.hpp>
#include <corelet/sched/errors.hpp>

#include <cstddef>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <type_traits>

namespace corelet {

// SharedLock — a process-shared mutex (BasicLockable/Lockable), on a cache
// line of its own so that the data after it stays 64-aligned.
class alignas(64) SharedLock {
 public:
  void lock() { m_.lock(); }
  bool try_lock() noexcept { return m_.try_lock(); }
  void unlock() { m_.unlock(); }

 private:
  ipc::Mutex m_;
};
static_assert(sizeof(SharedLock) == 64 && std::is_standard_layout_v<SharedLock>);

namespace ipc::detail {
// shared_alloc — `bytes` zeroed bytes from the arena (64-aligned), and a lock
// right before them if `with_lock`. std::bad_alloc when the arena (1 GiB) is full.
void* shared_alloc(std::size_t bytes, bool with_lock, SharedLock** lock);
void shared_free(void* data, SharedLock* lock) noexcept;
// shared_arena_ready — makes the arena now (corelet::run(Config) calls it
// before forking).
void shared_arena_ready();
}  // namespace ipc::detail

template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>, "corelet::SharedArray<T>: T must be trivially copyable");

 public:
  SharedArray() = default;
  // SharedArray(n, lock) — n zeroed elements (n > 0), with a lock unless lock == false.
  explicit SharedArray(std::size_t n, bool lock = true) : n_(n) {
    if (n == 0) throw std::invalid_argument("corelet::SharedArray: size 0");
    if (n > (std::size_t{1} << 40) / sizeof(T)) throw std::length_error("corelet::SharedArray: too large");
    p_ = static_cast<T*>(ipc::detail::shared_alloc(n * sizeof(T), lock, &lock_));
  }

  std::size_t size() const noexcept { return n_; }
  T* data() const noexcept { return p_; }
  T* begin() const noexcept { return p_; }
  T* end() const noexcept { return p_ + n_; }
  T& operator[](std::size_t i) const noexcept { return p_[i]; }
  T& at(std::size_t i) const {
    if (i >= n_) throw std::out_of_range("corelet::SharedArray::at");
    return p_[i];
  }
  bool valid() const noexcept { return p_ != nullptr; }
  bool has_lock() const noexcept { return lock_ != nullptr; }

  // get_lock — the array's lock; UsageError if made without one.
  SharedLock& get_lock() const {
    if (!lock_) throw UsageError("corelet::SharedArray: made without a lock");
    return *lock_;
  }
  // with_lock — f(data()) under the lock; returns what f returns.
  template <class F>
  decltype(auto) with_lock(F&& f) const {
    std::lock_guard<SharedLock> g(get_lock());
    return std::forward<F>(f)(p_);
  }
  // destroy — gives the memory back; every handle to it is dangling after.
  void destroy() noexcept {
    if (p_) ipc::detail::shared_free(p_, lock_);
    p_ = nullptr;
    lock_ = nullptr;
    n_ = 0;
  }

 private:
  T* p_ = nullptr;
  SharedLock* lock_ = nullptr;
  std::size_t n_ = 0;
};

template <class T>
class SharedValue {
  static_assert(std::is_trivially_copyable_v<T>, "corelet::SharedValue<T>: T must be trivially copyable");

 public:
  SharedValue() = default;
  explicit SharedValue(T init, bool lock = true) : a_(1, lock) { std::memcpy(a_.data(), &init, sizeof(T)); }

  // load / store — under the lock if there is one.
  T load() const {
    if (!a_.has_lock()) return *a_.data();
    std::lock_guard<SharedLock> g(a_.get_lock());
    return *a_.data();
  }
  void store(T v) const {
    if (!a_.has_lock()) {
      *a_.data() = v;
      return;
    }
    std::lock_guard<SharedLock> g(a_.get_lock());
    *a_.data() = v;
  }
  // get — the raw value (no lock taken).
  T* get() const noexcept { return a_.data(); }
  SharedLock& get_lock() const { return a_.get_lock(); }
  template <class F>
  decltype(auto) with_lock(F&& f) const {
    std::lock_guard<SharedLock> g(get_lock());
    return std::forward<F>(f)(*a_.data());
  }
  bool valid() const noexcept { return a_.valid(); }
  void destroy() noexcept { a_.destroy(); }

 private:
  SharedArray<T> a_;
};

}  // namespace corelet
