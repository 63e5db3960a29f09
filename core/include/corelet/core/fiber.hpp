#pragma once
// corelet/core/fiber.hpp — a fiber: a Boost.Context continuation, the pooled
// stack it runs on, and the sanitizer annotations around every switch.
//
// A Fiber is one execution context on one OS thread: either one made by
// create() on a core::Stack, or the thread's own context (bind_thread()).
// Switching is symmetric and direct: the running context resumes a suspended
// Fiber and is itself suspended; what the resumed side receives is the
// Continuation of the context that left, which it hands to that context's
// Fiber with keep(). Who runs next, and where a continuation is kept, is the
// caller's business: nothing here knows about schedulers.
//
// The switch path is header-only and always inlined: a yield is a few dozen
// ns, and after a stack switch every `ret` of the resumed context mispredicts
// (the return-stack buffer holds the other context's frames), so each extra
// function between the user's blocking call and jump_fcontext would cost a
// mispredicted return. In a build without sanitizers a Fiber is one pointer
// (static_assert below) and resume() is one call of jump_fcontext.
//
// Why Boost.Context's fcontext layer (jump_fcontext, make_fcontext,
// ontop_fcontext: the assembly under boost::context::fiber, stable since
// Boost 1.61) and not boost::context::fiber itself: ThreadSanitizer must be
// told of a switch immediately before the jump, with no instrumented function
// entered or left in between, or each context's shadow call stack gets the
// other's frames (in a Debug build fiber::resume() is such a function, and
// the ending fiber's record code another: the thread's shadow stack then
// underflows and TSan crashes). Boost 1.74's fiber has no hook there. The code
// below is the same as fiber_fcontext.hpp's (record at the top of the stack,
// one jump in and back at creation, the stack freed on the next context by
// ontop_fcontext) with the annotations where they belong.
//
// Sanitizers. Debian's Boost 1.74 uses the fcontext (assembly) back end, whose
// fiber has no sanitizer hooks at all: BOOST_USE_ASAN only affects the ucontext
// back end (BOOST_USE_UCONTEXT, which needs a libboost_context built for it),
// and BOOST_USE_TSAN does not exist before Boost 1.81. So the annotations are
// made here, around each jump:
//   - AddressSanitizer: __sanitizer_start_switch_fiber before the jump (the
//     target's stack bounds; a fake-stack slot, nullptr when the leaving
//     context ends so that its fake stack is freed) and
//     __sanitizer_finish_switch_fiber first thing after it.
//   - ThreadSanitizer: every created Fiber has a TSan fiber
//     (__tsan_create_fiber, destroyed as soon as the fiber ended or unwound),
//     the thread's own context uses __tsan_get_current_fiber(), and every jump
//     is preceded by __tsan_switch_to_fiber(target, 0). Flags 0 makes the
//     switch synchronising: what a context did before it switched away
//     happens-before what the resumed one does, which is exactly the
//     cooperative hand-over — fibers of one thread never race one another.
//
// A Fiber belongs to the thread that created (or bound) it; it must not be
// resumed from another thread.
//
// Exceptions. An exception thrown on a fiber unwinds that fiber's stack only;
// one may be caught, and held (std::exception_ptr) across switches. But the
// C++ runtime's stack of exceptions being handled — what a bare `throw;`
// rethrows, what std::current_exception() returns, what the end of a catch
// block pops — is per thread, not per fiber, and a switch does not save it
// (that would cost thread-local loads and stores on every switch). So do not
// switch away inside a catch block: another context may end its own handler
// meanwhile and pop (and free) this one's exception, and a `throw;` after the
// switch may rethrow another context's. Take std::current_exception() in the
// handler, leave it, switch, then std::rethrow_exception.

#include <corelet/core/stack.hpp>

#include <boost/context/detail/fcontext.hpp>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CORELET_FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define CORELET_FIBER_TSAN 1
#endif
#if defined(CORELET_FIBER_ASAN)
#include <pthread.h>
#endif

namespace corelet::core {

class Fiber;

// FiberUnwind — thrown inside a suspended fiber that is being destroyed
// (~Fiber), from the point where it switched away, so that its stack unwinds
// (destructors run) before the stack goes back to the pool. Not a
// std::exception: a body's `catch (const std::exception&)` lets it through;
// one that catches everything must rethrow it. Nothing else may be done with it.
struct FiberUnwind {
  boost::context::detail::fcontext_t to;  // the destroyer, suspended in ~Fiber
#if CORELET_FIBER_ASAN
  const void* bottom;  // the destroyer's stack, for ASan
  std::size_t size;
#endif
#if CORELET_FIBER_TSAN
  void* tsan;  // the destroyer's TSan fiber
#endif
};

// Continuation — the suspended state of the context that just switched to us,
// as resume() (or a fiber's body, at its first run) receives it. Empty when
// that context ended. Move-only; it must be given to the Fiber it belongs to
// with Fiber::keep() (or be empty) before it is dropped: a dropped non-empty
// Continuation leaks that context (asserted in Debug builds).
class Continuation {
 public:
  Continuation() noexcept = default;
  Continuation(Continuation&& o) noexcept : fctx_(std::exchange(o.fctx_, nullptr)) {}
  Continuation& operator=(Continuation&& o) noexcept {
    assert(!fctx_ && "corelet: a Continuation was overwritten (its context leaks)");
    fctx_ = std::exchange(o.fctx_, nullptr);
    return *this;
  }
  ~Continuation() { assert(!fctx_ && "corelet: a Continuation was dropped (its context leaks)"); }
  // Whether it holds a suspended context (false: the leaving context ended).
  explicit operator bool() const noexcept { return fctx_ != nullptr; }

 private:
  friend class Fiber;
  explicit Continuation(boost::context::detail::fcontext_t f) noexcept : fctx_(f) {}
  boost::context::detail::fcontext_t fctx_ = nullptr;
};

class Fiber {
 public:
  // Fiber() — empty: no context yet. create() or bind_thread() makes it one.
  Fiber() noexcept = default;
  // ~Fiber — an ended or never-created fiber: frees nothing. A suspended
  // one (created, switched away from, not ended) is unwound first:
  // FiberUnwind is thrown inside it where it switched away, its body must let
  // it through, and once out of the body the fiber switches back here and
  // its stack returns to the pool. That is a switch into the fiber and back:
  // only on its own thread, and never on the running fiber.
  ~Fiber() { destroy(); }
  // Neither copied nor moved: whoever keeps continuations holds its address
  // (a scheduler's save slot), and in a TSan build so does its record.
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // bind_thread — this Fiber stands for the calling thread's own context (the
  // one that was running before any fiber: a scheduler's loop). It holds no
  // continuation until the first switch away from the thread's context hands
  // one to keep(). Call once, on the thread itself, before any fiber ends or
  // switches into it. It is never destroyed with a continuation in it.
  void bind_thread() noexcept {
#if CORELET_FIBER_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      std::size_t size = 0;
      pthread_attr_getstack(&attr, &addr, &size);
      pthread_attr_destroy(&attr);
      bottom_ = addr;
      size_ = size;
    }
#endif
#if CORELET_FIBER_TSAN
    tsan_ = __tsan_get_current_fiber();
    tsan_owned_ = false;
#endif
  }

  // create — makes this empty or ended Fiber (not a suspended one: asserted)
  // a new context on `stack`, which was taken from `pool`; the stack goes back
  // to `pool` (release) when the fiber ends or is unwound, so the pool must
  // outlive the fiber. The body does not run yet: it runs at the first
  // resume(), on the new stack, as
  //     Fiber& body(Continuation&& from)
  // where `from` is the continuation of the context that resumed it (give it
  // to its owner). The body's return value is the suspended Fiber to switch
  // to when the body ends; the context resumed there receives an empty
  // Continuation, and the body's captures are destroyed there, before the
  // stack is released. The body must not let an exception escape except
  // FiberUnwind, which it must let through: anything else calls
  // std::terminate. Allocates nothing (the body is stored at the top of the
  // stack); jumps into the new stack and back once. Throws nothing.
  // Not on the hot path of a switch (once per fiber).
  template <class Body>
  void create(StackPool& pool, const Stack& stack, Body&& body) noexcept {
    namespace bctx = boost::context::detail;
    using Rec = Record<std::decay_t<Body>>;
    assert(!fctx_ && "corelet: Fiber::create on a fiber that is suspended");
    // The record at the top of the stack, then a 64-byte gap, then the frames
    // (as Boost's create_fiber1 lays them out).
    void* storage = reinterpret_cast<void*>((reinterpret_cast<std::uintptr_t>(stack.top()) - sizeof(Rec)) &
                                            ~static_cast<std::uintptr_t>(0xff));
#if CORELET_FIBER_TSAN
    Rec* rec = new (storage) Rec{&pool, stack, std::forward<Body>(body), this};
#else
    Rec* rec = new (storage) Rec{&pool, stack, std::forward<Body>(body)};
#endif
    void* sp = static_cast<char*>(storage) - 64;
    const std::size_t room = reinterpret_cast<std::uintptr_t>(sp) - stack.base;
    bctx::fcontext_t f = bctx::make_fcontext(sp, room, &entry<Rec>);
#if CORELET_FIBER_ASAN
    bottom_ = reinterpret_cast<const void*>(stack.base);
    size_ = stack.size;
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, bottom_, size_);
#endif
#if CORELET_FIBER_TSAN
    release_tsan();  // an ended fiber's, made again
    tsan_ = __tsan_create_fiber(0);
    tsan_owned_ = true;
    void* creator = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(tsan_, 0);
#endif
    // Into entry(), which hands back the context where the body will start.
    fctx_ = bctx::jump_fcontext(f, rec).fctx;
#if CORELET_FIBER_TSAN
    __tsan_switch_to_fiber(creator, 0);
#endif
#if CORELET_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  }

  // resume — called by the running context (a created fiber or a bound
  // thread) on a suspended Fiber of the same thread: suspends the caller and
  // runs this one, from where it last switched away (or its body, the first
  // time). This Fiber holds no continuation from then on (it is running).
  // Returns, in the caller, when some context switches back to it; the result
  // is that context's continuation, empty if it ended. No allocation and no
  // call besides the jump (and the sanitizer hooks in sanitized builds).
  // Throws only FiberUnwind, when the caller is itself a fiber being
  // destroyed while suspended here; let it pass.
  [[nodiscard]] __attribute__((always_inline)) inline Continuation resume() {
    assert(fctx_ && "corelet: Fiber::resume on a fiber that is running, ended or not created");
#if CORELET_FIBER_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, bottom_, size_);
#endif
#if CORELET_FIBER_TSAN
    __tsan_switch_to_fiber(tsan_, 0);
#endif
    const boost::context::detail::transfer_t t =
        boost::context::detail::jump_fcontext(std::exchange(fctx_, nullptr), nullptr);
#if CORELET_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    return Continuation(t.fctx);
  }

  // keep — stores the continuation of this Fiber's context, as received by
  // the context it switched to (from resume() or by a body). Called on the
  // Fiber's thread; it does not switch. This Fiber must hold no continuation
  // (it is the one that just left: asserted).
  __attribute__((always_inline)) void keep(Continuation&& c) noexcept {
    assert(!fctx_ && "corelet: Fiber::keep over a continuation it still holds");
    fctx_ = std::exchange(c.fctx_, nullptr);
  }

  // Whether it holds a suspended context that resume() may switch to.
  explicit operator bool() const noexcept { return fctx_ != nullptr; }

 private:
  template <class Body>
  struct Record {
    StackPool* pool;
    Stack stack;
    Body body;
#if CORELET_FIBER_TSAN
    Fiber* self;  // its TSan fiber is destroyed as soon as it ends (see release)
#endif
  };

  // entry — the first frame on a new stack. Comes in from create() and goes
  // straight back; the first resume() continues it into the body. Never
  // returns: it ends by switching to the body's result (or, unwound, to the
  // destroyer) with the record's release on top.
  template <class Rec>
  static void entry(boost::context::detail::transfer_t t) noexcept {
    namespace bctx = boost::context::detail;
    Rec* rec = static_cast<Rec*>(t.data);
#if CORELET_FIBER_ASAN
    void* fake = nullptr;
    const void* creator_bottom = nullptr;
    std::size_t creator_size = 0;
    __sanitizer_finish_switch_fiber(nullptr, &creator_bottom, &creator_size);
    __sanitizer_start_switch_fiber(&fake, creator_bottom, creator_size);
#endif
    // Back to create(); TSan's switch back is create()'s.
    t = bctx::jump_fcontext(t.fctx, nullptr);
#if CORELET_FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    bctx::fcontext_t to;
    try {
      Fiber& next = rec->body(Continuation(t.fctx));
      assert(next.fctx_ && "corelet: a fiber's body returned a Fiber that is not suspended");
#if CORELET_FIBER_ASAN
      __sanitizer_start_switch_fiber(nullptr, next.bottom_, next.size_);  // nullptr: this one ends
#endif
#if CORELET_FIBER_TSAN
      __tsan_switch_to_fiber(next.tsan_, 0);
#endif
      to = std::exchange(next.fctx_, nullptr);
    } catch (const FiberUnwind& u) {
#if CORELET_FIBER_ASAN
      __sanitizer_start_switch_fiber(nullptr, u.bottom, u.size);
#endif
#if CORELET_FIBER_TSAN
      __tsan_switch_to_fiber(u.tsan, 0);
#endif
      to = u.to;
    }
    // On the next context, before it goes on: the captures die, the stack
    // goes back to the pool; that context's jump then returns an empty
    // continuation.
    bctx::ontop_fcontext(to, rec, &release<Rec>);
    __builtin_unreachable();
  }

  template <class Rec>
  static boost::context::detail::transfer_t release(boost::context::detail::transfer_t t) noexcept {
    Rec* rec = static_cast<Rec*>(t.data);
    StackPool* pool = rec->pool;
    const Stack stack = rec->stack;
#if CORELET_FIBER_TSAN
    // TSan counts fibers as threads, with a limit on those alive (8k): an
    // ended fiber's goes now, on the context it switched to, not with the
    // Fiber object (a tasklet's outlives its end while a handle holds it).
    rec->self->release_tsan();
#endif
    rec->~Rec();
    pool->release(stack);
    return {nullptr, nullptr};
  }

  // unwind — runs on top of a suspended fiber being destroyed, where it
  // switched away: throws FiberUnwind there.
  static boost::context::detail::transfer_t unwind(boost::context::detail::transfer_t t) {
    FiberUnwind u{t.fctx
#if CORELET_FIBER_ASAN
                  , nullptr, 0
#endif
#if CORELET_FIBER_TSAN
                  , t.data
#endif
    };
#if CORELET_FIBER_ASAN
    // The jump that brought us here did not come back through resume(), whose
    // fake stack slot is out of reach: nullptr (no fake-stack restore).
    __sanitizer_finish_switch_fiber(nullptr, &u.bottom, &u.size);
#endif
    throw u;
  }

  void destroy() noexcept {
    if (fctx_) {
      // Suspended, never ended: jump in to unwind it; it comes back ended.
#if CORELET_FIBER_ASAN
      void* fake = nullptr;
      __sanitizer_start_switch_fiber(&fake, bottom_, size_);
#endif
      void* self = nullptr;
#if CORELET_FIBER_TSAN
      self = __tsan_get_current_fiber();
      __tsan_switch_to_fiber(tsan_, 0);
#endif
      boost::context::detail::ontop_fcontext(std::exchange(fctx_, nullptr), self, &unwind);
#if CORELET_FIBER_ASAN
      __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    }
#if CORELET_FIBER_TSAN
    release_tsan();
#endif
  }
#if CORELET_FIBER_TSAN
  void release_tsan() noexcept {
    if (tsan_owned_ && tsan_) __tsan_destroy_fiber(tsan_);
    tsan_ = nullptr;
    tsan_owned_ = false;
  }
#endif

  boost::context::detail::fcontext_t fctx_ = nullptr;  // suspended context; null while running, ended or not created
#if CORELET_FIBER_ASAN
  const void* bottom_ = nullptr;  // the stack it runs on, for ASan's switch annotations
  std::size_t size_ = 0;
#endif
#if CORELET_FIBER_TSAN
  void* tsan_ = nullptr;     // its TSan fiber
  bool tsan_owned_ = false;  // made by create() (else the thread's own, not ours to destroy)
#endif
};

#if !defined(CORELET_FIBER_ASAN) && !defined(CORELET_FIBER_TSAN)
static_assert(sizeof(Fiber) == sizeof(void*), "corelet: without sanitizers a Fiber is its continuation and nothing more");
#endif

}  // namespace corelet::core
