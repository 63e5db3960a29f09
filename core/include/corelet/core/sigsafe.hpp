#pragma once
// corelet/core/sigsafe.hpp — small async-signal-safe helpers for the reports
// that signal handlers write (stack overflow, stalls).

#include <signal.h>

#include <cstdint>

namespace corelet::core {

// put — appends s to [p, end); returns the new p.
inline char* put(char* p, char* end, const char* s) noexcept {
  while (*s && p < end) *p++ = *s++;
  return p;
}

// put_u64 — appends v in decimal.
inline char* put_u64(char* p, char* end, std::uint64_t v) noexcept {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n && p < end) *p++ = tmp[--n];
  return p;
}

// chain_signal — passes a signal on to the handler `prev` that was installed
// before ours; false if it had none (default or ignore).
inline bool chain_signal(const struct sigaction& prev, int sig, siginfo_t* si, void* uc) noexcept {
  if (prev.sa_flags & SA_SIGINFO) {
    if (!prev.sa_sigaction) return false;
    prev.sa_sigaction(sig, si, uc);
    return true;
  }
  if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN || !prev.sa_handler) return false;
  prev.sa_handler(sig);
  return true;
}

}  // namespace corelet::core
