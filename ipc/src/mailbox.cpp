// Mailboxes and the name registry.

#include "worker.hpp"

#include <pthread.h>

#include <cerrno>
#include <cstring>

namespace corelet {

std::string to_string(const Address& a) {
  return "worker " + std::to_string(a.worker) + "/" + std::to_string(a.gen) + " box " + std::to_string(a.box);
}

namespace ipc::detail {

Address open_box(MailboxBase* box) {
  if (!g_worker) throw UsageError("corelet::Mailbox: made outside a cluster worker");
  return g_worker->open_box(box);
}

void close_box(const Address& a) noexcept {
  if (g_worker && a.worker == g_worker_id) g_worker->close_box(a.box);
}

MailboxBase* find_box(const Address& a) noexcept {
  if (!g_worker || a.worker != g_worker_id) return nullptr;
  if (a.gen != g_cluster->slot(a.worker).gen.load(std::memory_order_relaxed)) return nullptr;
  return g_worker->find_box(a.box);
}

void check_address(const Address& to, const char* call) {
  check_worker(to.worker, call);
  if (!to.valid()) [[unlikely]]
    throw std::invalid_argument(std::string("corelet::") + call + ": invalid address");
}

void send_mail_parts(const Address& to, const std::string_view* parts, std::size_t n) {
  // send_parts throws UsageError("corelet: send called outside a tasklet").
  if (!g_cluster->address_alive(to)) throw WorkerLost(g_worker->last_exit(to.worker), "send to " + to_string(to));
  g_worker->send_parts(to.worker, kMail, parts, n, "send");
}

namespace {

// The registry's lock (see ControlBlock::names_lock).
using NamesLock = std::lock_guard<RobustMutex>;

void check_name(std::string_view name) {
  if (name.empty() || name.size() >= sizeof(NameEntry::name) || name.find('\0') != std::string_view::npos)
    throw std::invalid_argument("corelet: a registered name must have 1 to 55 bytes and no NUL");
}

bool same(const NameEntry& e, std::string_view name) {
  return e.used && std::strncmp(e.name, name.data(), name.size()) == 0 && e.name[name.size()] == '\0';
}

}  // namespace
}  // namespace ipc::detail

bool register_name(std::string_view name, const Address& a) {
  using namespace ipc::detail;
  check_worker(0, "register_name");
  check_name(name);
  check_address(a, "register_name");
  ControlBlock& c = *g_cluster->ctl;
  NamesLock lock(c.names_lock);
  NameEntry* free_entry = nullptr;
  for (NameEntry& e : c.names) {
    if (same(e, name)) {
      if (g_cluster->address_alive(e.addr)) return false;
      e.addr = a;  // held by a dead incarnation: free again
      return true;
    }
    if (!e.used && !free_entry) free_entry = &e;
  }
  if (!free_entry) throw std::length_error("corelet::register_name: the registry is full (1024 names)");
  std::memcpy(free_entry->name, name.data(), name.size());
  free_entry->name[name.size()] = '\0';
  free_entry->addr = a;
  free_entry->used = true;
  return true;
}

bool unregister_name(std::string_view name) {
  using namespace ipc::detail;
  check_worker(0, "unregister_name");
  check_name(name);
  ControlBlock& c = *g_cluster->ctl;
  NamesLock lock(c.names_lock);
  for (NameEntry& e : c.names)
    if (same(e, name)) {
      e.used = false;
      return true;
    }
  return false;
}

std::optional<Address> whereis(std::string_view name) {
  using namespace ipc::detail;
  check_worker(0, "whereis");
  check_name(name);
  ControlBlock& c = *g_cluster->ctl;
  NamesLock lock(c.names_lock);
  for (const NameEntry& e : c.names)
    if (same(e, name)) {
      if (!g_cluster->address_alive(e.addr)) return std::nullopt;
      return e.addr;
    }
  return std::nullopt;
}

}  // namespace corelet
