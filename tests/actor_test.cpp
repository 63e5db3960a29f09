// Tests of actors (actor.hpp). How a test runs a cluster: see cluster_support.hpp.

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include "cluster_support.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using corelet::Config;

using namespace cluster_support;

struct Account {
  Account(std::string who, long opening) : owner(std::move(who)), balance(opening) {
    if (this->balance < 0) throw std::invalid_argument("negative opening balance");
  }
  long deposit(long amount) {
    // Parks in the middle: a second call must still wait for this one.
    const long before = balance;
    corelet::this_tasklet::sleep_for(1ms);
    balance = before + amount;
    return balance;
  }
  long withdraw(long amount) {
    if (amount > balance) throw std::runtime_error("insufficient funds");
    return balance -= amount;
  }
  std::string describe() const { return owner + ":" + std::to_string(balance) + "@" + std::to_string(corelet::this_worker()); }
  int pid() const { return ::getpid(); }
  std::string owner;
  long balance;
};
CORELET_ACTOR_METHOD(Account, deposit);
CORELET_ACTOR_METHOD(Account, withdraw);
CORELET_ACTOR_METHOD(Account, describe);
CORELET_ACTOR_METHOD(Account, pid);

struct Unregistered {
  int get() { return 1; }
};

// An actor proxy that travels in a message and is used on arrival.
long deposit_via(corelet::Actor<Account> a, long amount) { return a.call<&Account::deposit>(amount).get(); }
CORELET_REMOTE(deposit_via);

TEST(Actor, LivesOnItsWorkerAndServesCalls) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           auto acct = corelet::spawn_actor<Account>(1, std::string("ann"), 100L);
                           EXPECT_EQ(acct.worker(), 1);
                           EXPECT_EQ(acct.call<&Account::pid>().get(), corelet::worker_pid(1));
                           EXPECT_EQ(acct.call<&Account::deposit>(50L).get(), 150);
                           EXPECT_EQ(acct.call<&Account::describe>().get(), "ann:150@1");
                           auto local = corelet::spawn_actor<Account>(0, std::string("bob"), 1L);
                           EXPECT_EQ(local.call<&Account::describe>().get(), "bob:1@0");
                           return status();
                         }),
            0);
}

TEST(Actor, CallsRunOneAtATimeInArrivalOrder) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           auto acct = corelet::spawn_actor<Account>(1, std::string("c"), 0L);
                           std::vector<corelet::Future<long>> fs;
                           for (int i = 0; i < 20; ++i) fs.push_back(acct.call<&Account::deposit>(1L));
                           for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].get(), i + 1);
                           // From another worker too: the proxy travels in a message.
                           EXPECT_EQ(corelet::spawn_on(1, deposit_via, acct, 100L).get(), 120);
                           EXPECT_EQ(corelet::spawn_on(0, deposit_via, acct, 1L).get(), 121);
                           return status();
                         }),
            0);
}

TEST(Actor, ExceptionsAndMisuseAreReported) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           try {
                             corelet::spawn_actor<Account>(1, std::string("d"), -5L);
                             ADD_FAILURE() << "no exception";
                           } catch (const corelet::RemoteError& e) {
                             EXPECT_EQ(e.type_name(), "std::invalid_argument");
                             EXPECT_EQ(e.message(), "negative opening balance");
                           }
                           auto acct = corelet::spawn_actor<Account>(1, std::string("e"), 10L);
                           try {
                             acct.call<&Account::withdraw>(11L).get();
                             ADD_FAILURE() << "no exception";
                           } catch (const corelet::RemoteError& e) {
                             EXPECT_EQ(e.message(), "insufficient funds");
                           }
                           EXPECT_EQ(acct.call<&Account::withdraw>(4L).get(), 6) << "the actor goes on after a throw";
                           auto other = corelet::spawn_actor<Unregistered>(1);
                           EXPECT_THROW(other.call<&Unregistered::get>(), corelet::UsageError);
                           corelet::Actor<Account> empty;
                           EXPECT_THROW(empty.call<&Account::pid>(), corelet::UsageError);
                           // stop: calls queued before it finish, calls queued behind it fail.
                           auto last = acct.call<&Account::deposit>(1L);  // parks inside: the others queue
                           auto stopped = acct.stop();
                           auto behind = acct.call<&Account::withdraw>(1L);
                           stopped.get();
                           EXPECT_EQ(last.get(), 7);
                           EXPECT_THROW(behind.get(), corelet::RemoteError);
                           EXPECT_THROW(acct.call<&Account::pid>().get(), corelet::RemoteError);
                           return status();
                         }),
            0);
}

TEST(Actor, DiesWithItsWorker) {
  EXPECT_EQ(corelet::run(Config{.workers = 2, .quiet = true},
                         [] {
                           auto acct = corelet::spawn_actor<Account>(1, std::string("f"), 1L);
                           const pid_t pid = corelet::worker_pid(1);
                           if (pid <= 0) return 1;
                           ::kill(pid, SIGKILL);
                           EXPECT_THROW(acct.call<&Account::deposit>(1L).get(), corelet::WorkerLost);
                           while (!corelet::worker_alive(1)) corelet::this_tasklet::sleep_for(1ms);
                           EXPECT_THROW(acct.call<&Account::deposit>(1L), corelet::WorkerLost)
                               << "the proxy names the dead incarnation";
                           auto again = corelet::spawn_actor<Account>(1, std::string("g"), 2L);
                           EXPECT_EQ(again.call<&Account::withdraw>(1L).get(), 1);
                           return status();
                         }),
            0);
}

}  // namespace
