#pragma once
// Helpers shared by the cluster tests (cluster_test, mailbox_test,
// actor_test, shared_memory_test, stress/cluster_stress).
//
// Each test starts a cluster from the test process (ctest runs every test in
// a process of its own, so no thread exists yet). Worker 0 is a fork of the
// test process: an assertion failing inside main is printed by it, and main
// then returns status() == 1, which the test sees as run()'s result.

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cluster_support {

inline int status() { return ::testing::Test::HasFailure() ? 1 : 0; }

// kill_worker — SIGKILL worker w. Never kill(0, ...): that is the whole
// process group, the test runner included.
inline void kill_worker(int w) {
  const pid_t pid = corelet::worker_pid(w);
  if (pid <= 0) {
    ADD_FAILURE() << "worker " << w << " has no pid";
    return;
  }
  EXPECT_EQ(::kill(pid, SIGKILL), 0);
}

// wait_for_name — polls the registry until `name` is there.
inline corelet::Address wait_for_name(const std::string& name) {
  for (;;) {
    if (auto a = corelet::whereis(name)) return *a;
    corelet::this_tasklet::sleep_for(std::chrono::microseconds(100));
  }
}

// kill_during_map — runs pool.map(fn, inputs, 1) and SIGKILLs worker 1 after
// `delay`: the map must throw WorkerLost naming worker 1 and SIGKILL. Returns
// the milliseconds from the kill to the exception (-1 if the map outran it).
template <class R, class P, class A>
std::int64_t kill_during_map(corelet::Pool& pool, R (*fn)(P), const std::vector<A>& inputs,
                             std::chrono::microseconds delay) {
  std::chrono::steady_clock::time_point killed_at{};
  auto killer = corelet::spawn([&] {
    corelet::this_tasklet::sleep_for(delay);
    killed_at = std::chrono::steady_clock::now();
    kill_worker(1);
  });
  std::int64_t ms = -1;
  try {
    pool.map(fn, inputs, 1);
    ADD_FAILURE() << "the map outran the kill";
  } catch (const corelet::WorkerLost& e) {
    EXPECT_EQ(e.worker(), 1);
    EXPECT_EQ(e.signal(), SIGKILL);
    ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at).count();
  }
  killer.join();
  return ms;
}

}  // namespace cluster_support
