// The shared arena behind SharedValue/SharedArray, and SharedLock.
//
// One MAP_SHARED | MAP_ANONYMOUS mapping of 1 GiB (reserved, not committed:
// MAP_NORESERVE, pages appear as used), made once per process tree before
// any worker is forked, so every worker has it at the same address. Its
// header holds a SharedLock, a bump pointer and free lists by power-of-two
// size class.

#include <corelet/ipc/shared_memory.hpp>
#include <corelet/sched/primitive.hpp>
#include <corelet/sched/task.hpp>

#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <new>
#include <system_error>

namespace corelet {

namespace ipc::detail {

namespace {

constexpr std::size_t kArenaBytes = std::size_t{1} << 30;
constexpr int kClasses = 31;  // 64 B .. 2^30... (class c: 64 << c bytes)

struct BlockHeader {
  std::uint32_t size_class;
  std::uint32_t has_lock;
  std::uint64_t next_free;  // offset of the next free block of the class, 0: none
  unsigned char pad[48];
};
static_assert(sizeof(BlockHeader) == 64);

struct ArenaHeader {
  SharedLock lock;  // guards everything below
  std::uint64_t bump;
  std::uint64_t free_head[kClasses];
};

ArenaHeader* g_arena = nullptr;

ArenaHeader* arena() {
  if (g_arena) return g_arena;
  void* p = ::mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "corelet: mmap of the shared arena");
  auto* h = static_cast<ArenaHeader*>(p);
  new (&h->lock) SharedLock;
  h->bump = (sizeof(ArenaHeader) + 63) / 64 * 64;
  g_arena = h;
  return h;
}

int class_of(std::size_t total) {
  int c = 0;
  while ((std::size_t{64} << c) < total) ++c;
  return c;
}

}  // namespace

void shared_arena_ready() { (void)arena(); }

void* shared_alloc(std::size_t bytes, bool with_lock, SharedLock** lock) {
  ArenaHeader* a = arena();
  // Layout of a block: header, [lock], data (each 64-aligned).
  const std::size_t total = sizeof(BlockHeader) + (with_lock ? sizeof(SharedLock) : 0) + (bytes + 63) / 64 * 64;
  const int c = class_of(total);
  if (c >= kClasses) throw std::bad_alloc();
  const std::size_t size = std::size_t{64} << c;
  auto* base = reinterpret_cast<std::byte*>(a);
  std::uint64_t off;
  {
    std::lock_guard<SharedLock> g(a->lock);
    if (a->free_head[c]) {
      off = a->free_head[c];
      a->free_head[c] = reinterpret_cast<BlockHeader*>(base + off)->next_free;
    } else {
      if (a->bump + size > kArenaBytes) throw std::bad_alloc();
      off = a->bump;
      a->bump += size;
    }
  }
  std::memset(base + off, 0, size);
  auto* bh = reinterpret_cast<BlockHeader*>(base + off);
  bh->size_class = static_cast<std::uint32_t>(c);
  bh->has_lock = with_lock;
  std::byte* p = base + off + sizeof(BlockHeader);
  if (with_lock) {
    *lock = new (p) SharedLock;
    p += sizeof(SharedLock);
  } else {
    *lock = nullptr;
  }
  return p;
}

void shared_free(void* ptr, SharedLock* lock) noexcept {
  ArenaHeader* a = g_arena;
  if (!a || !ptr) return;
  auto* base = reinterpret_cast<std::byte*>(a);
  // The header is right before the lock if there is one, else before the data.
  std::byte* after_header = lock ? reinterpret_cast<std::byte*>(lock) : static_cast<std::byte*>(ptr);
  auto* bh = reinterpret_cast<BlockHeader*>(after_header - sizeof(BlockHeader));
  const std::uint64_t off = static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(bh) - base);
  const std::uint32_t c = bh->size_class;
  try {
    std::lock_guard<SharedLock> g(a->lock);
    bh->next_free = a->free_head[c];
    a->free_head[c] = off;
  } catch (...) {
    // The lock failed (it cannot, short of a corrupt arena): the block leaks.
  }
}

}  // namespace ipc::detail
}  // namespace corelet
