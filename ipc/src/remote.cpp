// The registry of remote functions, the errors, and the glue between the
// header templates (remote.hpp, pool.hpp) and the worker.

#include "worker.hpp"

#include <corelet/ipc/pool.hpp>

#include <cxxabi.h>
#include <string.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace corelet {

std::string WorkerExit::describe() const {
  std::string s = "worker " + std::to_string(worker) + " (pid " + std::to_string(pid) + ")";
  if (signal != 0) {
    const char* name = ::sigdescr_np(signal);
    s += " was killed by signal " + std::to_string(signal) + " (" + (name ? name : "unknown") + ")";
  } else {
    s += " exited with status " + std::to_string(exit_code);
  }
  return s;
}

WorkerLost::WorkerLost(WorkerExit how, std::string task)
    : std::runtime_error("corelet: " + how.describe() + (task.empty() ? "" : " while running " + task)),
      how_(std::move(how)),
      task_(std::move(task)) {}

RemoteError::RemoteError(std::string type_name, std::string message, int worker)
    : std::runtime_error(type_name + ": " + message + " (on worker " + std::to_string(worker) + ")"),
      type_(std::move(type_name)),
      message_(std::move(message)),
      worker_(worker) {}

int this_worker() noexcept { return ipc::detail::g_worker ? ipc::detail::g_worker_id : -1; }

int num_workers() noexcept { return ipc::detail::g_worker ? ipc::detail::g_cluster->n : 0; }

pid_t worker_pid(int w) {
  ipc::detail::check_worker(w, "worker_pid");
  return ipc::detail::g_cluster->slot(w).pid.load(std::memory_order_acquire);
}

bool worker_alive(int w) {
  ipc::detail::check_worker(w, "worker_alive");
  return ipc::detail::g_worker->peer_alive(w);
}

Pool::Pool() {
  ipc::detail::check_worker(0, "Pool");
  for (int w = 0; w < ipc::detail::g_cluster->n; ++w) workers_.push_back(w);
}

Pool::Pool(std::vector<int> workers) : workers_(std::move(workers)) {
  if (workers_.empty()) throw std::invalid_argument("corelet::Pool: no workers given");
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    ipc::detail::check_worker(workers_[i], "Pool");
    for (std::size_t j = 0; j < i; ++j)
      if (workers_[j] == workers_[i])
        throw std::invalid_argument("corelet::Pool: worker " + std::to_string(workers_[i]) + " is given twice");
  }
}

namespace ipc::detail {

void flush_now() noexcept {
  if (g_worker) g_worker->flush_all();
}

namespace {
// Filled by static initialisers before main; read-only once a cluster runs
// (every worker is a fork of the same program, so every worker has the same).
struct Registry {
  std::map<std::string, RemoteEntry, std::less<>> by_name;
  std::map<FnKey, const RemoteEntry*> by_key;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

void register_remote(const char* name, FnKey key, Invoker call, Invoker chunk) {
  Registry& r = registry();
  auto [it, fresh] = r.by_name.try_emplace(name, RemoteEntry{name, key, call, chunk});
  if (!fresh && it->second.key != key) {
    std::fprintf(stderr, "corelet: CORELET_REMOTE: two different functions are registered as \"%s\"\n", name);
    std::abort();  // static initialisation: no caller to report to
  }
  r.by_key.emplace(key, &it->second);
}

const RemoteEntry* find_remote(FnKey key) noexcept {
  const Registry& r = registry();
  auto it = r.by_key.find(key);
  return it == r.by_key.end() ? nullptr : it->second;
}

const RemoteEntry* find_remote(std::string_view name) noexcept {
  const Registry& r = registry();
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : &it->second;
}

const RemoteEntry& require_remote(FnKey key, const char* call) {
  if (const RemoteEntry* e = find_remote(key)) return *e;
  throw UsageError(std::string("corelet::") + call +
                   ": the function is not registered; add CORELET_REMOTE(name) at namespace scope");
}

std::string call_prologue(const RemoteEntry& e, std::uint8_t mode) {
  std::string m;
  m.reserve(64);
  Encoder enc(m);
  enc.put(std::uint64_t{0});  // the call id, filled in by Worker::call
  enc.put(mode);
  enc.put_string(e.name);
  return m;
}

void start_call(int worker, std::string&& msg, std::shared_ptr<CallBase> st) {
  g_worker->call(worker, std::move(msg), std::move(st));
}

void finish(CallBase& st) noexcept {
  st.done = true;
  corelet::primitive::wake_all(st.waiters);
}

void require_cluster(const char* call) {
  if (!g_worker) throw UsageError(std::string("corelet::") + call + " called outside a cluster worker");
  corelet::primitive::require_tasklet(call);
}

namespace {
[[noreturn, gnu::noinline, gnu::cold]] void bad_worker(int worker, const char* call) {
  if (!g_cluster || !g_worker) throw UsageError(std::string("corelet::") + call + " called outside a cluster worker");
  throw std::out_of_range(std::string("corelet::") + call + ": no worker " + std::to_string(worker) + " (there are " +
                          std::to_string(g_cluster->n) + ")");
}
}  // namespace

void check_worker(int worker, const char* call) {
  // On every message's path: the error messages are built out of line.
  if (!g_cluster || !g_worker || worker < 0 || worker >= g_cluster->n) [[unlikely]]
    bad_worker(worker, call);
}

std::pair<std::string, std::string> current_exception_info() {
  std::string type = "unknown exception";
  if (const std::type_info* ti = abi::__cxa_current_exception_type()) {
    int status = 0;
    char* d = abi::__cxa_demangle(ti->name(), nullptr, nullptr, &status);
    type = (status == 0 && d) ? d : ti->name();
    std::free(d);
  }
  std::string msg;
  try {
    throw;  // the exception being handled, to read its message
  } catch (const RemoteError& r) {
    type = r.type_name();
    msg = r.message();
  } catch (const std::exception& x) {
    msg = x.what();
  } catch (...) {
  }
  return {std::move(type), std::move(msg)};
}

}  // namespace ipc::detail
}  // namespace corelet
