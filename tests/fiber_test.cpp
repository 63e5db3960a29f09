// corelet/core/fiber.hpp alone, without any scheduler: switches both ways,
// values handed across switches, fibers that end, stack reuse, many fibers,
// exceptions on a fiber's stack, and the unwinding of a suspended fiber.
#include <corelet/core/fiber.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using corelet::core::Continuation;
using corelet::core::Fiber;
using corelet::core::Stack;
using corelet::core::StackPool;

namespace {

const std::size_t kSize = StackPool::round_size(corelet::core::kDefaultStackSize);

// Between two contexts the one that switches back to us is always the one we
// resumed: its continuation goes back into its own Fiber.
void switch_to(Fiber& other) { other.keep(other.resume()); }

// Every test checks at the end that all stacks went back to the pool.
class FiberTest : public ::testing::Test {
 protected:
  void SetUp() override { thread_.bind_thread(); }
  void TearDown() override { EXPECT_EQ(pool_.stacks_in_use(), 0u) << "a fiber's stack was not given back"; }

  StackPool pool_;
  Fiber thread_;  // this thread's own context
};

TEST_F(FiberTest, SwitchesBackAndForthAndPassesValues) {
  Fiber f;
  int to_fiber = 0;     // written by the thread before each switch to the fiber
  int from_fiber = -1;  // written by the fiber before each switch back
  bool ended = false;
  f.create(pool_, pool_.allocate(kSize), [&](Continuation&& from) -> Fiber& {
    thread_.keep(std::move(from));
    while (to_fiber >= 0) {
      from_fiber = to_fiber * 2;
      switch_to(thread_);
    }
    ended = true;
    return thread_;
  });
  EXPECT_TRUE(f);
  EXPECT_EQ(pool_.stacks_in_use(), 1u);
  for (int i = 0; i < 1000; ++i) {
    to_fiber = i;
    switch_to(f);
    ASSERT_EQ(from_fiber, 2 * i);
    ASSERT_TRUE(f) << "the fiber is suspended between round trips";
  }
  EXPECT_FALSE(ended);
  to_fiber = -1;
  Continuation last = f.resume();
  EXPECT_FALSE(last) << "a fiber that ended leaves no continuation";
  EXPECT_TRUE(ended);
  EXPECT_FALSE(f);
}

TEST_F(FiberTest, BodyDoesNotRunBeforeTheFirstResume) {
  Fiber f;
  bool ran = false;
  f.create(pool_, pool_.allocate(kSize), [&](Continuation&& from) -> Fiber& {
    thread_.keep(std::move(from));
    ran = true;
    return thread_;
  });
  EXPECT_FALSE(ran);
  EXPECT_FALSE(f.resume());
  EXPECT_TRUE(ran);
}

TEST_F(FiberTest, AnEndedFiberGivesItsStackBackAndTheNextReusesIt) {
  Fiber f;
  Stack first = pool_.allocate(kSize);
  const auto base = first.base;
  int runs = 0;
  auto body = [&](Continuation&& from) -> Fiber& {
    thread_.keep(std::move(from));
    ++runs;
    switch_to(thread_);  // suspended once, with its stack in use
    return thread_;
  };
  f.create(pool_, first, body);
  switch_to(f);
  EXPECT_EQ(pool_.stacks_in_use(), 1u);
  EXPECT_FALSE(f.resume());
  EXPECT_EQ(pool_.stacks_in_use(), 0u);
  // The same Fiber made again: the pool hands out the stack just released.
  Stack second = pool_.allocate(kSize);
  EXPECT_EQ(second.base, base);
  f.create(pool_, second, body);
  switch_to(f);
  EXPECT_FALSE(f.resume());
  EXPECT_EQ(runs, 2);
}

// Fibers switch to one another directly, not through the thread: a token goes
// round a ring of fibers, each passing it to the next. As in a scheduler, the
// continuation of the context that leaves is handed over through a slot that
// the resumed context fills.
TEST_F(FiberTest, ManyFibersPassATokenRoundARing) {
  constexpr int kFibers = 1000;
  constexpr int kRounds = 5;
  std::vector<std::unique_ptr<Fiber>> ring;
  for (int i = 0; i < kFibers; ++i) ring.push_back(std::make_unique<Fiber>());
  Fiber* save_slot = nullptr;
  auto go = [&save_slot](Fiber& to, Fiber* self) {
    save_slot = self;
    Continuation c = to.resume();
    if (save_slot) save_slot->keep(std::move(c));
    save_slot = nullptr;
  };
  long token = 0;
  std::vector<int> seen(kFibers, 0);
  for (int i = 0; i < kFibers; ++i) {
    ring[i]->create(pool_, pool_.allocate(kSize), [&, i](Continuation&& from) -> Fiber& {
      if (save_slot) save_slot->keep(std::move(from));
      save_slot = nullptr;
      for (int r = 0; r < kRounds; ++r) {
        EXPECT_EQ(token, static_cast<long>(r) * kFibers + i) << "fiber " << i << " round " << r;
        ++token;
        ++seen[i];
        Fiber& next = i + 1 < kFibers ? *ring[i + 1] : thread_;
        if (r + 1 < kRounds) go(next, ring[i].get());
      }
      // The last round ends each fiber instead: it hands the token on by
      // ending into its successor (the last one into the thread).
      return i + 1 < kFibers ? *ring[i + 1] : thread_;
    });
  }
  EXPECT_EQ(pool_.stacks_in_use(), static_cast<std::size_t>(kFibers));
  for (int r = 0; r < kRounds; ++r) go(*ring[0], &thread_);
  EXPECT_EQ(token, static_cast<long>(kRounds) * kFibers);
  for (int i = 0; i < kFibers; ++i) EXPECT_EQ(seen[i], kRounds) << i;
  for (auto& f : ring) EXPECT_FALSE(*f);
}

// An exception thrown on a fiber is caught on that fiber, whatever the other
// contexts are handling meanwhile, and an exception_ptr taken before a switch
// rethrows the same exception after it. (Not `throw;` after a switch inside a
// handler: the runtime's stack of handled exceptions is per thread; see
// Fiber's header comment.)
TEST_F(FiberTest, ExceptionsStayWithTheirFiberAcrossSwitches) {
  Fiber f;
  std::exception_ptr out;
  std::string caught_on_fiber;
  f.create(pool_, pool_.allocate(kSize), [&](Continuation&& from) -> Fiber& {
    thread_.keep(std::move(from));
    try {
      std::exception_ptr held;
      try {
        throw std::runtime_error("thrown on the fiber");
      } catch (const std::runtime_error& e) {
        caught_on_fiber = e.what();
        held = std::current_exception();
      }
      switch_to(thread_);  // the thread is inside its own handler meanwhile
      std::rethrow_exception(held);
    } catch (...) {
      out = std::current_exception();  // the body must not let it escape
    }
    return thread_;
  });
  switch_to(f);
  EXPECT_EQ(caught_on_fiber, "thrown on the fiber");
  try {
    throw std::logic_error("thrown on the thread");
  } catch (const std::logic_error& e) {
    EXPECT_FALSE(f.resume());
    EXPECT_EQ(std::string(e.what()), "thrown on the thread");
  }
  ASSERT_TRUE(out);
  try {
    std::rethrow_exception(out);
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "thrown on the fiber");
  } catch (...) {
    ADD_FAILURE() << "another exception came back";
  }
}

TEST_F(FiberTest, DestroyingASuspendedFiberUnwindsItsStack) {
  struct Sentinel {
    bool* flag;
    ~Sentinel() { *flag = true; }
  };
  bool unwound = false;
  bool went_on = false;
  {
    Fiber f;
    f.create(pool_, pool_.allocate(kSize), [&](Continuation&& from) -> Fiber& {
      thread_.keep(std::move(from));
      Sentinel s{&unwound};
      switch_to(thread_);  // never resumed: destroyed here
      went_on = true;
      return thread_;
    });
    switch_to(f);
    EXPECT_TRUE(f);
    EXPECT_EQ(pool_.stacks_in_use(), 1u);
  }
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(went_on);
}

}  // namespace
