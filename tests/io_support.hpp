#pragma once
// Test support for the I/O suites: every test runs once per reactor backend.

#include "support.hpp"

#include <dirent.h>
#include <liburing.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

namespace corelet_test {

// Why io_uring cannot be set up here ("" if it can): containers with the
// default seccomp profile refuse it; the io_uring half of the suite is skipped
// there, with this reason, and the epoll half still runs.
inline std::string uring_unavailable() {
  static const std::string why = [] {
    io_uring ring;
    const int rc = io_uring_queue_init(2, &ring, 0);
    if (rc < 0) return std::string("io_uring_queue_init: ") + std::strerror(-rc);
    io_uring_queue_exit(&ring);
    return std::string();
  }();
  return why;
}

inline const char* backend_env(corelet::io::Backend b) { return b == corelet::io::Backend::io_uring ? "io_uring" : "epoll"; }

// Parameterised over the backend: CORELET_IO is set before each run(), and
// run_io checks that the reactor really is the one asked for.
class IoTest : public CoreletTestP<corelet::io::Backend> {
 protected:
  void SetUp() override {
    CoreletTestP::SetUp();
    if (GetParam() == corelet::io::Backend::io_uring && !uring_unavailable().empty())
      GTEST_SKIP() << "io_uring is not available here: " << uring_unavailable();
    ::setenv("CORELET_IO", backend_env(GetParam()), 1);
  }
  void TearDown() override {
    ::unsetenv("CORELET_IO");
    CoreletTestP::TearDown();
  }
  template <class F>
  void run_io(F&& f) {
    corelet::run([&] {
      ASSERT_EQ(corelet::io::backend(), GetParam());
      f();
    });
  }
};

inline std::string backend_param_name(const ::testing::TestParamInfo<corelet::io::Backend>& info) {
  return backend_env(info.param);
}

#define CORELET_IO_BACKENDS(Suite)                                                               \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite,                                                      \
                           ::testing::Values(corelet::io::Backend::io_uring, corelet::io::Backend::epoll), \
                           corelet_test::backend_param_name)

// A path in /tmp unique to this process and tag.
inline std::string temp_path(const std::string& tag) {
  return "/tmp/corelet_test_" + std::to_string(::getpid()) + "_" + tag;
}

// Open fds of this process.
inline int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n - 1;  // the directory's own fd
}

// Runs f and expects std::system_error with errno `err` whose what() contains `name`.
template <class F>
void expect_errno(F&& f, int err, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "no std::system_error; expected errno " << err << " naming " << name;
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), err) << "what(): " << e.what();
    EXPECT_EQ(e.code().category(), std::system_category()) << "what(): " << e.what();
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << "what(): " << e.what();
  }
}

}  // namespace corelet_test
