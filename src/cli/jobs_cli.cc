#include "cli/jobs_cli.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/common.h"
#include "jobs/job_kinds.h"
#include "jobs/runner.h"
#include "jobs/subprocess.h"
#include "store/store.h"
#include "util/config.h"
#include "util/json_writer.h"
#include "util/log.h"

namespace duet {
namespace {

const char* const kUsage =
    "usage: duet jobs worker|submit|list|show [options]   (duet jobs ACTION --help)\n"
    "  worker   run queued jobs (train, batch) as child processes, and queue a batch run\n"
    "           every --schedule-batch; SIGTERM/SIGINT stop it (a running job gets --grace)\n"
    "  submit   queue a job: --kind train|batch [--params '{\"rounds\":50,\"force\":true}']\n"
    "  list     the newest jobs\n"
    "  show     one job with its log: --id N\n";

std::atomic<bool> g_stop{false};
extern "C" void OnJobsStopSignal(int) { g_stop.store(true); }

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// ---------------------------------------------------------------- worker

int Worker(const std::vector<std::string>& args) {
  const std::string cmd = "jobs worker";
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI holding the jobs (and the views, the models)");
  c.Define("input", "",
           "master dataset the jobs read, as for duet batch and duet train (never taken from a "
           "request)");
  c.Define("kinds", "train,batch", "kinds of job this worker runs, comma-separated");
  c.Define("schedule-batch", "30m", "queue a batch run this often (deduplicated); 0: never");
  c.Define("duet", "", "the duet binary the jobs run (default: this one, /proc/self/exe)");
  c.Define("lease", "30s", "a running job's lease; renewed every third of it");
  c.Define("poll", "1s", "how often the queue is polled");
  c.Define("grace", "30s", "on SIGTERM, how long a running job may go on before it is stopped");
  c.Define("parallel", "2", "jobs at once (never two of one kind)");
  c.Define("name", "", "this worker's name in the jobs (default HOST:PID)");
  DefineStatusListen(&c);
  if (int rc = ParseOrHelp(cmd,
                           "Runs queued jobs (train, batch) as child processes of the duet "
                           "binary and queues a batch run on a schedule.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("input"); !s.ok()) return Fail(cmd, s);
  auto schedule = c.DurationMs("schedule-batch");
  auto lease = c.DurationMs("lease");
  auto poll = c.DurationMs("poll");
  auto grace = c.DurationMs("grace");
  auto parallel = c.Int("parallel", 1, 16);
  for (const Status& s :
       {schedule.status(), lease.status(), poll.status(), grace.status(), parallel.status()}) {
    if (!s.ok()) return Fail(cmd, s);
  }
  if (*lease < 3000) {
    return Fail(cmd, Status::InvalidArgument("--lease: " + c.String("lease") +
                                             " is too short; expected at least 3s"));
  }
  if (*poll < 10 || *poll > *lease / 3) {
    return Fail(cmd, Status::InvalidArgument("--poll: " + c.String("poll") +
                                             " must be from 10ms to a third of --lease"));
  }
  const std::vector<std::string> kinds = SplitComma(c.String("kinds"));
  if (kinds.empty()) return Fail(cmd, Status::InvalidArgument("--kinds: no kind given"));
  for (const std::string& k : kinds) {
    bool known = false;
    for (const std::string& j : jobs::JobKinds()) known = known || j == k;
    if (!known) {
      return Fail(cmd, Status::InvalidArgument("--kinds: '" + k +
                                               "' is not a job kind; expected train, batch"));
    }
  }
  std::string duet = c.String("duet");
  if (duet.empty()) {
    std::error_code ec;
    duet = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) return Fail(cmd, Status::IoError("/proc/self/exe: " + ec.message()));
  }
  if (::access(duet.c_str(), X_OK) != 0) {
    return Fail(cmd, Status::InvalidArgument("--duet: " + duet + " is not an executable"));
  }
  const std::string store_uri = c.String("store");
  const std::string input = c.String("input");
  auto store = store::OpenStore(store_uri);
  if (!store.ok()) return Fail(cmd, store.status());

  std::map<std::string, jobs::JobHandler> handlers;
  for (const std::string& k : kinds) {
    if (k == jobs::kTrainKind) {
      handlers[k] = jobs::SubprocessHandler(
          [duet, input, store_uri](const store::JobInfo& job) -> Result<std::vector<std::string>> {
            auto p = jobs::ParseTrainParams(job.params);
            if (!p.ok()) return p.status();
            std::vector<std::string> argv = {duet, "train", "--input", input, "--store", store_uri};
            if (p->force) argv.emplace_back("--force");
            if (p->rounds > 0) {
              argv.emplace_back("--rounds");
              argv.push_back(std::to_string(p->rounds));
            }
            return argv;
          });
    } else {
      handlers[k] = jobs::SubprocessHandler(
          std::vector<std::string>{duet, "batch", "--input", input, "--store", store_uri});
    }
  }
  jobs::RunnerOptions ro;
  ro.worker = c.String("name").empty() ? ProcessName() : c.String("name");
  ro.lease_ms = *lease;
  ro.poll_ms = *poll;
  ro.max_parallel = static_cast<size_t>(*parallel);
  jobs::Runner runner(store->get(), std::move(handlers), ro);
  std::optional<jobs::Scheduler> scheduler;
  if (*schedule > 0) {
    scheduler.emplace(store->get(), jobs::ScheduleOptions{std::string(jobs::kBatchKind), "{}",
                                                          *schedule, nullptr});
  }
  // Ready while the store answers: the schedule's ticks (or, without a schedule, a queue read
  // every poll) are the steps.
  serve::StatusPage page("jobs_worker", jobs::SystemNowMs);
  auto status_server = StartStatusServer(c, &page);
  if (!status_server.ok()) return Fail(cmd, status_server.status());
  std::signal(SIGTERM, OnJobsStopSignal);
  std::signal(SIGINT, OnJobsStopSignal);
  Log(LogLevel::kInfo, "jobs.worker.start",
      {{"worker", ro.worker},
       {"store", store_uri},
       {"input", input},
       {"kinds", c.String("kinds")},
       {"schedule_batch_ms", *schedule},
       {"duet", duet}});
  runner.Start();
  while (!g_stop.load()) {
    if (scheduler) {
      auto queued = scheduler->Tick();
      if (!queued.ok()) {
        page.StepFailed(queued.status());
        Log(LogLevel::kWarn, "jobs.schedule_failed", {{"error", queued.status().ToString()}});
      } else {
        page.StepOk(0);
        if (queued->has_value()) {
          Log(LogLevel::kInfo, "jobs.scheduled",
              {{"id", (*queued)->id},
               {"kind", (*queued)->kind},
               {"state", std::string(store::JobStateName((*queued)->state))}});
        }
      }
    }
    if (!scheduler) {
      auto listed = (*store)->ListJobs(1);
      if (listed.ok()) {
        page.StepOk(0);
      } else {
        page.StepFailed(listed.status());
      }
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(*poll);
    while (!g_stop.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  Log(LogLevel::kInfo, "jobs.worker.stopping",
      {{"running", static_cast<int64_t>(runner.Running().size())}, {"grace_ms", *grace}});
  runner.Stop(*grace);
  Log(LogLevel::kInfo, "jobs.worker.stop", {{"worker", ro.worker}});
  return kExitOk;
}

// ---------------------------------------------------------------- submit, list, show

int Submit(const std::vector<std::string>& args) {
  const std::string cmd = "jobs submit";
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI holding the jobs");
  c.Define("kind", "", "train or batch");
  c.Define("params", "", "the job's parameters as a JSON object (train: force, rounds)");
  if (int rc = ParseOrHelp(cmd, "Queues a job and prints it as JSON.", &c, args); rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("kind"); !s.ok()) return Fail(cmd, s);
  auto params = jobs::CheckJobParams(c.String("kind"), c.String("params"));
  if (!params.ok()) return Fail(cmd, params.status());
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail(cmd, store.status());
  auto job = (*store)->EnqueueJob(c.String("kind"), *params, jobs::SystemNowMs(), false);
  if (!job.ok()) return Fail(cmd, job.status());
  std::printf("%s\n", jobs::JobJson(*job, false).c_str());
  return kExitOk;
}

std::string Time(int64_t ms) { return ms == 0 ? "-" : UtcTimeString(ms); }

int List(const std::vector<std::string>& args) {
  const std::string cmd = "jobs list";
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI holding the jobs");
  c.Define("limit", "20", "how many of the newest jobs");
  c.Define("json", "false", "print JSON", true);
  if (int rc = ParseOrHelp(cmd, "Lists the newest jobs, newest first.", &c, args); rc >= 0) {
    return rc;
  }
  auto limit = c.Int("limit", 1, 100'000);
  if (!limit.ok()) return Fail(cmd, limit.status());
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail(cmd, store.status());
  auto list = (*store)->ListJobs(*limit);
  if (!list.ok()) return Fail(cmd, list.status());
  if (c.Bool("json")) {
    std::string out = "{\"jobs\":[";
    for (size_t i = 0; i < list->size(); ++i) {
      if (i > 0) out.push_back(',');
      out += jobs::JobJson((*list)[i], false);
    }
    std::printf("%s]}\n", out.c_str());
    return kExitOk;
  }
  std::printf("%6s  %-6s  %-9s  %-24s  %-24s  %-24s  %s\n", "id", "kind", "state", "created_at",
              "started_at", "finished_at", "message");
  for (const store::JobInfo& j : *list) {
    std::printf("%6" PRId64 "  %-6s  %-9s  %-24s  %-24s  %-24s  %s\n", j.id, j.kind.c_str(),
                std::string(store::JobStateName(j.state)).c_str(), Time(j.created_ms).c_str(),
                Time(j.started_ms).c_str(), Time(j.finished_ms).c_str(), j.message.c_str());
  }
  return kExitOk;
}

int Show(const std::vector<std::string>& args) {
  const std::string cmd = "jobs show";
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI holding the jobs");
  c.Define("id", "", "the job's id");
  c.Define("json", "false", "print JSON", true);
  if (int rc = ParseOrHelp(cmd, "Shows one job: state, times, message and log.", &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("id"); !s.ok()) return Fail(cmd, s);
  auto id = c.Int("id", 1, INT64_MAX);
  if (!id.ok()) return Fail(cmd, id.status());
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail(cmd, store.status());
  auto job = (*store)->GetJob(*id);
  if (!job.ok()) return Fail(cmd, job.status());
  if (c.Bool("json")) {
    std::printf("%s\n", jobs::JobJson(*job, true).c_str());
    return kExitOk;
  }
  const store::JobInfo& j = *job;
  std::printf("job %" PRId64
              ": %s, %s\n  params:   %s\n  created:  %s\n  started:  %s%s\n"
              "  finished: %s\n  message:  %s\n--- log (last %zu KiB) ---\n%s",
              j.id, j.kind.c_str(), std::string(store::JobStateName(j.state)).c_str(),
              j.params.c_str(), Time(j.created_ms).c_str(), Time(j.started_ms).c_str(),
              j.worker.empty() ? "" : (" by " + j.worker).c_str(), Time(j.finished_ms).c_str(),
              j.message.empty() ? "-" : j.message.c_str(), store::kJobLogBytes / 1024,
              j.log.c_str());
  return kExitOk;
}

}  // namespace

int CmdJobs(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("%s", kUsage);
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "worker") return Worker(rest);
  if (args[0] == "submit") return Submit(rest);
  if (args[0] == "list") return List(rest);
  if (args[0] == "show") return Show(rest);
  std::fprintf(stderr, "duet jobs: unknown action '%s'\n%s", args[0].c_str(), kUsage);
  return kExitUsage;
}

}  // namespace duet
