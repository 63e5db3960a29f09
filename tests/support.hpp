#pragma once
// Shared test support: a fixture whose TearDown checks that no tasklet control
// block outlived the test (so every test is also a leak check), and helpers.

#include <corelet/corelet.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace corelet_test {

using namespace std::chrono_literals;

class CoreletTest : public ::testing::Test {
 protected:
  void SetUp() override { before_ = corelet::detail::tasklet_objects_alive(); }
  void TearDown() override {
    EXPECT_EQ(corelet::detail::tasklet_objects_alive(), before_) << "tasklet control blocks leaked";
  }

 private:
  std::size_t before_ = 0;
};

template <class Param>
class CoreletTestP : public CoreletTest, public ::testing::WithParamInterface<Param> {};

// Yields n times: lets every other ready tasklet make n steps of progress.
inline void yield_n(int n) {
  for (int i = 0; i < n; ++i) corelet::this_tasklet::yield();
}

}  // namespace corelet_test
