#include <corelet/core/stack.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // Linux 6.13 uapi; older headers lack it
#endif

namespace corelet::core {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t p = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

// Probed once per process: -1 unknown, 0 mprotect, 1 MADV_GUARD_INSTALL.
// Relaxed is enough: every thread computes the same answer, the value is a hint.
std::atomic<int> g_guard_mode{-1};

void install_guard(std::uintptr_t lo) {
  void* p = reinterpret_cast<void*>(lo);
  int mode = g_guard_mode.load(std::memory_order_relaxed);
  if (mode != 0) {
    if (::madvise(p, kGuardSize, MADV_GUARD_INSTALL) == 0) {
      g_guard_mode.store(1, std::memory_order_relaxed);
      return;
    }
    if (errno != EINVAL) throw std::system_error(errno, std::generic_category(),
                                                 "corelet: madvise(MADV_GUARD_INSTALL) on a stack guard");
    g_guard_mode.store(0, std::memory_order_relaxed);
  }
  if (::mprotect(p, kGuardSize, PROT_NONE) != 0) {
    int e = errno;
    throw std::system_error(e, std::generic_category(),
                            e == ENOMEM ? "corelet: mprotect of a stack guard page: too many memory "
                                          "mappings (raise vm.max_map_count or use fewer tasklets)"
                                        : "corelet: mprotect of a stack guard page");
  }
}

}  // namespace

bool StackPool::lightweight_guards() noexcept { return g_guard_mode.load(std::memory_order_relaxed) == 1; }

StackPool::StackPool(std::size_t hot_per_class) : hot_per_class_(hot_per_class) {}

StackPool::~StackPool() {
  for (auto& [p, n] : slabs_) ::munmap(p, n);
}

std::size_t StackPool::round_size(std::size_t requested) {
  if (requested == kDefaultStackSize) return requested;  // the common case, page aligned
  if (requested == 0) throw std::invalid_argument("corelet: stack size 0 is invalid");
  if (requested < kMinStackSize)
    throw std::invalid_argument("corelet: stack size " + std::to_string(requested) +
                                " bytes is below the minimum of " + std::to_string(kMinStackSize));
  if (requested > kMaxStackSize)
    throw std::invalid_argument("corelet: stack size " + std::to_string(requested) +
                                " bytes is above the maximum of " + std::to_string(kMaxStackSize));
  const std::size_t p = page_size();  // a power of two
  return (requested + p - 1) & ~(p - 1);
}

StackPool::SizeClass& StackPool::class_for(std::size_t size) {
  // Nearly every tasklet uses one size: try the class used last first.
  if (last_ < classes_.size() && classes_[last_].size == size) return classes_[last_];
  for (std::size_t i = 0; i < classes_.size(); ++i)
    if (classes_[i].size == size) return classes_[last_ = i];
  classes_.push_back(SizeClass{size, {}, 0});
  last_ = classes_.size() - 1;
  return classes_.back();
}

void StackPool::grow(SizeClass& c) {
  const std::size_t stride = c.size + kGuardSize;
  // About 4 MiB of address space per slab, between 1 and 256 stacks.
  const std::size_t count = std::clamp<std::size_t>((std::size_t{4} << 20) / stride, 1, 256);
  const std::size_t bytes = stride * count;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), "corelet: mmap of a stack slab");
  slabs_.emplace_back(p, bytes);
  mapped_bytes_ += bytes;
  const auto lo = reinterpret_cast<std::uintptr_t>(p);
  // Push in reverse so the lowest stack is handed out first.
  for (std::size_t i = count; i-- > 0;) {
    const std::uintptr_t guard = lo + i * stride;
    install_guard(guard);
    c.free.push_back(guard + kGuardSize);
  }
  c.cold_from = c.free.size();  // never touched: nothing to give back yet
}

Stack StackPool::allocate(std::size_t size) {
  SizeClass& c = class_for(size);
  if (c.free.empty()) grow(c);
  const std::uintptr_t base = c.free.back();
  c.free.pop_back();
  c.cold_from = std::min(c.cold_from, c.free.size());
  ++in_use_;
  return Stack{base, size, static_cast<std::uint32_t>(last_)};  // class_for set last_
}

void StackPool::release(Stack s) noexcept {
  SizeClass& c = classes_[s.size_class];
  c.free.push_back(s.base);
  --in_use_;
}

std::size_t StackPool::trim() noexcept {
  std::size_t n = 0;
  for (auto& c : classes_) {
    if (c.free.size() <= hot_per_class_) continue;
    const std::size_t end = c.free.size() - hot_per_class_;
    for (std::size_t i = c.cold_from; i < end; ++i, ++n)
      ::madvise(reinterpret_cast<void*>(c.free[i]), c.size, MADV_DONTNEED);
    c.cold_from = std::max(c.cold_from, end);
  }
  return n;
}

}  // namespace corelet::core
