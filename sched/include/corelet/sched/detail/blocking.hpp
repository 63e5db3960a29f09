#pragma once
// Internal: the job record of run_blocking.

#include <corelet/sched/primitive.hpp>

#include <stop_token>

namespace corelet::detail {

class Scheduler;

// BlockingJob — one call handed to a helper thread. It lives on the waiting
// tasklet's stack, which stays parked until `finished` (set on the scheduler's
// thread when the completion is drained), so the helper never outlives it.
struct BlockingJob {
  virtual void execute() noexcept = 0;  // on a helper thread
  Tasklet* waiter = nullptr;
  Scheduler* owner = nullptr;
  bool finished = false;
  std::stop_source stop;

 protected:
  ~BlockingJob() = default;
};

// Which helpers run a job: run_blocking's (a bounded pool), or the proxies
// of futex waits (one per concurrent wait; futex.hpp).
enum class JobPool : std::uint8_t { Calls, Waits };

// Hands `job` to the helper pool for the calling tasklet, which it unparks
// when done (job.finished set). A stackless tasklet parks itself after this
// (park_stackless) until `finished`; run_job does all of it for the others.
void submit_job(BlockingJob& job, const char* call, JobPool which = JobPool::Calls);
// Hands `job` to the helper pool and parks the calling tasklet until it has run.
// Cancellation requests stop on the job's stop_source and keeps waiting (a
// thread cannot be interrupted safely); when the job is done it throws Cancelled.
void run_job(BlockingJob& job, const char* call);
// Like run_job, but a cancellation does not throw: returns true if the tasklet
// was cancelled while the job ran (the job's result is complete either way).
bool run_job_keep_result(BlockingJob& job, const char* call);

}  // namespace corelet::detail
