// Tests of SharedValue / SharedArray / SharedLock (shared_memory.hpp).

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include "cluster_support.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace {

using corelet::Config;

using namespace cluster_support;

// Adds 1 to a[i] `times` times under the lock, yielding inside the critical
// section so that the other workers really contend.
long bump(corelet::SharedArray<long> a, int i, int times) {
  for (int k = 0; k < times; ++k) {
    std::lock_guard<corelet::SharedLock> g(a.get_lock());
    const long v = a[static_cast<std::size_t>(i)];
    if (k % 16 == 0) corelet::this_tasklet::yield();
    a[static_cast<std::size_t>(i)] = v + 1;
  }
  return a[static_cast<std::size_t>(i)];
}
CORELET_REMOTE(bump);

long read_value(corelet::SharedValue<long> v) { return v.load(); }
CORELET_REMOTE(read_value);

TEST(SharedMemory, MadeBeforeRunIsSeenByEveryWorkerAndTheLockExcludes) {
  corelet::SharedArray<long> counts(3);
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [counts] {
                           std::vector<corelet::Future<long>> fs;
                           for (int w = 0; w < 2; ++w)
                             for (int t = 0; t < 3; ++t) fs.push_back(corelet::spawn_on(w, bump, counts, 1, 2000));
                           for (auto& f : fs) f.get();
                           EXPECT_EQ(counts[1], 12000) << "no increment lost: the lock excluded";
                           EXPECT_EQ(counts[0], 0);
                           return status();
                         }),
            0);
  EXPECT_EQ(counts[1], 12000) << "the supervisor sees the workers' writes";
  counts.destroy();
}

TEST(SharedMemory, MadeInAWorkerTravelsInAMessage) {
  EXPECT_EQ(corelet::run(Config{.workers = 2},
                         [] {
                           corelet::SharedValue<long> v(41);
                           v.store(42);
                           EXPECT_EQ(corelet::spawn_on(1, read_value, v).get(), 42);
                           v.with_lock([](long& x) { x += 8; });
                           EXPECT_EQ(corelet::spawn_on(1, read_value, v).get(), 50);
                           corelet::SharedArray<int> raw(1000, false);
                           EXPECT_FALSE(raw.has_lock());
                           EXPECT_THROW(raw.get_lock(), corelet::UsageError);
                           EXPECT_THROW(raw.at(1000), std::out_of_range);
                           for (int x : raw) EXPECT_EQ(x, 0);
                           raw.destroy();
                           v.destroy();
                           return status();
                         }),
            0);
  EXPECT_THROW(corelet::SharedArray<int>(0), std::invalid_argument);
}

TEST(SharedMemory, DestroyedMemoryIsReused) {
  corelet::SharedArray<char> a(1000);
  char* first = a.data();
  a.destroy();
  EXPECT_FALSE(a.valid());
  corelet::SharedArray<char> b(900);
  EXPECT_EQ(b.data(), first) << "same size class: the freed block comes back";
  EXPECT_EQ(b[0], 0) << "zeroed";
  b.destroy();
}

TEST(SharedMemory, ALockWhoseHolderDiedCanBeTakenAgain) {
  corelet::SharedValue<int> v(1);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    v.get_lock().lock();
    *v.get() = 2;
    ::_exit(0);  // dies holding the lock
  }
  int st = 0;
  ::waitpid(child, &st, 0);
  EXPECT_TRUE(v.get_lock().try_lock()) << "EOWNERDEAD: ours now";
  v.get_lock().unlock();
  EXPECT_EQ(v.load(), 2);
  v.destroy();
}

}  // namespace
