// corelet/sched/channel.hpp: Channel<T> (rendezvous and buffered) and select.
#include "support.hpp"

#include <memory>
#include <numeric>
#include <string>
#include <vector>

using namespace corelet_test;
using corelet::Cancelled;
using corelet::Channel;
using corelet::ChannelClosed;

namespace {

// Most semantics hold for every capacity: the tests run for rendezvous (0),
// a one-slot buffer and a larger buffer.
class ChannelTest : public CoreletTestP<std::size_t> {
 protected:
  std::size_t cap() const { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Capacity, ChannelTest, ::testing::Values(0, 1, 16),
                         [](const auto& param_info) { return "cap" + std::to_string(param_info.param); });

TEST_P(ChannelTest, DeliversEveryValueInOrder) {
  corelet::run([this] {
    Channel<int> ch(cap());
    auto p = corelet::spawn([&] {
      for (int i = 0; i < 1000; ++i) ch.send(i);
      ch.close();
    });
    std::vector<int> got;
    for (int v : ch) got.push_back(v);
    p.join();
    std::vector<int> want(1000);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(got, want);
  });
}

TEST_P(ChannelTest, ManyProducersManyConsumersLoseNothing) {
  corelet::run([this] {
    Channel<int> ch(cap());
    constexpr int kProducers = 8, kPer = 500;
    corelet::WaitGroup producers(kProducers);
    for (int p = 0; p < kProducers; ++p)
      corelet::spawn([&, p] {
        for (int i = 0; i < kPer; ++i) ch.send(p * kPer + i);
        producers.done();
      });
    long long sum = 0;
    int count = 0;
    std::vector<corelet::Task<void>> consumers;
    for (int c = 0; c < 3; ++c)
      consumers.push_back(corelet::spawn([&] {
        for (int v : ch) { sum += v; ++count; }
      }));
    producers.wait();
    ch.close();
    for (auto& c : consumers) c.join();
    EXPECT_EQ(count, kProducers * kPer);
    EXPECT_EQ(sum, static_cast<long long>(kProducers * kPer) * (kProducers * kPer - 1) / 2);
  });
}

TEST_P(ChannelTest, CloseWakesParkedReceiversWithChannelClosed) {
  corelet::run([this] {
    Channel<int> ch(cap());
    int closed_seen = 0;
    std::vector<corelet::Task<void>> rs;
    for (int i = 0; i < 3; ++i)
      rs.push_back(corelet::spawn([&] {
        try { ch.recv(); } catch (const ChannelClosed&) { ++closed_seen; }
      }));
    corelet::this_tasklet::yield();
    EXPECT_EQ(ch.balance(), -3);
    ch.close();
    for (auto& r : rs) r.join();
    EXPECT_EQ(closed_seen, 3);
    EXPECT_EQ(ch.balance(), 0);
  });
}

TEST_P(ChannelTest, CloseWakesParkedSendersAndKeepsTheirValue) {
  corelet::run([this] {
    Channel<std::string> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i) ch.send("fill");
    std::string value = "precious";
    bool closed = false;
    auto s = corelet::spawn([&] {
      try { ch.send(std::move(value)); } catch (const ChannelClosed&) { closed = true; }
    });
    corelet::this_tasklet::yield();
    EXPECT_EQ(ch.balance(), 1);
    ch.close();
    s.join();
    EXPECT_TRUE(closed);
    EXPECT_EQ(value, "precious");  // not moved from: nothing lost
  });
}

TEST_P(ChannelTest, BufferedValuesDrainAfterClose) {
  corelet::run([this] {
    Channel<int> ch(cap());
    auto p = corelet::spawn([&] { ch.send(1); ch.send(2); ch.close(); });
    EXPECT_EQ(ch.recv(), 1);
    EXPECT_EQ(ch.recv(), 2);
    p.join();
    EXPECT_THROW(ch.recv(), ChannelClosed);
    EXPECT_THROW(ch.send(3), ChannelClosed);
    EXPECT_THROW(ch.try_send(3), ChannelClosed);
    EXPECT_FALSE(ch.try_recv().has_value());
  });
}

TEST_P(ChannelTest, CancelWhileBlockedInSendOrRecv) {
  corelet::run([this] {
    Channel<int> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i) ch.send(0);
    int unwound = 0;
    struct Guard { int& n; ~Guard() { ++n; } };
    auto s = corelet::spawn([&] { Guard g{unwound}; ch.send(1); });
    Channel<int> empty(cap());
    auto r = corelet::spawn([&] { Guard g{unwound}; empty.recv(); });
    corelet::this_tasklet::yield();
    s.cancel();
    r.cancel();
    EXPECT_THROW(s.join(), Cancelled);
    EXPECT_THROW(r.join(), Cancelled);
    EXPECT_EQ(unwound, 2);
    EXPECT_EQ(ch.balance(), 0);     // the cancelled waiters left the queues
    EXPECT_EQ(empty.balance(), 0);
    EXPECT_EQ(ch.size(), cap());    // the cancelled send delivered nothing
  });
}

TEST_P(ChannelTest, TimedSendAndRecv) {
  corelet::run([this] {
    Channel<int> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i) ch.send(0);
    int v = 9;
    const auto start = corelet::Clock::now();
    EXPECT_FALSE(ch.send_for(std::move(v), 3ms));
    EXPECT_GE(corelet::Clock::now() - start, 3ms);
    EXPECT_EQ(v, 9);
    Channel<int> empty(cap());
    EXPECT_FALSE(empty.recv_for(3ms).has_value());
    auto p = corelet::spawn([&] { empty.send(5); });
    EXPECT_EQ(empty.recv_for(std::chrono::hours(1)), 5);
    p.join();
  });
}

TEST_P(ChannelTest, TryFormsNeverPark) {
  corelet::run([this] {
    Channel<int> ch(cap());
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_TRUE(ch.try_send(static_cast<int>(i)));
    EXPECT_FALSE(ch.try_send(99));
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(ch.try_recv(), static_cast<int>(i));
    EXPECT_FALSE(ch.try_recv().has_value());
  });
}

TEST_P(ChannelTest, MoveOnlyValues) {
  corelet::run([this] {
    Channel<std::unique_ptr<int>> ch(cap());
    auto p = corelet::spawn([&] { ch.send(std::make_unique<int>(41)); });
    auto v = ch.recv();
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 41);
    p.join();
  });
}

class ChannelSemantics : public CoreletTest {};

TEST_F(ChannelSemantics, RendezvousSendWaitsForAReceiver) {
  corelet::run([] {
    Channel<int> ch(0);
    bool sent = false;
    auto s = corelet::spawn([&] { ch.send(1); sent = true; });
    yield_n(3);
    EXPECT_FALSE(sent);
    EXPECT_EQ(ch.balance(), 1);
    EXPECT_EQ(ch.recv(), 1);
    s.join();
    EXPECT_TRUE(sent);
  });
}

TEST_F(ChannelSemantics, BufferedSendParksOnlyWhenFull) {
  corelet::run([] {
    Channel<int> ch(2);
    ch.send(1);
    ch.send(2);  // no receiver needed
    EXPECT_EQ(ch.size(), 2u);
    bool third = false;
    auto s = corelet::spawn([&] { ch.send(3); third = true; });
    yield_n(2);
    EXPECT_FALSE(third);
    EXPECT_EQ(ch.recv(), 1);  // makes room; the parked sender's value follows
    s.join();
    EXPECT_TRUE(third);
    EXPECT_EQ(ch.recv(), 2);
    EXPECT_EQ(ch.recv(), 3);
  });
}

TEST_F(ChannelSemantics, BlockingCallsOutsideATaskletAreUsageErrors) {
  Channel<int> ch(0);
  EXPECT_THROW(ch.recv(), corelet::UsageError);
  EXPECT_THROW(ch.send(1), corelet::UsageError);
  EXPECT_FALSE(ch.try_send(1));
}

TEST_F(ChannelSemantics, DestroyingAChannelWakesItsWaiters) {
  corelet::run([] {
    auto ch = std::make_unique<Channel<int>>(0);
    bool closed = false;
    auto r = corelet::spawn([&, c = ch.get()] {
      try { c->recv(); } catch (const ChannelClosed&) { closed = true; }
    });
    corelet::this_tasklet::yield();
    ch.reset();
    r.join();
    EXPECT_TRUE(closed);
  });
}

// ---- select ----

class SelectTest : public CoreletTest {};

TEST_F(SelectTest, PicksTheReadyCase) {
  corelet::run([] {
    Channel<int> a(1), b(1);
    b.send(7);
    int got = 0;
    const auto i = corelet::select(corelet::on_recv(a, [&](int v) { got = v; }),
                                   corelet::on_recv(b, [&](int v) { got = v * 10; }));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(got, 70);
  });
}

TEST_F(SelectTest, ParksUntilOneCaseFiresAndLeavesTheOthersUntouched) {
  corelet::run([] {
    Channel<int> a(0), b(0);
    auto s = corelet::spawn([&] { corelet::this_tasklet::yield(); b.send(5); });
    int got = 0;
    const auto i = corelet::select(corelet::on_recv(a), corelet::on_recv(b, [&](int v) { got = v; }));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(got, 5);
    EXPECT_EQ(a.balance(), 0);  // the waiter on a was removed
    s.join();
  });
}

TEST_F(SelectTest, SendCaseDeliversToAParkedReceiver) {
  corelet::run([] {
    Channel<std::string> out(0);
    auto r = corelet::spawn([&] { return out.recv(); });
    corelet::this_tasklet::yield();
    bool sent = false;
    EXPECT_EQ(corelet::select(corelet::on_send(out, std::string("hi"), [&] { sent = true; })), 0u);
    EXPECT_TRUE(sent);
    EXPECT_EQ(r.join(), "hi");
  });
}

TEST_F(SelectTest, ParkedSendCaseIsTakenByALaterReceiver) {
  corelet::run([] {
    Channel<int> out(0), never(0);
    auto r = corelet::spawn([&] { corelet::this_tasklet::yield(); return out.recv(); });
    const auto i = corelet::select(corelet::on_recv(never), corelet::on_send(out, 12));
    EXPECT_EQ(i, 1u);
    EXPECT_EQ(r.join(), 12);
    EXPECT_EQ(never.balance(), 0);
  });
}

TEST_F(SelectTest, DefaultCaseWhenNothingIsReady) {
  corelet::run([] {
    Channel<int> a(0);
    bool dflt = false;
    EXPECT_EQ(corelet::select(corelet::on_recv(a), corelet::on_default([&] { dflt = true; })), 1u);
    EXPECT_TRUE(dflt);
    EXPECT_EQ(a.balance(), 0);
  });
}

TEST_F(SelectTest, TimeoutCase) {
  corelet::run([] {
    Channel<int> a(0);
    bool timed_out = false;
    const auto start = corelet::Clock::now();
    EXPECT_EQ(corelet::select(corelet::on_recv(a), corelet::on_timeout(3ms, [&] { timed_out = true; })), 1u);
    EXPECT_GE(corelet::Clock::now() - start, 3ms);
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(a.balance(), 0);
  });
}

TEST_F(SelectTest, ClosedChannelGivesNulloptOrThrows) {
  corelet::run([] {
    Channel<int> a(0);
    a.close();
    std::optional<int> got = 1;
    EXPECT_EQ(corelet::select(corelet::on_recv(a, [&](std::optional<int> v) { got = v; })), 0u);
    EXPECT_FALSE(got.has_value());
    EXPECT_THROW(corelet::select(corelet::on_recv(a, [](int) {})), ChannelClosed);
    EXPECT_THROW(corelet::select(corelet::on_send(a, 1)), ChannelClosed);
  });
}

TEST_F(SelectTest, CloseWakesAParkedSelect) {
  corelet::run([] {
    Channel<int> a(0), b(0);
    auto closer = corelet::spawn([&] { corelet::this_tasklet::yield(); b.close(); });
    bool closed = false;
    EXPECT_EQ(corelet::select(corelet::on_recv(a), corelet::on_recv(b, [&](std::optional<int> v) { closed = !v; })), 1u);
    EXPECT_TRUE(closed);
    EXPECT_EQ(a.balance(), 0);
    closer.join();
  });
}

TEST_F(SelectTest, CancelWhileParkedInSelect) {
  corelet::run([] {
    Channel<int> a(0), b(0);
    auto t = corelet::spawn([&] { corelet::select(corelet::on_recv(a), corelet::on_send(b, 1)); });
    corelet::this_tasklet::yield();
    EXPECT_EQ(a.balance(), -1);
    EXPECT_EQ(b.balance(), 1);
    t.cancel();
    EXPECT_THROW(t.join(), Cancelled);
    EXPECT_EQ(a.balance(), 0);
    EXPECT_EQ(b.balance(), 0);
    EXPECT_FALSE(b.try_recv().has_value());  // the cancelled send delivered nothing
  });
}

TEST_F(SelectTest, ReadyCasesAreServedFairly) {
  corelet::run([] {
    Channel<int> a(1000), b(1000);
    for (int i = 0; i < 1000; ++i) { a.send(i); b.send(i); }
    int from_a = 0, from_b = 0;
    for (int i = 0; i < 1000; ++i)
      corelet::select(corelet::on_recv(a, [&](int) { ++from_a; }), corelet::on_recv(b, [&](int) { ++from_b; }));
    EXPECT_GT(from_a, 300);
    EXPECT_GT(from_b, 300);
  });
}

TEST_F(SelectTest, OutsideATaskletOnlyTheDefaultFormWorks) {
  Channel<int> a(0);
  EXPECT_EQ(corelet::select(corelet::on_recv(a), corelet::on_default()), 1u);
  EXPECT_THROW(corelet::select(corelet::on_recv(a)), corelet::UsageError);
}

}  // namespace
