// corelet/sched/file.hpp: File.

#include <corelet/sched/file.hpp>


#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace corelet {
namespace {

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::system_category(), what);
}

int mode_flags(std::string_view mode) {
  if (mode.empty()) return -1;
  int flags = 0;
  switch (mode[0]) {
    case 'r': flags = 0; break;
    case 'w': flags = O_CREAT | O_TRUNC; break;
    case 'a': flags = O_CREAT | O_APPEND; break;
    default: return -1;
  }
  bool plus = false;
  for (char c : mode.substr(1)) {
    if (c == '+' && !plus) plus = true;
    else if (c == 'x' && mode[0] == 'w' && !(flags & O_EXCL)) flags |= O_EXCL;
    else if (c == 'b') continue;  // as fopen: no meaning on POSIX
    else return -1;
  }
  if (plus) flags |= O_RDWR;
  else flags |= mode[0] == 'r' ? O_RDONLY : O_WRONLY;
  return flags;
}

}  // namespace

File File::open(const std::string& path, int flags, mode_t mode, io::Timeout t) {
  try {
    return File(io::open(path.c_str(), flags, mode, t));
  } catch (const std::system_error& e) {
    if (e.code().category() != std::system_category()) throw;
    fail(e.code().value(), "corelet::File::open(\"" + path + "\")");
  }
}

File File::open(const std::string& path, std::string_view mode, io::Timeout t) {
  const int flags = mode_flags(mode);
  if (flags < 0)
    fail(EINVAL, "corelet::File::open(\"" + path + "\", \"" + std::string(mode) +
                     "\"): the mode must be r, w, a, r+, w+, a+ or wx, w+x");
  return open(path, flags, 0666, t);
}

std::size_t File::read(void* buf, std::size_t n, io::Timeout t) {
  return io::read(checked_fd("corelet::File::read"), buf, n, t);
}
std::size_t File::write(const void* buf, std::size_t n, io::Timeout t) {
  return io::write(checked_fd("corelet::File::write"), buf, n, t);
}
std::size_t File::pread(void* buf, std::size_t n, off_t offset, io::Timeout t) {
  return io::pread(checked_fd("corelet::File::pread"), buf, n, offset, t);
}
std::size_t File::pwrite(const void* buf, std::size_t n, off_t offset, io::Timeout t) {
  return io::pwrite(checked_fd("corelet::File::pwrite"), buf, n, offset, t);
}

std::string File::read_all(io::Timeout t) {
  const Clock::time_point d = t.deadline();
  std::string out;
  struct stat st;
  std::size_t chunk = 64 * 1024;
  if (::fstat(checked_fd("corelet::File::read_all"), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
    chunk = static_cast<std::size_t>(st.st_size) + 1;  // one read, and one to see the end
  for (;;) {
    const std::size_t have = out.size();
    out.resize(have + chunk);
    const std::size_t n = io::read(fd_, out.data() + have, chunk, io::Timeout::until(d));
    out.resize(have + n);
    if (n == 0) return out;
    chunk = std::max<std::size_t>(chunk, 64 * 1024);
  }
}

void File::write_all(const void* buf, std::size_t n, io::Timeout t) {
  const Clock::time_point d = t.deadline();
  const auto* p = static_cast<const char*>(buf);
  std::size_t done = 0;
  while (done < n) {
    const std::size_t k = io::write(checked_fd("corelet::File::write_all"), p + done, n - done, io::Timeout::until(d));
    if (k == 0) fail(EIO, "corelet::File::write_all: write returned 0");
    done += k;
  }
}

void File::fsync(io::Timeout t) { io::fsync(checked_fd("corelet::File::fsync"), t); }

off_t File::size() const {
  struct stat st;
  if (::fstat(checked_fd("corelet::File::size"), &st) < 0) fail(errno, "corelet::File::size");
  return st.st_size;
}

}  // namespace corelet
