// Runner and Scheduler over a real SQLite store with a simulated wall clock: the test calls Tick
// itself and moves the clock; handlers run on the runner's real threads.
#include "jobs/runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "store/store.h"

namespace duet::jobs {
namespace {

using store::JobInfo;
using store::JobState;

constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z
constexpr int64_t kLease = 30'000;

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir =
        std::filesystem::path(::testing::TempDir()) / ("duet_jobs_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path =
        dir /
        (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".sqlite");
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
    uri_ = "sqlite:" + path.string();
    store_ = Open();
  }

  std::unique_ptr<store::Store> Open() const {
    auto s = store::OpenStore(uri_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  RunnerOptions Options(const std::string& worker = "w1") {
    RunnerOptions o;
    o.worker = worker;
    o.lease_ms = kLease;
    o.poll_ms = 10;
    o.now_ms = [this] { return now_.load(); };
    return o;
  }

  int64_t Enqueue(const std::string& kind) {
    auto j = store_->EnqueueJob(kind, "{}", now_.load(), false);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? j->id : 0;
  }

  JobInfo Get(int64_t id) {
    auto j = store_->GetJob(id);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? *j : JobInfo{};
  }

  // Ticks (real time passing, simulated clock still) until the job is finished or 5 s passed.
  JobInfo TickUntilFinished(Runner& r, int64_t id) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
      EXPECT_TRUE(r.Tick().ok());
      const JobInfo j = Get(id);
      if (j.state == JobState::kSucceeded || j.state == JobState::kFailed) return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ADD_FAILURE() << "job " << id << " did not finish";
    return Get(id);
  }

  std::string uri_;
  std::unique_ptr<store::Store> store_;
  std::atomic<int64_t> now_{kT0};
};

TEST_F(RunnerTest, HandlerThatLogsAndSucceedsFinishesTheJobWithItsLog) {
  const int64_t id = Enqueue("train");
  Runner r(store_.get(),
           {{"train",
             [](const JobInfo& job, LogSink& log) {
               log.Line("training job " + std::to_string(job.id));
               log.Line("done");
               return Status::Ok();
             }}},
           Options());
  const JobInfo j = TickUntilFinished(r, id);
  EXPECT_EQ(j.state, JobState::kSucceeded);
  EXPECT_EQ(j.log, "training job " + std::to_string(id) + "\ndone\n");
  EXPECT_EQ(j.worker, "w1");
  EXPECT_EQ(j.started_ms, kT0);
  EXPECT_EQ(j.message, "");
}

TEST_F(RunnerTest, HandlerThatFailsOrThrowsFailsTheJobWithItsMessage) {
  const int64_t a = Enqueue("train");
  const int64_t b = Enqueue("batch");
  Runner r(
      store_.get(),
      {{"train", [](const JobInfo&, LogSink&) { return Status::IoError("disk full"); }},
       {"batch", [](const JobInfo&, LogSink&) -> Status { throw std::runtime_error("boom"); }}},
      Options());
  EXPECT_EQ(TickUntilFinished(r, a).message, "disk full");
  const JobInfo jb = TickUntilFinished(r, b);
  EXPECT_EQ(jb.state, JobState::kFailed);
  EXPECT_EQ(jb.message, "the handler threw: boom");
}

TEST_F(RunnerTest, LeaseIsRenewedEveryThirdOfItWhileTheJobRuns) {
  const int64_t id = Enqueue("batch");
  std::atomic<bool> release{false};
  Runner r(store_.get(),
           {{"batch",
             [&](const JobInfo&, LogSink& log) {
               while (!release.load() && !log.cancelled()) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(2));
               }
               return Status::Ok();
             }}},
           Options());
  ASSERT_TRUE(r.Tick().ok());
  EXPECT_EQ(Get(id).lease_until_ms, kT0 + kLease);
  now_ += kLease / 3 - 1;  // not due yet
  ASSERT_TRUE(r.Tick().ok());
  EXPECT_EQ(Get(id).lease_until_ms, kT0 + kLease);
  // Far beyond the first lease, renewed each third: it never expires.
  for (int i = 0; i < 10; ++i) {
    now_ += kLease / 3;
    ASSERT_TRUE(r.Tick().ok());
    EXPECT_EQ(Get(id).lease_until_ms, now_.load() + kLease);
    auto failed = store_->FailExpiredJobs(now_.load() + 1);
    ASSERT_TRUE(failed.ok());
    EXPECT_EQ(*failed, 0);
  }
  release = true;
  EXPECT_EQ(TickUntilFinished(r, id).state, JobState::kSucceeded);
}

TEST_F(RunnerTest, JobWhoseLeaseExpiredIsFailedAndItsHandlerCancelled) {
  const int64_t id = Enqueue("batch");
  std::atomic<bool> saw_cancel{false};
  Runner r(store_.get(),
           {{"batch",
             [&](const JobInfo&, LogSink& log) {
               saw_cancel = log.WaitCancelled(10'000);
               return Status::Ok();  // ignored: the job is no longer this runner's
             }}},
           Options());
  ASSERT_TRUE(r.Tick().ok());
  // The runner stalls (no tick) past its lease; another worker's claim fails the job.
  now_ += kLease + 1;
  auto other = store_->ClaimJob({"batch"}, "w2", now_.load(), kLease);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value()) << "the failed job must not be run again";
  JobInfo j = Get(id);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.message.rfind("worker lost: lease expired at ", 0), 0u) << j.message;
  // The stalled runner learns it on its next tick and cancels the handler.
  ASSERT_TRUE(r.Tick().ok());
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!r.Running().empty() && std::chrono::steady_clock::now() < end) {
    ASSERT_TRUE(r.Tick().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(saw_cancel.load());
  EXPECT_TRUE(r.Running().empty());
  j = Get(id);
  EXPECT_EQ(j.state, JobState::kFailed);  // not overwritten by the handler's ok
  EXPECT_EQ(j.message.rfind("worker lost", 0), 0u);
}

TEST_F(RunnerTest, TwoRunnersNeverRunTwoJobsOfOneKindAtOnce) {
  const int64_t a = Enqueue("batch");
  const int64_t b = Enqueue("batch");
  std::atomic<int> running{0}, most{0};
  std::atomic<bool> release{false};
  auto handler = [&](const JobInfo&, LogSink& log) {
    const int n = ++running;
    int m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {
    }
    while (!release.load() && !log.cancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    --running;
    return Status::Ok();
  };
  auto other_store = Open();
  RunnerOptions o1 = Options("w1"), o2 = Options("w2");
  o1.max_parallel = o2.max_parallel = 2;
  Runner r1(store_.get(), {{"batch", handler}}, o1);
  Runner r2(other_store.get(), {{"batch", handler}}, o2);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(r1.Tick().ok());
    ASSERT_TRUE(r2.Tick().ok());
  }
  EXPECT_EQ(r1.Running().size() + r2.Running().size(), 1u);
  EXPECT_EQ(Get(b).state, JobState::kQueued);
  release = true;
  TickUntilFinished(r1.Running().empty() ? r2 : r1, a);
  // Now the second one runs, on either runner.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Get(b).state != JobState::kSucceeded && std::chrono::steady_clock::now() < end) {
    ASSERT_TRUE(r1.Tick().ok());
    ASSERT_TRUE(r2.Tick().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(Get(b).state, JobState::kSucceeded);
  EXPECT_EQ(most.load(), 1);
}

TEST_F(RunnerTest, DifferentKindsRunSideBySideUpToMaxParallel) {
  const int64_t a = Enqueue("batch");
  const int64_t b = Enqueue("train");
  std::atomic<bool> release{false};
  auto wait = [&](const JobInfo&, LogSink& log) {
    while (!release.load() && !log.cancelled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return Status::Ok();
  };
  RunnerOptions o = Options();
  o.max_parallel = 2;
  Runner r(store_.get(), {{"batch", wait}, {"train", wait}}, o);
  ASSERT_TRUE(r.Tick().ok());
  EXPECT_EQ(r.Running().size(), 2u);
  release = true;
  EXPECT_EQ(TickUntilFinished(r, a).state, JobState::kSucceeded);
  EXPECT_EQ(TickUntilFinished(r, b).state, JobState::kSucceeded);
}

TEST_F(RunnerTest, OnlyKindsWithAHandlerAreClaimed) {
  const int64_t id = Enqueue("train");
  Runner r(store_.get(), {{"batch", [](const JobInfo&, LogSink&) { return Status::Ok(); }}},
           Options());
  ASSERT_TRUE(r.Tick().ok());
  EXPECT_TRUE(r.Running().empty());
  EXPECT_EQ(Get(id).state, JobState::kQueued);
}

TEST_F(RunnerTest, RestartKeepsQueuedJobsAndFailsTheOneThatWasRunning) {
  // A runner "killed" mid-job: its claim is in the store and nothing renews it any more.
  const int64_t running = Enqueue("batch");
  const int64_t queued = Enqueue("batch");
  auto killed = store_->ClaimJob({"batch"}, "killed-worker", now_.load(), kLease);
  ASSERT_TRUE(killed.ok() && killed->has_value());
  ASSERT_EQ((*killed)->id, running);
  // The restarted worker: a new store handle and a new runner.
  auto reopened = Open();
  std::atomic<int> runs_of_running{0}, runs_of_queued{0};
  Runner r(reopened.get(),
           {{"batch",
             [&](const JobInfo& job, LogSink&) {
               ++(job.id == running ? runs_of_running : runs_of_queued);
               return Status::Ok();
             }}},
           Options("restarted"));
  ASSERT_TRUE(r.Tick().ok());  // the killed job still holds its kind: nothing starts
  EXPECT_TRUE(r.Running().empty());
  EXPECT_EQ(Get(queued).state, JobState::kQueued);
  now_ += kLease + 1;
  const JobInfo q = TickUntilFinished(r, queued);
  EXPECT_EQ(q.state, JobState::kSucceeded);
  EXPECT_EQ(q.worker, "restarted");
  const JobInfo lost = Get(running);
  EXPECT_EQ(lost.state, JobState::kFailed);
  EXPECT_EQ(lost.message.rfind("worker lost: lease expired at ", 0), 0u) << lost.message;
  EXPECT_EQ(runs_of_running.load(), 0);
  EXPECT_EQ(runs_of_queued.load(), 1);
}

TEST_F(RunnerTest, StopFinishesAJobThatOutlastsTheGraceAsWorkerStopped) {
  const int64_t slow = Enqueue("batch");
  const int64_t next = Enqueue("batch");
  Runner r(store_.get(),
           {{"batch",
             [](const JobInfo&, LogSink& log) {
               log.Line("started");
               log.WaitCancelled(60'000);
               log.Line("cancelled");
               return Status::Ok();
             }}},
           Options());
  ASSERT_TRUE(r.Tick().ok());
  const auto start = std::chrono::steady_clock::now();
  r.Stop(100, 5'000);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  const JobInfo j = Get(slow);
  EXPECT_EQ(j.state, JobState::kFailed);
  EXPECT_EQ(j.message, "worker stopped");
  EXPECT_EQ(j.log, "started\ncancelled\n");
  EXPECT_EQ(Get(next).state, JobState::kQueued);  // a stopping runner claims nothing
  EXPECT_TRUE(r.Tick().ok());
  EXPECT_EQ(Get(next).state, JobState::kQueued);
}

TEST_F(RunnerTest, StopLetsAJobThatEndsWithinTheGraceSucceed) {
  const int64_t id = Enqueue("batch");
  Runner r(store_.get(),
           {{"batch",
             [](const JobInfo&, LogSink& log) {
               std::this_thread::sleep_for(std::chrono::milliseconds(50));
               return Status::Ok();
             }}},
           Options());
  ASSERT_TRUE(r.Tick().ok());
  r.Stop(5'000);
  EXPECT_EQ(Get(id).state, JobState::kSucceeded);
}

TEST_F(RunnerTest, StartRunsJobsOnItsOwnThread) {
  const int64_t id = Enqueue("train");
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> other_thread{false};
  Runner r(store_.get(),
           {{"train",
             [&](const JobInfo&, LogSink&) {
               other_thread = std::this_thread::get_id() != caller;
               return Status::Ok();
             }}},
           Options());
  r.Start();
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Get(id).state != JobState::kSucceeded && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.Stop(1'000);
  EXPECT_EQ(Get(id).state, JobState::kSucceeded);
  EXPECT_TRUE(other_thread.load());
}

TEST_F(RunnerTest, SchedulerQueuesEveryIntervalWithoutPilingUp) {
  constexpr int64_t kInterval = 30 * 60 * 1000;
  Scheduler s(store_.get(), {"batch", "{}", kInterval, [this] { return now_.load(); }});
  auto first = s.Tick();
  ASSERT_TRUE(first.ok() && first->has_value());
  now_ += kInterval - 1;
  auto early = s.Tick();
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(early->has_value());
  // Due again while the first still waits: no second job.
  now_ += 1;
  auto due = s.Tick();
  ASSERT_TRUE(due.ok() && due->has_value());
  EXPECT_EQ((*due)->id, (*first)->id);
  // Once it ran, the next interval queues a new one.
  Runner r(store_.get(), {{"batch", [](const JobInfo&, LogSink&) { return Status::Ok(); }}},
           Options());
  TickUntilFinished(r, (*first)->id);
  now_ += kInterval;
  auto next = s.Tick();
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_NE((*next)->id, (*first)->id);
  EXPECT_EQ((*next)->state, JobState::kQueued);
  EXPECT_EQ(store_->ListJobs(10)->size(), 2u);
}

}  // namespace
}  // namespace duet::jobs
