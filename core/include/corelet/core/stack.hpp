#pragma once
// corelet/core/stack.hpp — fiber stacks: mmap'd, guarded, pooled.
//
// A stack is a range of anonymous, MAP_NORESERVE memory with a guard region below
// it. Only the pages a fiber touches become resident, so the usable size is a
// cost in address space, not in memory. Stacks are carved from slabs (many
// stacks per mmap) so that a million stacks do not need a million mappings: the
// guard is installed with madvise(MADV_GUARD_INSTALL) where the kernel has it
// (Linux >= 6.13, no VMA split) and with mprotect(PROT_NONE) otherwise.
//
// A StackPool belongs to one thread (one scheduler); it is not thread-safe.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace corelet::core {

// kDefaultStackSize — 64 KiB usable. Why: it holds what ordinary C++ code does
// inside a tasklet (iostreams, std::format, exception unwinding, a few KiB of
// locals, moderate recursion) with a wide margin, while costing only address
// space until touched; and 32 such stacks (plus guards) share one 2 MiB page-table
// page, so a million parked tasklets do not pay a page-table page each.
// Ask for more per spawn (SpawnOptions::stack_size) for deep recursion.
inline constexpr std::size_t kDefaultStackSize = 64 * 1024;
// kMinStackSize — below this, a libc call's own frames (printf, the dynamic
// linker) can overflow; requests below it are rejected, not rounded up.
inline constexpr std::size_t kMinStackSize = 8 * 1024;
// kMaxStackSize — an "absurd" request above this is rejected.
inline constexpr std::size_t kMaxStackSize = std::size_t{1} << 30;
// kGuardSize — the inaccessible region below every stack. Several pages, so
// that a frame of a few KiB cannot step over it; with MADV_GUARD_INSTALL or
// MAP_NORESERVE it costs only address space.
inline constexpr std::size_t kGuardSize = 16 * 1024;

// A usable stack: [base, base + size); the fiber starts at `top()` and grows down.
// The guard is [base - kGuardSize, base).
struct Stack {
  std::uintptr_t base = 0;
  std::size_t size = 0;
  std::uint32_t size_class = 0;  // the pool's, so that release needs no search
  void* top() const noexcept { return reinterpret_cast<void*>(base + size); }
  bool contains_guard(std::uintptr_t addr) const noexcept {
    return addr >= base - kGuardSize && addr < base;
  }
  explicit operator bool() const noexcept { return base != 0; }
};

// StackPool::round_size — validates a requested usable size and rounds it up to
// whole pages. Throws std::invalid_argument naming the bad size when it is zero,
// below kMinStackSize or above kMaxStackSize.
class StackPool {
 public:
  // `hot_per_class` stacks per size class keep their pages when released (they
  // are reused warm); trim() gives back the pages of the rest.
  explicit StackPool(std::size_t hot_per_class = 64);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  static std::size_t round_size(std::size_t requested);

  // allocate — a stack of at least `size` usable bytes (size already rounded by
  // round_size). Reuses the most recently released stack of that size first.
  // Throws std::system_error if the kernel refuses the memory (e.g. ENOMEM from
  // vm.max_map_count when guards must be installed with mprotect).
  Stack allocate(std::size_t size);
  // release — returns a stack to the pool. Never fails.
  void release(Stack s) noexcept;
  // trim — for each size class keep `hot_per_class` free stacks warm and return
  // the pages of the others to the kernel (MADV_DONTNEED). Returns stacks trimmed.
  std::size_t trim() noexcept;

  std::size_t mapped_bytes() const noexcept { return mapped_bytes_; }
  std::size_t stacks_in_use() const noexcept { return in_use_; }
  // Which guard mechanism this kernel gave: true for MADV_GUARD_INSTALL.
  static bool lightweight_guards() noexcept;

 private:
  struct SizeClass {
    std::size_t size = 0;
    std::vector<std::uintptr_t> free;   // LIFO: the back is the warmest
    std::size_t cold_from = 0;          // free[0, cold_from) already trimmed
  };
  SizeClass& class_for(std::size_t size);
  void grow(SizeClass& c);

  std::vector<SizeClass> classes_;
  std::size_t last_ = 0;  // index of the class used last
  std::vector<std::pair<void*, std::size_t>> slabs_;
  std::size_t hot_per_class_;
  std::size_t mapped_bytes_ = 0;
  std::size_t in_use_ = 0;
};

}  // namespace corelet::core
