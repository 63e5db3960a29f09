// Stackless tasklets (primitive.hpp, detail/tasklet.hpp: Tasklet::stackless, step(),
// park_stackless): the scheduler runs them in slices on the loop's own stack,
// interleaved with fiber tasklets, parks and wakes them through the same wait
// queues and timers, cancels and joins them. The Python bindings' generator
// and coroutine tasklets are built on this.
#include "support.hpp"

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corelet_test;
namespace detail = corelet::detail;
namespace primitive = corelet::primitive;

namespace {

// A stackless tasklet whose slices are a lambda: body(self) runs one slice
// and returns true when the tasklet has ended.
struct Sliced final : detail::Tasklet {
  std::function<bool(Sliced&)> body;
  int slices = 0;
  primitive::Waiter w;
  explicit Sliced(std::function<bool(Sliced&)> b) : body(std::move(b)) { stackless = true; }
  void invoke() override { ADD_FAILURE() << "invoke() called on a stackless tasklet"; }
  bool step() override {
    ++slices;
    return body(*this);
  }
};

// The handle: holds the creator's reference, like Task<T>.
struct Handle {
  Sliced* t;
  explicit Handle(Sliced* s) : t(s) {}
  Handle(Handle&& o) noexcept : t(std::exchange(o.t, nullptr)) {}
  Handle& operator=(Handle&&) = delete;
  ~Handle() {
    if (t) detail::release(t);
  }
  Sliced* operator->() const { return t; }
};

Handle spawn_sliced(std::function<bool(Sliced&)> body, std::string name = "sliced") {
  auto* t = new Sliced(std::move(body));
  t->name = std::move(name);
  Handle h(t);
  detail::start(t, "spawn_sliced");
  return h;
}

void join(Sliced* t) {
  ASSERT_TRUE(detail::wait_done(t, "join", corelet::Clock::time_point::max()));
  t->joined = true;  // its error, if any, was seen
}

std::string error_of(detail::Tasklet* t) {
  if (!t->error) return "";
  try {
    std::rethrow_exception(t->error);
  } catch (const corelet::Cancelled&) {
    return "Cancelled";
  } catch (const std::exception& e) {
    return e.what();
  }
}

class StacklessTest : public CoreletTest {};

TEST_F(StacklessTest, SlicesInterleaveWithFiberTaskletsInFifoOrder) {
  std::vector<std::string> log;
  corelet::run([&] {
    log.push_back("M0");
    Handle s = spawn_sliced([&](Sliced& self) {
      log.push_back("S" + std::to_string(self.slices - 1));
      return self.slices == 3;  // returning false with the tasklet running = a yield
    });
    for (int i = 1; i <= 3; ++i) {
      corelet::this_tasklet::yield();
      log.push_back("M" + std::to_string(i));
    }
    EXPECT_TRUE(s->state == detail::State::Done);
    EXPECT_FALSE(s->error);
  });
  EXPECT_EQ(log, (std::vector<std::string>{"M0", "S0", "M1", "S1", "M2", "S2", "M3"}));
}

TEST_F(StacklessTest, ParksOnAWaitQueueAndAFiberWakesIt) {
  primitive::WaitQueue q;
  primitive::Wake seen = primitive::Wake::Timeout;
  primitive::Waiter::State state = primitive::Waiter::State::Pending;
  corelet::run([&] {
    Handle s = spawn_sliced([&](Sliced& self) {
      if (self.slices == 1) {
        primitive::enlist(self.w, &self, q);
        EXPECT_TRUE(primitive::park_stackless("test queue", &q));
        return false;
      }
      seen = self.wake;
      state = self.w.state;
      return true;
    });
    corelet::this_tasklet::yield();  // s runs its first slice and parks
    EXPECT_TRUE(s->state == detail::State::Parked);
    EXPECT_EQ(q.size(), 1u);
    EXPECT_TRUE(primitive::wake_one(q));
    join(s.t);
    EXPECT_EQ(s->slices, 2);
  });
  EXPECT_TRUE(seen == primitive::Wake::Notified);
  EXPECT_TRUE(state == primitive::Waiter::State::Done);
}

TEST_F(StacklessTest, ADeadlineWakesItWithTimeout) {
  primitive::Wake seen = primitive::Wake::Notified;
  corelet::run([&] {
    const auto t0 = corelet::Clock::now();
    Handle s = spawn_sliced([&](Sliced& self) {
      if (self.slices == 1) {
        EXPECT_TRUE(primitive::park_stackless("nap", nullptr, t0 + 2ms));
        return false;
      }
      seen = self.wake;
      return true;
    });
    join(s.t);
    EXPECT_GE(corelet::Clock::now() - t0, 2ms);
  });
  EXPECT_TRUE(seen == primitive::Wake::Timeout);
}

TEST_F(StacklessTest, CancelWakesAParkedOneAndSkipsOneNotStarted) {
  primitive::WaitQueue q;
  primitive::Wake seen = primitive::Wake::Notified;
  corelet::run([&] {
    Handle parked = spawn_sliced([&](Sliced& self) {
      if (self.slices == 1) {
        primitive::enlist(self.w, &self, q);
        primitive::park_stackless("forever", &q);
        return false;
      }
      seen = self.wake;
      throw corelet::Cancelled{};  // what a Python tasklet that does not catch it does
    });
    Handle never = spawn_sliced([&](Sliced&) { return true; }, "never");
    never->cancel_pending = true;  // what detail::cancel does before the first run
    detail::cancel(never.t);
    corelet::this_tasklet::yield();
    detail::cancel(parked.t);
    join(parked.t);
    join(never.t);
    EXPECT_EQ(never->slices, 0);
    EXPECT_EQ(error_of(never.t), "Cancelled");
    EXPECT_EQ(error_of(parked.t), "Cancelled");
    EXPECT_TRUE(q.empty());  // its waiter was unlinked
  });
  EXPECT_TRUE(seen == primitive::Wake::Cancelled);
}

TEST_F(StacklessTest, ACancellationPendingAtParkTimeDoesNotPark) {
  primitive::WaitQueue q;
  bool parked = true;
  corelet::run([&] {
    Handle s = spawn_sliced([&](Sliced& self) {
      detail::cancel(&self);  // while running: only marked pending
      primitive::enlist(self.w, &self, q);
      parked = primitive::park_stackless("never", &q);
      EXPECT_TRUE(self.wake == primitive::Wake::Cancelled);
      return true;
    });
    join(s.t);
  });
  EXPECT_FALSE(parked);
  EXPECT_TRUE(q.empty());
}

TEST_F(StacklessTest, FiberBlockingCallsInsideAStepAreUsageErrors) {
  std::vector<std::string> errors;
  corelet::run([&] {
    corelet::Channel<int> ch;
    Handle s = spawn_sliced([&](Sliced&) {
      try {
        corelet::this_tasklet::yield();
      } catch (const corelet::UsageError& e) {
        errors.push_back(e.what());
      }
      try {
        ch.recv();
      } catch (const corelet::UsageError& e) {
        errors.push_back(e.what());
      }
      return true;
    });
    join(s.t);
    EXPECT_EQ(ch.balance(), 0);  // the failed recv left no waiter behind
  });
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find("stackless"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("stackless"), std::string::npos) << errors[1];
}

TEST_F(StacklessTest, AnExceptionEndsItAndReachesItsJoiner) {
  corelet::run([&] {
    Handle s = spawn_sliced([](Sliced&) -> bool { throw std::runtime_error("boom"); });
    join(s.t);
    EXPECT_EQ(error_of(s.t), "boom");
  });
}

TEST_F(StacklessTest, ADeadlockNamesTheParkedStacklessTasklet) {
  primitive::WaitQueue q;
  try {
    corelet::run([&] {
      Handle s = spawn_sliced(
          [&](Sliced& self) {
            if (self.slices == 1) {
              primitive::enlist(self.w, &self, q);
              primitive::park_stackless("nobody's queue", &q);
              return false;
            }
            if (self.wake == primitive::Wake::Cancelled) throw corelet::Cancelled{};
            return true;
          },
          "stuck-one");
      join(s.t);
    });
    ADD_FAILURE() << "no Deadlock";
  } catch (const corelet::Deadlock& e) {
    EXPECT_NE(std::string(e.what()).find("stuck-one"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nobody's queue"), std::string::npos) << e.what();
  }
}

TEST_F(StacklessTest, ManyStacklessAndFiberTaskletsShareTheLoop) {
  // Stackless tasklets park on one queue; fiber tasklets wake them one at a
  // time between yields. Every slice after a stackless tasklet's first comes
  // from one wake. No slice may run on a fiber's stack (ASan would report
  // the bad stack switch).
  constexpr int kEach = 200;
  constexpr int kLaps = 20;
  primitive::WaitQueue q;
  long notified = 0;
  corelet::run([&] {
    std::vector<Handle> sliced;
    for (int i = 0; i < kEach; ++i) {
      sliced.push_back(spawn_sliced([&](Sliced& self) {
        if (self.slices > 1 && self.wake == primitive::Wake::Notified) ++notified;
        if (self.slices > kLaps) return true;
        primitive::enlist(self.w, &self, q);
        primitive::park_stackless("q", &q);
        return false;
      }));
    }
    std::vector<corelet::Task<void>> fibers;
    for (int i = 0; i < kEach; ++i) {
      fibers.push_back(corelet::spawn([&] {
        for (int lap = 0; lap < kLaps; ++lap) {
          primitive::wake_one(q);
          corelet::this_tasklet::yield();
        }
      }));
    }
    for (auto& f : fibers) f.join();
    // The woken run before main (FIFO); what parks again is woken again.
    while (!q.empty()) {
      primitive::wake_all(q);
      corelet::this_tasklet::yield();
    }
    for (auto& s : sliced) {
      join(s.t);
      EXPECT_EQ(s->slices, kLaps + 1);
    }
  });
  EXPECT_EQ(notified, static_cast<long>(kEach) * kLaps);
}

}  // namespace
