// Mapping (mapping.hpp): anonymous shared memory.

#include <corelet/ipc/mapping.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
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

Mapping::~Mapping() {
  if (base_) ::munmap(base_, size_);
}

}  // namespace corelet::ipc
