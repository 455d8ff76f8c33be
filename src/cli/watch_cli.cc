#include "cli/watch_cli.h"

#include <fcntl.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <simdjson.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "cli/common.h"
#include "cli/http_client.h"
#include "serve/http_server.h"
#include "util/config.h"
#include "util/json_writer.h"
#include "util/log.h"

extern char** environ;  // NOLINT(readability-identifier-naming): POSIX's name

namespace duet {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
extern "C" void OnWatchSignal(int sig) {
  g_signal.store(sig);
  g_stop.store(true);
}

int64_t MonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sleeps until the monotonic time `until_ms` or until a stop signal, in short slices.
void SleepUntil(int64_t until_ms, bool stoppable = true) {
  constexpr int64_t kSliceMs = 20;
  while (!(stoppable && g_stop.load())) {
    const int64_t left = until_ms - MonoMs();
    if (left <= 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, kSliceMs)));
  }
}

// ------------------------------------------------------------------------------ process file

// One entry of the process file (docs/operations.md has the reference).
struct ProcessSpec {
  std::string name;
  std::string status_url;  // base: /healthz and /metrics are appended
  HttpUrl healthz;
  HttpUrl metrics;
  std::vector<std::string> command;  // empty: monitored only
  std::vector<std::pair<std::string, std::string>> env;
  bool restart = true;
  int failures = 3;
  int64_t start_period_ms = 10'000;
  int64_t stuck_after_ms = 0;  // 0: no progress check
  int64_t grace_ms = 10'000;
  int64_t backoff_ms = 1'000;
  int64_t max_backoff_ms = 60'000;
  int64_t backoff_reset_ms = 60'000;
  int64_t max_restarts = 0;  // 0: never give up
};

constexpr const char* kProcessKeys[] = {
    "name",        "status_url",    "command",     "env",   "restart",
    "failures",    "start_period",  "stuck_after", "grace", "backoff",
    "max_backoff", "backoff_reset", "max_restarts"};

bool ValidName(std::string_view n) {
  return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// Reads one process entry; every error names the file, the entry and the field.
Result<ProcessSpec> ReadProcess(const std::string& where, simdjson::dom::object o) {
  ProcessSpec p;
  for (const auto field : o) {
    const std::string_view key = field.key;
    if (std::find(std::begin(kProcessKeys), std::end(kProcessKeys), key) ==
        std::end(kProcessKeys)) {
      return Status::InvalidArgument(where + ": unknown field '" + std::string(key) +
                                     "'; expected one of name, status_url, command, env, restart, "
                                     "failures, start_period, stuck_after, grace, backoff, "
                                     "max_backoff, backoff_reset, max_restarts");
    }
  }
  const auto str = [&](const char* key, bool required, std::string* out) -> Status {
    simdjson::dom::element e;
    if (o[key].get(e) != simdjson::SUCCESS) {
      if (required) return Status::InvalidArgument(where + "." + key + ": missing (required)");
      return Status::Ok();
    }
    std::string_view v;
    if (e.get_string().get(v) != simdjson::SUCCESS) {
      return Status::InvalidArgument(where + "." + key + ": " + simdjson::to_string(e) +
                                     " is not a string");
    }
    *out = std::string(v);
    return Status::Ok();
  };
  const auto duration = [&](const char* key, int64_t min_ms, int64_t* out) -> Status {
    std::string text;
    DUET_RETURN_IF_ERROR(str(key, false, &text));
    if (text.empty()) return Status::Ok();
    auto ms = ParseDurationMs(where + "." + key, text);
    if (!ms.ok()) return ms.status();
    if (*ms < min_ms) {
      return Status::InvalidArgument(where + "." + key + ": '" + text +
                                     "' is too short; expected " + std::to_string(min_ms) +
                                     " ms or more");
    }
    *out = *ms;
    return Status::Ok();
  };
  const auto integer = [&](const char* key, int64_t min, int64_t max, int64_t* out) -> Status {
    simdjson::dom::element e;
    if (o[key].get(e) != simdjson::SUCCESS) return Status::Ok();
    int64_t v = 0;
    if (e.get_int64().get(v) != simdjson::SUCCESS || v < min || v > max) {
      return Status::InvalidArgument(where + "." + key + ": " + simdjson::to_string(e) +
                                     " is not a whole number in " + std::to_string(min) + ".." +
                                     std::to_string(max));
    }
    *out = v;
    return Status::Ok();
  };
  DUET_RETURN_IF_ERROR(str("name", true, &p.name));
  if (!ValidName(p.name)) {
    return Status::InvalidArgument(where + ".name: '" + p.name +
                                   "' is not a name of 1-64 letters, digits, '_', '-' or '.'");
  }
  DUET_RETURN_IF_ERROR(str("status_url", true, &p.status_url));
  auto base = ParseHttpUrl(where + ".status_url", p.status_url);
  if (!base.ok()) return base.status();
  std::string prefix = base->target;
  if (const size_t q = prefix.find('?'); q != std::string::npos) prefix.resize(q);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  p.healthz = p.metrics = *base;
  p.healthz.target = prefix + "/healthz";
  p.metrics.target = prefix + "/metrics";
  simdjson::dom::element e;
  if (o["command"].get(e) == simdjson::SUCCESS) {
    simdjson::dom::array argv;
    if (e.get_array().get(argv) != simdjson::SUCCESS || argv.size() == 0) {
      return Status::InvalidArgument(where + ".command: " + simdjson::to_string(e) +
                                     " is not a non-empty array of strings (the argv)");
    }
    size_t i = 0;
    for (const simdjson::dom::element a : argv) {
      std::string_view v;
      if (a.get_string().get(v) != simdjson::SUCCESS || v.find('\0') != std::string_view::npos ||
          (i == 0 && v.empty())) {
        return Status::InvalidArgument(where + ".command[" + std::to_string(i) +
                                       "]: " + simdjson::to_string(a) + " is not a string" +
                                       (i == 0 ? " naming the program" : ""));
      }
      p.command.emplace_back(v);
      ++i;
    }
  }
  if (o["env"].get(e) == simdjson::SUCCESS) {
    simdjson::dom::object env;
    if (e.get_object().get(env) != simdjson::SUCCESS) {
      return Status::InvalidArgument(where + ".env: expected an object of NAME: \"value\"");
    }
    for (const auto kv : env) {
      std::string_view v;
      const std::string k(kv.key);
      if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos ||
          kv.value.get_string().get(v) != simdjson::SUCCESS) {
        return Status::InvalidArgument(where + ".env." + k +
                                       ": expected a name without '=' and a "
                                       "string value");
      }
      p.env.emplace_back(k, std::string(v));
    }
    if (p.command.empty()) {
      return Status::InvalidArgument(where + ".env: given without a command (nothing to start)");
    }
  }
  if (o["restart"].get(e) == simdjson::SUCCESS &&
      e.get_bool().get(p.restart) != simdjson::SUCCESS) {
    return Status::InvalidArgument(where + ".restart: " + simdjson::to_string(e) +
                                   " is not true or false");
  }
  int64_t failures = p.failures;
  DUET_RETURN_IF_ERROR(integer("failures", 1, 1000, &failures));
  p.failures = static_cast<int>(failures);
  DUET_RETURN_IF_ERROR(integer("max_restarts", 0, 1'000'000, &p.max_restarts));
  DUET_RETURN_IF_ERROR(duration("start_period", 0, &p.start_period_ms));
  DUET_RETURN_IF_ERROR(duration("stuck_after", 0, &p.stuck_after_ms));
  DUET_RETURN_IF_ERROR(duration("grace", 0, &p.grace_ms));
  DUET_RETURN_IF_ERROR(duration("backoff", 10, &p.backoff_ms));
  DUET_RETURN_IF_ERROR(duration("max_backoff", 10, &p.max_backoff_ms));
  DUET_RETURN_IF_ERROR(duration("backoff_reset", 0, &p.backoff_reset_ms));
  if (p.max_backoff_ms < p.backoff_ms) {
    return Status::InvalidArgument(where + ".max_backoff: " + std::to_string(p.max_backoff_ms) +
                                   " ms is below backoff (" + std::to_string(p.backoff_ms) +
                                   " ms); expected max_backoff >= backoff");
  }
  return p;
}

Result<std::vector<ProcessSpec>> LoadProcesses(const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  const auto err = parser.load(path).get(doc);
  if (err == simdjson::IO_ERROR) {
    return Status::InvalidArgument("--processes '" + path + "': cannot read the file");
  }
  if (err != simdjson::SUCCESS) {
    return Status::InvalidArgument("--processes '" + path +
                                   "': not JSON: " + simdjson::error_message(err));
  }
  simdjson::dom::array list;
  simdjson::dom::object top;
  if (doc.get_object().get(top) != simdjson::SUCCESS ||
      top["processes"].get_array().get(list) != simdjson::SUCCESS) {
    return Status::InvalidArgument(path +
                                   ": expected an object {\"processes\": [ {\"name\": …, "
                                   "\"status_url\": …}, … ]}");
  }
  for (const auto field : top) {
    if (field.key != "processes") {
      return Status::InvalidArgument(path + ": unknown field '" + std::string(field.key) +
                                     "'; expected only \"processes\" (options are flags)");
    }
  }
  std::vector<ProcessSpec> out;
  std::set<std::string> names;
  for (const simdjson::dom::element item : list) {
    const std::string where = path + ": processes[" + std::to_string(out.size()) + "]";
    simdjson::dom::object o;
    if (item.get_object().get(o) != simdjson::SUCCESS) {
      return Status::InvalidArgument(where + ": expected an object");
    }
    auto p = ReadProcess(where, o);
    if (!p.ok()) return p.status();
    if (!names.insert(p->name).second) {
      return Status::InvalidArgument(where + ".name: '" + p->name +
                                     "' is used twice; names must be unique");
    }
    out.push_back(std::move(*p));
  }
  if (out.empty()) return Status::InvalidArgument(path + ": \"processes\" is empty");
  return out;
}

// ---------------------------------------------------------------------------------- metrics

// Every metric of duet watch, in one place.
class WatchProbe {
 public:
  WatchProbe()
      : up_(prometheus::BuildGauge()
                .Name("duet_watch_up")
                .Help("1 while the process answers /healthz with 2xx")
                .Register(*registry_)),
        restarts_(prometheus::BuildCounter()
                      .Name("duet_watch_restarts_total")
                      .Help("Restarts by watch, by the reason (down: exited; stuck: killed)")
                      .Register(*registry_)),
        probe_failures_(prometheus::BuildCounter()
                            .Name("duet_watch_probe_failures_total")
                            .Help("Status probes without a 2xx answer in time")
                            .Register(*registry_)),
        alerts_(prometheus::BuildCounter()
                    .Name("duet_watch_alerts_total")
                    .Help("Webhook alerts, by result (sent, failed: every attempt failed)")
                    .Register(*registry_)) {}

  void Watching(const std::string& name) {
    up_.Add({{"name", name}}).Set(0);
    probe_failures_.Add({{"name", name}});
  }
  void Up(const std::string& name, bool up) { up_.Add({{"name", name}}).Set(up ? 1 : 0); }
  void Restarted(const std::string& name, const std::string& reason) {
    restarts_.Add({{"name", name}, {"reason", reason}}).Increment();
  }
  void ProbeFailed(const std::string& name) { probe_failures_.Add({{"name", name}}).Increment(); }
  void Alert(bool sent) { alerts_.Add({{"result", sent ? "sent" : "failed"}}).Increment(); }

  std::string Text() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

 private:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Gauge>& up_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Family<prometheus::Counter>& probe_failures_;
  prometheus::Family<prometheus::Counter>& alerts_;
};

// ----------------------------------------------------------------------------------- alerts

// Posts alerts to the webhook from a thread of its own, in order. Send never blocks: a queue
// of at most kMaxQueued alerts (the oldest is dropped beyond, and logged). Each alert is tried
// 1 + retries times, 0.5 s, 1 s, 2 s … apart; then it is logged as failed and dropped.
class Alerter {
 public:
  Alerter(std::optional<HttpUrl> url, std::string url_text, int64_t timeout_ms, int retries,
          WatchProbe* probe)
      : url_(std::move(url)),
        url_text_(std::move(url_text)),
        timeout_ms_(timeout_ms),
        retries_(retries),
        probe_(probe) {
    if (url_) thread_ = std::thread([this] { Run(); });
  }
  ~Alerter() { Stop(0); }
  Alerter(const Alerter&) = delete;
  Alerter& operator=(const Alerter&) = delete;

  void Send(std::string_view event, const std::string& name, const std::string& reason,
            int64_t pid) {
    if (!url_) return;
    Json j;
    j.Open().Key("event").Str(event).Key("name").Str(name).Key("reason").Str(reason);
    j.Key("ts").Str(UtcTimeString(WallMs()));
    if (pid > 0) {
      j.Key("pid").Int(pid);
    } else {
      j.Key("pid").Null();
    }
    j.Close();
    const std::lock_guard<std::mutex> l(mu_);
    if (queue_.size() >= kMaxQueued) {
      Log(LogLevel::kWarn, "watch.alert_failed",
          {{"event", queue_.front().event},
           {"name", queue_.front().name},
           {"error",
            "the alert queue is full (" + std::to_string(kMaxQueued) + "): dropped the oldest"}});
      queue_.pop_front();
    }
    queue_.push_back(Pending{std::string(event), name, j.Take()});
    cv_.notify_all();
  }

  // Delivers what is queued for up to `flush_ms` more, then stops the thread. Idempotent.
  void Stop(int64_t flush_ms) {
    {
      const std::lock_guard<std::mutex> l(mu_);
      if (!stopping_) {
        stopping_ = true;
        flush_deadline_ms_ = MonoMs() + flush_ms;
      }
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  static constexpr size_t kMaxQueued = 1000;
  struct Pending {
    std::string event;
    std::string name;
    std::string body;
  };

  bool Expired() {
    const std::lock_guard<std::mutex> l(mu_);
    return stopping_ && MonoMs() >= flush_deadline_ms_;
  }

  void Run() {
    while (true) {
      Pending p;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        p = std::move(queue_.front());
        queue_.pop_front();
      }
      Deliver(p);
    }
  }

  void Deliver(const Pending& p) {
    HttpCall call;
    call.method = "POST";
    call.content_type = "application/json";
    call.body = p.body;
    call.user_agent = "duet-watch";
    call.timeout_ms = timeout_ms_;
    int64_t pause_ms = 500;
    for (int attempt = 1; attempt <= retries_ + 1; ++attempt) {
      if (Expired()) {
        Log(LogLevel::kWarn, "watch.alert_failed",
            {{"event", p.event},
             {"name", p.name},
             {"webhook", url_text_},
             {"error", "watch is stopping: its flush time is over"},
             {"final", true}});
        probe_->Alert(false);
        return;
      }
      auto reply = HttpFetch(*url_, call);
      if (reply.ok() && reply->status >= 200 && reply->status < 300) {
        Log(LogLevel::kInfo, "watch.alert_sent",
            {{"event", p.event}, {"name", p.name}, {"attempt", attempt}});
        probe_->Alert(true);
        return;
      }
      const std::string error = reply.ok() ? "answered " + std::to_string(reply->status) + ": " +
                                                 reply->body.substr(0, 200)
                                           : reply.status().message();
      const bool last = attempt == retries_ + 1;
      Log(LogLevel::kWarn, "watch.alert_failed",
          {{"event", p.event},
           {"name", p.name},
           {"webhook", url_text_},
           {"attempt", attempt},
           {"attempts", retries_ + 1},
           {"error", error},
           {"final", last}});
      if (last) {
        probe_->Alert(false);
        return;
      }
      const int64_t until = MonoMs() + pause_ms;
      while (MonoMs() < until && !Expired()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      pause_ms = std::min<int64_t>(pause_ms * 2, 10'000);
    }
  }

  const std::optional<HttpUrl> url_;
  const std::string url_text_;
  const int64_t timeout_ms_;
  const int retries_;
  WatchProbe* const probe_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;      // guarded by mu_
  bool stopping_ = false;          // guarded by mu_
  int64_t flush_deadline_ms_ = 0;  // guarded by mu_
  std::thread thread_;
};

// -------------------------------------------------------------------------------- processes

struct WatchOptions {
  int64_t interval_ms = 2000;
  int64_t timeout_ms = 1000;
  std::string log_dir;  // "": children inherit watch's stdout and stderr
};

// "exited with status 3", "killed by SIGKILL".
std::string DescribeExit(int wstatus) {
  if (WIFEXITED(wstatus)) return "exited with status " + std::to_string(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) {
    const char* abbrev = sigabbrev_np(WTERMSIG(wstatus));
    return "killed by " + (abbrev != nullptr ? "SIG" + std::string(abbrev)
                                             : "signal " + std::to_string(WTERMSIG(wstatus)));
  }
  return "ended (wait status " + std::to_string(wstatus) + ")";
}

// The program to execve: argv[0] itself when it holds a '/', else the first executable of that
// name on PATH. Resolved in the parent: between fork and exec only async-signal-safe calls run.
Result<std::string> ResolveProgram(const std::string& name, const std::string& where) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) != 0) {
      return Status::NotFound(where + ": '" + name + "' is not an executable file (" +
                              std::strerror(errno) + ")");
    }
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return Status::NotFound(where + ": '" + name + "' is not an executable on PATH");
}

// Supervises one process on a thread of its own: probes it, and when it is a child, starts,
// kills and restarts it. Run returns after g_stop, with the child stopped.
class Supervisor {
 public:
  Supervisor(ProcessSpec spec, const WatchOptions& options, Alerter* alerts, WatchProbe* probe)
      : spec_(std::move(spec)), options_(options), alerts_(alerts), probe_(probe) {}

  void Run() {
    probe_->Watching(spec_.name);
    begun_ms_ = MonoMs();
    next_poll_ms_ = begun_ms_;
    while (!g_stop.load()) {
      const int64_t now = MonoMs();
      if (IsChild() && pid_ == 0 && !gave_up_ && (!started_once_ || spec_.restart) &&
          now >= restart_at_ms_) {
        Start();
      }
      if (pid_ != 0) {
        int wstatus = 0;
        if (Reap(&wstatus)) Failed("down", DescribeExit(wstatus), /*kill=*/false);
      }
      if (MonoMs() >= next_poll_ms_) {
        Poll();
        next_poll_ms_ = std::max(next_poll_ms_ + options_.interval_ms, MonoMs());
      }
      int64_t wake = next_poll_ms_;
      if (IsChild() && pid_ == 0) wake = std::min(wake, restart_at_ms_);
      // Reaps are checked at least every 100 ms: a child that exits is restarted promptly.
      SleepUntil(std::min(wake, MonoMs() + 100));
    }
    Shutdown();
  }

 private:
  bool IsChild() const { return !spec_.command.empty(); }

  void Start() {
    const bool restart = started_once_;
    auto pid = Spawn();
    started_once_ = true;
    if (!pid.ok()) {
      Log(LogLevel::kError, "watch.start_failed",
          {{"name", spec_.name}, {"error", pid.status().ToString()}});
      Failed("down", "cannot start: " + pid.status().message(), /*kill=*/false);
      return;
    }
    pid_ = *pid;
    last_pid_ = *pid;
    started_ms_ = MonoMs();
    answered_since_start_ = false;
    failures_in_row_ = 0;
    steps_.reset();
    next_poll_ms_ = started_ms_ + options_.interval_ms;
    if (restart) {
      probe_->Restarted(spec_.name, last_event_);
      const std::string reason = "after " + last_event_ + " (" + last_reason_ + "); restart " +
                                 std::to_string(restarts_in_row_) + " in a row, after a " +
                                 std::to_string(last_backoff_ms_) + " ms back-off";
      Log(LogLevel::kWarn, "watch.restarted",
          {{"name", spec_.name}, {"pid", static_cast<int64_t>(pid_)}, {"reason", reason}});
      alerts_->Send("restarted", spec_.name, reason, pid_);
    } else {
      Log(LogLevel::kInfo, "watch.started",
          {{"name", spec_.name},
           {"pid", static_cast<int64_t>(pid_)},
           {"program", spec_.command.front()}});
    }
  }

  Result<pid_t> Spawn() {
    auto program = ResolveProgram(spec_.command.front(), spec_.name + ": command[0]");
    if (!program.ok()) return program.status();
    std::vector<char*> argv;
    for (const std::string& a : spec_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const std::string_view name = entry.substr(0, entry.find('='));
      const bool replaced = std::any_of(spec_.env.begin(), spec_.env.end(),
                                        [&](const auto& kv) { return kv.first == name; });
      if (!replaced) env.emplace_back(entry);
    }
    for (const auto& [k, v] : spec_.env) env.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out_fd = -1;
    int err_fd = -1;
    if (!options_.log_dir.empty()) {
      for (auto [suffix, fd] : {std::pair{".out", &out_fd}, std::pair{".err", &err_fd}}) {
        const std::string file = options_.log_dir + "/" + spec_.name + suffix;
        *fd = open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (*fd < 0) {
          const std::string why = std::strerror(errno);
          for (int f : {null_fd, out_fd, err_fd}) {
            if (f >= 0) close(f);
          }
          return Status::IoError("cannot open the log file " + file + ": " + why);
        }
      }
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      // The child of a threaded process: async-signal-safe calls only, until execve.
      setpgid(0, 0);  // its own group: a kill reaches whatever it starts, a tty's ^C does not
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // watch killed → its children too (no orphan on the port)
      if (getppid() != parent) _exit(127);
      if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
      if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO);
      if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
      close_range(3, ~0U, 0);  // watch's sockets (status server, probes) stay in watch
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGPIPE, SIG_DFL);
      execve(program->c_str(), argv.data(), envp.data());
      constexpr char kMsg[] = "duet watch: execve failed\n";
      const ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
      (void)ignored;
      _exit(127);
    }
    const int fork_errno = errno;
    for (int f : {null_fd, out_fd, err_fd}) {
      if (f >= 0) close(f);
    }
    if (pid < 0) return Status::IoError(std::string("fork: ") + std::strerror(fork_errno));
    setpgid(pid, pid);  // also here: no window in which a kill of the group misses it
    return pid;
  }

  // True (and the wait status) when the child has ended; it is reaped.
  bool Reap(int* wstatus) {
    const pid_t r = waitpid(pid_, wstatus, WNOHANG);
    if (r == 0) return false;
    if (r < 0) *wstatus = 0;
    pid_ = 0;
    return true;
  }

  // Signals the child's process group (the child alone if the group is gone).
  void SignalGroup(int sig) const {
    if (kill(-pid_, sig) != 0) kill(pid_, sig);
  }

  // Waits up to `ms` for the child to end. True (and the wait status) when it has.
  bool WaitExit(int64_t ms, int* wstatus) {
    const int64_t until = MonoMs() + ms;
    while (true) {
      if (Reap(wstatus)) return true;
      if (MonoMs() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Ends the child: SIGTERM (and SIGCONT, so that a stopped child can act on it), up to `grace`,
  // then SIGKILL; with graceful false SIGKILL at once. Returns how it ended.
  std::string Terminate(bool graceful) {
    int wstatus = 0;
    if (graceful) {
      SignalGroup(SIGTERM);
      SignalGroup(SIGCONT);
      if (WaitExit(spec_.grace_ms, &wstatus)) return DescribeExit(wstatus) + " after SIGTERM";
    }
    SignalGroup(SIGKILL);
    constexpr int64_t kReapMs = 10'000;
    const pid_t pid = pid_;
    if (WaitExit(kReapMs, &wstatus)) {
      return DescribeExit(wstatus) + (graceful ? " after the grace period" : "");
    }
    // Uninterruptible sleep in the kernel: leave the zombie-to-be, do not block supervision.
    Log(LogLevel::kError, "watch.unreaped",
        {{"name", spec_.name},
         {"pid", static_cast<int64_t>(pid)},
         {"error", "no exit within 10 s of SIGKILL"}});
    pid_ = 0;
    return "not reaped within 10 s of SIGKILL";
  }

  // The child ended ("down") or must be killed ("stuck"); a monitored process is down or stuck.
  void Failed(const std::string& event, const std::string& reason, bool kill) {
    const int64_t pid = IsChild() ? last_pid_ : 0;
    std::string detail = reason;
    if (kill && pid_ != 0) detail += "; " + Terminate(/*graceful=*/false);
    up_ = false;
    probe_->Up(spec_.name, false);
    healthy_since_ms_ = -1;
    last_event_ = event;
    last_reason_ = detail;
    if (IsChild() && !spec_.restart) {
      Log(LogLevel::kError, "watch." + event,
          {{"name", spec_.name}, {"pid", pid}, {"reason", detail}, {"restart", false}});
      alerts_->Send(event, spec_.name, detail + "; restart is off", pid);
      alerted_ = true;
      return;
    }
    if (!IsChild()) {
      Log(LogLevel::kError, "watch." + event, {{"name", spec_.name}, {"reason", detail}});
      alerts_->Send(event, spec_.name, detail, 0);
      alerted_ = true;
      return;
    }
    ++restarts_in_row_;
    if (spec_.max_restarts > 0 && restarts_in_row_ > spec_.max_restarts) {
      gave_up_ = true;
      Log(LogLevel::kError, "watch." + event,
          {{"name", spec_.name}, {"pid", pid}, {"reason", detail}});
      alerts_->Send(event, spec_.name, detail, pid);
      const std::string why = "restarted " + std::to_string(spec_.max_restarts) +
                              " times in a row without staying healthy for " +
                              std::to_string(spec_.backoff_reset_ms) +
                              " ms; not restarting any more (last: " + event + ", " + detail + ")";
      Log(LogLevel::kError, "watch.gave_up", {{"name", spec_.name}, {"reason", why}});
      alerts_->Send("gave_up", spec_.name, why, 0);
      return;
    }
    // The n-th restart in a row waits backoff × 2^(n-1), capped: a crash loop does not spin.
    int64_t delay = spec_.backoff_ms;
    for (int64_t i = 1; i < restarts_in_row_ && delay < spec_.max_backoff_ms; ++i) delay *= 2;
    delay = std::min(delay, spec_.max_backoff_ms);
    last_backoff_ms_ = delay;
    restart_at_ms_ = MonoMs() + delay;
    Log(LogLevel::kError, "watch." + event,
        {{"name", spec_.name},
         {"pid", pid},
         {"reason", detail},
         {"restart_in_ms", delay},
         {"restarts_in_row", restarts_in_row_}});
    alerts_->Send(event, spec_.name, detail, pid);
    alerted_ = true;
  }

  void Poll() {
    if (IsChild() && pid_ == 0) return;  // down, waiting for its restart
    const int64_t now = MonoMs();
    HttpCall call;
    call.user_agent = "duet-watch";
    call.timeout_ms = options_.timeout_ms;
    bool timed_out = false;
    auto reply = HttpFetch(spec_.healthz, call, &timed_out);
    if (reply.ok() && reply->status >= 200 && reply->status < 300) {
      failures_in_row_ = 0;
      answered_since_start_ = true;
      // A stalled loop is not healthy even though /healthz answers: no "recovered" until its
      // steps move again.
      if (spec_.stuck_after_ms > 0 && !CheckProgress(now)) return;
      Healthy(now);
      return;
    }
    const std::string error =
        reply.ok() ? "GET " + spec_.healthz.target + " answered " + std::to_string(reply->status)
                   : "GET " + spec_.healthz.target + ": " + reply.status().message();
    probe_->ProbeFailed(spec_.name);
    const int64_t since = IsChild() ? started_ms_ : begun_ms_;
    const bool starting = !answered_since_start_ && now - since < spec_.start_period_ms;
    if (starting) {
      Log(LogLevel::kDebug, "watch.starting", {{"name", spec_.name}, {"error", error}});
      return;
    }
    ++failures_in_row_;
    // Up to the threshold every failure is logged, then every 100th: a process left down (a
    // monitored one, or one whose restart is off) does not flood the log.
    constexpr int kLogEvery = 100;
    if (failures_in_row_ <= spec_.failures || failures_in_row_ % kLogEvery == 0) {
      Log(LogLevel::kWarn, "watch.probe_failed",
          {{"name", spec_.name},
           {"error", error},
           {"failures_in_row", failures_in_row_},
           {"threshold", spec_.failures}});
    }
    if (failures_in_row_ < spec_.failures) return;
    const std::string reason =
        error + " (" + std::to_string(failures_in_row_) + " probes in a row)";
    if (IsChild()) {
      if (!spec_.restart && alerted_) return;  // said once; it is left alone
      // Alive (it was not reaped) yet not answering: frozen, deadlocked or not serving. Its own
      // shutdown path would run on the same stuck threads, so SIGKILL (a SIGSTOPped process
      // cannot act on SIGTERM anyway). Duet's roles are crash-safe: they resume from their
      // last commit.
      Failed("stuck", reason, /*kill=*/spec_.restart);
      return;
    }
    if (up_ || !alerted_) Failed(timed_out ? "stuck" : "down", reason, /*kill=*/false);
  }

  void Healthy(int64_t now) {
    if (healthy_since_ms_ < 0) healthy_since_ms_ = now;
    if (restarts_in_row_ > 0 && now - healthy_since_ms_ >= spec_.backoff_reset_ms) {
      Log(LogLevel::kInfo, "watch.backoff_reset",
          {{"name", spec_.name}, {"restarts_in_row", restarts_in_row_}});
      restarts_in_row_ = 0;
    }
    if (up_) return;
    up_ = true;
    probe_->Up(spec_.name, true);
    if (alerted_) {
      alerted_ = false;
      Log(LogLevel::kInfo, "watch.recovered",
          {{"name", spec_.name}, {"pid", static_cast<int64_t>(pid_)}, {"child", IsChild()}});
      alerts_->Send("recovered", spec_.name, "answers " + spec_.healthz.target + " again", pid_);
    } else {
      Log(LogLevel::kInfo, "watch.up",
          {{"name", spec_.name}, {"pid", static_cast<int64_t>(pid_)}, {"child", IsChild()}});
    }
  }

  // The role's loop counts every step, with or without new input and failed or not
  // (duet_<role>_steps_total{result}); a sum that does not move for stuck_after means the loop
  // itself is stuck, not merely idle or failing. False when stuck (then handled: alerted, and a
  // child that may be restarted is stopped); true when it progresses or cannot be told.
  bool CheckProgress(int64_t now) {
    HttpCall call;
    call.user_agent = "duet-watch";
    call.timeout_ms = options_.timeout_ms;
    auto reply = HttpFetch(spec_.metrics, call);
    if (!reply.ok() || reply->status != 200) {
      Log(LogLevel::kWarn, "watch.metrics_failed",
          {{"name", spec_.name},
           {"error",
            reply.ok() ? "answered " + std::to_string(reply->status) : reply.status().message()}});
      return true;
    }
    const std::optional<double> steps = StepsTotal(reply->body);
    if (!steps) {
      if (!warned_no_steps_) {
        warned_no_steps_ = true;
        Log(LogLevel::kWarn, "watch.no_progress_metric",
            {{"name", spec_.name},
             {"error", "GET " + spec_.metrics.target +
                           " has no duet_<role>_steps_total: stuck_after is not applied"}});
      }
      return true;
    }
    if (!steps_ || *steps != *steps_) {
      steps_ = steps;
      progress_ms_ = now;
      return true;
    }
    if (now - progress_ms_ < spec_.stuck_after_ms) return true;
    const std::string reason = "no step for " + std::to_string((now - progress_ms_) / 1000) +
                               " s (duet_*_steps_total stays " +
                               std::to_string(static_cast<int64_t>(*steps)) + "; stuck_after is " +
                               std::to_string(spec_.stuck_after_ms) + " ms)";
    if (!IsChild() || !spec_.restart) {
      if (up_ || !alerted_) Failed("stuck", reason, /*kill=*/false);
      return false;
    }
    // The loop is stuck but the process still serves: give it its grace to end cleanly first.
    const std::string how = Terminate(/*graceful=*/true);
    Failed("stuck", reason + "; " + how, /*kill=*/false);
    return false;
  }

  // Sum of every duet_*_steps_total sample in a Prometheus text.
  static std::optional<double> StepsTotal(const std::string& text) {
    std::optional<double> sum;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      if (!line.starts_with("duet_")) continue;
      const size_t name_end = line.find_first_of("{ ");
      if (name_end == std::string_view::npos) continue;
      if (!line.substr(0, name_end).ends_with("_steps_total")) continue;
      const size_t value_at = line.rfind(' ');
      const std::string value(line.substr(value_at + 1));
      char* stop = nullptr;
      const double v = std::strtod(value.c_str(), &stop);
      if (stop == value.c_str()) continue;
      sum = sum.value_or(0) + v;
    }
    return sum;
  }

  void Shutdown() {
    if (pid_ == 0) return;
    const int64_t pid = pid_;
    Log(LogLevel::kInfo, "watch.stopping",
        {{"name", spec_.name}, {"pid", pid}, {"grace_ms", spec_.grace_ms}});
    const std::string how = Terminate(/*graceful=*/true);
    Log(LogLevel::kInfo, "watch.stopped", {{"name", spec_.name}, {"pid", pid}, {"how", how}});
  }

  const ProcessSpec spec_;
  const WatchOptions options_;
  Alerter* const alerts_;
  WatchProbe* const probe_;

  pid_t pid_ = 0;       // the running child, 0 if none
  pid_t last_pid_ = 0;  // the last child started (named by alerts after it ended)
  int64_t begun_ms_ = 0;
  int64_t started_ms_ = 0;
  int64_t next_poll_ms_ = 0;
  int64_t restart_at_ms_ = 0;
  int64_t last_backoff_ms_ = 0;
  int64_t restarts_in_row_ = 0;
  int64_t healthy_since_ms_ = -1;
  bool started_once_ = false;
  bool answered_since_start_ = false;
  bool gave_up_ = false;
  bool up_ = false;
  bool alerted_ = false;  // a down/stuck alert is outstanding: the next success sends recovered
  bool warned_no_steps_ = false;
  int failures_in_row_ = 0;
  std::string last_event_;
  std::string last_reason_;
  std::optional<double> steps_;
  int64_t progress_ms_ = 0;
};

serve::HttpResponse WatchStatus(const serve::HttpRequest& r, const WatchProbe& probe) {
  if (r.path != "/healthz" && r.path != "/readyz" && r.path != "/metrics") {
    return serve::Problem(404, "no resource " + r.path + " (GET /healthz, /readyz, /metrics)");
  }
  if (r.method != "GET" && r.method != "HEAD") {
    serve::HttpResponse res = serve::Problem(405, r.path + " accepts GET");
    res.headers.emplace_back("Allow", "GET, HEAD");
    return res;
  }
  serve::HttpResponse res;
  if (r.path == "/metrics") {
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = probe.Text();
  } else {
    res.body = "{\"status\":\"ok\"}\n";
  }
  return res;
}

}  // namespace

int CmdWatch(const std::vector<std::string>& args) {
  Config c;
  c.Define("processes", "",
           "JSON file of the processes to watch: {\"processes\": [{\"name\", \"status_url\", "
           "\"command\", …}]} (docs/operations.md)");
  c.Define("interval", "2s", "time between two probes of a process");
  c.Define("timeout", "1s", "a probe (and a webhook attempt) must be answered within this long");
  c.Define("log-dir", "",
           "children's stdout and stderr go to DIR/NAME.out and DIR/NAME.err (appended); empty: "
           "they share watch's");
  c.Define("webhook", "", "http:// URL that receives every alert as a JSON POST; empty: none");
  c.Define("webhook-retries", "3", "further attempts after a failed webhook POST");
  c.Define("status-listen", "",
           "HOST:PORT serving watch's own /healthz and /metrics (port 0: any free; empty: none)");
  if (int rc = ParseOrHelp("watch",
                           "Supervises Duet processes: probes their status endpoints, restarts "
                           "the local ones that are down or stuck, alerts a webhook.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("processes"); !s.ok()) return Fail("watch", s);
  WatchOptions o;
  for (auto [name, field, min] : {std::tuple{"interval", &o.interval_ms, int64_t{10}},
                                  std::tuple{"timeout", &o.timeout_ms, int64_t{1}}}) {
    auto d = c.DurationMs(name);
    if (!d.ok()) return Fail("watch", d.status());
    if (*d < min) {
      return Fail("watch",
                  Status::InvalidArgument("--" + std::string(name) + " '" + c.String(name) +
                                          "': expected " + std::to_string(min) + " ms or more"));
    }
    *field = *d;
  }
  auto retries = c.Int("webhook-retries", 0, 100);
  if (!retries.ok()) return Fail("watch", retries.status());
  std::optional<HttpUrl> webhook;
  if (!c.String("webhook").empty()) {
    auto u = ParseHttpUrl("--webhook", c.String("webhook"));
    if (!u.ok()) return Fail("watch", u.status());
    webhook = *u;
  }
  auto specs = LoadProcesses(c.String("processes"));
  if (!specs.ok()) return Fail("watch", specs.status());
  o.log_dir = c.String("log-dir");
  if (!o.log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.log_dir, ec);
    if (ec) {
      return Fail("watch", Status::InvalidArgument("--log-dir '" + o.log_dir +
                                                   "': cannot create it: " + ec.message()));
    }
  }

  WatchProbe probe;
  std::unique_ptr<serve::HttpServer> server;
  if (const std::string listen = c.String("status-listen"); !listen.empty()) {
    serve::HttpServerOptions so;
    uint16_t port = 0;
    if (Status s = ParseHostPort("status-listen", listen, &so.host, &port); !s.ok()) {
      return Fail("watch", s);
    }
    so.port = port;
    so.threads = 1;
    so.max_in_flight = 64;
    so.max_connections = 256;
    so.max_body_bytes = 4096;
    auto started = serve::StartHttpServer(
        so, [&probe](const serve::HttpRequest& r) { return WatchStatus(r, probe); });
    if (!started.ok()) return Fail("watch", started.status());
    server = std::move(*started);
    Log(LogLevel::kInfo, "status.listen", {{"url", ServerUrl(so.host, server->port())}});
  }
  std::signal(SIGTERM, OnWatchSignal);
  std::signal(SIGINT, OnWatchSignal);
  std::signal(SIGPIPE, SIG_IGN);
  Alerter alerts(webhook, c.String("webhook"), o.timeout_ms, static_cast<int>(*retries), &probe);
  std::string names;
  for (const ProcessSpec& p : *specs) names += (names.empty() ? "" : ",") + p.name;
  Log(LogLevel::kInfo, "watch.start",
      {{"processes", names},
       {"interval_ms", o.interval_ms},
       {"timeout_ms", o.timeout_ms},
       {"webhook", c.String("webhook")},
       {"log_dir", o.log_dir}});
  std::vector<std::unique_ptr<Supervisor>> supervisors;
  std::vector<std::thread> threads;
  for (ProcessSpec& p : *specs) {
    supervisors.push_back(std::make_unique<Supervisor>(std::move(p), o, &alerts, &probe));
  }
  // The children are forked by these threads, which live until their child is stopped
  // (PR_SET_PDEATHSIG follows the forking thread).
  for (auto& s : supervisors) threads.emplace_back([&s] { s->Run(); });
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Log(LogLevel::kInfo, "watch.stopping_all", {{"signal", g_signal.load()}});
  for (std::thread& t : threads) t.join();
  constexpr int64_t kFlushMs = 2000;
  alerts.Stop(kFlushMs);
  if (server) server->Stop(1000);
  Log(LogLevel::kInfo, "watch.stop", {{"signal", g_signal.load()}});
  return kExitOk;
}

}  // namespace duet
