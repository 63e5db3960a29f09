// Tasklet control blocks: their allocation from a per-thread cache, their
// construction and destruction, and the report of an exception nobody can
// observe any more.

#include "scheduler.hpp"

#include <cstdio>
#include <exception>
#include <typeinfo>

namespace corelet::detail {

namespace {
thread_local std::size_t tl_tasklet_objects = 0;

// The control-block cache: per size class (64-byte steps up to 1 KiB) a
// free list of at most kCachedPerClass blocks; larger blocks and overflow go
// to the global allocator. A block freed on another thread joins that
// thread's cache. Emptied when the thread exits.
class BlockCache {
 public:
  static constexpr std::size_t kStep = 64;
  static constexpr std::size_t kClasses = 16;
  static constexpr std::size_t kCachedPerClass = 1024;

  void* get(std::size_t n) {
    const std::size_t c = (n - 1) / kStep;
    if (c < kClasses && !gone_ && lists_[c].head) {
      Node* b = lists_[c].head;
      lists_[c].head = b->next;
      --lists_[c].count;
      return b;
    }
    return ::operator new(c < kClasses && !gone_ ? (c + 1) * kStep : n);
  }
  void put(void* p, std::size_t n) noexcept {
    const std::size_t c = (n - 1) / kStep;
    if (c < kClasses && !gone_ && lists_[c].count < kCachedPerClass) {
      auto* b = static_cast<Node*>(p);
      b->next = lists_[c].head;
      lists_[c].head = b;
      ++lists_[c].count;
      return;
    }
    ::operator delete(p);
  }
  ~BlockCache() {
    gone_ = true;  // a Task handle destroyed later in this thread's exit frees directly
    for (auto& l : lists_)
      while (Node* b = l.head) {
        l.head = b->next;
        ::operator delete(b);
      }
  }

 private:
  struct Node {
    Node* next;
  };
  struct List {
    Node* head = nullptr;
    std::size_t count = 0;
  };
  List lists_[kClasses];
  bool gone_ = false;
};
thread_local BlockCache tl_blocks;

}  // namespace

void* Tasklet::operator new(std::size_t n) { return tl_blocks.get(n); }
void Tasklet::operator delete(void* p, std::size_t n) noexcept { tl_blocks.put(p, n); }
std::size_t tasklet_objects_alive() noexcept { return tl_tasklet_objects; }

Tasklet::Tasklet() { ++tl_tasklet_objects; }

void Tasklet::destroy_locals() noexcept {
  while (locals) {
    LocalSlot* s = locals;
    locals = s->next;
    delete s;
  }
}

Tasklet::~Tasklet() {
  --tl_tasklet_objects;
  destroy_locals();  // normally done at the end of the tasklet already
}

// Prints a tasklet's exception that nobody can observe any more, as Python
// does for a task's lost exception. Cancelled is not worth a line.
void report_lost_exception(Tasklet* t, const char* why) noexcept {
  t->error_reported = true;
  try {
    std::rethrow_exception(t->error);
  } catch (const Cancelled&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corelet: tasklet \"%s\" (#%llu) ended with %s: %s%s\n", t->name.c_str(),
                 static_cast<unsigned long long>(t->running.id), typeid(e).name(), e.what(), why);
  } catch (...) {
    std::fprintf(stderr, "corelet: tasklet \"%s\" (#%llu) ended with a non-standard exception%s\n",
                 t->name.c_str(), static_cast<unsigned long long>(t->running.id), why);
  }
}

}  // namespace corelet::detail
