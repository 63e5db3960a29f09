// The reactor falls back to epoll when io_uring cannot be set up, whatever the
// reason; CORELET_IO=io_uring turns that into an error.
//
// Two ways to make io_uring fail here: a real seccomp filter that refuses
// io_uring_setup, as Docker's default profile does (in a forked child), and
// shims over liburing's setup and probe calls for the other reasons (ENOSYS,
// ENOMEM from the memlock limit, a missing opcode).

#include "io_support.hpp"

#include <dlfcn.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <stdexcept>

using namespace corelet_test;
namespace io = corelet::io;

namespace {
int g_fail_setup = 0;     // errno for io_uring_queue_init_params to fail with
int g_drop_opcode = -1;   // opcode for the probe to claim is missing
}  // namespace

// Shims: the executable's definitions win over liburing.so's.
extern "C" int io_uring_queue_init_params(unsigned entries, io_uring* ring, io_uring_params* p) {
  if (g_fail_setup) return -g_fail_setup;
  using Fn = int (*)(unsigned, io_uring*, io_uring_params*);
  static Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "io_uring_queue_init_params"));
  return real(entries, ring, p);
}

extern "C" io_uring_probe* io_uring_get_probe_ring(io_uring* ring) {
  using Fn = io_uring_probe* (*)(io_uring*);
  static Fn real = reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, "io_uring_get_probe_ring"));
  io_uring_probe* p = real(ring);
  if (p && g_drop_opcode >= 0 && g_drop_opcode < p->ops_len) p->ops[g_drop_opcode].flags &= ~IO_URING_OP_SUPPORTED;
  return p;
}

namespace {

class Fallback : public CoreletTest {
 protected:
  void SetUp() override {
    CoreletTest::SetUp();
    if (!uring_unavailable().empty()) GTEST_SKIP() << "io_uring is not available here: " << uring_unavailable();
  }
  void TearDown() override {
    g_fail_setup = 0;
    g_drop_opcode = -1;
    ::unsetenv("CORELET_IO");
    CoreletTest::TearDown();
  }


 public:
  // Runs a small echo over a socket pair and returns the backend and reason.
  static std::pair<io::Backend, std::string> run_echo() {
    std::pair<io::Backend, std::string> out;
    corelet::run([&] {
      out = {io::backend(), io::fallback_reason()};
      auto [a, b] = corelet::UnixStream::pair();
      auto echo = corelet::spawn([&b] {
        char buf[16];
        const std::size_t n = b.read(buf, sizeof buf);
        b.write_all(buf, n);
      });
      a.write_all("fallback");
      char buf[8];
      EXPECT_TRUE(a.read_exact(buf, 8));
      echo.join();
    });
    return out;
  }
};

struct Reason {
  int err;
  const char* text;
};

}  // namespace

class FallbackReason : public Fallback, public ::testing::WithParamInterface<Reason> {};

TEST_P(FallbackReason, AutoFallsBackToEpollAndSaysWhy) {
  g_fail_setup = GetParam().err;
  auto [backend, why] = run_echo();
  EXPECT_EQ(backend, io::Backend::epoll);
  EXPECT_NE(why.find("io_uring_queue_init"), std::string::npos) << why;
  EXPECT_NE(why.find(GetParam().text), std::string::npos) << why;
}

TEST_P(FallbackReason, ForcedIoUringIsAnErrorWithTheReason) {
  g_fail_setup = GetParam().err;
  ::setenv("CORELET_IO", "io_uring", 1);
  try {
    corelet::run([] { io::backend(); });
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("CORELET_IO=io_uring"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(GetParam().text), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Errors, FallbackReason,
                         ::testing::Values(Reason{EPERM, "Operation not permitted"},
                                           Reason{ENOSYS, "Function not implemented"},
                                           Reason{ENOMEM, "Cannot allocate memory"},
                                           Reason{EINVAL, "Invalid argument"}),
                         [](const auto& i) { return std::string(strerrorname_np(i.param.err)); });

TEST_F(Fallback, MissingOpcodeFallsBack) {
  g_drop_opcode = IORING_OP_SENDMSG;
  auto [backend, why] = run_echo();
  EXPECT_EQ(backend, io::Backend::epoll);
  EXPECT_NE(why.find("IORING_OP_SENDMSG"), std::string::npos) << why;
}

TEST_F(Fallback, ForcedEpollNeedsNoReason) {
  ::setenv("CORELET_IO", "epoll", 1);
  auto [backend, why] = run_echo();
  EXPECT_EQ(backend, io::Backend::epoll);
  EXPECT_EQ(why, "");
}

// The real thing: a seccomp filter that makes io_uring_setup fail with EPERM,
// the way Docker's and containerd's default profiles do. In a child process,
// since a filter cannot be removed.
[[noreturn]] void seccomp_child() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(10);
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) ::_exit(11);
  auto [backend, why] = Fallback::run_echo();
  if (backend != io::Backend::epoll) ::_exit(12);
  if (why.find("Operation not permitted") == std::string::npos) ::_exit(13);
  ::_exit(0);
}

TEST_F(Fallback, SeccompRefusingIoUringSetup) {
  EXPECT_EXIT(seccomp_child(), ::testing::ExitedWithCode(0), "");
}
