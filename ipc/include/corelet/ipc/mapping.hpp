#pragma once
// corelet/ipc/mapping.hpp — memory shared with forked children: Mapping (an
// anonymous MAP_SHARED mapping) and Shared<T> (one T built in its own).
//
//   auto q = corelet::ipc::Shared<corelet::ipc::Queue>::make(1 << 20);  // a 1 MiB queue
//   if (fork() == 0) { q->put("hello", 5); _exit(0); }
//   auto m = q->get();                                                   // "hello"
//
// A child forked after the mapping is made has it at the same address; a
// process that did not inherit it cannot reach it (pass the object to
// cluster workers by making it before corelet::run forks them). Copies of a
// Shared<T> share one mapping within a process; it is unmapped when the last
// copy here goes, and the memory is freed when every process has unmapped it.
// The T itself is never destroyed (other processes may still use it), so T
// must need no destructor to run: corelet's cross-process primitives
// (<corelet/ipc/sync.hpp>, <corelet/ipc/queue.hpp>) are such.
//
// A process that was not forked from the maker can share one made with
// Shared<T>::make_shareable(...): its memory is a memfd, whose descriptor
// (fd()) the maker passes over a Unix socket (SCM_RIGHTS); the receiver maps
// it with Shared<T>::attach(fd). The T is then at another address in each
// process, so T must hold no pointers into itself (offsets only), as ipc's
// primitives do.

#include <cstddef>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

namespace corelet::ipc {

class Mapping {
 public:
  // Mapping(bytes) — `bytes` zeroed bytes (rounded up to pages), readable and
  // writable by this process and its children forked from now on. Throws
  // std::system_error (mmap's errno) or std::invalid_argument (0 bytes).
  explicit Mapping(std::size_t bytes);
  // Mapping(bytes, Shareable) — the same in a new memfd (fd() is its
  // descriptor, close-on-exec, closed with the Mapping).
  struct Shareable {};
  Mapping(std::size_t bytes, Shareable);
  // Mapping(fd, Attach) — maps all of the memfd (or file) fd, which another
  // process made; fd is duplicated, the caller keeps its own. Throws
  // std::system_error (fstat, mmap, dup) or std::invalid_argument (empty).
  struct Attach {};
  Mapping(int fd, Attach);
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  std::byte* data() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }
  int fd() const noexcept { return fd_; }  // -1 for an anonymous mapping

 private:
  void map(int fd, const char* what);
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

template <class T>
class Shared {
 public:
  Shared() = default;

  // make(args...) — a T(args...) in a new mapping. A T with trailing data
  // (ipc::Queue) says how much memory it needs in T::footprint(args...).
  template <class... A>
  static Shared make(A&&... args) {
    std::size_t bytes = sizeof(T);
    if constexpr (requires { T::footprint(args...); }) bytes = T::footprint(args...);
    auto m = std::make_shared<Mapping>(bytes);
    T* p = ::new (static_cast<void*>(m->data())) T(std::forward<A>(args)...);
    return Shared(std::move(m), p);
  }

  // make_shareable(args...) — as make, in a memfd another process can attach.
  template <class... A>
  static Shared make_shareable(A&&... args) {
    std::size_t bytes = sizeof(T);
    if constexpr (requires { T::footprint(args...); }) bytes = T::footprint(args...);
    auto m = std::make_shared<Mapping>(bytes, Mapping::Shareable{});
    T* p = ::new (static_cast<void*>(m->data())) T(std::forward<A>(args)...);
    return Shared(std::move(m), p);
  }

  // attach(fd) — the T another process made with make_shareable, whose memfd
  // this process received as fd. The T is trusted as that process left it:
  // share with processes you trust (a manager's clients pass its authkey
  // challenge first). std::invalid_argument if fd is too small for a T.
  static Shared attach(int fd) {
    auto m = std::make_shared<Mapping>(fd, Mapping::Attach{});
    if (m->size() < sizeof(T)) throw std::invalid_argument("corelet::ipc::Shared::attach: the mapping is too small");
    return Shared(std::move(m), std::launder(reinterpret_cast<T*>(m->data())));
  }

  T* get() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  T* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  const std::shared_ptr<Mapping>& mapping() const noexcept { return m_; }

 private:
  Shared(std::shared_ptr<Mapping> m, T* p) : m_(std::move(m)), p_(p) {}
  std::shared_ptr<Mapping> m_;
  T* p_ = nullptr;
};

}  // namespace corelet::ipc
