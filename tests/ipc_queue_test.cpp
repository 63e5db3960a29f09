// corelet::ipc::Queue: byte messages between forked processes, from threads
// and tasklets on each reactor backend; bounds, close, join, and a producer
// killed in the middle of a put.

#include "ipc_support.hpp"

#include <corelet/ipc/mapping.hpp>
#include <corelet/ipc/queue.hpp>
#include <corelet/ipc/sync.hpp>
#include <corelet/sched/task.hpp>
#include <corelet/sched/timer.hpp>

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <system_error>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using corelet::Clock;
using corelet::ipc::Queue;
using corelet::ipc::Shared;
using corelet_test::fork_child;
using corelet_test::wait_child;

namespace {

class IpcQueue : public corelet_test::IoTest {};
CORELET_IO_BACKENDS(IpcQueue);

Clock::time_point in(std::chrono::milliseconds d) { return Clock::now() + d; }

std::string text(const Queue::Message& m) {
  return std::string(reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size());
}

// A message of `len` bytes that encodes its sequence number: seq, then bytes
// derived from it.
std::vector<unsigned char> make_msg(std::uint32_t seq, std::size_t len) {
  std::vector<unsigned char> v(std::max<std::size_t>(len, 4));
  std::memcpy(v.data(), &seq, 4);
  for (std::size_t i = 4; i < v.size(); ++i) v[i] = static_cast<unsigned char>(seq * 31 + i);
  return v;
}
bool check_msg(const Queue::Message& m, std::uint32_t* seq) {
  if (m.bytes.size() < 4) return false;
  std::memcpy(seq, m.bytes.data(), 4);
  for (std::size_t i = 4; i < m.bytes.size(); ++i)
    if (m.bytes[i] != static_cast<std::byte>(static_cast<unsigned char>(*seq * 31 + i))) return false;
  return true;
}

TEST(IpcQueueBasics, FifoKindsWrapAroundAndBounds) {
  auto q = Shared<Queue>::make(256u, 0u);
  EXPECT_THROW(Queue(10), std::invalid_argument);
  EXPECT_TRUE(q->empty());
  EXPECT_FALSE(q->try_get().has_value());
  // Messages of many sizes through a small ring: every one wraps sometime.
  for (std::uint32_t i = 0; i < 500; ++i) {
    const auto m = make_msg(i, 4 + (i * 7) % 120);
    ASSERT_TRUE(q->try_put(m.data(), m.size(), static_cast<std::uint8_t>(i % 3)));
    auto got = q->try_get();
    ASSERT_TRUE(got.has_value());
    std::uint32_t seq = 0;
    ASSERT_TRUE(check_msg(*got, &seq));
    EXPECT_EQ(seq, i);
    EXPECT_EQ(got->kind, i % 3);
  }
  // Fill it: the ring's bytes bound.
  int n = 0;
  while (q->try_put("0123456789", 10)) ++n;
  EXPECT_EQ(n, 256 / (10 + static_cast<int>(Queue::kFrameBytes)));
  EXPECT_FALSE(q->put("x", 1, in(10ms)));  // full: times out
  EXPECT_EQ(q->size(), static_cast<std::size_t>(n));
  // A message that can never fit.
  std::string big(300, 'b');
  EXPECT_THROW(q->put(big), std::length_error);
  try {
    q->put(big);
  } catch (const std::length_error& e) {
    EXPECT_NE(std::string(e.what()).find("300 bytes"), std::string::npos) << e.what();
  }
}

// A drained queue writes its next message at the ring's start: one message
// at a time never wraps, however many go through.
TEST(IpcQueueBasics, ADrainedQueueStartsAgainAtTheRingsStart) {
  auto q = Shared<Queue>::make(256u, 0u);
  for (std::uint32_t i = 0; i < 50; ++i) {
    const auto m = make_msg(i, 100);
    ASSERT_TRUE(q->try_put(m.data(), m.size()));
    bool wrapped = true;
    ASSERT_TRUE(q->get_with([&](std::uint8_t, std::span<const std::byte>, std::span<const std::byte> b) {
      wrapped = !b.empty();
    }));
    EXPECT_FALSE(wrapped) << "message " << i;
  }
}

// Pages a large message touched beyond the first kKeepBytes of the ring are
// given back once the queue drains; the queue works on after it, the freed
// part reading as new.
TEST(IpcQueueBasics, ADrainedQueueGivesBackThePagesOfALargeMessage) {
  const std::size_t cap = 4 * Queue::kKeepBytes;
  auto q = Shared<Queue>::make(cap, 0u);
  const long page = ::sysconf(_SC_PAGESIZE);
  auto resident = [&] {  // pages of the queue's mapping in memory now
    const std::size_t bytes = Queue::footprint(cap);
    std::vector<unsigned char> v((bytes + page - 1) / page);
    auto* base = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(&*q) & ~static_cast<std::uintptr_t>(page - 1));
    EXPECT_EQ(::mincore(base, bytes, v.data()), 0);
    return std::count_if(v.begin(), v.end(), [](unsigned char c) { return c & 1; });
  };
  const std::size_t before = resident();
  const auto big = make_msg(7, 3 * Queue::kKeepBytes);
  ASSERT_TRUE(q->try_put(big.data(), big.size()));
  const std::size_t full = resident();
  EXPECT_GE(full, before + big.size() / page);
  auto got = q->try_get();
  ASSERT_TRUE(got.has_value());
  std::uint32_t seq = 0;
  EXPECT_TRUE(check_msg(*got, &seq));
  EXPECT_EQ(seq, 7u);
  EXPECT_LE(resident(), before + Queue::kKeepBytes / page + 2);
  for (std::uint32_t i = 0; i < 3; ++i) {  // and on: large and small again
    const auto m = make_msg(i, i == 1 ? big.size() : 1000);
    ASSERT_TRUE(q->try_put(m.data(), m.size()));
    auto g = q->try_get();
    ASSERT_TRUE(g.has_value());
    ASSERT_TRUE(check_msg(*g, &seq));
    EXPECT_EQ(seq, i);
  }
}

// A shareable queue reached by its descriptor, as by a process that was not
// forked from the maker: a second mapping of the memfd (at another address)
// sees the same queue, and a child that maps it only after fork (the
// descriptor, not the inherited mapping) talks with the parent.
TEST(IpcQueueBasics, AShareableQueueIsReachedThroughItsDescriptor) {
  auto q = Shared<Queue>::make_shareable(4096u, 0u);
  ASSERT_GE(q.mapping()->fd(), 0);
  auto other = Shared<Queue>::attach(q.mapping()->fd());
  EXPECT_NE(static_cast<void*>(other.get()), static_cast<void*>(q.get()));
  EXPECT_EQ(other->capacity(), 4096u);
  ASSERT_TRUE(q->try_put("ping", 4, 3));
  auto got = other->try_get();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(text(*got), "ping");
  EXPECT_EQ(got->kind, 3);
  EXPECT_EQ(Shared<Queue>::make(64u).mapping()->fd(), -1);  // anonymous: nothing to pass

  auto up = Shared<Queue>::make_shareable(4096u, 0u);  // child -> parent; q: parent -> child
  const int down_fd = q.mapping()->fd(), up_fd = up.mapping()->fd();
  const pid_t child = fork_child([down_fd, up_fd] {
    auto down = Shared<Queue>::attach(down_fd);  // mappings of its own
    auto back = Shared<Queue>::attach(up_fd);
    auto m = down->get(Clock::now() + 30s);
    if (!m || text(*m) != "to child") return 1;
    back->put("to parent");
    return 0;
  });
  q->put("to child");
  auto back = up->get(Clock::now() + 30s);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(text(*back), "to parent");
  EXPECT_EQ(wait_child(child), "exit 0");
  EXPECT_THROW(Shared<Queue>::attach(-1), std::system_error);  // not a descriptor
}

TEST(IpcQueueBasics, MaxsizeCloseAndJoin) {
  auto q = Shared<Queue>::make(4096u, 2u);
  EXPECT_TRUE(q->try_put("a", 1));
  EXPECT_TRUE(q->try_put("b", 1));
  EXPECT_TRUE(q->full());
  EXPECT_FALSE(q->try_put("c", 1));
  EXPECT_EQ(q->unfinished(), 2);
  EXPECT_FALSE(q->join(in(10ms)));
  EXPECT_EQ(text(*q->get()), "a");
  q->task_done();
  q->close();
  EXPECT_TRUE(q->closed());
  EXPECT_THROW(q->put("d"), corelet::QueueShutDown);
  EXPECT_EQ(text(*q->get()), "b");  // what is there drains first
  EXPECT_THROW(q->get(), corelet::QueueShutDown);
  EXPECT_TRUE(q->wait_readable(in(10ms)));  // closed counts as readable
  q->task_done();
  EXPECT_TRUE(q->join(in(10ms)));
  EXPECT_THROW(q->task_done(), corelet::UsageError);
}

TEST(IpcQueueBasics, LastWriterClosesIt) {
  auto s = Shared<Queue>::make(4096u);
  s->add_writer();
  s->close_writer();
  EXPECT_FALSE(s->closed());
  s->close_writer();
  EXPECT_TRUE(s->closed());
}

// One producer process (two threads) and consumer tasklets: every message
// arrives once, intact.
TEST_P(IpcQueue, ProducerProcessConsumerTasklets) {
  auto q = Shared<Queue>::make(8192u);
  constexpr std::uint32_t kPerThread = 3000;
  const pid_t kid = fork_child([&] {
    std::vector<std::thread> ts;
    for (std::uint32_t t = 0; t < 2; ++t)
      ts.emplace_back([&, t] {
        for (std::uint32_t i = 0; i < kPerThread; ++i) {
          const auto m = make_msg(t * kPerThread + i, 8 + i % 700);
          q->put(m.data(), m.size());
        }
      });
    for (auto& t : ts) t.join();
    q->close();
    return 0;
  });
  std::vector<int> seen(2 * kPerThread, 0);
  int bad = 0;
  run_io([&] {
    std::vector<corelet::Task<void>> ts;
    for (int c = 0; c < 3; ++c)
      ts.push_back(corelet::spawn([&] {
        try {
          for (;;) {
            auto m = q->get(in(60s));
            if (!m) {
              ++bad;
              return;
            }
            std::uint32_t seq = 0;
            if (!check_msg(*m, &seq) || seq >= seen.size()) ++bad;
            else ++seen[seq];
          }
        } catch (const corelet::QueueShutDown&) {
        }
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(wait_child(kid), "exit 0");
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(seen.size()));
}

// Tasklets put into a small queue that a thread of another process drains
// slowly: the putters park while it is full, and a cancelled putter puts nothing.
TEST_P(IpcQueue, FullQueueParksPuttersAndCancelPutsNothing) {
  auto q = Shared<Queue>::make(128u);
  auto go = Shared<corelet::ipc::Event>::make();
  constexpr std::uint32_t kMsgs = 400;
  const pid_t kid = fork_child([&] {
    if (!go->wait(in(60s))) return 2;
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < kMsgs; ++i) {
      auto m = q->get(in(60s));
      if (!m) return 3;
      std::uint32_t seq = 0;
      if (!check_msg(*m, &seq)) return 4;
      sum += seq;
    }
    if (q->try_get()) return 5;  // the cancelled put left nothing behind
    return sum == std::uint64_t{kMsgs} * (kMsgs - 1) / 2 ? 0 : 6;
  });
  run_io([&] {
    auto blocked = corelet::spawn([&] {
      while (q->try_put("fill", 4)) {
      }
      q->put("never", 5);  // parks: full and nobody reads yet
    });
    corelet::this_tasklet::yield();
    blocked.cancel();
    EXPECT_THROW(blocked.join(), corelet::Cancelled);
    while (auto m = q->try_get()) {
    }  // empty it again
    std::vector<corelet::Task<void>> ts;
    for (std::uint32_t t = 0; t < 4; ++t)
      ts.push_back(corelet::spawn([&, t] {
        for (std::uint32_t i = t; i < kMsgs; i += 4) {
          const auto m = make_msg(i, 20);
          EXPECT_TRUE(q->put(m.data(), m.size(), in(60s)));
        }
      }));
    go->set();
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(wait_child(kid), "exit 0");
}

TEST_P(IpcQueue, JoinWaitsForTaskDoneInAnotherProcess) {
  auto q = Shared<Queue>::make(4096u);
  for (int i = 0; i < 10; ++i) q->put("job", 3);
  const pid_t kid = fork_child([&] {
    for (int i = 0; i < 10; ++i) {
      if (!q->get(in(60s))) return 2;
      q->task_done();
    }
    return 0;
  });
  run_io([&] { EXPECT_TRUE(q->join(in(60s))); });
  EXPECT_EQ(q->unfinished(), 0);
  EXPECT_EQ(wait_child(kid), "exit 0");
}

TEST_P(IpcQueue, WaitReadableTakesNothing) {
  auto q = Shared<Queue>::make(4096u);
  run_io([&] {
    EXPECT_FALSE(q->wait_readable(in(10ms)));
    auto poller = corelet::spawn([&] { return q->wait_readable(in(60s)); });
    corelet::this_tasklet::yield();
    q->put("one");
    EXPECT_TRUE(poller.join());
    EXPECT_EQ(q->size(), 1u);
    // A poller and a getter waiting together: a put wakes both (the poller
    // must not take the getter's wake). Two messages, so that the poller
    // still finds one after the getter took its own.
    EXPECT_EQ(text(*q->get()), "one");
    auto poller2 = corelet::spawn([&] { return q->wait_readable(in(60s)); });
    auto getter = corelet::spawn([&] { return q->get(in(60s)); });
    corelet::this_tasklet::yield();
    q->put("two");
    q->put("three");
    EXPECT_TRUE(poller2.join());
    auto m = getter.join();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(text(*m), "two");
  });
}

// A producer SIGKILLed while it copies a large message into the ring (it
// holds the queue's lock then): the queue stays consistent — the message is
// whole or absent — and serves the next put and get.
TEST(IpcQueueCrash, ProducerKilledInTheMiddleOfAPut) {
  constexpr std::size_t kBig = 64u << 20;
  auto q = Shared<Queue>::make(kBig + 1024, 0u);
  auto started = Shared<corelet::ipc::Event>::make();
  const pid_t kid = fork_child([&] {
    std::vector<char> big(kBig, 'x');
    for (;;) {
      started->set();
      q->put(big.data(), big.size());
      (void)q->get();  // take it back out and go again, until killed
    }
    return 0;
  });
  ASSERT_TRUE(started->wait(in(30s)));
  std::this_thread::sleep_for(3ms);
  ::kill(kid, SIGKILL);
  EXPECT_EQ(wait_child(kid), "signal 9");
  // Whatever the child managed: whole big messages only.
  while (auto m = q->try_get()) {
    ASSERT_EQ(m->bytes.size(), kBig);
    EXPECT_EQ(m->bytes.front(), std::byte{'x'});
    EXPECT_EQ(m->bytes.back(), std::byte{'x'});
  }
  q->put("after");
  auto last = q->get(in(30s));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(text(*last), "after");
}

}  // namespace
