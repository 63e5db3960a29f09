// run_blocking's helper threads.
#include <corelet/sched/detail/blocking.hpp>

#include "scheduler.hpp"

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace corelet::detail {
namespace {

// The pool: helper threads started on demand (none until the first call, so a
// program that never calls run_blocking has no extra thread), up to kMaxThreads.
// They never exit; the pool is never destroyed, so process exit does not wait
// for a helper stuck in a long call.
class BlockingPool {
 public:
  static constexpr int kMaxThreads = 16;

  void submit(BlockingJob* job) {
    jobs_.enqueue(job);
    // Grow when no helper is idle. `idle_` is a hint (relaxed): a job never
    // waits forever, because at least one helper exists and each takes jobs
    // until the queue is empty; the hint only decides whether to add one.
    if (idle_.load(std::memory_order_relaxed) == 0) {
      std::lock_guard<std::mutex> lk(m_);
      if (started_ < kMaxThreads) {
        std::thread([this] { work(); }).detach();
        ++started_;
      }
    }
  }

 private:
  void work() {
    for (;;) {
      BlockingJob* job = nullptr;
      idle_.fetch_add(1, std::memory_order_relaxed);
      jobs_.wait_dequeue(job);
      idle_.fetch_sub(1, std::memory_order_relaxed);
      job->execute();
      // The queue's enqueue/dequeue are release/acquire, so the job's results,
      // written by execute(), are visible to the scheduler that dequeues it.
      job->owner->post_completion(job);
    }
  }

  moodycamel::BlockingConcurrentQueue<BlockingJob*> jobs_;
  std::atomic<int> idle_{0};
  std::mutex m_;
  int started_ = 0;  // guarded by m_
};

BlockingPool& pool() {
  static BlockingPool* p = new BlockingPool;  // never destroyed, see above
  return *p;
}

}  // namespace

void run_job(BlockingJob& job, const char* call) {
  Tasklet* t = require_tasklet(call);
  Scheduler* s = this_scheduler();
  job.waiter = t;
  job.owner = s;
  s->job_submitted();
  pool().submit(&job);
  bool cancelled = false;
  while (!job.finished) {
    if (detail::park(call, &job, Clock::time_point::max()) == Wake::Cancelled) {
      cancelled = true;
      job.stop.request_stop();
    }
  }
  if (cancelled) throw Cancelled{};
}

}  // namespace corelet::detail
