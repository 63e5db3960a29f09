// Profiling: settings, stats(), dump(), the stall report (profile.hpp).

#include "monitor.hpp"
#include "scheduler.hpp"

#include <corelet/core/cycles.hpp>
#include <corelet/core/sigsafe.hpp>

#include <execinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace corelet {

namespace {
// Process-wide settings, read from the environment at first use. Relaxed:
// each is a value of its own, read when a scheduler starts; nothing else is
// published through it (two threads reading the environment at once store
// the same value).
std::atomic<int> g_stall_ms{-1};    // -1: not read yet
std::atomic<int> g_accounting{-1};

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > 1000000) {
    std::fprintf(stderr, "corelet: %s=%s is not a number from 0 to 1000000; using %d\n", name, v, fallback);
    return fallback;
  }
  return static_cast<int>(n);
}
}  // namespace

const char* to_string(WaitKind k) noexcept {
  switch (k) {
    case WaitKind::Io: return "io";
    case WaitKind::Timer: return "timer";
    case WaitKind::Sync: return "sync";
    case WaitKind::Remote: return "remote";
  }
  return "?";
}

std::chrono::milliseconds stall_threshold() noexcept {
  int v = g_stall_ms.load(std::memory_order_relaxed);
  if (v < 0) {
    v = env_int("CORELET_STALL_MS", 20);
    g_stall_ms.store(v, std::memory_order_relaxed);
  }
  return std::chrono::milliseconds(v);
}

void set_stall_threshold(std::chrono::milliseconds t) {
  if (t.count() < 0 || t.count() > 1000000)
    throw std::invalid_argument("corelet::set_stall_threshold: the threshold must be from 0 to 1000000 ms");
  g_stall_ms.store(static_cast<int>(t.count()), std::memory_order_relaxed);
}

bool accounting() noexcept {
  int v = g_accounting.load(std::memory_order_relaxed);
  if (v < 0) {
    v = env_int("CORELET_ACCOUNTING", 1) != 0;
    g_accounting.store(v, std::memory_order_relaxed);
  }
  return v != 0;
}

void set_accounting(bool on) { g_accounting.store(on ? 1 : 0, std::memory_order_relaxed); }

Stats stats(bool tasklets) {
  detail::Scheduler* s = detail::this_scheduler();
  if (!s) throw UsageError("corelet: corelet::stats called outside corelet::run");
  return s->stats(tasklets);
}

std::string dump() {
  detail::Scheduler* s = detail::this_scheduler();
  if (!s) throw UsageError("corelet: corelet::dump called outside corelet::run");
  return s->dump();
}

namespace detail {

namespace {
thread_local TaskletDescriber* tl_describer = nullptr;

const char* state_name(const Tasklet* t, const Tasklet* current) noexcept {
  if (t == current) return "running";
  switch (t->state) {
    case State::Ready: return t->started ? "ready" : "new";
    case State::Running: return "running";
    case State::Parked: return "parked";
    case State::Done: return "done";
  }
  return "?";
}

std::string ms(std::uint64_t ns) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f ms", static_cast<double>(ns) / 1e6);
  return b;
}
}  // namespace

TaskletDescriber* set_describer(TaskletDescriber* d) noexcept { return std::exchange(tl_describer, d); }

std::atomic<std::uint32_t> g_traces_open{0};

void trace_message_now(bool out, std::uint64_t id, const char* name) noexcept {
  if (Scheduler* s = this_scheduler()) s->trace_message(out, id, name);
}

void Scheduler::run_loop() {
  accounting_ = corelet::accounting();
  if (const char* path = std::getenv("CORELET_TRACE"); path && *path) {
    // A worker of a cluster shares the file its supervisor opened.
    std::string label = "corelet (pid " + std::to_string(::getpid()) + ")";
    if (hook_) {
      WorkerStats w;
      hook_->add_stats(w);
      label = "corelet worker " + std::to_string(w.worker) + " (pid " + std::to_string(::getpid()) + ")";
    }
    tracer_ = std::make_unique<Tracer>(path, hook_ == nullptr, label);
    if (!tracer_->ok()) tracer_.reset();
    if (tracer_) g_traces_open.fetch_add(1, std::memory_order_relaxed);
    accounting_ = accounting_ || tracer_ != nullptr;  // the trace rides on accounting's hooks
  }
  struct EndTrace {
    std::unique_ptr<Tracer>& t;
    ~EndTrace() {  // written out when the run ends, also by an exception
      if (t) g_traces_open.fetch_sub(1, std::memory_order_relaxed);
      t.reset();
    }
  } end_trace{tracer_};
  if (!accounting_) {
    loop();
    return;
  }
  describer_ = tl_describer;
  started_at_ = mark_ = core::cycles();
  (void)core::cycles_per_us();  // calibrated now, not in the first stats()
  const auto thr = corelet::stall_threshold();
  beat_.sched = this;
  beat_.thread = ::pthread_self();
  beat_.threshold_ticks = static_cast<std::uint32_t>((thr.count() + kTick.count() - 1) / kTick.count());
  seen_tick_ = g_tick.value.load(std::memory_order_relaxed);
  tl_signal_sched = this;
  enroll(&beat_);
  struct Withdraw {
    Beat* b;
    ~Withdraw() {
      withdraw(b);
      tl_signal_sched = nullptr;
    }
  } w{&beat_};
  loop();
}

void Scheduler::wake_from_outside() noexcept {
  const std::uint64_t one = 1;
  ssize_t r = ::write(wake_fd_, &one, sizeof one);  // the reactor or ppoll sleeps on it
  (void)r;
  if (hook_) hook_->wake();
}

Stats Scheduler::stats(bool tasklets) {
  const std::uint64_t now = core::cycles();
  if (accounting_) charge(now);
  Stats out;
  WorkerStats& w = out.worker;
  w.pid = static_cast<int>(::getpid());
  w.accounting = accounting_;
  w.parks = parks_;
  w.spawned = spawned_;
  w.finished = finished_;
  w.live = live_;
  w.stalls = stalls_;
  w.last_stall_ns = last_stall_ns_;
  w.wakeups = wakeups_;
  std::uint64_t run = done_run_, resumes = done_resumes_, ready = done_ready_;
  std::uint64_t wait[kWaitKinds];
  for (int k = 0; k < kWaitKinds; ++k) wait[k] = done_wait_[k];
  std::vector<const Tasklet*> list;
  for (const Tasklet* t = all_; t; t = t->all_next) {
    run += t->run_cycles;
    resumes += t->resumes;
    if (accounting_) ready += ready_of(t, now);
    for (int k = 0; k < kWaitKinds; ++k) wait[k] += t->wait_cycles[k];
    if (t->parked_at) {  // the wait in progress counts up to now
      wait[static_cast<int>(t->wait_kind)] += now - t->parked_at;
    }
    if (tasklets) list.push_back(t);
  }
  w.resumes = resumes;
  if (accounting_) {
    w.uptime_ns = core::cycles_to_ns(now - started_at_);
    w.busy_ns = core::cycles_to_ns(run);
    w.poll_ns = core::cycles_to_ns(loop_cycles_);
    w.idle_ns = core::cycles_to_ns(idle_cycles_);
    w.ready_ns = core::cycles_to_ns(ready);
    for (int k = 0; k < kWaitKinds; ++k) w.wait_ns[k] = core::cycles_to_ns(wait[k]);
  }
  if (hook_) hook_->add_stats(w);
  out.tasklets.reserve(list.size());
  for (auto it = list.rbegin(); it != list.rend(); ++it) {  // all_ is newest first
    const Tasklet* t = *it;
    TaskletStats ts;
    ts.id = t->running.id;
    ts.name = t->name;
    ts.state = state_name(t, current_);
    if (t->state == State::Parked && t->wait_what) ts.waits_on = describe_wait(t);
    if (t->spawn_file) ts.spawned_at = std::string(t->spawn_file) + ":" + std::to_string(t->spawn_line);
    ts.parent = t->parent_id;
    ts.resumes = t->resumes;
    ts.stalls = t->stalls;
    if (accounting_) {
      ts.run_ns = core::cycles_to_ns(t->run_cycles);
      ts.ready_ns = core::cycles_to_ns(ready_of(t, now));
      for (int k = 0; k < kWaitKinds; ++k) ts.wait_ns[k] = core::cycles_to_ns(t->wait_cycles[k]);
      if (t->parked_at) ts.wait_ns[static_cast<int>(t->wait_kind)] += core::cycles_to_ns(now - t->parked_at);
    }
    if (t->stackless && describer_) ts.stack = describer_->stack(*t);
    out.tasklets.push_back(std::move(ts));
  }
  return out;
}

std::string Scheduler::dump() {
  const Stats st = stats(true);
  const WorkerStats& w = st.worker;
  std::ostringstream os;
  os << "corelet: dump of ";
  if (w.worker >= 0) os << "worker " << w.worker << " ";
  os << "(pid " << w.pid << "): " << st.tasklets.size() << (st.tasklets.size() == 1 ? " tasklet" : " tasklets");
  if (w.accounting) {
    os << "; busy " << ms(w.busy_ns) << ", polling " << ms(w.poll_ns) << ", idle " << ms(w.idle_ns) << " of "
       << ms(w.uptime_ns) << "; " << w.stalls << (w.stalls == 1 ? " stall" : " stalls");
  }
  if (w.worker >= 0)
    os << "; rings: " << w.ring_in_bytes << " B in, " << w.ring_out_bytes << " B out; messages " << w.messages_in
       << " in, " << w.messages_out << " out";
  os << "\n";
  for (const TaskletStats& t : st.tasklets) {
    os << "  #" << t.id << " \"" << t.name << "\" " << t.state;
    if (!t.waits_on.empty()) os << " on " << t.waits_on;
    if (w.accounting) {
      os << "; ran " << ms(t.run_ns) << " in " << t.resumes << " resumes";
      for (int k = 0; k < kWaitKinds; ++k)
        if (t.wait_ns[k]) os << ", " << to_string(static_cast<WaitKind>(k)) << " wait " << ms(t.wait_ns[k]);
      if (t.ready_ns) os << ", ready " << ms(t.ready_ns);
      if (t.stalls) os << ", " << t.stalls << (t.stalls == 1 ? " stall" : " stalls");
    }
    if (!t.spawned_at.empty()) os << "; spawned at " << t.spawned_at;
    if (t.parent) os << (t.spawned_at.empty() ? "; spawned" : "") << " by #" << t.parent;
    os << "\n";
    if (!t.stack.empty()) {
      std::istringstream lines(t.stack);
      for (std::string line; std::getline(lines, line);) os << "      " << line << "\n";
    }
  }
  return os.str();
}

void Scheduler::write_dump_now() noexcept {
  beat_.dump_due.store(false, std::memory_order_relaxed);
  // A dump of many tasklets takes a while: not a stall.
  beat_.idle.store(true, std::memory_order_relaxed);
  struct Awake {
    Scheduler& s;
    ~Awake() {
      s.refresh_beat();
      s.beat_.idle.store(false, std::memory_order_release);
      monitor_note_awake();
    }
  } awake{*this};
  try {
    const std::string text = dump();
    for (std::size_t off = 0; off < text.size();) {
      const ssize_t n = ::write(2, text.data() + off, text.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
  } catch (...) {
    static const char msg[] = "corelet: the dump failed (out of memory)\n";
    ssize_t n = ::write(2, msg, sizeof msg - 1);
    (void)n;
  }
}

// ---------------------------------------------------------------------------
// The stall report, written by the stalled thread itself in its SIGURG
// handler: only async-signal-safe calls (write, backtrace once warmed up,
// clock_gettime), no allocation.

bool Scheduler::report_stall_here() noexcept {
  Scheduler* s = tl_signal_sched;
  if (!s || !s->beat_.stall_due.exchange(false, std::memory_order_relaxed)) return false;
  s->report_stall();
  return true;
}

void Scheduler::report_stall() noexcept {
  using core::put;
  using core::put_u64;
  const std::uint32_t ticks = g_tick.value.load(std::memory_order_relaxed) - beat_.tick.load(std::memory_order_relaxed);
  const std::uint64_t ran_ms = static_cast<std::uint64_t>(ticks > 0 ? ticks - 1 : 0) * kTick.count();
  char buf[1024];
  char* p = buf;
  char* end = buf + sizeof buf - 1;
  Tasklet* t = current_;
  p = put(p, end, "corelet: stall: ");
  if (t) {
    p = put(p, end, "tasklet \"");
    p = put(p, end, t->name.c_str());
    p = put(p, end, "\" (#");
    p = put_u64(p, end, t->running.id);
    p = put(p, end, ") has run for ");
  } else {
    p = put(p, end, "the scheduler loop has run for ");
  }
  p = put_u64(p, end, ran_ms);
  p = put(p, end, " ms without a switch (threshold ");
  p = put_u64(p, end, static_cast<std::uint64_t>(beat_.threshold_ticks) * kTick.count());
  p = put(p, end, " ms)");
  if (t && t->spawn_file) {
    p = put(p, end, "; spawned at ");
    p = put(p, end, t->spawn_file);
    p = put(p, end, ":");
    p = put_u64(p, end, t->spawn_line);
  }
  if (t && t->parent_id) {
    p = put(p, end, t->spawn_file ? " by #" : "; spawned by #");
    p = put_u64(p, end, t->parent_id);
  }
  const bool python = t && t->stackless && describer_;
  p = put(p, end, python ? "\n  its stack:\n" : "\n  native backtrace (most recent call first):\n");
  ssize_t n = ::write(2, buf, static_cast<std::size_t>(p - buf));
  if (python) {
    describer_->write_running_stack(2);
  } else {
    void* frames[48];
    const int depth = ::backtrace(frames, 48);
    // Frames 0-2 are this function, the handler and the signal trampoline.
    if (depth > 3) ::backtrace_symbols_fd(frames + 3, depth - 3, 2);
  }
  (void)n;
  ++stalls_;
  if (t) ++t->stalls;
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  last_stall_ns_ = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace detail
}  // namespace corelet
