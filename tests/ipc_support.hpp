#pragma once
// Test support for the cross-process primitives: forked children and their ends.

#include "io_support.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <string>

namespace corelet_test {

// fork_child — runs f in a forked child, which exits with f's return value
// (an int), 99 if f threw. f must not use gtest assertions (they would be the
// child's): return a code instead.
template <class F>
pid_t fork_child(F&& f) {
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = f();
    } catch (...) {
    }
    ::_exit(rc);
  }
  return pid;
}

// The child's exit status as text ("exit 0", "signal 9"), after waiting for it.
inline std::string wait_child(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return "waitpid failed";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace corelet_test
