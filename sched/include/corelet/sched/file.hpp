#pragma once
// corelet/sched/file.hpp — File: a file whose reads and writes park the
// tasklet, not the thread (io_uring; on the epoll backend they run on
// run_blocking's helpers, as epoll cannot wait for regular files).
//
//   corelet::File f = corelet::File::open("data.bin");
//   std::string all = f.read_all();
//
// Errors are std::system_error with the errno and the call's name (and the
// path, for open). A timeout on a regular file is best effort: a disk read
// under way cannot be interrupted, and its result is returned when it comes.

#include <corelet/sched/io.hpp>

#include <fcntl.h>

#include <string>
#include <string_view>
#include <utility>

namespace corelet {

class File : public io::OwnedFd {
 public:
  File() = default;
  explicit File(int fd) noexcept : OwnedFd(fd) {}  // takes ownership of fd

  // open(2) flags (O_CLOEXEC is added).
  static File open(const std::string& path, int flags = O_RDONLY, mode_t mode = 0644,
                   io::Timeout t = io::no_timeout);
  // fopen's modes: "r", "w", "a", "r+", "w+", "a+", with an optional "x"
  // (fail if it exists) after the first letter, e.g. "wx".
  static File open(const std::string& path, std::string_view mode, io::Timeout t = io::no_timeout);

  // At the file position, as read(2)/write(2): short counts are possible.
  std::size_t read(void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  std::size_t write(const void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  // At an offset; the file position does not move.
  std::size_t pread(void* buf, std::size_t n, off_t offset, io::Timeout t = io::no_timeout);
  std::size_t pwrite(const void* buf, std::size_t n, off_t offset, io::Timeout t = io::no_timeout);
  // Everything from the file position to the end.
  std::string read_all(io::Timeout t = io::no_timeout);
  // All n bytes at the file position.
  void write_all(const void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  void write_all(std::string_view s, io::Timeout t = io::no_timeout) { write_all(s.data(), s.size(), t); }
  void fsync(io::Timeout t = io::no_timeout);
  off_t size() const;  // fstat

  // fd(), is_open(), release() and close() come from OwnedFd.

 private:
  int checked_fd(const char* call) const { return OwnedFd::checked_fd(call, "file"); }
};

}  // namespace corelet
