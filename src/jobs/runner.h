// Runner and Scheduler: the worker side of asynchronous jobs (docs/jobs.md).
//
// A Runner polls the store for queued jobs of the kinds it has handlers for, claims one
// (Store::ClaimJob: at most one job of a kind runs anywhere), runs its handler on a thread of
// its own — never on a request thread — renews the claim's lease every lease/3 while it runs,
// copies the handler's log lines into the job's log and finishes the job: succeeded when the
// handler returns ok, failed with the handler's message when it returns an error or throws.
// A job whose lease the runner could not renew in time is failed by the next claimer ("worker
// lost"), never run again; the runner then learns it (Aborted) and cancels the handler.
//
// A Scheduler queues a job of one kind every interval, deduplicated: while one is queued or
// running no other is queued, so a slow run never piles up more behind it.
//
// Time: both read an injected wall clock (now_ms), so tests drive leases and schedules with a
// simulated clock by calling Tick themselves; Start runs Tick on a thread every poll_ms of real
// time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/store.h"
#include "util/result.h"

namespace duet::jobs {

// Where a handler writes its output, line by line, and learns that it should stop. Thread-safe.
class LogSink {
 public:
  // One line of output (a trailing newline is added). Buffered; the runner writes it to the
  // job's log on its next tick. The buffer keeps the last store::kJobLogBytes.
  void Line(std::string_view line);
  // True once the runner asks the handler to stop: the worker is stopping, or the job was
  // failed meanwhile (lease lost). A handler should then return soon; what it returns is
  // ignored.
  bool cancelled() const;
  // Sleeps up to `ms` or until cancelled; returns cancelled().
  bool WaitCancelled(int64_t ms);

  // For the runner.
  void Cancel();
  std::string TakeBuffered();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string buffer_;
  bool cancelled_ = false;
};

// Runs one job. Returns ok for success, an error whose message becomes the job's message.
using JobHandler = std::function<Status(const store::JobInfo& job, LogSink& log)>;

struct RunnerOptions {
  std::string worker = "worker";  // the name the store records as the job's owner
  int64_t lease_ms = 30'000;
  int64_t poll_ms = 1'000;          // Start's tick interval (real time); keep it below lease_ms / 3
  size_t max_parallel = 1;          // jobs at once (of different kinds)
  std::function<int64_t()> now_ms;  // wall clock, ms since the epoch; default: the system clock
};

class Runner {
 public:
  // `store` must outlive the Runner. `handlers` maps a kind to its handler.
  Runner(store::Store* store, std::map<std::string, JobHandler> handlers, RunnerOptions options);
  // Stop(0, 0) if not stopped.
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // One step: writes buffered log lines, finishes jobs whose handler returned, renews leases
  // that are due, then claims jobs while fewer than max_parallel run (none once stopping).
  // Store failures are returned (the first one); the next Tick tries again. Thread-safe
  // (serialized).
  Status Tick();
  // Calls Tick every poll_ms on a thread of its own, until Stop.
  void Start();
  // Stops claiming, then waits up to grace_ms (real time) for running jobs to end, ticking
  // meanwhile. Jobs still running then are cancelled (LogSink::cancelled; a subprocess gets
  // SIGTERM, then SIGKILL) and finished as failed "worker stopped"; their handlers get up to
  // cancel_ms to return. Idempotent.
  void Stop(int64_t grace_ms, int64_t cancel_ms = 5'000);

  // Jobs this runner is running now.
  std::vector<store::JobInfo> Running() const;

 private:
  struct Slot;
  Status TickLocked();
  Status Flush(Slot& slot);
  std::vector<std::string> FreeKinds() const;

  store::Store* const store_;
  const std::map<std::string, JobHandler> handlers_;
  const RunnerOptions options_;

  mutable std::mutex tick_mu_;                // serializes Tick
  std::vector<std::shared_ptr<Slot>> slots_;  // guarded by tick_mu_
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;  // guarded by tick_mu_

  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool quit_ = false;  // guarded by loop_mu_
  std::thread loop_;
};

struct ScheduleOptions {
  std::string kind;
  std::string params = "{}";
  int64_t interval_ms = 30 * 60 * 1000;
  std::function<int64_t()> now_ms;  // default: the system clock
};

class Scheduler {
 public:
  // `store` must outlive the Scheduler.
  Scheduler(store::Store* store, ScheduleOptions options);
  // When due (the first call, then every interval_ms after the last success), queues a job of
  // the kind with dedupe and returns it (or the queued or running one found instead); nullopt
  // when not due. A failure is returned and retried by the next call.
  Result<std::optional<store::JobInfo>> Tick();

 private:
  store::Store* const store_;
  const ScheduleOptions options_;
  std::optional<int64_t> next_due_ms_;
};

// The system clock in ms since the epoch.
int64_t SystemNowMs();

}  // namespace duet::jobs
