// Tests of mailboxes, send/broadcast and the name registry (mailbox.hpp).
// How a test runs a cluster: see cluster_support.hpp.

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include "cluster_support.hpp"

#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using corelet::Address;
using corelet::Config;

using namespace cluster_support;

struct Note {
  int from;
  std::string text;
  template <class A>
  void serialize(A& a) {
    a(from, text);
  }
};

// Receives `count` notes on a new mailbox registered as `name`, returns them joined.
std::string collect(std::string name, int count) {
  corelet::Mailbox<Note> inbox;
  EXPECT_TRUE(corelet::register_name(name, inbox.address()));
  std::string all;
  for (int i = 0; i < count; ++i) {
    Note n = inbox.recv();
    all += std::to_string(n.from) + ":" + n.text + ";";
  }
  corelet::unregister_name(name);
  return all;
}
CORELET_REMOTE(collect);

// Sends `count` notes to the mailbox registered as `name`.
int post(std::string name, int count) {
  const Address to = wait_for_name(name);
  for (int i = 0; i < count; ++i) corelet::send(to, Note{corelet::this_worker(), std::to_string(i)});
  return count;
}
CORELET_REMOTE(post);

TEST(Mailbox, MessagesArriveInOrderFromAnotherWorker) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           auto got = corelet::spawn_on(1, collect, std::string("box-a"), 5);
                           EXPECT_EQ(corelet::spawn_on(0, post, std::string("box-a"), 5).get(), 5);
                           EXPECT_EQ(got.get(), "0:0;0:1;0:2;0:3;0:4;");
                           return status();
                         }),
            0);
}

TEST(Mailbox, LocalSendAndManyProducers) {
  EXPECT_EQ(corelet::run(Config{.workers = 3},
                         [] {
                           corelet::Mailbox<Note> inbox;
                           EXPECT_TRUE(corelet::register_name("hub", inbox.address()));
                           auto a = corelet::spawn_on(1, post, std::string("hub"), 300);
                           auto b = corelet::spawn_on(2, post, std::string("hub"), 300);
                           auto c = corelet::spawn_on(0, post, std::string("hub"), 300);
                           int next[3] = {0, 0, 0};
                           for (int i = 0; i < 900; ++i) {
                             Note n = inbox.recv();
                             EXPECT_EQ(n.text, std::to_string(next[n.from])) << "per-sender order, from " << n.from;
                             ++next[n.from];
                           }
                           EXPECT_EQ(a.get() + b.get() + c.get(), 900);
                           EXPECT_FALSE(inbox.try_recv());
                           return status();
                         }),
            0);
}

// A trivially copyable message is kept as bytes in the mailbox's ring buffer,
// which doubles as messages pile up: every one must come out whole, in order.
struct Stamp {
  std::uint64_t seq;
  unsigned char fill[200];
};
int stamp(Address to, int count) {
  for (int i = 0; i < count; ++i) {
    Stamp s{static_cast<std::uint64_t>(i), {}};
    for (unsigned char& c : s.fill) c = static_cast<unsigned char>(i * 7 + (&c - s.fill));
    corelet::send(to, s);
  }
  return count;
}
CORELET_REMOTE(stamp);

TEST(Mailbox, APileOfMessagesComesOutWholeAndInOrder) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           corelet::Mailbox<Stamp> box;
                           corelet::Mailbox<int> local;
                           for (int i = 0; i < 100; ++i) corelet::send(local.address(), i);  // queued before any recv
                           EXPECT_EQ(local.size(), 100u);
                           for (int i = 0; i < 100; ++i) EXPECT_EQ(local.recv(), i);
                           auto sent = corelet::spawn_on(1, stamp, box.address(), 5000);
                           EXPECT_EQ(sent.get(), 5000);  // all sent before the first recv: they pile up here
                           std::uint64_t bad = 0;
                           for (int i = 0; i < 5000; ++i) {
                             const Stamp s = box.recv();
                             bad += s.seq != static_cast<std::uint64_t>(i);
                             for (std::size_t k = 0; k < sizeof s.fill; ++k)
                               bad += s.fill[k] != static_cast<unsigned char>(i * 7 + static_cast<int>(k));
                           }
                           EXPECT_EQ(bad, 0u);
                           EXPECT_FALSE(box.try_recv());
                           return status();
                         }),
            0);
}

// A receiver parked in recv() is handed each message straight from the ring
// (no queue between): a ping-pong keeps it parked at every arrival.
int stamp_when_acked(Address to, int count) {
  corelet::Mailbox<int> acks;
  EXPECT_TRUE(corelet::register_name("acks", acks.address()));
  for (int i = 0; i < count; ++i) {
    Stamp s{static_cast<std::uint64_t>(i), {}};
    for (unsigned char& c : s.fill) c = static_cast<unsigned char>(i * 7 + (&c - s.fill));
    corelet::send(to, s);
    if (acks.recv() != i) return -1;
  }
  corelet::unregister_name("acks");
  return count;
}
CORELET_REMOTE(stamp_when_acked);

TEST(Mailbox, AReceiverParkedInRecvGetsEachMessageWholeAndInOrder) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           corelet::Mailbox<Stamp> box;
                           auto sent = corelet::spawn_on(1, stamp_when_acked, box.address(), 300);
                           const Address acks = wait_for_name("acks");
                           std::uint64_t bad = 0;
                           for (int i = 0; i < 300; ++i) {
                             const Stamp s = box.recv();
                             bad += s.seq != static_cast<std::uint64_t>(i);
                             for (std::size_t k = 0; k < sizeof s.fill; ++k)
                               bad += s.fill[k] != static_cast<unsigned char>(i * 7 + static_cast<int>(k));
                             corelet::send(acks, i);
                           }
                           EXPECT_EQ(bad, 0u);
                           EXPECT_EQ(sent.get(), 300);
                           EXPECT_FALSE(box.try_recv());
                           return status();
                         }),
            0);
}

// Receivers in recv() and in recv_for() wait on one mailbox; one that timed
// out or was cancelled while parked loses no message: the next is queued.
TEST(Mailbox, TimedCancelledAndPlainReceiversShareItWithoutLosingAMessage) {
  EXPECT_EQ(corelet::run(Config{.workers = 1},
                         [] {
                           corelet::Mailbox<Stamp> box;
                           auto timed = corelet::spawn([&box] { return box.recv_for(1h)->seq; });
                           auto plain = corelet::spawn([&box] { return box.recv().seq; });
                           corelet::this_tasklet::yield();  // both park: timed first
                           corelet::send(box.address(), Stamp{10, {}});
                           corelet::send(box.address(), Stamp{11, {}});
                           EXPECT_EQ(timed.join(), 10u);
                           EXPECT_EQ(plain.join(), 11u);

                           auto cancelled = corelet::spawn([&box] { return box.recv().seq; });
                           corelet::this_tasklet::yield();  // parked in recv
                           cancelled.cancel();
                           EXPECT_THROW(cancelled.join(), corelet::Cancelled);
                           EXPECT_FALSE(box.recv_for(1ms));  // timed out in its turn
                           corelet::send(box.address(), Stamp{12, {}});
                           EXPECT_EQ(box.size(), 1u) << "queued: nobody waits";
                           EXPECT_EQ(box.recv().seq, 12u);

                           auto closing = corelet::spawn([&box] {
                             try {
                               box.recv();
                               return 1;
                             } catch (const corelet::ChannelClosed&) {
                               return 2;
                             }
                           });
                           corelet::this_tasklet::yield();
                           box.close();
                           EXPECT_EQ(closing.join(), 2);
                           return status();
                         }),
            0);
}

TEST(Mailbox, RecvTimesOutAndCloseEndsReceivers) {
  EXPECT_EQ(corelet::run(Config{.workers = 1},
                         [] {
                           corelet::Mailbox<int> box;
                           EXPECT_FALSE(box.recv_for(5ms));
                           corelet::send(box.address(), 7);
                           corelet::send(box.address(), 8);
                           box.close();
                           corelet::send(box.address(), 9);  // dropped: closed
                           EXPECT_EQ(box.recv(), 7);
                           EXPECT_EQ(box.recv(), 8);
                           EXPECT_THROW(box.recv(), corelet::ChannelClosed);
                           return status();
                         }),
            0);
}

TEST(Mailbox, DestroyingItWakesItsReceiversWithChannelClosed) {
  EXPECT_EQ(corelet::run(Config{.workers = 1},
                         [] {
                           corelet::Task<int> waiter;
                           {
                             corelet::Mailbox<int> box;
                             waiter = corelet::spawn([&box] {
                               try {
                                 box.recv();
                                 return 1;
                               } catch (const corelet::ChannelClosed&) {
                                 return 2;
                               }
                             });
                             corelet::this_tasklet::yield();  // the waiter parks in recv
                           }  // box destroyed here
                           EXPECT_EQ(waiter.join(), 2);
                           return status();
                         }),
            0);
}

int send_int_to(Address a) {
  corelet::send(a, 5);
  return 0;
}
CORELET_REMOTE(send_int_to);

TEST(Mailbox, AMessageOfTheWrongTypeIsAnErrorNotGarbage) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           corelet::Mailbox<std::string> box;
                           EXPECT_THROW(corelet::send(box.address(), 5), std::invalid_argument) << "local";
                           corelet::spawn_on(1, send_int_to, box.address()).get();
                           EXPECT_THROW(box.recv(), corelet::ipc::DecodeError) << "remote";
                           corelet::send(box.address(), std::string("fine"));
                           EXPECT_EQ(box.recv(), "fine");
                           return status();
                         }),
            0);
}

TEST(Mailbox, BroadcastReachesEveryMailbox) {
  EXPECT_EQ(corelet::run(Config{.workers = 3},
                         [] {
                           auto x = corelet::spawn_on(1, collect, std::string("b1"), 2);
                           auto y = corelet::spawn_on(2, collect, std::string("b2"), 2);
                           std::vector<Address> all{wait_for_name("b1"), wait_for_name("b2")};
                           EXPECT_TRUE(corelet::broadcast(all, Note{9, "hi"}).empty());
                           EXPECT_TRUE(corelet::broadcast(all, Note{9, "bye"}).empty());
                           EXPECT_EQ(x.get(), "9:hi;9:bye;");
                           EXPECT_EQ(y.get(), "9:hi;9:bye;");
                           return status();
                         }),
            0);
}

TEST(Registry, NamesAreUniqueAndFreedByUnregisterOrDeath) {
  EXPECT_EQ(corelet::run(Config{.workers = 2, .quiet = true},
                         [] {
                           corelet::Mailbox<int> box;
                           EXPECT_FALSE(corelet::whereis("x"));
                           EXPECT_TRUE(corelet::register_name("x", box.address()));
                           EXPECT_FALSE(corelet::register_name("x", box.address())) << "taken";
                           EXPECT_EQ(corelet::whereis("x"), box.address());
                           EXPECT_TRUE(corelet::unregister_name("x"));
                           EXPECT_FALSE(corelet::unregister_name("x"));
                           EXPECT_FALSE(corelet::whereis("x"));
                           EXPECT_THROW(corelet::register_name("", box.address()), std::invalid_argument);
                           EXPECT_THROW(corelet::register_name(std::string(56, 'n'), box.address()), std::invalid_argument);
                           // A name held by a worker that dies is free again, and its
                           // address fails with WorkerLost.
                           auto f = corelet::spawn_on(1, collect, std::string("doomed"), 1);
                           const Address doomed = wait_for_name("doomed");
                           kill_worker(1);
                           EXPECT_THROW(f.get(), corelet::WorkerLost);
                           EXPECT_FALSE(corelet::whereis("doomed"));
                           EXPECT_THROW(corelet::send(doomed, Note{0, "late"}), corelet::WorkerLost);
                           while (!corelet::worker_alive(1)) corelet::this_tasklet::sleep_for(1ms);
                           EXPECT_THROW(corelet::send(doomed, Note{0, "late"}), corelet::WorkerLost)
                               << "the address names the dead incarnation, not its replacement";
                           EXPECT_TRUE(corelet::register_name("doomed", box.address()));
                           return status();
                         }),
            0);
}

TEST(Registry, IsSharedByEveryWorker) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           auto got = corelet::spawn_on(1, collect, std::string("shared"), 1);
                           const Address a = wait_for_name("shared");
                           EXPECT_EQ(a.worker, 1);
                           corelet::send(a, Note{0, "x"});
                           EXPECT_EQ(got.get(), "0:x;");
                           return status();
                         }),
            0);
}

}  // namespace
