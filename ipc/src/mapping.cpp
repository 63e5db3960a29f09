// Mapping (mapping.hpp): anonymous shared memory, or a memfd's.

#include <corelet/ipc/mapping.hpp>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <string>
#include <stdexcept>
#include <system_error>

namespace corelet::ipc {

Mapping::Mapping(std::size_t bytes) {
  if (bytes == 0) throw std::invalid_argument("corelet::ipc::Mapping: 0 bytes");
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  size_ = (bytes + page - 1) / page * page;
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(),
                            "corelet::ipc::Mapping: mmap of " + std::to_string(bytes) + " shared bytes");
  base_ = static_cast<std::byte*>(p);
}

Mapping::Mapping(std::size_t bytes, Shareable) {
  if (bytes == 0) throw std::invalid_argument("corelet::ipc::Mapping: 0 bytes");
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  size_ = (bytes + page - 1) / page * page;
  fd_ = ::memfd_create("corelet-shared", MFD_CLOEXEC);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "corelet::ipc::Mapping: memfd_create");
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
    const int e = errno;
    ::close(fd_);
    throw std::system_error(e, std::generic_category(), "corelet::ipc::Mapping: ftruncate of a memfd");
  }
  map(fd_, "memfd");
}

Mapping::Mapping(int fd, Attach) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::system_error(errno, std::generic_category(), "corelet::ipc::Mapping: fstat");
  if (st.st_size <= 0) throw std::invalid_argument("corelet::ipc::Mapping: the descriptor maps nothing");
  size_ = static_cast<std::size_t>(st.st_size);
  fd_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "corelet::ipc::Mapping: dup");
  map(fd_, "attached descriptor");
}

void Mapping::map(int fd, const char* what) {
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    ::close(fd);
    fd_ = -1;
    throw std::system_error(e, std::generic_category(), std::string("corelet::ipc::Mapping: mmap of an ") + what);
  }
  base_ = static_cast<std::byte*>(p);
}

Mapping::~Mapping() {
  if (base_) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace corelet::ipc
