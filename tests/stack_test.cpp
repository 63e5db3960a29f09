// corelet/core/stack.hpp and overflow.hpp: guarded pooled stacks, the overflow report.
#include "support.hpp"

#include <corelet/core/overflow.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <string>

using namespace corelet_test;
using corelet::core::Stack;
using corelet::core::StackPool;

namespace {

class StackTest : public CoreletTest {};

TEST_F(StackTest, RoundsToPagesAndRejectsBadSizes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(StackPool::round_size(corelet::core::kMinStackSize + 1), corelet::core::kMinStackSize + page);
  EXPECT_THROW(StackPool::round_size(0), std::invalid_argument);
  EXPECT_THROW(StackPool::round_size(corelet::core::kMinStackSize - 1), std::invalid_argument);
  EXPECT_THROW(StackPool::round_size(corelet::core::kMaxStackSize + 1), std::invalid_argument);
}

TEST_F(StackTest, ReusesReleasedStacksMostRecentFirst) {
  StackPool pool;
  const std::size_t size = StackPool::round_size(64 * 1024);
  Stack a = pool.allocate(size);
  Stack b = pool.allocate(size);
  EXPECT_NE(a.base, b.base);
  EXPECT_EQ(pool.stacks_in_use(), 2u);
  pool.release(a);
  Stack c = pool.allocate(size);
  EXPECT_EQ(c.base, a.base);
  pool.release(b);
  pool.release(c);
  EXPECT_EQ(pool.stacks_in_use(), 0u);
}

TEST_F(StackTest, StacksDoNotOverlapAndAreWritable) {
  StackPool pool;
  const std::size_t size = StackPool::round_size(16 * 1024);
  std::set<std::uintptr_t> bases;
  std::vector<Stack> all;
  for (int i = 0; i < 600; ++i) {  // spans several slabs
    Stack s = pool.allocate(size);
    std::memset(reinterpret_cast<void*>(s.base), 0xab, s.size);
    all.push_back(s);
    bases.insert(s.base);
  }
  EXPECT_EQ(bases.size(), all.size());
  for (std::size_t i = 1; i < all.size(); ++i) {
    auto it = bases.find(all[i].base);
    if (it != bases.begin()) {
      EXPECT_GE(all[i].base - *std::prev(it), size + corelet::core::kGuardSize);
    }
  }
  for (auto& s : all) pool.release(s);
}

TEST_F(StackTest, TrimKeepsTheHotStacks) {
  StackPool pool(2);
  const std::size_t size = StackPool::round_size(16 * 1024);
  std::vector<Stack> all;
  for (int i = 0; i < 10; ++i) all.push_back(pool.allocate(size));
  for (auto& s : all) pool.release(s);
  EXPECT_EQ(pool.trim(), 8u);
  EXPECT_EQ(pool.trim(), 0u);  // already trimmed
}

TEST_F(StackTest, OverflowMessageFormat) {
  corelet::core::RunningStack r;
  r.stack = Stack{0x10000, 64 * 1024};
  r.name = "parser";
  r.id = 17;
  char buf[256];
  corelet::core::format_overflow_message(r, buf, sizeof buf);
  EXPECT_STREQ(buf, "corelet: tasklet \"parser\" (#17) overflowed its 64 KiB stack\n");
}

// Recursion that cannot be optimised away.
int __attribute__((noinline)) recurse(int depth) {
  volatile char pad[512];
  pad[0] = static_cast<char>(depth);
  return depth <= 0 ? pad[0] : recurse(depth - 1) + pad[0];
}

TEST(StackDeathTest, OverflowIsNamedBeforeAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(corelet::run([] {
                 auto t = corelet::spawn({.name = "deep", .stack_size = 32 * 1024},
                                         [] { return recurse(1 << 20); });
                 t.join();
               }),
               "corelet: tasklet \"deep\" \\(#[0-9]+\\) overflowed its 32 KiB stack");
}

TEST(StackDeathTest, OtherSegfaultsAreNotReportedAsOverflow) {
  // A fault outside any guard goes to the previous handler (the default action,
  // or a sanitizer's): the process dies abnormally and says nothing of overflow.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    corelet::run([page] {
      auto t = corelet::spawn({.name = "wild"}, [page] { return *static_cast<volatile int*>(page); });
      t.join();
    });
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0)) << status;
  EXPECT_EQ(err.find("overflowed"), std::string::npos) << err;
}

}  // namespace
