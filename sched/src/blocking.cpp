// run_blocking's helper threads.
#include <corelet/sched/detail/blocking.hpp>

#include "scheduler.hpp"

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <pthread.h>

#include <mutex>
#include <new>
#include <thread>

namespace corelet::detail {
namespace {

// A pool: helper threads started on demand (none until the first call, so a
// program that never calls run_blocking has no extra thread), up to max_threads.
// They never exit; the pool is never destroyed, so process exit does not wait
// for a helper stuck in a long call.
class BlockingPool {
 public:
  explicit BlockingPool(int max_threads) : max_threads_(max_threads) {}

  // submit — queues the job, starting a helper first unless enough are idle
  // for every queued job. Throws (nothing queued) if a needed helper cannot be
  // started and none exists, or if the queue cannot allocate.
  void submit(BlockingJob* job) {
    {
      std::lock_guard<std::mutex> lk(m_);
      ++queued_;
      if (idle_ < queued_ && started_ < max_threads_) {
        try {
          std::thread([this] { work(); }).detach();
          ++started_;
          ++idle_;  // counted idle from now: it will take a job
        } catch (...) {
          if (started_ == 0) {
            --queued_;
            throw;
          }
          // Helpers exist: the job waits for one of them.
        }
      }
    }
    if (!jobs_.enqueue(job)) {  // the queue could not allocate: nothing is queued
      std::lock_guard<std::mutex> lk(m_);
      --queued_;
      throw std::bad_alloc();
    }
  }

 private:
  void work() {
    for (;;) {
      BlockingJob* job = nullptr;
      jobs_.wait_dequeue(job);
      {
        std::lock_guard<std::mutex> lk(m_);
        --idle_;
        --queued_;
      }
      job->execute();
      {
        std::lock_guard<std::mutex> lk(m_);
        ++idle_;
      }
      // The queue's enqueue/dequeue are release/acquire, so the job's results,
      // written by execute(), are visible to the scheduler that dequeues it.
      // The job (on the waiting tasklet's stack) may be gone once posted.
      job->owner->post_completion(job);
    }
  }

  const int max_threads_;
  moodycamel::BlockingConcurrentQueue<BlockingJob*> jobs_;
  std::mutex m_;
  // All guarded by m_: helpers started, helpers not running a job, jobs
  // submitted and not yet taken. A helper is started whenever idle_ < queued_,
  // so every queued job has a helper to take it (up to max_threads_).
  int started_ = 0;
  int idle_ = 0;
  int queued_ = 0;
};

// The process's pools: run_blocking's calls (16 helpers: enough to overlap
// blocking file calls, few enough not to thrash), and the proxies of futex
// waits (futex.cpp: one per concurrently waiting tasklet, since each blocks
// for as long as its wait lasts). A forked child gets new, empty ones: the
// parent's helpers do not exist there, and its copy of the old pools
// (counters, a mutex perhaps held at the fork, queued jobs of the parent) is
// left untouched.
constexpr int kCallThreads = 16;
constexpr int kWaitThreads = 4096;
BlockingPool* g_pools[2] = {};
std::once_flag g_pool_once;

BlockingPool& pool(JobPool which) {
  std::call_once(g_pool_once, [] {
    auto make = [] {
      g_pools[0] = new BlockingPool(kCallThreads);  // never destroyed, see above
      g_pools[1] = new BlockingPool(kWaitThreads);
    };
    make();
    ::pthread_atfork(nullptr, nullptr, make);
  });
  return *g_pools[which == JobPool::Calls ? 0 : 1];
}

}  // namespace

void submit_job(BlockingJob& job, const char* call, JobPool which) {
  Tasklet* t = require_tasklet(call);
  Scheduler* s = this_scheduler();
  job.waiter = t;
  job.owner = s;
  pool(which).submit(&job);  // may throw: then nothing is outstanding
  s->job_submitted();   // before any completion can be drained: the loop runs on this thread
}

bool run_job_keep_result(BlockingJob& job, const char* call) {
  submit_job(job, call);
  bool cancelled = false;
  while (!job.finished) {
    if (primitive::park(call, &job, Clock::time_point::max(), WaitKind::Io) == Wake::Cancelled) {
      cancelled = true;
      job.stop.request_stop();
    }
  }
  return cancelled;
}

void run_job(BlockingJob& job, const char* call) {
  if (run_job_keep_result(job, call)) throw Cancelled{};
}

}  // namespace corelet::detail
