#include "jobs/runner.h"

#include <chrono>
#include <exception>
#include <utility>

#include "util/log.h"

namespace duet::jobs {
namespace {

// The first error of a tick is the one returned; the tick goes on with the other jobs.
void Keep(Status* first, const Status& s) {
  if (first->ok() && !s.ok()) *first = s;
}

// The store refused the call because the job is no longer this claim's: failed by recovery
// (its lease had expired), or gone.
bool JobLost(const Status& s) {
  return s.code() == StatusCode::kAborted || s.code() == StatusCode::kNotFound;
}

}  // namespace

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- LogSink

void LogSink::Line(std::string_view line) {
  std::lock_guard<std::mutex> l(mu_);
  std::string text(line);
  text.push_back('\n');
  buffer_ = store::AppendBoundedLog(std::move(buffer_), text);
}

bool LogSink::cancelled() const {
  std::lock_guard<std::mutex> l(mu_);
  return cancelled_;
}

bool LogSink::WaitCancelled(int64_t ms) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return cancelled_; });
  return cancelled_;
}

void LogSink::Cancel() {
  {
    std::lock_guard<std::mutex> l(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

std::string LogSink::TakeBuffered() {
  std::lock_guard<std::mutex> l(mu_);
  return std::exchange(buffer_, std::string());
}

// ---------------------------------------------------------------- Runner

struct Runner::Slot {
  store::JobInfo job;
  std::shared_ptr<LogSink> sink = std::make_shared<LogSink>();
  std::thread thread;
  std::atomic<bool> done{false};
  Status result;        // written by the handler's thread before `done`
  std::string pending;  // log output not yet written to the store
  int64_t renewed_ms = 0;
  bool lost = false;  // the store failed the job meanwhile: nothing more is written
};

Runner::Runner(store::Store* store, std::map<std::string, JobHandler> handlers,
               RunnerOptions options)
    : store_(store), handlers_(std::move(handlers)), options_([&] {
        RunnerOptions o = std::move(options);
        if (!o.now_ms) o.now_ms = SystemNowMs;
        if (o.max_parallel == 0) o.max_parallel = 1;
        return o;
      }()) {}

Runner::~Runner() { Stop(0); }

void Runner::Start() {
  std::lock_guard<std::mutex> l(loop_mu_);
  if (loop_.joinable() || quit_) return;
  loop_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(loop_mu_);
    while (!quit_) {
      lock.unlock();
      if (Status s = Tick(); !s.ok()) {
        Log(LogLevel::kWarn, "jobs.tick_failed", {{"error", s.ToString()}});
      }
      lock.lock();
      loop_cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms),
                        [this] { return quit_; });
    }
  });
}

Status Runner::Tick() {
  std::lock_guard<std::mutex> l(tick_mu_);
  return TickLocked();
}

std::vector<store::JobInfo> Runner::Running() const {
  std::lock_guard<std::mutex> l(tick_mu_);
  std::vector<store::JobInfo> out;
  for (const auto& s : slots_) out.push_back(s->job);
  return out;
}

std::vector<std::string> Runner::FreeKinds() const {
  std::vector<std::string> out;
  for (const auto& [kind, handler] : handlers_) {
    bool busy = false;
    for (const auto& s : slots_) busy = busy || s->job.kind == kind;
    if (!busy) out.push_back(kind);
  }
  return out;
}

Status Runner::Flush(Slot& slot) {
  slot.pending = store::AppendBoundedLog(std::move(slot.pending), slot.sink->TakeBuffered());
  if (slot.pending.empty() || slot.lost) return Status::Ok();
  const Status s = store_->AppendJobLog(slot.job.id, slot.job.token, slot.pending);
  if (s.ok()) {
    slot.pending.clear();
  } else if (JobLost(s)) {
    slot.lost = true;
    slot.sink->Cancel();
    Log(LogLevel::kWarn, "jobs.lost", {{"id", slot.job.id}, {"error", s.ToString()}});
    return Status::Ok();
  }
  return s;
}

Status Runner::TickLocked() {
  Status first;
  const int64_t now = options_.now_ms();
  for (auto it = slots_.begin(); it != slots_.end();) {
    Slot& s = **it;
    // Read before the flush: the handler writes its last lines before it sets `done`.
    const bool done = s.done.load();
    Keep(&first, Flush(s));
    if (done) {
      if (s.thread.joinable()) s.thread.join();
      if (!s.lost) {
        const bool ok = s.result.ok();
        const std::string message = ok                           ? std::string()
                                    : s.result.message().empty() ? s.result.ToString()
                                                                 : s.result.message();
        const Status f = store_->FinishJob(s.job.id, s.job.token, ok, message, now);
        if (!f.ok() && !JobLost(f)) {
          Keep(&first, f);  // the store is unreachable: finish on a later tick
          ++it;
          continue;
        }
        Log(JobLost(f) ? LogLevel::kWarn : LogLevel::kInfo, "jobs.finished",
            {{"id", s.job.id},
             {"kind", s.job.kind},
             {"succeeded", ok && f.ok()},
             {"message", f.ok() ? message : f.ToString()}});
      }
      it = slots_.erase(it);
      continue;
    }
    if (!s.lost && now - s.renewed_ms >= options_.lease_ms / 3) {
      const Status r = store_->RenewJobLease(s.job.id, s.job.token, now, options_.lease_ms);
      if (r.ok()) {
        s.renewed_ms = now;
      } else if (JobLost(r)) {
        s.lost = true;
        s.sink->Cancel();
        Log(LogLevel::kWarn, "jobs.lost", {{"id", s.job.id}, {"error", r.ToString()}});
      } else {
        Keep(&first, r);
      }
    }
    ++it;
  }
  while (!stopping_.load() && slots_.size() < options_.max_parallel) {
    const std::vector<std::string> kinds = FreeKinds();
    if (kinds.empty()) break;
    auto claimed = store_->ClaimJob(kinds, options_.worker, now, options_.lease_ms);
    if (!claimed.ok()) {
      Keep(&first, claimed.status());
      break;
    }
    if (!claimed->has_value()) break;
    auto slot = std::make_shared<Slot>();
    slot->job = std::move(**claimed);
    slot->renewed_ms = now;
    Log(LogLevel::kInfo, "jobs.started",
        {{"id", slot->job.id}, {"kind", slot->job.kind}, {"worker", options_.worker}});
    // The thread holds the slot (not the runner): a handler that ignores cancellation can
    // outlive a stopped runner without touching freed memory.
    slot->thread = std::thread([slot, handler = handlers_.at(slot->job.kind)] {
      Status st;
      try {
        st = handler(slot->job, *slot->sink);
      } catch (const std::exception& e) {
        st = Status::Aborted(std::string("the handler threw: ") + e.what());
      } catch (...) {
        st = Status::Aborted("the handler threw an exception that is not a std::exception");
      }
      slot->result = std::move(st);
      slot->done.store(true);
    });
    slots_.push_back(std::move(slot));
  }
  return first;
}

void Runner::Stop(int64_t grace_ms, int64_t cancel_ms) {
  stopping_.store(true);
  {
    std::lock_guard<std::mutex> l(loop_mu_);
    quit_ = true;
  }
  loop_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  std::lock_guard<std::mutex> l(tick_mu_);
  if (stopped_) return;
  stopped_ = true;
  using Clock = std::chrono::steady_clock;
  const auto step = std::chrono::milliseconds(std::min<int64_t>(options_.poll_ms, 50));
  const auto grace_end = Clock::now() + std::chrono::milliseconds(grace_ms);
  while (!slots_.empty()) {
    if (Status s = TickLocked(); !s.ok()) {
      Log(LogLevel::kWarn, "jobs.tick_failed", {{"error", s.ToString()}});
    }
    if (slots_.empty() || Clock::now() >= grace_end) break;
    std::this_thread::sleep_for(step);
  }
  if (slots_.empty()) return;
  for (const auto& s : slots_) s->sink->Cancel();
  const auto cancel_end = Clock::now() + std::chrono::milliseconds(cancel_ms);
  for (const auto& s : slots_) {
    while (!s->done.load() && Clock::now() < cancel_end) std::this_thread::sleep_for(step);
  }
  const int64_t now = options_.now_ms();
  for (const auto& s : slots_) {
    (void)Flush(*s);
    if (!s->lost) {
      const Status f = store_->FinishJob(s->job.id, s->job.token, false, "worker stopped", now);
      Log(f.ok() ? LogLevel::kInfo : LogLevel::kWarn, "jobs.stopped",
          {{"id", s->job.id}, {"kind", s->job.kind}, {"finish", f.ToString()}});
    }
    if (s->done.load()) {
      s->thread.join();
    } else {
      s->thread.detach();  // it holds its slot; its output goes nowhere
    }
  }
  slots_.clear();
}

// ---------------------------------------------------------------- Scheduler

Scheduler::Scheduler(store::Store* store, ScheduleOptions options)
    : store_(store), options_([&] {
        ScheduleOptions o = std::move(options);
        if (!o.now_ms) o.now_ms = SystemNowMs;
        return o;
      }()) {}

Result<std::optional<store::JobInfo>> Scheduler::Tick() {
  const int64_t now = options_.now_ms();
  if (next_due_ms_ && now < *next_due_ms_) return std::optional<store::JobInfo>();
  auto job = store_->EnqueueJob(options_.kind, options_.params, now, true);
  if (!job.ok()) return job.status();
  next_due_ms_ = now + options_.interval_ms;
  return std::optional<store::JobInfo>(std::move(*job));
}

}  // namespace duet::jobs
