#pragma once
// corelet/ipc/cluster.hpp — one scheduler per core: the supervisor and the
// worker processes it runs.
//
//   int main() {
//     return corelet::run(corelet::Config{}, [] {      // main runs on worker 0
//       auto f = corelet::spawn_on(1, count_primes, 400000);
//       std::printf("%zu\n", f.get());
//       return 0;
//     });
//   }
//
// corelet::run(Config, main) makes the calling process a supervisor: it forks
// one worker process per CPU (before any thread exists), connects every
// ordered pair of workers with a shared-memory ring, runs `main` as the first
// tasklet of worker 0 and waits. It is not on the data path: workers talk to
// each other directly. The calling process's memory at the time of the call is
// what every worker starts with (fork), so globals set up before run() are
// seen by all workers; changes a worker makes later stay in that worker.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace corelet {

// WorkerExit — how a worker process ended, as the supervisor saw it.
struct WorkerExit {
  int worker = -1;     // worker id, 0 .. num_workers()-1
  pid_t pid = 0;
  int signal = 0;      // the signal that killed it, or 0
  int exit_code = 0;   // its exit status if it exited (signal == 0)
  std::string describe() const;  // "worker 1 (pid 123) was killed by signal 9 (Killed)"
};

enum class OnWorkerDeath {
  restart,   // a new process takes the dead worker's place; calls that waited on it fail
  shutdown,  // the whole cluster shuts down; run() reports the failure
};

struct Config {
  // workers — processes to run; 0 means one per CPU of this process's
  // affinity mask (sched_getaffinity).
  int workers = 0;
  // pin — each worker is bound to one CPU of the affinity mask (round robin).
  bool pin = true;
  // ring_bytes — data bytes of each ring (one per ordered pair of workers); a
  // power of two, at least 4096. Messages larger than a quarter of it travel
  // in chunks. The memory is reserved per pair and touched as used.
  std::size_t ring_bytes = std::size_t{1} << 20;
  OnWorkerDeath on_worker_death = OnWorkerDeath::restart;
  // shutdown_timeout — after SIGINT/SIGTERM (or main's end, or a fatal
  // worker death) the workers get this long to finish, then SIGKILL.
  std::chrono::milliseconds shutdown_timeout{5000};
  // idle_spin — how long a worker with nothing to do keeps polling its rings
  // before it sleeps: a busy peer's message is then seen without a wakeup.
  // 0 sleeps at once (lowest CPU use, a syscall per wakeup).
  std::chrono::microseconds idle_spin{50};
  // stack_size — usable stack bytes of main and of the tasklets that run
  // remote calls (spawn_on, Pool chunks, actor methods) on every worker; as
  // SpawnOptions::stack_size (64 KiB by default; only touched pages use memory).
  std::size_t stack_size = 64 * 1024;
  // on_worker_exit — called in the supervisor for every worker death it did
  // not ask for (after it is reported on stderr). Optional.
  std::function<void(const WorkerExit&)> on_worker_exit;
  // quiet — do not report worker deaths on stderr.
  bool quiet = false;
  // hooks — for a language runtime living in the workers (the Python
  // bindings): called around every fork of a worker, in the supervisor
  // (prepare before, parent after) and in the new worker (child, first thing
  // after the fork), and in a worker about to exit (exit: flush buffers). All
  // optional; none may throw.
  struct Hooks {
    std::function<void()> prepare;
    std::function<void()> parent;
    std::function<void()> child;
    std::function<void()> exit;
  } hooks;
};

// WorkerLost — the worker a call, a task or a message depended on died.
class WorkerLost : public std::runtime_error {
 public:
  WorkerLost(WorkerExit how, std::string task);
  int worker() const noexcept { return how_.worker; }
  pid_t pid() const noexcept { return how_.pid; }
  int signal() const noexcept { return how_.signal; }
  int exit_code() const noexcept { return how_.exit_code; }
  const std::string& task() const noexcept { return task_; }
  const WorkerExit& exit() const noexcept { return how_; }

 private:
  WorkerExit how_;
  std::string task_;
};

// RemoteError — a remote call threw: the exception's type name and message,
// and the worker it ran on. what() reads "<type>: <message> (on worker N)".
class RemoteError : public std::runtime_error {
 public:
  RemoteError(std::string type_name, std::string message, int worker);
  const std::string& type_name() const noexcept { return type_; }
  const std::string& message() const noexcept { return message_; }
  int worker() const noexcept { return worker_; }

 private:
  std::string type_;
  std::string message_;
  int worker_;
};

// this_worker — the id of the worker running the caller (0 .. num_workers()-1);
// -1 outside a cluster.
int this_worker() noexcept;
// num_workers — the workers of the cluster; 0 outside a cluster.
int num_workers() noexcept;
// worker_pid — the pid of worker `w` now (0 while it is being restarted).
pid_t worker_pid(int w);
// worker_alive — whether messages to worker `w` can be delivered now.
bool worker_alive(int w);

namespace ipc::detail {
int run_cluster(const Config& cfg, std::function<int()> main);
}

// run — see the top of this file. main() returns int (the exit status, 0..255)
// or void (0). Returns main's status when main ends; 128+N if the cluster was
// stopped by signal N (SIGINT, SIGTERM) or worker 0 was killed by it; 1 if
// main threw (reported on stderr) or, with OnWorkerDeath::shutdown, a worker
// died (reported). Must be called before the process starts any thread
// (UsageError otherwise) and not inside a cluster.
template <class F>
  requires std::is_invocable_v<F&>
int run(Config cfg, F&& main) {
  return ipc::detail::run_cluster(cfg, [m = std::forward<F>(main)]() mutable -> int {
    if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
      m();
      return 0;
    } else {
      return static_cast<int>(m());
    }
  });
}

}  // namespace corelet
