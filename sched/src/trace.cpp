// The trace writer (trace.hpp).

#include "trace.hpp"

#include <corelet/sched/detail/loop_hook.hpp>
#include <corelet/sched/primitive.hpp>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <chrono>

namespace corelet::detail {
namespace {

constexpr std::size_t kFlushAt = std::size_t{1} << 20;

void write_all(int fd, const char* p, std::size_t n) noexcept {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) return;  // a full disk loses the rest of the trace, not the program
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// ts in microseconds with nanosecond digits, as the format wants.
void put_ts(std::string& b, const char* key, std::uint64_t ns) {
  char tmp[64];
  const int n = std::snprintf(tmp, sizeof tmp, ",\"%s\":%llu.%03llu", key,
                              static_cast<unsigned long long>(ns / 1000), static_cast<unsigned long long>(ns % 1000));
  b.append(tmp, static_cast<std::size_t>(n));
}

void put_u64(std::string& b, const char* key, std::uint64_t v) {
  char tmp[48];
  const int n = std::snprintf(tmp, sizeof tmp, ",\"%s\":%llu", key, static_cast<unsigned long long>(v));
  b.append(tmp, static_cast<std::size_t>(n));
}

}  // namespace

std::uint64_t Tracer::now_ns() noexcept {
  // steady_clock is CLOCK_MONOTONIC: one time base for every process of a cluster.
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

Tracer::Tracer(const char* path, bool own_file, const std::string& label) : own_file_(own_file) {
  fd_ = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (own_file ? O_TRUNC : 0), 0644);
  if (fd_ < 0) {
    std::fprintf(stderr, "corelet: CORELET_TRACE=%s cannot be opened; no trace is written\n", path);
    return;
  }
  pid_ = static_cast<int>(::getpid());
  tid_ = static_cast<int>(::syscall(SYS_gettid));
  buf_.reserve(kFlushAt + 4096);
  if (own_file_) buf_ += "[\n";
  // Names of the process and of the scheduler's track.
  buf_ += "{\"ph\":\"M\",\"name\":\"process_name\"";
  put_u64(buf_, "pid", static_cast<std::uint64_t>(pid_));
  buf_ += ",\"args\":{\"name\":\"";
  put_escaped(label.c_str());
  buf_ += "\"}},\n{\"ph\":\"M\",\"name\":\"thread_name\"";
  put_u64(buf_, "pid", static_cast<std::uint64_t>(pid_));
  put_u64(buf_, "tid", static_cast<std::uint64_t>(tid_));
  buf_ += ",\"args\":{\"name\":\"scheduler\"}},\n";
}

Tracer::~Tracer() {
  if (fd_ < 0) return;
  if (running_) run_end(now_ns());
  if (own_file_) {
    // The last event has no comma after it: a metadata record closes the array.
    buf_ += "{\"ph\":\"M\",\"name\":\"trace_end\"";
    put_u64(buf_, "pid", static_cast<std::uint64_t>(pid_));
    buf_ += "}\n]\n";
  }
  flush();
  ::close(fd_);
}

void Tracer::put_escaped(const char* s) noexcept {
  for (; *s; ++s) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      buf_ += '\\';
      buf_ += static_cast<char>(c);
    } else if (c < 0x20) {
      char tmp[8];
      std::snprintf(tmp, sizeof tmp, "\\u%04x", c);
      buf_ += tmp;
    } else {
      buf_ += static_cast<char>(c);
    }
  }
}

void Tracer::event_head(const char* ph, const char* name, std::uint64_t ts) noexcept {
  buf_ += "{\"ph\":\"";
  buf_ += ph;
  buf_ += "\",\"name\":\"";
  put_escaped(name);
  buf_ += '"';
  put_u64(buf_, "pid", static_cast<std::uint64_t>(pid_));
  put_u64(buf_, "tid", static_cast<std::uint64_t>(tid_));
  put_ts(buf_, "ts", ts);
}

void Tracer::end_event() noexcept {
  buf_ += "},\n";
  if (buf_.size() >= kFlushAt) flush();
}

void Tracer::flush() noexcept {
  write_all(fd_, buf_.data(), buf_.size());
  buf_.clear();
}

void Tracer::run_begin(const Tasklet* t, std::uint64_t ts) noexcept {
  if (fd_ < 0) return;
  if (running_) run_end(ts);
  running_ = true;
  run_from_ = ts;
  run_id_ = t->running.id;
  run_name_ = t->name;
}

void Tracer::run_end(std::uint64_t ts) noexcept {
  if (fd_ < 0 || !running_) return;
  running_ = false;
  event_head("X", run_name_.c_str(), run_from_);
  buf_ += ",\"cat\":\"run\"";
  put_ts(buf_, "dur", ts - run_from_);
  buf_ += ",\"args\":{\"tasklet\":";
  buf_ += std::to_string(run_id_);
  buf_ += '}';
  end_event();
}

void Tracer::idle(std::uint64_t from, std::uint64_t to) noexcept {
  if (fd_ < 0) return;
  event_head("X", "idle", from);
  buf_ += ",\"cat\":\"idle\"";
  put_ts(buf_, "dur", to - from);
  end_event();
}

void Tracer::wait_begin(const Tasklet* t, const char* kind, const char* what, std::uint64_t ts) noexcept {
  if (fd_ < 0) return;
  event_head("b", what, ts);
  buf_ += ",\"cat\":\"wait\"";
  put_u64(buf_, "id", t->running.id);
  buf_ += ",\"args\":{\"kind\":\"";
  buf_ += kind;
  buf_ += "\",\"tasklet\":\"";
  put_escaped(t->name.c_str());
  buf_ += "\"}";
  end_event();
}

void Tracer::wait_end(const Tasklet* t, std::uint64_t ts) noexcept {
  if (fd_ < 0 || !t->wait_what) return;
  event_head("e", t->wait_what, ts);
  buf_ += ",\"cat\":\"wait\"";
  put_u64(buf_, "id", t->running.id);
  end_event();
}

void Tracer::flow(bool out, std::uint64_t id, const char* name, std::uint64_t ts) noexcept {
  if (fd_ < 0) return;
  // A slice of its own for each end, and the flow event at the same place
  // (Perfetto binds it to the enclosing slice, DevTools to the one with the
  // same ts, pid, tid and category).
  event_head("X", name, ts);
  buf_ += ",\"cat\":\"message\",\"dur\":0.001";
  end_event();
  event_head(out ? "s" : "f", name, ts);
  buf_ += ",\"cat\":\"message\"";
  put_u64(buf_, "id", id);
  if (!out) buf_ += ",\"bp\":\"e\"";
  end_event();
}

namespace {
const char* trace_path() noexcept {
  const char* p = std::getenv("CORELET_TRACE");
  return p && *p ? p : nullptr;
}
}  // namespace

void trace_file_begin() noexcept {
  const char* path = trace_path();
  if (!path) return;
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;  // each worker reports it when it cannot open the file
  write_all(fd, "[\n", 2);
  ::close(fd);
}

void trace_file_end() noexcept {
  const char* path = trace_path();
  if (!path) return;
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;
  static const char tail[] = "{\"ph\":\"M\",\"name\":\"trace_end\",\"pid\":0}\n]\n";
  write_all(fd, tail, sizeof tail - 1);
  ::close(fd);
}

}  // namespace corelet::detail
