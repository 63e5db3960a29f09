#pragma once
// Internal: the trace writer behind CORELET_TRACE=out.json (profile.hpp).
//
// The file is Chrome's trace-event format (a JSON array), which Perfetto and
// chrome://tracing open: per scheduler a track (pid = process, tid = the
// scheduler's thread) with a complete event ("X") per tasklet run and per
// sleep of the loop, an async slice ("b"/"e", one track per tasklet) per
// wait, and flow events ("s"/"f") from a message's send to its dispatch in
// another worker. Events are formatted as they happen into a buffer that is
// appended to the file (O_APPEND) a megabyte at a time, so the workers of a
// cluster can share one file: the supervisor writes the opening "[" and the
// closing "]" (trace_file_begin/end in loop_hook.hpp), a process that runs
// alone writes both itself.

#include <cstdint>
#include <string>

namespace corelet::detail {

struct Tasklet;

class Tracer {
 public:
  // Opens the trace; `path` from CORELET_TRACE. `own_file`: truncate it and
  // write the brackets (a scheduler outside a cluster). `label`: the
  // process's name on its track.
  Tracer(const char* path, bool own_file, const std::string& label);
  ~Tracer();  // flushes; closes the array if own_file
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  bool ok() const noexcept { return fd_ >= 0; }

  // A tasklet starts running / stops running (ts: steady_clock ns).
  void run_begin(const Tasklet* t, std::uint64_t ts) noexcept;
  void run_end(std::uint64_t ts) noexcept;
  // The loop slept [from, to).
  void idle(std::uint64_t from, std::uint64_t to) noexcept;
  // t parked on `what` (kind: its WaitKind's name) / was woken.
  void wait_begin(const Tasklet* t, const char* kind, const char* what, std::uint64_t ts) noexcept;
  void wait_end(const Tasklet* t, std::uint64_t ts) noexcept;
  // A message left for / arrived from another worker; `id` is the same on
  // both sides.
  void flow(bool out, std::uint64_t id, const char* name, std::uint64_t ts) noexcept;

  static std::uint64_t now_ns() noexcept;

 private:
  void event_head(const char* ph, const char* name, std::uint64_t ts) noexcept;
  void put_escaped(const char* s) noexcept;
  void end_event() noexcept;
  void flush() noexcept;

  int fd_ = -1;
  bool own_file_ = false;
  int pid_ = 0;
  int tid_ = 0;
  std::string buf_;
  // The running slice.
  std::uint64_t run_id_ = 0;
  std::string run_name_;
  std::uint64_t run_from_ = 0;
  bool running_ = false;
};

}  // namespace corelet::detail
