// duet: the one binary. Subcommands are wired here and only here (see src/cli/README.md).
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <simdjson.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "archive/archiver.h"
#include "batch/batch.h"
#include "beacon/beacon.h"
#include "cli/common.h"
#include "cli/jobs_cli.h"
#include "cli/ops_cli.h"
#include "cli/watch_cli.h"
#include "collect/collector.h"
#include "gen/generator.h"
#include "jobs/runner.h"
#include "log/file_log.h"
#include "log/kafka_log.h"
#include "model/registry.h"
#include "model/training.h"
#include "mongoraw/raw_collection.h"
#include "report/report.h"
#include "serve/api.h"
#include "serve/http_server.h"
#include "serve/job_api.h"
#include "serve/merge.h"
#include "serve/model_api.h"
#include "serve/view_cache.h"
#include "serve/worker_metrics.h"
#include "speed/kafka_bad_rows.h"
#include "speed/partitioned.h"
#include "speed/speed_layer.h"
#include "speed/stream_probe.h"
#include "store/store.h"
#include "util/config.h"
#include "util/file_io.h"
#include "util/json_writer.h"
#include "util/log.h"

namespace duet {
namespace {

constexpr const char* kVersion = "0.1.0";
// How this binary was invoked, for commands printed to copy and paste.
std::string g_program = "duet";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int DefaultThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : static_cast<int>(n);
}

// ---------------------------------------------------------------- generate

// Fills every generator option except out_dir from the options of DefineGenerateOptions.
Status GenerateOptionsFrom(const Config& c, gen::GenerateOptions* o) {
  auto beacons = c.Int("beacons", 1, 10'000'000'000);
  if (!beacons.ok()) return beacons.status();
  o->beacons = static_cast<uint64_t>(*beacons);
  auto seed = c.Int("seed", 0, INT64_MAX);
  if (!seed.ok()) return seed.status();
  o->seed = static_cast<uint64_t>(*seed);
  auto hours = c.Int("hours", 0, 24 * 366);
  if (!hours.ok()) return hours.status();
  o->hours = static_cast<int>(*hours);
  auto visitors = c.Int("visitors", 0, 1'000'000'000);
  if (!visitors.ok()) return visitors.status();
  o->visitors = static_cast<uint64_t>(*visitors);
  o->zstd = c.Bool("zstd");
  auto bad = c.Double("bad-fraction", 0, 0.5);
  if (!bad.ok()) return bad.status();
  o->bad_fraction = *bad;
  auto dup = c.Double("duplicate-fraction", 0, 0.5);
  if (!dup.ok()) return dup.status();
  o->duplicate_fraction = *dup;
  auto late = c.Double("late-fraction", 0, 0.5);
  if (!late.ok()) return late.status();
  o->late_fraction = *late;
  auto delay = c.DurationMs("max-delay");
  if (!delay.ok()) return delay.status();
  o->max_delay_ms = *delay;
  if (c.IsSet("start-ms")) {
    auto start = c.Int("start-ms", beacon::kMinTsMs, beacon::kMaxTsMs - 400LL * 24 * 3600 * 1000);
    if (!start.ok()) return start.status();
    o->start_ms = *start;
  }
  auto lpf = c.Int("lines-per-file", 1, 1'000'000'000);
  if (!lpf.ok()) return lpf.status();
  o->lines_per_file = static_cast<uint64_t>(*lpf);
  return gen::ValidateOptions(*o);
}

void DefineGenerateOptions(Config* c) {
  c->Define("beacons", "100000", "number of lines to write (valid + duplicates + bad rows)");
  c->Define("seed", "1", "random seed; the same seed gives byte-identical files");
  c->Define("hours", "0", "length of the traffic period in hours (0 = chosen from --beacons)");
  c->Define("visitors", "0", "visitor population (0 = beacons/25)");
  c->Define("zstd", "false", "write .ndjson.zst files", true);
  c->Define("bad-fraction", "0.01", "fraction of lines that are bad rows");
  c->Define("duplicate-fraction", "0.02", "fraction of lines that are re-sends");
  c->Define("late-fraction", "0.001", "fraction of beacons arriving 15 min to 3 h late");
  c->Define("max-delay", "2m", "bound on arrival − event time for on-time beacons");
  c->Define("start-ms", "", "start of the period, ms since the epoch (default 2026-11-01T00:00Z)");
  c->Define("lines-per-file", "1000000",
            "start a new part file within an hour after this many lines");
}

int CmdGenerate(const std::vector<std::string>& args) {
  Config c;
  c.Define("out", "", "output folder (Hive layout dt=YYYY-MM-DD/hr=HH/part-*.ndjson)");
  DefineGenerateOptions(&c);
  if (int rc = ParseOrHelp("generate", "Writes a seeded synthetic A/B-test workload.", &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("out"); !s.ok()) return Fail("generate", s);
  gen::GenerateOptions o;
  o.out_dir = c.String("out");
  if (Status s = GenerateOptionsFrom(c, &o); !s.ok()) return Fail("generate", s);
  gen::GenerateStats st;
  if (Status s = gen::WriteDataset(o, &st); !s.ok()) return Fail("generate", s);
  std::printf("generated %" PRIu64 " lines (%" PRIu64 " beacons, %" PRIu64 " re-sends, %" PRIu64
              " bad rows) in %" PRIu64 " files under %s, %.1f s\n",
              st.lines, st.valid_unique, st.duplicate_resends, st.bad_rows, st.files,
              o.out_dir.c_str(), st.seconds);
  return kExitOk;
}

// ---------------------------------------------------------------- batch

class StoreSink final : public batch::BadRowSink {
 public:
  StoreSink(store::Store* s, int64_t gen) : store_(s), gen_(gen) {}
  Status Put(std::span<const core::BadRow> rows) override { return store_->PutBadRows(gen_, rows); }

 private:
  store::Store* store_;
  int64_t gen_;
};

struct BatchResult {
  core::Views views;
  batch::BatchStats stats;
  double seconds = 0;
};

// The batch layer's input: a folder or file of the master dataset, or a MongoDB collection of
// raw beacons (what `duet archive --out mongodb://…` writes), which *raw then keeps open.
Status ResolveBatchInput(const std::string& input, batch::BatchOptions* opt,
                         std::unique_ptr<mongoraw::RawCollection>* raw) {
  opt->input = input;
  if (input.starts_with("mongodb://") || input.starts_with("mongodb+srv://")) {
    auto opened = mongoraw::OpenRawCollection(input);
    if (!opened.ok()) return opened.status();
    *raw = std::move(*opened);
    auto inputs = (*raw)->Inputs(beacon::kMaxLineBytes);
    if (!inputs.ok()) return inputs.status();
    if (inputs->empty()) {
      return Status::NotFound("--input: the collection " + input + " holds no raw beacons");
    }
    opt->inputs = std::move(*inputs);
  }
  return Status::Ok();
}

// Logs the batch layer's progress as `event` lines.
std::function<void(const batch::Progress&)> BatchProgressLogger(std::string event) {
  const auto start = std::chrono::steady_clock::now();
  return [start, event = std::move(event)](const batch::Progress& p) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    Log(LogLevel::kInfo, event,
        {{"files_done", p.files_done},
         {"files", p.files_total},
         {"lines", p.lines},
         {"mib_done", static_cast<double>(p.bytes_done) / (1 << 20)},
         {"percent", p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0},
         {"lines_per_s", secs > 0 ? p.lines / secs : 0.0}});
  };
}

Result<BatchResult> RunBatchIntoStore(const std::string& input, const std::string& store_uri,
                                      int threads, int64_t gap_ms,
                                      int64_t lateness_ms = 10 * 60 * 1000) {
  auto store = store::OpenStore(store_uri);
  if (!store.ok()) return store.status();
  auto gen = (*store)->BeginBatch();
  if (!gen.ok()) return gen.status();
  StoreSink sink(store->get(), *gen);
  batch::BatchOptions opt;
  std::unique_ptr<mongoraw::RawCollection> raw;
  DUET_RETURN_IF_ERROR(ResolveBatchInput(input, &opt, &raw));
  opt.threads = threads;
  opt.session_gap_ms = gap_ms;
  opt.lateness_ms = lateness_ms;
  const auto start = std::chrono::steady_clock::now();
  opt.progress = BatchProgressLogger("batch.progress");
  BatchResult out;
  const int64_t started_ms = NowMs();
  Log(LogLevel::kInfo, "batch.start",
      {{"input", input}, {"store", store_uri}, {"threads", threads}, {"generation", *gen}});
  batch::PrefixView prefix;
  auto views = batch::RunBatch(opt, &sink, &out.stats, &prefix);
  if (!views.ok()) return views.status();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  store::BatchRun run{*gen,
                      started_ms,
                      NowMs(),
                      input,
                      views->max_ts,
                      views->input.lines,
                      prefix.boundary_ms,
                      std::move(prefix.state)};
  if (Status s = (*store)->CommitBatch(*gen, *views, run); !s.ok()) return s;
  out.views = std::move(*views);
  return out;
}

int CmdBatch(const std::vector<std::string>& args) {
  Config c;
  c.Define("input", "",
           "master dataset: a folder (read recursively), one NDJSON file, or a MongoDB "
           "collection of raw beacons, mongodb://HOST:PORT/DB.COLLECTION");
  c.Define("store", "sqlite:duet.sqlite", "store URI (sqlite:PATH or mongodb://HOST:PORT/DB)");
  c.Define("threads", std::to_string(DefaultThreads()), "worker threads");
  c.Define("session-gap", "30m", "a gap longer than this starts a new session");
  c.Define("lateness", "10m", "the speed layer's allowed lateness (sets the merge boundary)");
  if (int rc = ParseOrHelp("batch", "Recomputes every view from the master dataset.", &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("input"); !s.ok()) return Fail("batch", s);
  auto threads = c.Int("threads", 1, 256);
  if (!threads.ok()) return Fail("batch", threads.status());
  auto gap = c.DurationMs("session-gap");
  if (!gap.ok()) return Fail("batch", gap.status());
  auto r =
      RunBatchIntoStore(c.String("input"), c.String("store"), static_cast<int>(*threads), *gap);
  if (!r.ok()) return Fail("batch", r.status());
  const auto& in = r->views.input;
  Log(LogLevel::kInfo, "batch.done",
      {{"lines", in.lines},
       {"valid_beacons", in.valid_beacons},
       {"duplicates", in.duplicates},
       {"bad_rows", in.bad_rows},
       {"files", r->stats.files},
       {"seconds", r->seconds},
       {"read_seconds", r->stats.read_seconds},
       {"dedup_seconds", r->stats.dedup_seconds},
       {"compute_seconds", r->stats.compute_seconds},
       {"working_set_mib", static_cast<double>(r->stats.working_set_bytes) / (1 << 20)},
       {"lines_per_s", r->seconds > 0 ? in.lines / r->seconds : 0.0}});
  std::printf("batch: %" PRId64 " lines (%" PRId64 " valid, %" PRId64 " duplicates, %" PRId64
              " bad rows) from %" PRIu64 " files in %.2f s (%.0f lines/s) -> %s\n",
              in.lines, in.valid_beacons, in.duplicates, in.bad_rows, r->stats.files, r->seconds,
              r->seconds > 0 ? in.lines / r->seconds : 0.0, c.String("store").c_str());
  return kExitOk;
}

int CmdParseOnly(const std::vector<std::string>& args) {
  Config c;
  c.Define("input", "", "a folder or file, as for duet batch");
  c.Define("threads", std::to_string(DefaultThreads()), "worker threads");
  if (int rc = ParseOrHelp("parse-only",
                           "Benchmark baseline: reads and JSON-parses every line, nothing else.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("input"); !s.ok()) return Fail("parse-only", s);
  auto threads = c.Int("threads", 1, 256);
  if (!threads.ok()) return Fail("parse-only", threads.status());
  batch::BatchOptions opt;
  opt.input = c.String("input");
  opt.threads = static_cast<int>(*threads);
  const auto start = std::chrono::steady_clock::now();
  auto n = batch::ParseOnly(opt);
  if (!n.ok()) return Fail("parse-only", n.status());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("parse-only: %" PRIu64 " lines (%" PRIu64
              " parse as JSON) in %.2f s (%.0f lines/s)\n",
              n->lines, n->json_values, secs, n->lines / secs);
  return kExitOk;
}

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

// Sleeps until `until`, waking early when a stop signal arrives.
void SleepUnlessStopped(std::chrono::steady_clock::time_point until) {
  while (!g_stop.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Parses --layer; `merged_allowed` for commands that can show the serving merge.
Status ParseLayer(const std::string& name, bool merged_allowed, store::Layer* out) {
  if (name == "batch" || name == "speed") {
    *out = name == "batch" ? store::Layer::kBatch : store::Layer::kSpeed;
    return Status::Ok();
  }
  if (merged_allowed && name == "merged") return Status::Ok();
  return Status::InvalidArgument("--layer: '" + name + "' is not a layer; expected batch, speed" +
                                 (merged_allowed ? " or merged" : ""));
}

// ---------------------------------------------------------------- report, bad-rows

int CmdReport(const std::vector<std::string>& args) {
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI");
  c.Define("experiment", "", "show only this experiment");
  c.Define("json", "false", "print JSON (see docs/report-json.md)", true);
  c.Define("full", "false", "with --json: include hourly figures and rolling uniques", true);
  c.Define("layer", "batch",
           "which views: batch, speed, or merged (batch before its boundary, speed after)");
  if (int rc = ParseOrHelp("report", "Shows the figures per experiment and variant.", &c, args);
      rc >= 0) {
    return rc;
  }
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail("report", store.status());
  const std::string layer = c.String("layer");
  store::Layer which = store::Layer::kBatch;
  if (Status s = ParseLayer(layer, true, &which); !s.ok()) return Fail("report", s);
  Result<core::Views> views = core::Views();
  if (layer == "merged") {
    auto in = (*store)->ReadMergeInputs();
    if (!in.ok()) return Fail("report", in.status());
    views = serve::MergeViews(*in);
  } else if (which == store::Layer::kBatch) {
    views = (*store)->ReadBatchViews();
  } else {
    auto scopes = (*store)->ReadSpeedScopes();
    if (!scopes.ok()) return Fail("report", scopes.status());
    views = serve::SpeedViews(*scopes);
  }
  if (!views.ok()) return Fail("report", views.status());
  report::ReportOptions ro;
  if (!c.String("experiment").empty()) {
    ro.experiment = c.String("experiment");
    const bool known =
        std::any_of(views->totals.begin(), views->totals.end(),
                    [&](const core::FigureRow& r) { return r.experiment == *ro.experiment; });
    if (!known) {
      std::string names;
      for (const auto& e : views->experiments) names += (names.empty() ? "" : ", ") + e.experiment;
      return Fail("report", Status::NotFound("--experiment: '" + *ro.experiment +
                                             "' is not in the store; known: " +
                                             (names.empty() ? "(none)" : names)));
    }
  }
  ro.full = c.Bool("full");
  ro.late_beacons = layer == "speed";
  ro.provisional_hours = layer == "speed";
  const std::string out =
      c.Bool("json") ? report::ReportJson(*views, ro) : report::ReportTable(*views, ro);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kAlphabet[(v >> k) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

int CmdBadRows(const std::vector<std::string>& args) {
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI");
  c.Define("reason", "", "only rows with this reason (e.g. ts.not_integer)");
  c.Define("limit", "20", "at most this many rows");
  c.Define("layer", "batch", "which layer's bad rows: batch or speed");
  c.Define("json", "false",
           "print NDJSON: reason, source, line, offset, length, truncated, "
           "payload (text, or null if not UTF-8) and payload_b64",
           true);
  if (int rc = ParseOrHelp("bad-rows", "Lists or exports bad rows with their original payload.", &c,
                           args);
      rc >= 0) {
    return rc;
  }
  store::BadRowQuery q;
  if (!c.String("reason").empty()) {
    beacon::BadReason r;
    if (!beacon::ReasonFromName(c.String("reason"), &r)) {
      return Fail("bad-rows",
                  Status::InvalidArgument("--reason: '" + c.String("reason") +
                                          "' is not a reason; see docs/beacon-contract.md"));
    }
    q.reason = c.String("reason");
  }
  auto limit = c.Int("limit", 1, INT64_MAX);
  if (!limit.ok()) return Fail("bad-rows", limit.status());
  q.limit = *limit;
  if (Status s = ParseLayer(c.String("layer"), false, &q.layer); !s.ok())
    return Fail("bad-rows", s);
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail("bad-rows", store.status());
  auto rows = (*store)->ReadBadRows(q);
  if (!rows.ok()) return Fail("bad-rows", rows.status());
  std::string out;
  for (const core::BadRow& r : *rows) {
    if (c.Bool("json")) {
      out += "{\"reason\":";
      AppendJsonString(&out, beacon::ReasonName(r.reason));
      out += ",\"source\":";
      AppendJsonString(&out, r.source);
      out += ",\"line\":" + std::to_string(r.line) + ",\"offset\":" + std::to_string(r.offset) +
             ",\"length\":" + std::to_string(r.length) +
             ",\"truncated\":" + (r.truncated ? "true" : "false") + ",\"payload\":";
      if (simdjson::validate_utf8(r.payload.data(), r.payload.size())) {
        AppendJsonString(&out, r.payload);
      } else {
        out += "null";
      }
      out += ",\"payload_b64\":\"" + Base64(r.payload) + "\"}\n";
    } else {
      std::string preview;
      for (const char ch : r.payload.substr(0, 100)) {
        const auto u = static_cast<unsigned char>(ch);
        preview.push_back(u < 0x20 || u >= 0x7f ? '?' : ch);
      }
      if (r.payload.size() > 100 || r.truncated) preview += "...";
      char buf[256];
      std::snprintf(buf, sizeof(buf),
                    "%-30s %s:%" PRIu64 " (offset %" PRIu64 ", %" PRIu64 " bytes)  ",
                    std::string(beacon::ReasonName(r.reason)).c_str(), r.source.c_str(), r.line,
                    r.offset, r.length);
      out += buf + preview + "\n";
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (!c.Bool("json")) std::fprintf(stderr, "%zu bad rows shown\n", rows->size());
  return kExitOk;
}

// ---------------------------------------------------------------- stream

// A master-dataset folder or a kafka:// topic, as a Log.
Result<std::unique_ptr<log::Log>> OpenLogSource(const std::string& source,
                                                const std::string& group) {
  if (source.starts_with("kafka://")) {
    auto k = log::ParseKafkaUri(source);
    if (!k.ok()) return k.status();
    log::KafkaLogOptions o;
    o.group = group;
    return log::OpenKafkaLog(*k, o);
  }
  return log::OpenFileLog(source);
}

// `duet stream` over Kafka: a consumer-group member with one engine per owned partition
// (speed/partitioned.h).
// Live scoring for the speed layer: the registry's current model, checked again before every
// micro-batch (two small reads). A store that cannot be read keeps the model it had.
class LiveModel {
 public:
  explicit LiveModel(std::string store_uri) : uri_(std::move(store_uri)) {}
  void Refresh() {
    if (store_ == nullptr) {
      auto s = store::OpenStore(uri_);
      if (!s.ok()) return Warn(s.status());
      store_ = std::move(*s);
      cache_ = std::make_unique<model::ModelCache>(store_.get(), nullptr, NowMs);
    }
    const int64_t before = cache_->health().served_version;
    if (Status s = cache_->Refresh(); !s.ok()) return Warn(s);
    last_error_.clear();
    const int64_t after = cache_->health().served_version;
    if (after != before) {
      Log(LogLevel::kInfo, "stream.model_loaded", {{"version", after}, {"previous", before}});
    }
  }
  std::function<std::shared_ptr<const model::LoadedModel>()> Provider() {
    return [this]() -> std::shared_ptr<const model::LoadedModel> {
      return cache_ != nullptr ? cache_->Current() : nullptr;
    };
  }

 private:
  void Warn(const Status& s) {
    if (s.ToString() == last_error_) return;
    last_error_ = s.ToString();
    Log(LogLevel::kWarn, "stream.model_refresh_failed", {{"error", last_error_}});
  }
  const std::string uri_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<model::ModelCache> cache_;
  std::string last_error_;
};

int StreamGroup(const Config& c, speed::SpeedOptions o, bool drain, int64_t interval_ms,
                serve::StatusPage* page, speed::StreamProbe* probe) {
  auto k = log::ParseKafkaUri(c.String("source"));
  if (!k.ok()) return Fail("stream", k.status());
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail("stream", store.status());
  auto threads = c.Int("threads", 1, 256);
  if (!threads.ok()) return Fail("stream", threads.status());
  LiveModel live(c.String("store"));
  if (c.Bool("live-scoring")) {
    live.Refresh();
    o.model = live.Provider();
  }
  // Active/passive writers: only the holder of the writer lease commits; every commit carries
  // its fencing token.
  const std::string lease = c.String("writer-lease");
  const std::string holder = c.String("writer-id").empty() ? ProcessName() : c.String("writer-id");
  auto lease_ttl = c.DurationMs("lease-ttl");  // checked by CmdStream
  if (!lease_ttl.ok()) return Fail("stream", lease_ttl.status());
  std::atomic<int64_t> lease_token{0};
  if (!lease.empty()) {
    o.lease = lease;
    o.lease_token = &lease_token;
  }
  speed::PartitionedSpeed member(store->get(), o, k->topic, static_cast<size_t>(*threads));
  if (Status s = member.CheckStore(); !s.ok()) return Fail("stream", s);
  probe->Writer(lease.empty(), 0);
  log::KafkaGroupOptions go;
  go.group = c.String("group");
  auto session = c.DurationMs("session-timeout");
  if (!session.ok()) return Fail("stream", session.status());
  go.session_timeout_ms = static_cast<int>(*session);
  auto consumer = log::OpenKafkaGroupConsumer(*k, go, &member);
  if (!consumer.ok()) return Fail("stream", consumer.status());
  member.Attach(consumer->get());
  member.SetStandby(!lease.empty());  // passive until the lease is taken
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  Log(LogLevel::kInfo, "stream.start",
      {{"source", c.String("source")},
       {"group", go.group},
       {"store", c.String("store")},
       {"drain", drain},
       {"interval_ms", interval_ms},
       {"lateness_ms", o.lateness_ms},
       {"ttl_ms", o.ttl_ms},
       {"writer_lease", lease},
       {"writer_id", lease.empty() ? std::string() : holder}});
  uint64_t total = 0;
  int64_t backoff_ms = 0;
  constexpr int64_t kMaxBackoffMs = 30'000;
  // The writer lease: renewed every third of its TTL while held; tried as often by the passive
  // process, which takes it over once the active one stopped renewing it.
  auto next_lease_try = std::chrono::steady_clock::now();
  std::string last_lease_error;
  auto tick_lease = [&] {
    if (lease.empty() || std::chrono::steady_clock::now() < next_lease_try) return;
    next_lease_try = std::chrono::steady_clock::now() + std::chrono::milliseconds(*lease_ttl / 3);
    const bool active = !member.standby();
    auto held = (*store)->AcquireWriterLease(lease, holder, NowMs(), *lease_ttl);
    if (held.ok()) {
      last_lease_error.clear();
      if (!active) {
        lease_token.store(held->token);
        member.SetStandby(false);
        probe->TookOver();
        Log(LogLevel::kInfo, "stream.lease_acquired",
            {{"lease", lease}, {"writer_id", holder}, {"token", held->token}});
      }
      probe->Writer(true, held->token);
      return;
    }
    if (held.status().code() == StatusCode::kAborted) {
      if (active) {
        // Another process took the lease over (this one stopped renewing it in time): its
        // commits are fenced off from now on, so stop writing and follow it instead.
        member.SetStandby(true);
        Log(LogLevel::kWarn, "stream.lease_lost",
            {{"lease", lease}, {"writer_id", holder}, {"error", held.status().ToString()}});
      } else if (held.status().ToString() != last_lease_error) {
        Log(LogLevel::kInfo, "stream.passive",
            {{"lease", lease}, {"writer_id", holder}, {"reason", held.status().ToString()}});
      }
      last_lease_error = held.status().ToString();
      probe->Writer(false, 0);
      return;
    }
    // The store is away: a holder keeps writing (the store fences it if it lost the lease).
    if (held.status().ToString() != last_lease_error) {
      Log(LogLevel::kWarn, "stream.lease_failed",
          {{"lease", lease}, {"error", held.status().ToString()}});
    }
    last_lease_error = held.status().ToString();
  };
  // --drain gives up when nothing moves for this long (no partition assigned, a broker away).
  constexpr auto kDrainStall = std::chrono::seconds(60);
  auto last_progress = std::chrono::steady_clock::now();
  std::vector<int> owned;
  Status failed = Status::Ok();
  // The lag of every owned partition (the broker's end offset, as cached by the consumer's
  // background fetches, minus the next offset to process) and the readiness it implies.
  // Publishes the lag of every owned partition (the broker's end offset, as cached by the
  // consumer's background fetches, minus the next offset to process) and the readiness it
  // implies; true when every owned partition's lag is known and 0.
  auto publish_lag = [&]() -> bool {
    std::vector<speed::PartitionLag> lags;
    bool caught_up = true;
    for (const log::KafkaGroupConsumer::Owned& a : (*consumer)->Assignment()) {
      const bool known = a.high >= 0 && a.next >= 0 && !a.held;
      lags.push_back({a.partition, known ? std::max<int64_t>(0, a.high - a.next) : -1});
      caught_up = caught_up && known && lags.back().messages == 0;
    }
    probe->Lag(lags);
    for (auto& [name, problem] : probe->Problems()) page->SetCondition(name, std::move(problem));
    return caught_up;
  };
  // Waits until `until`, refreshing the lag every second meanwhile (a stream waiting out its
  // interval still shows messages arriving), and waking early on a signal.
  auto wait = [&](std::chrono::steady_clock::time_point until) {
    while (!g_stop.load() && std::chrono::steady_clock::now() < until) {
      SleepUnlessStopped(
          std::min(until, std::chrono::steady_clock::now() + std::chrono::seconds(1)));
      publish_lag();
      tick_lease();
    }
  };
  int64_t due_ms = NowMs();      // when the next round should start
  bool pending_failure = false;  // a round failed since the last success
  while (!g_stop.load()) {
    const auto start = std::chrono::steady_clock::now();
    const int64_t start_ms = NowMs();
    if (c.Bool("live-scoring")) live.Refresh();
    tick_lease();
    auto round = member.Round();
    if (!round.ok()) {
      if (round.status().code() != StatusCode::kUnavailable) {
        failed = round.status();
        break;
      }
      round = speed::RoundResult{{}, {{-1, round.status()}}, 0};
    }
    probe->Round(due_ms, start_ms, NowMs(), static_cast<int64_t>(round->batches.size()),
                 static_cast<int64_t>(round->failures.size()));
    const bool caught_up = publish_lag();
    // After a failure, the micro-batches that failed are read again from the stored offsets: an
    // empty round before they are proves nothing (neither success nor failure) unless every
    // partition is caught up (the data went to another member, or there was none).
    const bool unproven =
        round->failures.empty() && round->lines == 0 && pending_failure && !caught_up;
    if (!round->failures.empty()) {
      page->StepFailed(round->failures.front().second);
      pending_failure = true;
    } else if (!unproven) {
      page->StepOk(static_cast<int64_t>(round->lines));
      pending_failure = false;
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const speed::PartitionBatch& b : round->batches) {
      const speed::MicroBatchStats& st = b.stats;
      Log(LogLevel::kInfo, "stream.batch",
          {{"scope", k->topic + "/" + std::to_string(b.partition)},
           {"epoch", st.epoch},
           {"lines", st.lines},
           {"applied", st.applied},
           {"duplicates", st.duplicates},
           {"bad_rows", st.bad_rows},
           {"late", st.late},
           {"visitors_active", st.visitors_active},
           {"visitor_state_bytes", st.visitor_state_bytes},
           {"state_bytes", st.state_bytes},
           {"full_snapshot", st.full_snapshot},
           {"watermark_ms", st.watermark_ms}});
    }
    total += round->lines;
    if (round->lines > 0) {
      Log(LogLevel::kInfo, "stream.round",
          {{"lines", round->lines},
           {"seconds", secs},
           {"lines_per_s", secs > 0 ? round->lines / secs : 0.0}});
    }
    std::vector<int> now_owned = member.Owned();
    if (round->lines > 0 || now_owned != owned) last_progress = std::chrono::steady_clock::now();
    owned = std::move(now_owned);
    if (!round->failures.empty()) {
      // The store or a broker is away: held partitions are rebuilt after a back-off.
      backoff_ms = std::min(kMaxBackoffMs, backoff_ms == 0 ? 200 : backoff_ms * 2);
      for (const auto& [p, s] : round->failures) {
        Log(LogLevel::kWarn, "stream.retry",
            {{"partition", p}, {"error", s.ToString()}, {"backoff_ms", backoff_ms}});
      }
      due_ms = start_ms + backoff_ms;
      wait(start + std::chrono::milliseconds(backoff_ms));
      continue;
    }
    backoff_ms = 0;
    due_ms = NowMs();  // unless caught up (below), the next round is due right away
    if (round->resumed > 0 || unproven) {
      // Partitions just rebuilt: their first fetches are under way; read them right away.
      due_ms = start_ms + 100;
      wait(start + std::chrono::milliseconds(100));
      continue;
    }
    if (drain) {
      if (member.Drained()) break;
      if (std::chrono::steady_clock::now() - last_progress > kDrainStall) {
        failed = Status::Unavailable("--drain: no progress for 60 s (owned partitions: " +
                                     std::to_string(owned.size()) + ")");
        break;
      }
      continue;
    }
    if (round->lines >= o.max_batch_lines) continue;  // a backlog: next round right away
    due_ms = start_ms + interval_ms;
    wait(start + std::chrono::milliseconds(interval_ms));
  }
  // Leaving the group hands this member's partitions to the others; every micro-batch read so
  // far is committed (rounds end with their commits).
  (*consumer)->Close();
  if (!failed.ok()) return Fail("stream", failed);
  auto scopes = (*store)->ReadSpeedScopes();
  auto views = scopes.ok() ? serve::SpeedViews(*scopes) : Result<core::Views>(scopes.status());
  Log(LogLevel::kInfo, "stream.stop", {{"lines_this_run", total}, {"signal", g_stop.load()}});
  if (views.ok()) {
    const auto& in = views->input;
    std::printf("stream: %" PRId64 " lines (%" PRId64 " applied, %" PRId64 " duplicates, %" PRId64
                " bad rows, %" PRId64 " late) in %zu partition scopes -> %s\n",
                in.lines, in.valid_beacons, in.duplicates, in.bad_rows, in.late_beacons,
                scopes->size(), c.String("store").c_str());
  }
  return kExitOk;
}

int CmdStream(const std::vector<std::string>& args) {
  Config c;
  c.Define("source", "",
           "the log: a master-dataset folder read as a log (new files and lines are picked up), "
           "or kafka://HOST:PORT[,HOST:PORT...]/TOPIC");
  c.Define("group", "duet-stream",
           "Kafka consumer group: processes in one group share the topic's partitions (offsets "
           "live in the store)");
  c.Define("threads", std::to_string(DefaultThreads()),
           "Kafka: partitions whose micro-batches run at the same time");
  c.Define("session-timeout", "10s",
           "Kafka: a group member that stops answering loses its partitions after this long");
  c.Define("bad-topic", "",
           "Kafka source only: topic that also receives every bad row (default <topic>.bad; "
           "'none' to turn off)");
  c.Define("store", "sqlite:duet.sqlite", "store URI (sqlite:PATH)");
  c.Define("interval", "60s", "micro-batch interval when caught up");
  c.Define("lateness", "10m",
           "allowed lateness: beacons older than max event time minus this are late");
  c.Define("ttl", "12h", "a visitor's state is forgotten after this long without activity");
  c.Define("session-gap", "30m", "a gap longer than this starts a new session");
  c.Define("max-batch", "1000000", "at most this many lines per micro-batch");
  c.Define("drain", "false", "process everything available, commit and exit", true);
  c.Define("live-scoring", "true",
           "score the sessions in progress with the registry's current model, if any");
  DefineStatusListen(&c);
  c.Define("writer-lease", "",
           "Kafka: active/passive writers — only the holder of this lease in the store writes; "
           "the others keep their state warm and take over when it stops renewing it");
  c.Define("lease-ttl", "10s",
           "the writer lease lasts this long unless renewed (every third of it); a passive "
           "process takes over within about 4/3 of it after the active one dies");
  c.Define("writer-id", "", "this process's name as a lease holder (default HOST:PID)");
  c.Define("ready-max-failures", "3",
           "/readyz answers 503 once this many micro-batches in a row have failed");
  c.Define("ready-max-lag", "0",
           "Kafka: /readyz answers 503 while a partition is more than this many messages behind "
           "(0: no threshold)");
  c.Define("ready-max-delay", "10m",
           "/readyz answers 503 while the last micro-batch started later than this after it was "
           "due (0: no threshold)");
  if (int rc = ParseOrHelp("stream", "The speed layer: micro-batches over a log, exactly once.", &c,
                           args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("source"); !s.ok()) return Fail("stream", s);
  // Keep freed memory in the process instead of returning it to the system: every micro-batch
  // reallocates large buffers (log lines, checkpoint encodings), and fresh pages cost a fault
  // each. Measured on the 10 M-line catch-up: 27.5 s -> 24.4 s wall, +300 MB peak RSS.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  speed::SpeedOptions o;
  for (auto [name, field] : {std::pair{"lateness", &o.lateness_ms}, std::pair{"ttl", &o.ttl_ms},
                             std::pair{"session-gap", &o.session_gap_ms}}) {
    auto d = c.DurationMs(name);
    if (!d.ok()) return Fail("stream", d.status());
    *field = *d;
  }
  auto interval = c.DurationMs("interval");
  if (!interval.ok()) return Fail("stream", interval.status());
  auto max_batch = c.Int("max-batch", 1, 100'000'000);
  if (!max_batch.ok()) return Fail("stream", max_batch.status());
  o.max_batch_lines = static_cast<size_t>(*max_batch);
  const bool drain = c.Bool("drain");
  if (!c.String("writer-lease").empty()) {
    auto ttl = c.DurationMs("lease-ttl");
    if (!ttl.ok()) return Fail("stream", ttl.status());
    if (*ttl < 1000) {
      return Fail("stream", Status::InvalidArgument("--lease-ttl is " + c.String("lease-ttl") +
                                                    "; expected at least 1s"));
    }
    if (!c.String("source").starts_with("kafka://")) {
      return Fail("stream", Status::InvalidArgument(
                                "--writer-lease needs a kafka:// --source (active/passive writers "
                                "read the same topic); --source is " +
                                c.String("source")));
    }
    if (drain) {
      return Fail("stream", Status::InvalidArgument(
                                "--drain and --writer-lease exclude each other: a passive process "
                                "reads nothing to drain; drain without the lease"));
    }
  }
  std::unique_ptr<speed::BadRowSink> bad_sink;
  if (c.String("source").starts_with("kafka://") && c.String("bad-topic") != "none") {
    auto k = log::ParseKafkaUri(c.String("source"));
    if (!k.ok()) return Fail("stream", k.status());
    const std::string topic =
        c.String("bad-topic").empty() ? k->topic + ".bad" : c.String("bad-topic");
    auto sink = speed::OpenKafkaBadRowSink(k->brokers, topic);
    if (!sink.ok()) return Fail("stream", sink.status());
    bad_sink = std::move(*sink);
    o.bad_row_sink = bad_sink.get();
  }
  auto max_failures = c.Int("ready-max-failures", 1, 1'000'000);
  if (!max_failures.ok()) return Fail("stream", max_failures.status());
  speed::StreamThresholds thresholds;
  auto max_lag = c.Int("ready-max-lag", 0, INT64_MAX);
  if (!max_lag.ok()) return Fail("stream", max_lag.status());
  thresholds.max_lag_messages = *max_lag;
  auto max_delay = c.DurationMs("ready-max-delay");
  if (!max_delay.ok()) return Fail("stream", max_delay.status());
  thresholds.max_delay_ms = *max_delay;
  // Probes get answers from the start: 503 until the first micro-batch is committed.
  serve::StatusPage page("stream", NowMs, static_cast<int>(*max_failures));
  speed::StreamProbe probe(&page.registry(), *interval, thresholds);
  auto status_server = StartStatusServer(c, &page);
  if (!status_server.ok()) return Fail("stream", status_server.status());
  if (c.String("source").starts_with("kafka://")) {
    return StreamGroup(c, o, drain, *interval, &page, &probe);
  }

  LiveModel live(c.String("store"));
  if (c.Bool("live-scoring")) {
    live.Refresh();
    o.model = live.Provider();
  }

  // The log, the store and the engine, rebuilt together after a transient failure: a failed
  // micro-batch leaves the engine's memory ahead of the store, so it restarts from the checkpoint.
  struct Pipeline {
    std::unique_ptr<log::Log> log;
    std::unique_ptr<store::Store> store;
    std::unique_ptr<speed::SpeedLayer> speed;
  };
  auto open = [&]() -> Result<Pipeline> {
    Pipeline p;
    auto l = OpenLogSource(c.String("source"), c.String("group"));
    if (!l.ok()) return l.status();
    p.log = std::move(*l);
    auto st = store::OpenStore(c.String("store"));
    if (!st.ok()) return st.status();
    p.store = std::move(*st);
    auto scopes = p.store->ReadSpeedScopes();
    if (!scopes.ok()) return scopes.status();
    for (const store::SpeedScope& s : *scopes) {
      if (s.scope.empty()) continue;
      return Status::InvalidArgument("the store already holds speed-layer state of Kafka scope '" +
                                     s.scope +
                                     "'; one store keeps one speed layer: use another "
                                     "store for this one");
    }
    p.speed = std::make_unique<speed::SpeedLayer>(p.log.get(), p.store.get(), o);
    DUET_RETURN_IF_ERROR(p.speed->Recover());
    return p;
  };
  auto pipeline = open();
  if (!pipeline.ok()) return Fail("stream", pipeline.status());
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  Log(LogLevel::kInfo, "stream.start",
      {{"source", c.String("source")},
       {"store", c.String("store")},
       {"drain", drain},
       {"interval_ms", *interval},
       {"lateness_ms", o.lateness_ms},
       {"ttl_ms", o.ttl_ms}});
  uint64_t total = 0;
  int64_t backoff_ms = 0;
  constexpr int64_t kMaxBackoffMs = 30'000;
  bool broken = false;       // the engine failed a micro-batch and must restart from the checkpoint
  int64_t due_ms = NowMs();  // when the next micro-batch should start
  auto conditions = [&] {
    for (auto& [name, problem] : probe.Problems()) page.SetCondition(name, std::move(problem));
  };
  while (!g_stop.load()) {
    const auto start = std::chrono::steady_clock::now();
    const int64_t start_ms = NowMs();
    Status failed;
    Result<speed::MicroBatchStats> st = Status::Aborted("not run");
    if (broken) {
      auto again = open();
      if (again.ok()) {
        pipeline = std::move(again);
        broken = false;
        Log(LogLevel::kInfo, "stream.resumed", {{"lines", pipeline->speed->views().input.lines}});
      } else {
        failed = again.status();
      }
    }
    if (!broken) {
      // A micro-batch is committed whole or not at all; signals are honoured between them.
      if (c.Bool("live-scoring")) live.Refresh();
      st = pipeline->speed->Step(drain);
      if (!st.ok()) {
        failed = st.status();
        broken = true;
      }
    }
    if (!failed.ok()) {
      page.StepFailed(failed);
      probe.Round(due_ms, start_ms, NowMs(), 0, 1);
      conditions();
      if (failed.code() != StatusCode::kUnavailable) return Fail("stream", failed);
      // The store is busy or down: back off, then reopen and resume from the last checkpoint.
      backoff_ms = std::min(kMaxBackoffMs, backoff_ms == 0 ? 200 : backoff_ms * 2);
      Log(LogLevel::kWarn, "stream.retry",
          {{"error", failed.ToString()}, {"backoff_ms", backoff_ms}});
      due_ms = start_ms + backoff_ms;
      SleepUnlessStopped(start + std::chrono::milliseconds(backoff_ms));
      continue;
    }
    backoff_ms = 0;
    page.StepOk(st->lines);
    probe.Round(due_ms, start_ms, NowMs(), st->lines > 0 ? 1 : 0, 0);
    conditions();
    due_ms = NowMs();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    total += st->lines;
    if (st->lines > 0) {
      Log(LogLevel::kInfo, "stream.batch",
          {{"epoch", st->epoch},
           {"lines", st->lines},
           {"applied", st->applied},
           {"duplicates", st->duplicates},
           {"bad_rows", st->bad_rows},
           {"late", st->late},
           {"visitors_touched", st->visitors_touched},
           {"visitors_active", st->visitors_active},
           {"visitors_expired", st->visitors_expired},
           {"visitor_state_bytes", st->visitor_state_bytes},
           {"ids_held", st->ids_held},
           {"id_state_bytes", st->id_state_bytes},
           {"state_bytes", st->state_bytes},
           {"full_snapshot", st->full_snapshot},
           {"watermark_ms", st->watermark_ms},
           {"seconds", secs},
           {"lines_per_s", secs > 0 ? st->lines / secs : 0.0}});
    }
    if (st->lines == 0 && drain) break;
    // A backlog, or draining: next micro-batch right away.
    if (drain || st->lines >= o.max_batch_lines) continue;
    // Caught up: wait out the interval, waking early on a signal.
    due_ms = start_ms + *interval;
    SleepUnlessStopped(start + std::chrono::milliseconds(*interval));
  }
  const auto& in = pipeline->speed->views().input;
  Log(LogLevel::kInfo, "stream.stop",
      {{"lines_this_run", total}, {"lines", in.lines}, {"signal", g_stop.load()}});
  std::printf("stream: %" PRId64 " lines (%" PRId64 " applied, %" PRId64 " duplicates, %" PRId64
              " bad rows, %" PRId64 " late) -> %s\n",
              in.lines, in.valid_beacons, in.duplicates, in.bad_rows, in.late_beacons,
              c.String("store").c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- demo

// A one-line summary of an experiment's conversion per session in a layer's views.
// The speed layer's live scoring of the site, for the demo's status line.
std::string LiveLine(const core::Views& v) {
  if (v.live.model_version == 0 || v.live.rows.empty()) return "";
  const core::LiveRow& site = v.live.rows.front();
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "; live: %" PRId64 " sessions in progress, %.1f conversions expected",
                site.sessions, site.expected_conversions);
  return buf;
}

std::string ConversionLine(const core::Views& v, const std::string& experiment) {
  std::string out;
  char buf[128];
  for (const auto& r : v.totals) {
    if (r.experiment != experiment) continue;
    std::snprintf(buf, sizeof(buf), "%s%s %.2f%% of %" PRId64 " sessions", out.empty() ? "" : ", ",
                  r.variant.c_str(),
                  r.v.sessions > 0 ? 100.0 * r.v.conversions / r.v.sessions : 0.0, r.v.sessions);
    out += buf;
  }
  return out.empty() ? "no data yet" : out;
}

std::string TimeOfDay(int64_t ms) {
  if (ms <= 0 || ms == INT64_MIN) return "-";
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%m-%d %H:%M", &tm);
  return buf;
}

// ---------------------------------------------------------------- train, models

// What one training run read and produced (TrainFromInput).
struct TrainRun {
  int64_t lines = 0;
  size_t visitors = 0;
  size_t features = 0;
  size_t train_rows = 0;
  size_t holdout_rows = 0;
  model::TimeWindow train_window;
  model::TimeWindow holdout_window;
  double read_seconds = 0;
  model::TrainOutcome outcome;
};

// Reads `input` with the batch layer's code, builds the examples, trains, registers and (by the
// promotion rule) promotes. `on_examples` is told about the examples before training starts.
Result<TrainRun> TrainFromInput(const std::string& input, store::Store* store, int threads,
                                int64_t gap_ms, double holdout, const model::TrainOptions& to,
                                const model::RegisterOptions& ro,
                                const std::function<void(const TrainRun&)>& on_examples) {
  const auto start = std::chrono::steady_clock::now();
  batch::BatchOptions opt;
  std::unique_ptr<mongoraw::RawCollection> raw;
  DUET_RETURN_IF_ERROR(ResolveBatchInput(input, &opt, &raw));
  opt.threads = threads;
  opt.session_gap_ms = gap_ms;
  opt.progress = BatchProgressLogger("train.progress");
  model::ExampleCollector collector(opt.threads, gap_ms);
  opt.on_visitor = [&collector](int t, const core::Catalog& catalog,
                                std::span<const core::Event> events) {
    collector.Visitor(t, catalog, events);
  };
  Log(LogLevel::kInfo, "train.start", {{"input", input}});
  batch::BatchStats stats;
  auto views = batch::RunBatch(opt, nullptr, &stats);
  if (!views.ok()) return views.status();
  auto set = model::BuildTrainingSet(collector.Rows(), holdout);
  if (!set.ok()) return set.status();
  TrainRun run;
  run.lines = views->input.lines;
  run.visitors = collector.visitors();
  run.features = set->encoder.size();
  run.train_rows = set->train.rows();
  run.holdout_rows = set->holdout.rows();
  run.train_window = set->train_window;
  run.holdout_window = set->holdout_window;
  run.read_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (on_examples) on_examples(run);
  Log(LogLevel::kInfo, "train.fit",
      {{"rows", static_cast<int64_t>(run.train_rows)}, {"rounds", to.rounds}});
  auto out = model::TrainAndRegister(*set, to, ro, store);
  if (!out.ok()) return out.status();
  run.outcome = std::move(*out);
  const model::Evaluation& e = run.outcome.holdout;
  Log(LogLevel::kInfo, "train.done",
      {{"version", run.outcome.info.version},
       {"promoted", run.outcome.promoted},
       {"holdout_auc", e.auc},
       {"holdout_log_loss", e.log_loss},
       {"seconds",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}});
  return run;
}

int CmdTrain(const std::vector<std::string>& args) {
  Config c;
  c.Define("input", "",
           "master dataset, as for duet batch: a folder, one NDJSON file, or a MongoDB "
           "collection of raw beacons");
  c.Define("store", "sqlite:duet.sqlite", "store URI holding the model registry");
  c.Define("threads", std::to_string(DefaultThreads()), "threads for reading and training");
  c.Define("session-gap", "30m", "a gap longer than this starts a new session");
  c.Define("holdout", "0.2", "share of the examples, the latest sessions, held out for evaluation");
  c.Define("rounds", "100", "boosting rounds");
  c.Define("max-depth", "4", "tree depth");
  c.Define("eta", "0.1", "learning rate");
  c.Define("seed", "42", "random seed (training is deterministic for a seed and thread count)");
  c.Define("force", "false", "promote even if the current model does better on this holdout", true);
  c.Define("no-promote", "false", "register the new version without promoting it", true);
  if (int rc = ParseOrHelp("train",
                           "Trains the conversion-propensity model from the batch layer's "
                           "sessions, evaluates it on a time-based holdout and registers it in "
                           "the store; promotes it unless it is worse than the current model.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("input"); !s.ok()) return Fail("train", s);
  auto threads = c.Int("threads", 1, 256);
  auto gap = c.DurationMs("session-gap");
  auto holdout = c.Double("holdout", 0.01, 0.9);
  auto rounds = c.Int("rounds", 1, 100'000);
  auto depth = c.Int("max-depth", 1, 64);
  auto eta = c.Double("eta", 1e-6, 1);
  auto seed = c.Int("seed", 0, INT64_MAX);
  for (const Status& s : {threads.status(), gap.status(), holdout.status(), rounds.status(),
                          depth.status(), eta.status(), seed.status()}) {
    if (!s.ok()) return Fail("train", s);
  }
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail("train", store.status());
  model::TrainOptions to;
  to.rounds = static_cast<int>(*rounds);
  to.max_depth = static_cast<int>(*depth);
  to.eta = *eta;
  to.threads = static_cast<int>(*threads);
  to.seed = static_cast<uint64_t>(*seed);
  model::RegisterOptions ro;
  ro.input = c.String("input");
  ro.session_gap_ms = *gap;
  ro.now_ms = NowMs();
  ro.force = c.Bool("force");
  ro.no_promote = c.Bool("no-promote");
  const auto start = std::chrono::steady_clock::now();
  auto run = TrainFromInput(
      c.String("input"), store->get(), static_cast<int>(*threads), *gap, *holdout, to, ro,
      [](const TrainRun& r) {
        std::printf("train: %" PRId64
                    " lines, %zu visitors -> %zu examples (%zu features): %zu for "
                    "training (sessions from %s to %s), %zu held out (%s to %s) [%.1f s]\n",
                    r.lines, r.visitors, r.train_rows + r.holdout_rows, r.features, r.train_rows,
                    UtcTimeString(r.train_window.from_ms).c_str(),
                    UtcTimeString(r.train_window.to_ms).c_str(), r.holdout_rows,
                    UtcTimeString(r.holdout_window.from_ms).c_str(),
                    UtcTimeString(r.holdout_window.to_ms).c_str(), r.read_seconds);
        std::fflush(stdout);
      });
  if (!run.ok()) return Fail("train", run.status());
  const model::TrainOutcome& out = run->outcome;
  const model::Evaluation& e = out.holdout;
  std::printf(
      "train: holdout AUC %.4f, log-loss %.4f, %" PRId64 " of %" PRId64
      " examples converted (%.2f %%) [%.1f s]\n",
      e.auc, e.log_loss, e.positives, e.rows,
      e.rows > 0 ? 100.0 * static_cast<double>(e.positives) / static_cast<double>(e.rows) : 0.0,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  std::printf("train: calibration (predicted -> observed):");
  for (const model::CalibrationBin& b : e.calibration) {
    if (b.count > 0) {
      std::printf(" %.2f->%.2f (%" PRId64 ")", b.mean_predicted, b.observed_rate, b.count);
    }
  }
  std::printf("\ntrain: version %" PRId64 " registered in %s; %s\n", out.info.version,
              c.String("store").c_str(), out.decision.c_str());
  return kExitOk;
}

int CmdModels(const std::vector<std::string>& args) {
  const std::string usage =
      "usage: duet models list|export|promote [options]\n"
      "  list                            the registered versions; * marks the current one\n"
      "  export --version N --out DIR    write DIR/model.ubj (XGBoost) and DIR/meta.json\n"
      "  promote --version N             make version N current (a rollback, or a forced "
      "promotion)\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("%s", usage.c_str());
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::string& action = args[0];
  if (action != "list" && action != "export" && action != "promote") {
    std::fprintf(stderr, "duet models: unknown action '%s'\n%s", action.c_str(), usage.c_str());
    return kExitUsage;
  }
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI holding the model registry");
  c.Define("json", "false", "list as JSON", true);
  if (action != "list") c.Define("version", "", "model version");
  if (action == "export") c.Define("out", "", "folder to write model.ubj and meta.json into");
  if (int rc = ParseOrHelp("models " + action, usage, &c,
                           std::vector<std::string>(args.begin() + 1, args.end()));
      rc >= 0) {
    return rc;
  }
  const std::string cmd = "models " + action;
  auto store = store::OpenStore(c.String("store"));
  if (!store.ok()) return Fail(cmd, store.status());
  auto current = (*store)->CurrentModel();
  if (!current.ok()) return Fail(cmd, current.status());
  if (action == "list") {
    auto list = (*store)->ListModels();
    if (!list.ok()) return Fail(cmd, list.status());
    if (c.Bool("json")) {
      Json j;
      j.Open().Key("current");
      if (*current == 0) {
        j.Null();
      } else {
        j.Int(*current);
      }
      j.Key("versions").OpenArray();
      for (const store::ModelInfo& m : *list) {
        j.Open().Key("version").Int(m.version).Key("created_at").Str(UtcTimeString(m.created_ms));
        j.Key("metadata").Raw(m.metadata);
        j.Close();
      }
      j.CloseArray().Close();
      std::printf("%s\n", j.Take().c_str());
      return kExitOk;
    }
    if (list->empty()) {
      std::printf("no model registered in %s; run duet train\n", c.String("store").c_str());
      return kExitOk;
    }
    std::printf("  version  created_at                holdout_auc  holdout_rows  training\n");
    for (const store::ModelInfo& m : *list) {
      simdjson::dom::parser parser;
      simdjson::dom::element doc;
      double auc = NAN;
      int64_t rows = 0;
      std::string_view from, to;
      if (parser.parse(m.metadata).get(doc) == simdjson::SUCCESS) {
        if (auto v = doc["holdout"]["auc"].get_double(); !v.error()) auc = v.value_unsafe();
        if (auto v = doc["holdout"]["rows"].get_int64(); !v.error()) rows = v.value_unsafe();
        if (auto v = doc["training"]["from"].get_string(); !v.error()) from = v.value_unsafe();
        if (auto v = doc["training"]["to"].get_string(); !v.error()) to = v.value_unsafe();
      }
      std::printf("%s %7" PRId64 "  %-24s  %11.4f  %12" PRId64 "  %.*s .. %.*s\n",
                  m.version == *current ? "*" : " ", m.version, UtcTimeString(m.created_ms).c_str(),
                  auc, rows, static_cast<int>(from.size()), from.data(),
                  static_cast<int>(to.size()), to.data());
    }
    return kExitOk;
  }
  if (Status s = c.Require("version"); !s.ok()) return Fail(cmd, s);
  auto version = c.Int("version", 1, INT64_MAX);
  if (!version.ok()) return Fail(cmd, version.status());
  if (action == "promote") {
    if (Status s = (*store)->PromoteModel(*version, *current); !s.ok()) return Fail(cmd, s);
    std::printf("models: version %" PRId64 " is current (was %" PRId64 ")\n", *version, *current);
    return kExitOk;
  }
  if (Status s = c.Require("out"); !s.ok()) return Fail(cmd, s);
  auto m = (*store)->ReadModel(*version);
  if (!m.ok()) return Fail(cmd, m.status());
  namespace fs = std::filesystem;
  const fs::path out(c.String("out"));
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return Fail(cmd, Status::IoError(out.string() + ": " + ec.message()));
  for (const auto& [name, bytes] :
       {std::pair<std::string, const std::string*>{"model.ubj", &m->bytes},
        {"meta.json", &m->info.metadata}}) {
    if (Status s = WriteFileAtomic((out / name).string(), *bytes); !s.ok()) return Fail(cmd, s);
  }
  std::printf("models: version %" PRId64 " -> %s/model.ubj, %s/meta.json\n", *version,
              out.string().c_str(), out.string().c_str());
  return kExitOk;
}

int CmdDemo(const std::vector<std::string>& args) {
  Config c;
  c.Define("dir", "duet-demo", "working folder for the demo's data and store (recreated)");
  DefineGenerateOptions(&c);
  c.Define("beacons", "2000000", "lines of traffic to generate over the demo");
  c.Define("speedup", "120", "simulated seconds of traffic per real second");
  c.Define("interval", "2s", "speed-layer micro-batch interval");
  c.Define("batch-every", "20s", "batch-layer schedule (30m in production)");
  c.Define("duration", "0", "stop after this long (e.g. 30s); 0 = until Ctrl-C");
  c.Define("listen", "127.0.0.1:8080",
           "HOST:PORT of the dashboard and API (another free port if taken; port 0: any)");
  if (int rc = ParseOrHelp("demo",
                           "Runs the pipeline live on the embedded default: a traffic generator "
                           "appending to the master dataset, the speed layer, the batch layer on a "
                           "schedule, and a running report. Ctrl-C finishes the micro-batch, "
                           "commits and exits.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  // The demo talks to a person: keep structured logs for warnings unless asked otherwise.
  if (std::getenv("DUET_LOG_LEVEL") == nullptr) SetMinLogLevel(LogLevel::kWarn);
  namespace fs = std::filesystem;
  const fs::path dir(c.String("dir"));
  const std::string master = (dir / "master").string();
  const std::string store_uri = "sqlite:" + (dir / "duet.sqlite").string();
  gen::GenerateOptions o;
  o.out_dir = master;
  if (Status s = GenerateOptionsFrom(c, &o); !s.ok()) return Fail("demo", s);
  auto speedup = c.Int("speedup", 1, 1'000'000);
  auto interval = c.DurationMs("interval");
  auto batch_every = c.DurationMs("batch-every");
  auto duration = c.DurationMs("duration");
  for (const Status& s :
       {speedup.status(), interval.status(), batch_every.status(), duration.status()}) {
    if (!s.ok()) return Fail("demo", s);
  }
  // Start from a clean folder, but never delete one the demo did not create.
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_empty(dir, ec) && !fs::exists(dir / ".duet-demo")) {
    return Fail("demo",
                Status::InvalidArgument("--dir: '" + dir.string() +
                                        "' exists and is not a demo folder; choose another"));
  }
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  std::ofstream(dir / ".duet-demo") << "created by duet demo; safe to delete\n";
  fs::create_directories(master, ec);

  // Simulated time runs `speedup` times faster than the wall clock, from now.
  const auto wall0 = std::chrono::steady_clock::now();
  const int64_t sim0 = NowMs() / 60'000 * 60'000;
  o.start_ms = sim0;
  auto sim_now = [&] {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return sim0 + static_cast<int64_t>(secs * 1000.0 * *speedup);
  };
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  std::atomic<uint64_t> generated{0};
  std::atomic<bool> generator_done{false};
  std::mutex status_mu;
  Status failure;  // the first failure of any thread; stops the demo
  auto fail = [&](Status s) {
    std::lock_guard<std::mutex> l(status_mu);
    if (failure.ok()) failure = std::move(s);
    g_stop.store(true);
  };

  // The serving layer: the dashboard and API over the demo's store, refreshed as it fills.
  serve::HttpServerOptions ho;
  uint16_t port = 0;
  if (Status s = ParseHostPort("listen", c.String("listen"), &ho.host, &port); !s.ok()) {
    return Fail("demo", s);
  }
  ho.port = port;
  auto serve_store = store::OpenStore(store_uri);
  if (!serve_store.ok()) return Fail("demo", serve_store.status());
  serve::ViewCache cache(serve_store->get(), NowMs);
  serve::ServeProbe probe;
  serve::ApiOptions ao;
  model::ModelCache models(
      serve_store->get(), [&probe](bool ok, int64_t v) { probe.ModelLoaded(ok, v); }, NowMs);
  const serve::ModelApi model_api(&models, &probe, serve::ModelApiOptions{});
  const serve::Api api(&cache, &probe, ao, NowMs, &serve::EmbeddedAssets(), &model_api);
  auto handler = [&api](const serve::HttpRequest& r) { return api.Handle(r); };
  auto server = serve::StartHttpServer(ho, handler);
  if (!server.ok() && server.status().code() == StatusCode::kUnavailable && ho.port != 0) {
    std::printf("duet demo: %s; using another port\n", server.status().message().c_str());
    ho.port = 0;
    server = serve::StartHttpServer(ho, handler);
  }
  if (!server.ok()) return Fail("demo", server.status());
  const std::string dashboard = ServerUrl(ho.host, (*server)->port());

  std::printf("duet demo: live A/B traffic at %" PRId64
              "x speed -> %s\n"
              "  speed layer every %s, batch layer every %s; store %s\n"
              "  dashboard: %s  (API under %sv1/)\n"
              "  Ctrl-C to stop (finishes the micro-batch, commits, exits)\n\n",
              *speedup, master.c_str(), c.String("interval").c_str(),
              c.String("batch-every").c_str(), store_uri.c_str(), dashboard.c_str(),
              dashboard.c_str());
  std::fflush(stdout);

  std::thread generator([&] {
    gen::TrafficGenerator tg(o);
    gen::LiveWriter writer(master);
    gen::GeneratedLine line;
    bool more = tg.Next(&line);
    while (more && !g_stop.load()) {
      const int64_t until = sim_now();
      while (more && line.arrival_ms <= until) {
        writer.Append(line);
        more = tg.Next(&line);
      }
      if (Status s = writer.Flush(); !s.ok()) return fail(s);
      generated.store(writer.lines());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (Status s = writer.Flush(); !s.ok()) return fail(s);
    generated.store(writer.lines());
    generator_done.store(!more);  // all traffic written, not merely stopped
  });

  std::mutex views_mu;
  std::atomic<bool> others_stopped{false};  // generator and batch layer have finished
  core::Views speed_views;
  speed::MicroBatchStats last_batch;
  std::thread stream([&] {
    auto log = log::OpenFileLog(master);
    if (!log.ok()) return fail(log.status());
    auto store = store::OpenStore(store_uri);
    if (!store.ok()) return fail(store.status());
    // Live scoring with the model the batch thread trains (once there is one).
    LiveModel live(store_uri);
    speed::SpeedOptions so;
    so.model = live.Provider();
    speed::SpeedLayer layer(log->get(), store->get(), so);
    if (Status s = layer.Recover(); !s.ok()) return fail(s);
    while (!g_stop.load()) {
      const auto start = std::chrono::steady_clock::now();
      live.Refresh();
      auto st = layer.Step(false);
      if (!st.ok()) return fail(st.status());
      {
        std::lock_guard<std::mutex> l(views_mu);
        speed_views = layer.views();
        if (st->lines > 0) last_batch = *st;
      }
      SleepUnlessStopped(start + std::chrono::milliseconds(*interval));
    }
    // Stopping: once the generator and the batch layer are done, one last micro-batch applies
    // what they left (new files, a new batch boundary), so the final merged view is current.
    while (!others_stopped.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto st = layer.Step(false);
    if (!st.ok()) return fail(st.status());
    std::lock_guard<std::mutex> l(views_mu);
    speed_views = layer.views();
    if (st->lines > 0) last_batch = *st;
  });

  // What the job handlers share with the status line, owned jointly: a handler that outlives
  // the runner's stop (Runner::Stop detaches one that ignores cancellation) still finds it.
  struct DemoJobs {
    std::string master;
    std::string store_uri;
    std::unique_ptr<store::Store> store;
    std::mutex mu;
    int batch_runs = 0;
    int64_t batch_max_ts = 0;
    std::string model_line = "model: trained after the first batch run";
  };
  auto demo_jobs = std::make_shared<DemoJobs>();
  demo_jobs->master = master;
  demo_jobs->store_uri = store_uri;
  // The batch layer's schedule and the model's training run as jobs (docs/jobs.md), the same
  // mechanism `duet jobs worker` uses when deployed: a Scheduler queues a batch job every
  // --batch-every, a Runner claims and runs them on its own threads.
  auto job_store = store::OpenStore(store_uri);
  if (!job_store.ok()) return Fail("demo", job_store.status());
  demo_jobs->store = std::move(*job_store);
  std::map<std::string, jobs::JobHandler> handlers;
  handlers["batch"] = [d = demo_jobs](const store::JobInfo&, jobs::LogSink& log) -> Status {
    auto r = RunBatchIntoStore(d->master, d->store_uri, 1, core::kDefaultSessionGapMs);
    if (!r.ok()) return r.status();
    log.Line("batch: " + std::to_string(r->views.input.lines) + " lines");
    int runs = 0;
    {
      std::lock_guard<std::mutex> l(d->mu);
      d->batch_max_ts = r->views.max_ts;
      runs = ++d->batch_runs;
    }
    // The model: trained after every batch run until one is promoted (the first runs may have
    // too little data), then every 5 runs (kept only if it does as well on the newer holdout).
    auto current = d->store->CurrentModel();
    if (!current.ok()) return current.status();
    if (*current == 0 || runs % 5 == 0) {
      auto queued = d->store->EnqueueJob("train", "{}", NowMs(), true);
      if (!queued.ok()) return queued.status();
    }
    return Status::Ok();
  };
  handlers["train"] = [d = demo_jobs](const store::JobInfo&, jobs::LogSink& log) -> Status {
    auto store = store::OpenStore(d->store_uri);
    if (!store.ok()) return store.status();
    model::TrainOptions to;
    to.threads = 1;
    model::RegisterOptions ro;
    ro.input = d->master;
    ro.session_gap_ms = core::kDefaultSessionGapMs;
    ro.now_ms = NowMs();
    auto t = TrainFromInput(d->master, store->get(), 1, core::kDefaultSessionGapMs, 0.2, to, ro,
                            nullptr);
    std::lock_guard<std::mutex> l(d->mu);
    if (!t.ok()) {
      d->model_line = "model: not trained (" + t.status().message() + ")";
      return t.status();
    }
    d->model_line =
        "model v" + std::to_string(t->outcome.info.version) + ": " + t->outcome.decision;
    log.Line(d->model_line);
    return Status::Ok();
  };
  jobs::RunnerOptions ro;
  ro.worker = "demo";
  ro.poll_ms = 500;
  ro.max_parallel = 2;
  jobs::Runner runner(demo_jobs->store.get(), handlers, ro);
  runner.Start();
  jobs::ScheduleOptions so;
  so.kind = "batch";
  so.interval_ms = *batch_every;
  jobs::Scheduler scheduler(demo_jobs->store.get(), so);

  auto status_line = [&] {
    int batch_runs = 0;
    int64_t batch_max_ts = 0;
    std::string model_line;
    {
      std::lock_guard<std::mutex> l(demo_jobs->mu);
      batch_runs = demo_jobs->batch_runs;
      batch_max_ts = demo_jobs->batch_max_ts;
      model_line = demo_jobs->model_line;
    }
    std::lock_guard<std::mutex> l(views_mu);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    std::printf("[%5.0fs] traffic %s, %" PRIu64 " lines%s | speed: epoch %" PRId64 ", %" PRId64
                " lines, watermark %s | batch: %d runs, up to %s\n",
                secs, TimeOfDay(sim_now()).c_str(), generated.load(),
                generator_done.load() ? " (done)" : "", last_batch.epoch, speed_views.input.lines,
                TimeOfDay(last_batch.watermark_ms).c_str(), batch_runs,
                TimeOfDay(batch_max_ts).c_str());
    std::printf("         checkout_button (speed): %s\n",
                ConversionLine(speed_views, "checkout_button").c_str());
    std::printf("         %s%s\n", model_line.c_str(), LiveLine(speed_views).c_str());
    std::fflush(stdout);
  };
  auto next_status = wall0 + std::chrono::seconds(5);
  auto next_refresh = wall0;
  while (!g_stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = std::chrono::steady_clock::now();
    if (*duration > 0 && now - wall0 >= std::chrono::milliseconds(*duration)) g_stop.store(true);
    if (now >= next_refresh) {
      const Status s = cache.Refresh();
      probe.Refreshed(s.ok(), cache.Current().get(), NowMs());
      (void)models.Refresh();  // a failure keeps the model served; /v1/models shows the error
      next_refresh = now + std::chrono::milliseconds(ao.refresh_ms);
    }
    if (auto queued = scheduler.Tick(); !queued.ok()) {
      Log(LogLevel::kWarn, "demo.schedule_failed", {{"error", queued.status().ToString()}});
    }
    if (now >= next_status) {
      status_line();
      next_status += std::chrono::seconds(5);
    }
  }
  (*server)->Stop(2000);
  generator.join();
  runner.Stop(60'000);  // a batch or training run in progress finishes first
  others_stopped.store(true);
  stream.join();
  if (!failure.ok()) return Fail("demo", failure);
  status_line();
  std::printf("\nstopped cleanly; the last micro-batch is committed.\n\n");
  // The merged view: the batch layer up to its boundary, the speed layer after it.
  core::Views shown = speed_views;
  std::string which = "speed layer (no batch run yet)";
  if (auto store = store::OpenStore(store_uri); store.ok()) {
    if (auto in = (*store)->ReadMergeInputs(); in.ok() && in->has_batch) {
      if (auto merged = serve::MergeViews(*in); merged.ok()) {
        shown = std::move(*merged);
        which = "merged view (batch layer up to its boundary, speed layer after it)";
      } else {
        which = "speed layer (" + merged.status().message() + ")";
      }
    }
  }
  std::printf("%s:\n", which.c_str());
  const std::string table = report::ReportTable(shown, {});
  std::fwrite(table.data(), 1, table.size(), stdout);
  std::printf(
      "\nwhere to look:\n"
      "  master dataset   %s\n"
      "  store            %s\n"
      "  merged report    %s report --store %s --layer merged\n"
      "  speed / batch    %s report --store %s --layer speed|batch\n"
      "  bad rows         %s bad-rows --store %s\n"
      "  models           %s models list --store %s\n"
      "  jobs             %s jobs list --store %s\n"
      "  dashboard        %s serve --store %s   (then http://127.0.0.1:8080/)\n",
      master.c_str(), store_uri.c_str(), g_program.c_str(), store_uri.c_str(), g_program.c_str(),
      store_uri.c_str(), g_program.c_str(), store_uri.c_str(), g_program.c_str(), store_uri.c_str(),
      g_program.c_str(), store_uri.c_str(), g_program.c_str(), store_uri.c_str());
  return kExitOk;
}

int CmdCollect(const std::vector<std::string>& args) {
  Config c;
  c.Define("listen", "127.0.0.1:8080", "HOST:PORT to serve HTTP on (port 0: any free port)");
  c.Define("brokers", "", "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]");
  c.Define("topic", "beacons", "Kafka topic the beacons are produced to (keyed by visitor)");
  c.Define("threads", "0", "HTTP threads (0 = number of cores)");
  c.Define("max-body", "1048576", "largest request body in bytes; larger ones get 413");
  c.Define("max-buffered", "100000",
           "beacons the producer may hold unacknowledged; beyond that requests get 503");
  c.Define("delivery-timeout", "10s", "a beacon Kafka has not acknowledged by then fails (503)");
  c.Define("retry-after", "5s", "the Retry-After of a 503 or 429");
  c.Define("max-in-flight", "256",
           "requests received and not yet answered; beyond that requests get 429 at once");
  if (int rc = ParseOrHelp("collect",
                           "HTTP collector: POST /v1/beacons, produced to Kafka keyed by visitor; "
                           "202 once Kafka acknowledged every beacon.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  if (Status s = c.Require("brokers"); !s.ok()) return Fail("collect", s);
  collect::CollectorOptions o;
  if (Status s = ParseHostPort("listen", c.String("listen"), &o.host, &o.port); !s.ok()) {
    return Fail("collect", s);
  }
  o.brokers = c.String("brokers");
  o.topic = c.String("topic");
  auto threads = c.Int("threads", 0, 256);
  auto max_body = c.Int("max-body", 1, 1LL << 30);
  auto max_buffered = c.Int("max-buffered", 1, 10'000'000);
  auto timeout = c.DurationMs("delivery-timeout");
  auto retry = c.DurationMs("retry-after");
  auto max_in_flight = c.Int("max-in-flight", 1, 1'000'000);
  for (const Status& s : {threads.status(), max_body.status(), max_buffered.status(),
                          timeout.status(), retry.status(), max_in_flight.status()}) {
    if (!s.ok()) return Fail("collect", s);
  }
  o.threads = static_cast<int>(*threads);
  o.max_body_bytes = static_cast<size_t>(*max_body);
  o.max_buffered_messages = static_cast<size_t>(*max_buffered);
  o.max_in_flight = *max_in_flight;
  if (*timeout <= 0) {
    return Fail("collect", Status::InvalidArgument("--delivery-timeout must be positive (0 would "
                                                   "mean: wait for Kafka forever)"));
  }
  o.delivery_timeout_ms = static_cast<int>(*timeout);
  o.retry_after_s = static_cast<int>(std::max<int64_t>(1, *retry / 1000));
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  auto collector = collect::Collector::Start(o);
  if (!collector.ok()) return Fail("collect", collector.status());
  Log(LogLevel::kInfo, "collect.listening",
      {{"host", o.host},
       {"port", static_cast<int64_t>((*collector)->port())},
       {"brokers", o.brokers},
       {"topic", o.topic}});
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Log(LogLevel::kInfo, "collect.stopping", {});
  (*collector)->Stop();
  Log(LogLevel::kInfo, "collect.stop", {});
  return kExitOk;
}

// `duet serve`: the merged view over HTTP — JSON API, dashboard, metrics (docs/api.md).
// ---------------------------------------------------------------- serve

struct ServeSetup {
  std::string store_uri;
  serve::HttpServerOptions http;
  serve::ApiOptions api;
  int64_t refresh_ms = 2000;
  int64_t model_refresh_ms = 1000;
  std::string admin_token;  // empty: admin routes disabled
  // How long /metrics waits for the sibling workers' metrics (all of them together).
  int metrics_peer_timeout_ms = 500;
};

// A prefork worker's place among its siblings (two or more workers): its slot, the slot's
// loopback listener for GET /metrics/local (the master's socket) and every slot's port.
struct ServeSlot {
  int slot = 0;
  int peer_fd = -1;
  std::vector<int> peer_ports;
};

// One serving process: views and model caches, the HTTP server (on `listen_fd` when >= 0, the
// master's socket), refreshes until SIGTERM/SIGINT. Writes one byte to `ready_fd` (when >= 0)
// once it answers requests. With `slot` (a worker with siblings), /metrics covers every worker
// (serve/worker_metrics.h) and the slot's peer listener answers /metrics/local.
int ServeProcess(const ServeSetup& setup, int listen_fd, int ready_fd,
                 const ServeSlot* slot = nullptr) {
  auto store = store::OpenStore(setup.store_uri);
  if (!store.ok()) return Fail("serve", store.status());
  serve::ViewCache cache(store->get(), NowMs);
  serve::ServeProbe probe;
  model::ModelCache models(
      store->get(), [&probe](bool ok, int64_t version) { probe.ModelLoaded(ok, version); }, NowMs);
  const serve::ModelApi model_api(&models, &probe, serve::ModelApiOptions{});
  const serve::JobApi job_api(store->get(), serve::JobApiOptions{setup.admin_token}, NowMs);
  std::unique_ptr<serve::WorkerMetrics> worker_metrics;
  if (slot != nullptr && slot->peer_ports.size() > 1) {
    serve::WorkerMetricsOptions wo;
    wo.slot = slot->slot;
    wo.peer_ports = slot->peer_ports;
    wo.timeout_ms = setup.metrics_peer_timeout_ms;
    worker_metrics = std::make_unique<serve::WorkerMetrics>(&probe, &cache, wo, NowMs);
  }
  const serve::Api api(&cache, &probe, setup.api, NowMs, &serve::EmbeddedAssets(), &model_api,
                       &job_api, worker_metrics.get());
  // The peer listener has a server (and thread) of its own: a sibling's request for this
  // worker's metrics never waits behind this worker's own /metrics, which waits for siblings.
  std::unique_ptr<serve::HttpServer> peer_server;
  if (worker_metrics != nullptr) {
    serve::HttpServerOptions po;
    po.host = "127.0.0.1";
    po.port = 0;
    po.threads = 1;
    po.listen_fd = slot->peer_fd;
    po.request_timeout_ms = 2000;
    auto started = serve::StartHttpServer(po, [&worker_metrics](const serve::HttpRequest& r) {
      return worker_metrics->HandlePeer(r);
    });
    if (!started.ok()) return Fail("serve", started.status());
    peer_server = std::move(*started);
  }
  std::string last_error, last_model_error;
  auto refresh_views = [&] {
    const Status s = cache.Refresh();
    const auto snap = cache.Current();
    probe.Refreshed(s.ok(), snap.get(), NowMs());
    if (!s.ok() && s.ToString() != last_error) {
      Log(LogLevel::kWarn, "serve.refresh_failed", {{"error", s.ToString()}});
    }
    last_error = s.ok() ? std::string() : s.ToString();
  };
  auto refresh_model = [&] {
    const int64_t before = models.health().served_version;
    const Status s = models.Refresh();
    if (!s.ok() && s.ToString() != last_model_error) {
      Log(LogLevel::kWarn, "serve.model_load_failed", {{"error", s.ToString()}});
    }
    last_model_error = s.ok() ? std::string() : s.ToString();
    const int64_t after = models.health().served_version;
    if (after != before) {
      const auto m = models.Current();
      Log(LogLevel::kInfo, "serve.model_loaded",
          {{"version", after},
           {"previous", before},
           {"evaluator", m != nullptr && m->native != nullptr ? "native" : "xgboost"},
           {"native_error", m != nullptr ? m->native_error : std::string()}});
    }
  };
  // A store that is not ready yet: served once it is (/readyz says so).
  refresh_views();
  refresh_model();
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  serve::HttpServerOptions ho = setup.http;
  ho.listen_fd = listen_fd;
  auto server =
      serve::StartHttpServer(ho, [&api](const serve::HttpRequest& r) { return api.Handle(r); });
  if (!server.ok()) return Fail("serve", server.status());
  const std::string url = ServerUrl(ho.host, (*server)->port());
  if (ready_fd >= 0) {
    const char byte = 1;
    (void)!::write(ready_fd, &byte, 1);
    ::close(ready_fd);
  } else {
    Log(LogLevel::kInfo, "serve.listening",
        {{"url", url}, {"store", setup.store_uri}, {"refresh_ms", setup.refresh_ms}});
    std::printf("serve: dashboard at %s (API under %sv1/, metrics at %smetrics)\n", url.c_str(),
                url.c_str(), url.c_str());
    std::fflush(stdout);
  }
  using Clock = std::chrono::steady_clock;
  auto next_views = Clock::now() + std::chrono::milliseconds(setup.refresh_ms);
  auto next_model = Clock::now() + std::chrono::milliseconds(setup.model_refresh_ms);
  while (!g_stop.load()) {
    SleepUnlessStopped(std::min(next_views, next_model));
    if (g_stop.load()) break;
    if (Clock::now() >= next_views) {
      next_views = Clock::now() + std::chrono::milliseconds(setup.refresh_ms);
      refresh_views();
    }
    if (Clock::now() >= next_model) {
      next_model = Clock::now() + std::chrono::milliseconds(setup.model_refresh_ms);
      refresh_model();
    }
  }
  Log(LogLevel::kInfo, "serve.stopping", {{"pid", static_cast<int64_t>(::getpid())}});
  (*server)->Stop(10'000);
  // After the public server: a sibling still draining asks for these metrics meanwhile.
  if (peer_server != nullptr) peer_server->Stop(1000);
  Log(LogLevel::kInfo, "serve.stop", {{"pid", static_cast<int64_t>(::getpid())}});
  return kExitOk;
}

// A listening TCP socket on host:port with SO_REUSEPORT (when `reuse_port`), so that one per
// worker slot can share the port and the kernel spreads connections over them; without it, a
// socket of its own (a slot's private loopback peer listener).
Result<int> ListenReusePort(const std::string& host, int port, bool reuse_port = true) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) ==
             1) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    return Status::InvalidArgument("--listen: host '" + host +
                                   "' is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)");
  }
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  const std::string where = host + ":" + std::to_string(port);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    const Status s = Status::Unavailable("cannot listen on " + where + ": " + std::strerror(errno));
    ::close(fd);
    return s;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                  : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// The prefork master (gunicorn's arbiter): binds one SO_REUSEPORT socket per worker slot, forks
// a worker per slot, restarts a worker that dies, replaces every worker on SIGHUP (the new one
// must be ready before the old one is told to stop, and the socket stays open throughout, so no
// connection is refused), and stops them all on SIGTERM/SIGINT. The master itself stays single
// threaded and never touches the store, XGBoost or Asio: workers start from a clean state.
// With two or more workers, each slot also has a private loopback listener (127.0.0.1, any free
// port), kept open like the public sockets, on which the slot's worker serves its own metrics to
// its siblings: /metrics of any worker covers them all (serve/worker_metrics.h).
int ServeMaster(const ServeSetup& setup, int workers) {
  struct Worker {
    pid_t pid = -1;
    int slot = 0;
    int generation = 0;
    std::chrono::steady_clock::time_point started;
  };
  std::vector<int> fds;
  std::vector<int> peer_fds;
  std::vector<int> peer_ports;
  int port = setup.http.port;
  for (int i = 0; i < workers; ++i) {
    auto fd = ListenReusePort(setup.http.host, port);
    auto peer =
        workers > 1 ? ListenReusePort("127.0.0.1", 0, /*reuse_port=*/false) : Result<int>(-1);
    if (!fd.ok() || !peer.ok()) {
      for (const int f : fds) ::close(f);
      for (const int f : peer_fds) ::close(f);
      if (fd.ok()) ::close(*fd);
      if (peer.ok() && *peer >= 0) ::close(*peer);
      return Fail("serve", !fd.ok() ? fd.status() : peer.status());
    }
    fds.push_back(*fd);
    port = BoundPort(*fd);
    if (*peer >= 0) {
      peer_fds.push_back(*peer);
      peer_ports.push_back(BoundPort(*peer));
    }
  }
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : {SIGCHLD, SIGHUP, SIGTERM, SIGINT}) sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  const pid_t master = ::getpid();
  std::vector<Worker> live;  // every worker process not reaped yet
  int generation = 1;        // the generation serving
  int last_generation = 1;   // never reused: workers of a failed reload are never "current"

  // Forks the worker of `slot`; returns its pid and the read end of its readiness pipe.
  auto spawn = [&](int slot, int gen, int* ready_read) -> pid_t {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return -1;
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != master) _exit(kExitFailure);
      // Ignored before the mask is lifted: a pending SIGHUP must not kill a fresh worker.
      std::signal(SIGHUP, SIG_IGN);
      std::signal(SIGPIPE, SIG_IGN);  // a respawned worker's readiness pipe has no reader
      sigprocmask(SIG_UNBLOCK, &set, nullptr);
      for (int i = 0; i < static_cast<int>(fds.size()); ++i) {
        if (i != slot) ::close(fds[static_cast<size_t>(i)]);
      }
      ServeSlot place;
      place.slot = slot;
      place.peer_ports = peer_ports;
      for (int i = 0; i < static_cast<int>(peer_fds.size()); ++i) {
        if (i == slot) {
          place.peer_fd = peer_fds[static_cast<size_t>(i)];
        } else {
          ::close(peer_fds[static_cast<size_t>(i)]);
        }
      }
      const int rc = ServeProcess(setup, fds[static_cast<size_t>(slot)], p[1], &place);
      std::fflush(stdout);
      _exit(rc);
    }
    ::close(p[1]);
    if (pid < 0) {
      ::close(p[0]);
      return -1;
    }
    *ready_read = p[0];
    live.push_back({pid, slot, gen, std::chrono::steady_clock::now()});
    Log(LogLevel::kInfo, "serve.worker_started",
        {{"pid", static_cast<int64_t>(pid)},
         {"slot", slot},
         {"generation", gen},
         {"peer_port", peer_ports.empty() ? 0 : peer_ports[static_cast<size_t>(slot)]}});
    return pid;
  };
  // Waits until every pipe has said ready (or closed: the worker died), up to `timeout`.
  auto wait_ready = [](std::vector<int> pipes, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t ready = 0;
    std::vector<pollfd> pfds;
    for (const int p : pipes) pfds.push_back({p, POLLIN, 0});
    size_t pending = pfds.size();
    while (pending > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (::poll(pfds.data(), pfds.size(), static_cast<int>(left.count())) <= 0) continue;
      for (pollfd& f : pfds) {
        if (f.fd < 0 || f.revents == 0) continue;
        char b = 0;
        if (::read(f.fd, &b, 1) == 1) ++ready;
        ::close(f.fd);
        f.fd = -1;
        --pending;
      }
    }
    for (const pollfd& f : pfds) {
      if (f.fd >= 0) ::close(f.fd);
    }
    return ready;
  };
  auto signal_generation = [&](int gen, int sig) {
    for (const Worker& w : live) {
      if (w.generation == gen) ::kill(w.pid, sig);
    }
  };

  std::vector<int> pipes;
  for (int slot = 0; slot < workers; ++slot) {
    int r = -1;
    if (spawn(slot, generation, &r) > 0) pipes.push_back(r);
  }
  const size_t started = wait_ready(pipes, std::chrono::seconds(60));
  const std::string url = ServerUrl(setup.http.host, port);
  if (started < static_cast<size_t>(workers)) {
    signal_generation(generation, SIGKILL);
    return Fail("serve", Status::Unavailable(std::to_string(workers - static_cast<int>(started)) +
                                             " of " + std::to_string(workers) +
                                             " workers did not start (see their log lines)"));
  }
  Log(LogLevel::kInfo, "serve.listening",
      {{"url", url},
       {"store", setup.store_uri},
       {"workers", workers},
       {"master_pid", static_cast<int64_t>(master)}});
  std::printf(
      "serve: dashboard at %s (API under %sv1/, metrics at %smetrics); %d workers, "
      "master pid %d (SIGHUP: graceful restart)\n",
      url.c_str(), url.c_str(), url.c_str(), workers, static_cast<int>(master));
  std::fflush(stdout);

  bool stopping = false;
  int exit_code = kExitOk;
  struct Respawn {
    int slot;
    int generation;  // skipped when another generation took over meanwhile
    std::chrono::steady_clock::time_point when;
  };
  std::vector<Respawn> respawn;
  auto reap = [&] {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      const auto it =
          std::find_if(live.begin(), live.end(), [&](const Worker& w) { return w.pid == pid; });
      if (it == live.end()) continue;
      const Worker w = *it;
      live.erase(it);
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      Log(clean ? LogLevel::kInfo : LogLevel::kWarn, "serve.worker_exited",
          {{"pid", static_cast<int64_t>(pid)},
           {"slot", w.slot},
           {"generation", w.generation},
           {"status", WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                        : "signal " + std::to_string(WTERMSIG(status))}});
      if (!stopping && w.generation == generation) {
        // A worker of the current generation died: start another, not in a tight loop.
        const bool quick = std::chrono::steady_clock::now() - w.started < std::chrono::seconds(5);
        respawn.push_back({w.slot, w.generation,
                           std::chrono::steady_clock::now() +
                               (quick ? std::chrono::seconds(1) : std::chrono::seconds(0))});
      }
    }
  };
  std::chrono::steady_clock::time_point stop_deadline;
  while (true) {
    if (stopping && live.empty()) break;
    timespec timeout{0, 200'000'000};
    const int sig = sigtimedwait(&set, nullptr, &timeout);
    if (sig == SIGCHLD) reap();
    if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
      stopping = true;
      Log(LogLevel::kInfo, "serve.master_stopping",
          {{"workers", static_cast<int64_t>(live.size())}});
      for (const Worker& w : live) ::kill(w.pid, SIGTERM);
      stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    }
    if (stopping) {
      reap();
      if (std::chrono::steady_clock::now() > stop_deadline) {
        for (const Worker& w : live) ::kill(w.pid, SIGKILL);
        exit_code = kExitFailure;
      }
      continue;
    }
    if (sig == SIGHUP) {
      // Graceful restart: a new generation first, the old one stops once the new one is ready.
      const int old = generation;
      generation = ++last_generation;
      Log(LogLevel::kInfo, "serve.reload", {{"generation", generation}});
      std::vector<int> ready_pipes;
      for (int slot = 0; slot < workers; ++slot) {
        int r = -1;
        if (spawn(slot, generation, &r) > 0) ready_pipes.push_back(r);
      }
      const size_t ok = wait_ready(ready_pipes, std::chrono::seconds(60));
      if (ok < static_cast<size_t>(workers)) {
        Log(LogLevel::kError, "serve.reload_failed",
            {{"ready", static_cast<int64_t>(ok)}, {"workers", workers}});
        signal_generation(generation, SIGTERM);  // keep serving with the old generation
        generation = old;
      } else {
        signal_generation(old, SIGTERM);
        Log(LogLevel::kInfo, "serve.reloaded", {{"generation", generation}});
      }
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto it = respawn.begin(); it != respawn.end();) {
      if (it->generation != generation) {  // a reload replaced that slot's worker meanwhile
        it = respawn.erase(it);
        continue;
      }
      if (it->when > now) {
        ++it;
        continue;
      }
      int r = -1;
      if (spawn(it->slot, generation, &r) > 0) ::close(r);
      it = respawn.erase(it);
    }
  }
  for (const int f : fds) ::close(f);
  for (const int f : peer_fds) ::close(f);
  Log(LogLevel::kInfo, "serve.stop", {{"master_pid", static_cast<int64_t>(master)}});
  return exit_code;
}

int CmdServe(const std::vector<std::string>& args) {
  Config c;
  c.Define("store", "sqlite:duet.sqlite", "store URI to serve (sqlite:PATH or mongodb://…)");
  c.Define("listen", "127.0.0.1:8080", "HOST:PORT to serve HTTP on (port 0: any free port)");
  c.Define("workers", std::to_string(DefaultThreads()),
           "worker processes (0: serve from this process, no master)");
  c.Define("threads", "0", "HTTP threads per worker (0: 1 with workers, else one per core)");
  c.Define("refresh", "2s", "how often the views are read again from the store");
  c.Define("model-refresh", "1s", "how often the registry is checked for a newly promoted model");
  c.Define("max-body", "1048576", "largest request body in bytes; larger ones get 413");
  c.Define("request-timeout", "10s", "a request must arrive whole within this long");
  c.Define("max-in-flight", "4096", "requests handled at once; more get 429");
  c.Define("srm-threshold", "0.001", "p-value below which a sample-ratio mismatch is reported");
  c.Define("admin-token", "",
           "bearer token for the admin routes (/v1/jobs); empty: they answer 403 (prefer "
           "DUET_ADMIN_TOKEN to a flag, which other users can see in ps)");
  if (int rc = ParseOrHelp("serve",
                           "Serves the merged view (batch up to its high-water mark, speed after) "
                           "as a JSON API, a dashboard at /, predictions of the current model "
                           "and Prometheus metrics.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  ServeSetup setup;
  serve::HttpServerOptions& ho = setup.http;
  uint16_t port = 0;
  if (Status s = ParseHostPort("listen", c.String("listen"), &ho.host, &port); !s.ok()) {
    return Fail("serve", s);
  }
  ho.port = port;
  auto workers = c.Int("workers", 0, 256);
  auto threads = c.Int("threads", 0, 256);
  auto refresh = c.DurationMs("refresh");
  auto model_refresh = c.DurationMs("model-refresh");
  auto max_body = c.Int("max-body", 1, 1LL << 30);
  auto timeout = c.DurationMs("request-timeout");
  auto in_flight = c.Int("max-in-flight", 1, 1'000'000);
  for (const Status& s :
       {workers.status(), threads.status(), refresh.status(), model_refresh.status(),
        max_body.status(), timeout.status(), in_flight.status()}) {
    if (!s.ok()) return Fail("serve", s);
  }
  if (*refresh < 100 || *model_refresh < 100) {
    return Fail("serve", Status::InvalidArgument("--refresh " + c.String("refresh") +
                                                 ", --model-refresh " + c.String("model-refresh") +
                                                 ": expected at least 100ms each"));
  }
  if (*timeout < 1 || *timeout > 3'600'000) {
    return Fail("serve",
                Status::InvalidArgument("--request-timeout: " + c.String("request-timeout") +
                                        " is not between 1ms and 1h"));
  }
  char* end = nullptr;
  const std::string srm_text = c.String("srm-threshold");
  const double srm = std::strtod(srm_text.c_str(), &end);
  if (srm_text.empty() || *end != '\0' || !(srm > 0 && srm < 1)) {
    return Fail("serve", Status::InvalidArgument("--srm-threshold: '" + srm_text +
                                                 "' is not a p-value in (0, 1), e.g. 0.001"));
  }
  ho.threads = static_cast<size_t>(*threads == 0 && *workers > 0 ? 1 : *threads);
  ho.max_body_bytes = static_cast<size_t>(*max_body);
  ho.request_timeout_ms = static_cast<int>(*timeout);
  ho.max_in_flight = static_cast<size_t>(*in_flight);
  // Shorter than nginx's upstream keepalive_timeout is not needed: the drain answers what
  // arrives, then closes (deploy/nginx/duet.conf).
  ho.drain_ms = 1000;
  setup.store_uri = c.String("store");
  setup.admin_token = c.String("admin-token");
  setup.refresh_ms = *refresh;
  setup.model_refresh_ms = *model_refresh;
  setup.api.refresh_ms = *refresh;
  setup.api.max_staleness_ms = 3 * *refresh;
  setup.api.srm_threshold = srm;
  if (*workers == 0) return ServeProcess(setup, -1, -1);
  return ServeMaster(setup, static_cast<int>(*workers));
}

int CmdArchive(const std::vector<std::string>& args) {
  Config c;
  c.Define("source", "", "kafka://HOST:PORT[,HOST:PORT...]/TOPIC to copy");
  c.Define("out", "",
           "the master dataset: a folder (dt=YYYY-MM-DD/hr=HH/*.ndjson.zst), or a MongoDB "
           "collection, mongodb://HOST:PORT/DB.COLLECTION (one document per message)");
  c.Define("group", "duet-archive", "Kafka consumer group id (progress lives in the file names)");
  c.Define("roll-lines", "200000", "a file is written out after this many lines");
  c.Define("roll-interval", "60s", "... or this long after its first line");
  c.Define("max-batch", "100000", "at most this many messages read per step");
  c.Define("drain", "false", "copy everything in the topic now, write every file and exit", true);
  DefineStatusListen(&c);
  if (int rc = ParseOrHelp("archive", "Copies a Kafka topic into the master dataset, exactly once.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  for (const char* name : {"source", "out"}) {
    if (Status s = c.Require(name); !s.ok()) return Fail("archive", s);
  }
  auto source = log::ParseKafkaUri(c.String("source"));
  if (!source.ok()) return Fail("archive", source.status());
  archive::ArchiveOptions o;
  o.out_dir = c.String("out");
  auto roll_lines = c.Int("roll-lines", 1, 100'000'000);
  auto roll_interval = c.DurationMs("roll-interval");
  if (!roll_lines.ok()) return Fail("archive", roll_lines.status());
  if (!roll_interval.ok()) return Fail("archive", roll_interval.status());
  o.roll_lines = static_cast<size_t>(*roll_lines);
  o.roll_interval_ms = *roll_interval;
  auto max_batch = c.Int("max-batch", 1, 10'000'000);
  if (!max_batch.ok()) return Fail("archive", max_batch.status());
  o.max_batch_lines = static_cast<size_t>(*max_batch);
  const bool drain = c.Bool("drain");
  log::KafkaLogOptions ko;
  ko.group = c.String("group");
  ko.max_line = 1 << 30;  // archive whole messages, whatever their size
  serve::StatusPage page("archive", NowMs);
  auto status_server = StartStatusServer(c, &page);
  if (!status_server.ok()) return Fail("archive", status_server.status());
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  const bool to_mongo =
      o.out_dir.starts_with("mongodb://") || o.out_dir.starts_with("mongodb+srv://");
  int64_t backoff_ms = 0;
  uint64_t total = 0;
  while (!g_stop.load()) {
    auto log = log::OpenKafkaLog(*source, ko);
    Status failed = log.status();
    std::unique_ptr<mongoraw::RawCollection> raw;
    if (failed.ok() && to_mongo) {
      auto opened = mongoraw::OpenRawCollection(o.out_dir);
      failed = opened.status();
      if (opened.ok()) raw = std::move(*opened);
    }
    if (failed.ok()) {
      std::unique_ptr<archive::ArchiveSink> sink =
          to_mongo ? mongoraw::NewCollectionArchiver(log->get(), source->topic, raw.get(),
                                                     o.max_batch_lines)
                   : std::make_unique<archive::Archiver>(log->get(), source->topic, o);
      archive::ArchiveSink& archiver = *sink;
      failed = archiver.Recover();
      if (failed.ok())
        Log(LogLevel::kInfo, "archive.start",
            {{"source", c.String("source")}, {"out", o.out_dir}, {"drain", drain}});
      while (failed.ok() && !g_stop.load()) {
        auto st = archiver.Step(drain);
        if (!st.ok()) {
          failed = st.status();
          break;
        }
        backoff_ms = 0;
        page.StepOk(static_cast<int64_t>(st->lines));
        total += st->lines;
        if (st->files_written > 0) {
          Log(LogLevel::kInfo, "archive.files",
              {{"files", st->files_written}, {"lines", st->lines_written}});
        }
        if (st->lines == 0) {
          if (drain) break;
          SleepUnlessStopped(std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
        }
      }
      if (failed.ok()) {
        // Draining or stopping: write out every open file.
        auto st = archiver.Flush();
        if (!st.ok()) return Fail("archive", st.status());
        Log(LogLevel::kInfo, "archive.stop",
            {{"lines_this_run", total}, {"files", st->files_written}, {"signal", g_stop.load()}});
        std::printf("archive: %" PRIu64 " lines -> %s\n", total, o.out_dir.c_str());
        return kExitOk;
      }
    }
    page.StepFailed(failed);
    if (failed.code() != StatusCode::kUnavailable) return Fail("archive", failed);
    backoff_ms = backoff_ms == 0 ? 200 : std::min<int64_t>(backoff_ms * 2, 30'000);
    Log(LogLevel::kWarn, "archive.retry",
        {{"error", failed.message()}, {"backoff_ms", backoff_ms}});
    SleepUnlessStopped(std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms));
  }
  return kExitOk;
}

void Usage() {
  std::printf(
      "duet %s — Lambda-architecture clickstream engine\n\n"
      "usage: duet COMMAND [options]   (duet COMMAND --help for options)\n\n"
      "commands:\n"
      "  demo        generate traffic, run the batch layer, print the report\n"
      "  generate    write a seeded synthetic A/B workload (Hive layout)\n"
      "  batch       recompute every view from the master dataset into a store\n"
      "  stream      the speed layer: micro-batches over a log, exactly once (--drain to finish)\n"
      "  collect     HTTP collector: POST /v1/beacons into Kafka, keyed by visitor\n"
      "  archive     copy a Kafka topic into the master dataset, exactly once\n"
      "  serve       HTTP API, A/B statistics, live dashboard and predictions over a store\n"
      "  train       train the conversion model from the master dataset and register it\n"
      "  models      list, export or promote registered model versions\n"
      "  jobs        queue and run training and batch jobs (worker, submit, list, show)\n"
      "  import      load historical NDJSON files into the master dataset in MongoDB (backfill)\n"
      "  probe       GET a status URL, exit 0 on 2xx (the image's health check)\n"
      "  watch       supervise local Duet processes: restart when down or stuck, alert a webhook\n"
      "  report      show figures per experiment and variant (--json for programs)\n"
      "  bad-rows    list or export rejected lines with their reason and payload\n"
      "  parse-only  benchmark baseline: read and JSON-parse, nothing else\n"
      "  version     print the version\n\n"
      "Options come from flags, then DUET_* environment variables, then --config FILE.\n",
      kVersion);
}

}  // namespace
}  // namespace duet

int main(int argc, char** argv) {
  using namespace duet;
  if (argc < 2) {
    Usage();
    return kExitUsage;
  }
  g_program = argv[0];
  const std::string cmd = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  static const std::map<std::string, std::function<int(const std::vector<std::string>&)>>
      kCommands = {
          {"demo", CmdDemo},     {"generate", CmdGenerate}, {"batch", CmdBatch},
          {"report", CmdReport}, {"bad-rows", CmdBadRows},  {"parse-only", CmdParseOnly},
          {"stream", CmdStream}, {"collect", CmdCollect},   {"archive", CmdArchive},
          {"serve", CmdServe},   {"train", CmdTrain},       {"models", CmdModels},
          {"jobs", CmdJobs},     {"import", CmdImport},     {"probe", CmdProbe},
          {"watch", CmdWatch},
      };
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    Usage();
    return kExitOk;
  }
  if (cmd == "version" || cmd == "--version") {
    std::printf("duet %s\n", kVersion);
    return kExitOk;
  }
  const auto it = kCommands.find(cmd);
  if (it == kCommands.end()) {
    std::fprintf(stderr, "duet: unknown command '%s'; run 'duet help'\n", cmd.c_str());
    return kExitUsage;
  }
  return it->second(args);
}
