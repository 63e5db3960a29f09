#include <corelet/core/overflow.hpp>
#include <corelet/core/sigsafe.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>

namespace corelet::core {

thread_local constinit const RunningStack* tl_running_stack = nullptr;

namespace {

struct sigaction g_prev_segv{};
struct sigaction g_prev_bus{};
std::once_flag g_once;

void chain(int sig, siginfo_t* si, void* uc) {
  const struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if (chain_signal(prev, sig, si, uc)) return;
  // Default action: restore it and return; the faulting instruction runs again
  // and the kernel delivers the signal with its default disposition. A signal
  // sent by kill()/raise() (si_code <= 0) does not recur: send it again, to be
  // delivered with the default action once this handler returns.
  signal(sig, SIG_DFL);
  if (si->si_code <= 0) raise(sig);
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  const RunningStack* r = tl_running_stack;
  const auto addr = reinterpret_cast<std::uintptr_t>(si->si_addr);
  if (r != nullptr && r->stack.contains_guard(addr)) {
    char buf[512];
    std::size_t n = format_overflow_message(*r, buf, sizeof buf);
    ssize_t ignored = ::write(STDERR_FILENO, buf, n);
    (void)ignored;
    std::abort();
  }
  chain(sig, si, uc);
}

}  // namespace

std::size_t format_overflow_message(const RunningStack& r, char* buf, std::size_t n) noexcept {
  if (n == 0) return 0;
  char* p = buf;
  char* end = buf + n - 1;
  p = put(p, end, "corelet: tasklet \"");
  p = put(p, end, r.name ? r.name : "");
  p = put(p, end, "\" (#");
  p = put_u64(p, end, r.id);
  p = put(p, end, ") overflowed its ");
  p = put_u64(p, end, r.stack.size / 1024);
  p = put(p, end, " KiB stack\n");
  *p = '\0';
  return static_cast<std::size_t>(p - buf);
}

void install_overflow_handler() {
  // One alternate stack per thread; it is never freed while the thread runs, and
  // is reclaimed with the process (threads that run schedulers are few).
  thread_local bool have_altstack = false;
  if (!have_altstack) {
    stack_t cur{};
    if (::sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE) == 0 && cur.ss_size >= 64 * 1024) {
      have_altstack = true;  // someone (a sanitizer) gave this thread a big enough one
    } else {
      const std::size_t size = 64 * 1024;
      void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem == MAP_FAILED)
        throw std::system_error(errno, std::generic_category(), "corelet: mmap of the signal stack");
      stack_t ss{};
      ss.ss_sp = mem;
      ss.ss_size = size;
      if (::sigaltstack(&ss, nullptr) != 0)
        throw std::system_error(errno, std::generic_category(), "corelet: sigaltstack");
      have_altstack = true;
    }
  }
  std::call_once(g_once, [] {
    struct sigaction sa{};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_prev_segv);
    ::sigaction(SIGBUS, &sa, &g_prev_bus);
  });
}

}  // namespace corelet::core
