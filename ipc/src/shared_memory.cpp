// The shared arena behind SharedValue/SharedArray, and SharedLock.
//
// One MAP_SHARED | MAP_ANONYMOUS mapping of 1 GiB (reserved, not committed:
// MAP_NORESERVE, pages appear as used), made once per process tree before
// any worker is forked, so every worker has it at the same address. Its
// header holds a robust process-shared mutex, a bump pointer and free lists
// by power-of-two size class.

#include <corelet/ipc/shared_memory.hpp>
#include <corelet/sched/detail/tasklet.hpp>
#include <corelet/sched/task.hpp>

#include <pthread.h>
#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <new>
#include <system_error>

namespace corelet {

static_assert(sizeof(pthread_mutex_t) <= 64);

struct SharedLockInit {
  static void init(SharedLock* l) {
    auto* m = reinterpret_cast<pthread_mutex_t*>(l->storage_);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  static pthread_mutex_t* get(SharedLock* l) { return reinterpret_cast<pthread_mutex_t*>(l->storage_); }
};

namespace {

// take — a pthread result as "acquired": EOWNERDEAD (the holder died) makes
// the mutex consistent and counts as acquired.
bool take(pthread_mutex_t* m, int r, const char* what) {
  if (r == 0) return true;
  if (r == EOWNERDEAD) {
    pthread_mutex_consistent(m);
    return true;
  }
  if (r == EBUSY) return false;
  throw std::system_error(r, std::generic_category(), what);
}

}  // namespace

void SharedLock::lock() {
  pthread_mutex_t* m = SharedLockInit::get(this);
  if (!corelet::detail::current()) {
    take(m, pthread_mutex_lock(m), "corelet::SharedLock::lock");
    return;
  }
  // In a tasklet: never block the thread. The holder is another process (or
  // another tasklet of ours that parked holding it): let others run.
  for (unsigned tries = 0;; ++tries) {
    if (take(m, pthread_mutex_trylock(m), "corelet::SharedLock::lock")) return;
    if (tries < 64) {
      this_tasklet::yield();
    } else {
      this_tasklet::sleep_for(std::chrono::microseconds(50));
    }
  }
}

bool SharedLock::try_lock() {
  pthread_mutex_t* m = SharedLockInit::get(this);
  return take(m, pthread_mutex_trylock(m), "corelet::SharedLock::try_lock");
}

void SharedLock::unlock() { pthread_mutex_unlock(SharedLockInit::get(this)); }

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
  SharedLockInit::init(&h->lock);
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
    auto* l = reinterpret_cast<SharedLock*>(p);
    SharedLockInit::init(l);
    *lock = l;
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
