// Store: where the layers keep their views, bad rows and bookkeeping. One interface, two
// backends (SQLite, MongoDB), both held to the same contract tests
// (store/tests/store_contract_test.cc).
//
// Contract for every implementation:
// - All methods are thread-safe.
// - A batch run is: BeginBatch, any number of PutBadRows, CommitBatch. Until CommitBatch
//   returns ok, readers see the previous committed run in full; after, the new one in full —
//   never a mix. A run that never commits (crash) leaves no trace a reader can see, and its
//   leftovers are removed by a later BeginBatch.
// - CommitBatch replaces (never adds to) the batch layer's views: committing the same input
//   twice gives identical contents.
// - Failures are returned as Status: Unavailable when the backend cannot be reached (retrying may
//   help), Corruption when stored data is unreadable, IoError for local I/O trouble.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bad_row.h"
#include "core/views.h"
#include "util/json_writer.h"
#include "util/result.h"

namespace duet::store {

enum class Layer { kBatch, kSpeed };
std::string_view LayerName(Layer l);

struct BatchRun {
  int64_t generation = 0;
  int64_t started_ms = 0;  // wall clock, ms since the epoch
  int64_t finished_ms = 0;
  std::string input;
  // Event time (ms) up to which the batch views are authoritative: the greatest ts of the run's
  // valid beacons (0 for an empty input).
  int64_t high_water_mark_ms = 0;
  int64_t lines = 0;
  // The prefix view for the serving merge (batch::PrefixView): boundary and exact state.
  int64_t prefix_boundary_ms = INT64_MIN;
  std::string prefix_state;
};

struct BadRowQuery {
  Layer layer = Layer::kBatch;
  std::optional<std::string> reason;  // only this reason, if set
  int64_t limit = 100;                // at most this many, ordered by (source, offset)
};

// The speed layer's checkpoint for one scope: its whole state and the log positions it
// corresponds to. A scope is the part of the input one speed-layer engine owns: "" for a log read
// whole (a master-dataset folder), "TOPIC/PARTITION" for one partition of a Kafka consumer group.
// Scopes are independent: each has its own epoch, state, records and positions.
struct SpeedCheckpoint {
  std::string scope;
  int64_t epoch = 0;      // 1 for the scope's first commit, then +1 per commit
  std::string state;      // opaque bytes owned by the speed layer: the part rewritten every commit
  std::string positions;  // opaque log positions (log::Log::Positions())
  // The incremental part: keyed records (e.g. one per visitor) that a commit upserts or deletes,
  // so that a micro-batch writes only what it changed. CommitSpeed drops the scope's records
  // whose key starts with replace_prefix if replace_records (all of them when the prefix is
  // empty), then applies put_records, then delete_keys (a key in both ends up deleted);
  // LoadSpeedCheckpoint returns every stored record of the scope in `records`.
  bool replace_records = false;  // drop stored records first (a full snapshot)
  std::string replace_prefix;
  std::vector<std::pair<std::string, std::string>> put_records;
  std::vector<std::string> delete_keys;
  std::vector<std::pair<std::string, std::string>> records;
  // The scope's speed views in exact, mergeable form (core/mergeable.h, a views state): the
  // speed layer's views are the merge of every scope's.
  std::string views_state;
  // The scope's side of the serving merge: its delta aggregator state (core/mergeable.h) and the
  // batch boundary it was computed against (INT64_MIN before any batch run).
  int64_t delta_boundary_ms = INT64_MIN;
  std::string delta_state;
  // Fencing (active/passive writers): when `lease` is not empty, the commit succeeds only while
  // `lease_token` is the current token of that writer lease (Store::AcquireWriterLease); a
  // writer that lost the lease is refused with Aborted even if its epoch follows.
  std::string lease;
  int64_t lease_token = 0;
};

// A writer lease (active/passive speed-layer writers, docs/operations.md): who may write, until
// when, and the fencing token of the current holding. The token grows by one each time the
// lease changes hands, never on a renewal.
struct WriterLease {
  std::string name;
  std::string holder;
  int64_t token = 0;
  int64_t expires_ms = 0;  // wall clock, ms since the epoch
};

// What a reader of the speed views needs of one scope (the checkpoint's small, shared part).
struct SpeedScope {
  std::string scope;
  int64_t epoch = 0;
  std::string positions;
  std::string views_state;
  int64_t delta_boundary_ms = INT64_MIN;
  std::string delta_state;
};

// What `duet report --layer merged` needs: both sides of the serving merge, read consistently.
struct MergeInputs {
  bool has_batch = false;
  int64_t batch_boundary_ms = INT64_MIN;
  std::string batch_prefix_state;
  std::vector<SpeedScope> speed;  // every scope, ordered by name
};

// One registered model version (the model registry, docs/model.md). The metadata is the JSON
// document `duet train` wrote (feature columns, training window, holdout metrics, ...); the store
// keeps it as given.
struct ModelInfo {
  int64_t version = 0;     // 1, 2, ... in registration order
  int64_t created_ms = 0;  // wall clock at registration, ms since the epoch
  std::string metadata;    // JSON object text
  bool operator==(const ModelInfo&) const = default;
};

struct StoredModel {
  ModelInfo info;
  std::string bytes;  // the model file (XGBoost UBJSON)
};

// An asynchronous job (docs/jobs.md): a training run or a batch rerun, queued by the API or a
// schedule and run by a worker (jobs::Runner). A job is claimed at most once: it goes queued ->
// running -> succeeded | failed, and a running job whose worker stops renewing its lease is
// failed ("worker lost"), never run again.
enum class JobState { kQueued, kRunning, kSucceeded, kFailed };
// "queued", "running", "succeeded", "failed".
inline std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
  }
  return "unknown";
}

// The message of a job failed by FailExpiredJobs.
inline std::string WorkerLostMessage(int64_t lease_until_ms) {
  return "worker lost: lease expired at " + UtcTimeString(lease_until_ms);
}

struct JobInfo {
  int64_t id = 0;  // 1, 2, ... in the order jobs were queued
  std::string kind;
  std::string params;  // JSON object text, kept as given
  JobState state = JobState::kQueued;
  int64_t created_ms = 0;   // wall clock, ms since the epoch
  int64_t started_ms = 0;   // 0 until claimed
  int64_t finished_ms = 0;  // 0 until finished
  std::string worker;       // who claimed it ("" until claimed)
  // The claim's fencing token (> 0 once claimed; opaque): the worker passes it back to renew,
  // log and finish, and a stale one is refused.
  int64_t token = 0;
  int64_t lease_until_ms = 0;  // while running: the worker must renew before this
  std::string message;         // why it failed, or what it did; "" while not finished
  std::string log;             // the last kJobLogBytes of its output (GetJob only; "" in lists)
  bool operator==(const JobInfo&) const = default;
};

// The most of a job's log a store keeps: older output is dropped, from the front.
inline constexpr size_t kJobLogBytes = 64 << 10;

// `log` + `text`, cut to the last kJobLogBytes at a line start when one is in the kept part.
inline std::string AppendBoundedLog(std::string log, std::string_view text) {
  log.append(text);
  if (log.size() <= kJobLogBytes) return log;
  size_t cut = log.size() - kJobLogBytes;
  const size_t nl = log.find('\n', cut > 0 ? cut - 1 : 0);
  if (nl != std::string::npos && nl + 1 < log.size()) cut = nl + 1;
  return log.substr(cut);
}

// The Aborted of AcquireWriterLease while `current` (another holder's, valid at now_ms) holds.
Status LeaseHeldElsewhere(const WriterLease& current, int64_t now_ms);
// The Aborted of CommitSpeed when `cp` carries a lease token that is not `current`'s (nullopt:
// the lease was never taken).
Status FencedOff(const SpeedCheckpoint& cp, const std::optional<WriterLease>& current);

class Store {
 public:
  virtual ~Store() = default;

  // Speed layer: atomically keeps `bad_rows` (idempotent per (source, offset)) and makes
  // `checkpoint` its scope's current one — all or nothing, so that a crash at any point leaves
  // either the previous or the new micro-batch of that scope fully visible. Other scopes are not
  // touched. Fails with Aborted if checkpoint.epoch is not the scope's current epoch + 1 (another
  // writer committed that scope in between: a process that lost the partition, or a second
  // process on the same input).
  virtual Status CommitSpeed(std::span<const core::BadRow> bad_rows,
                             const SpeedCheckpoint& checkpoint) = 0;
  // The current checkpoint of `scope`, if any.
  virtual Result<std::optional<SpeedCheckpoint>> LoadSpeedCheckpoint(std::string_view scope) = 0;
  // Takes or renews the writer lease `name` for `holder` until now_ms + ttl_ms, and returns it.
  // The lease is taken when nobody holds it or its holder's expired (token + 1; the first token
  // is 1), renewed when `holder` holds it (same token). Aborted, naming the holder and the
  // expiry, while another holder's lease is valid. Processes that share a holder name share the
  // holding (the replicas of one deployment); different deployments must use different names.
  // Atomic on SQLite and MongoDB; on FerretDB (no atomic conditional update) two takers racing
  // for an expired lease within moments may both believe they took it — the commits' fencing
  // (SpeedCheckpoint::lease_token) then still lets only one write.
  virtual Result<WriterLease> AcquireWriterLease(std::string_view name, std::string_view holder,
                                                 int64_t now_ms, int64_t ttl_ms) = 0;
  // The lease `name` as stored (expired or not); nullopt if never taken.
  virtual Result<std::optional<WriterLease>> ReadWriterLease(std::string_view name) = 0;
  // Every scope's shared part, ordered by scope, read consistently.
  virtual Result<std::vector<SpeedScope>> ReadSpeedScopes() = 0;
  // The batch boundary of the last committed batch run (INT64_MIN if none). Cheap.
  virtual Result<int64_t> BatchBoundary() = 0;
  // Both sides of the serving merge, read consistently.
  virtual Result<MergeInputs> ReadMergeInputs() = 0;

  // Starts a batch run and returns its generation (increasing across runs).
  virtual Result<int64_t> BeginBatch() = 0;
  // Keeps bad rows of the run `generation`; idempotent per (source, offset).
  virtual Status PutBadRows(int64_t generation, std::span<const core::BadRow> rows) = 0;
  // Atomically makes `views`, the run's bad rows and `run` the batch layer's current state.
  virtual Status CommitBatch(int64_t generation, const core::Views& views, const BatchRun& run) = 0;

  // The batch layer's current views (empty Views if nothing was committed). The speed layer's
  // views are the merge of its scopes (serve::SpeedViews).
  virtual Result<core::Views> ReadBatchViews() = 0;
  // The last committed batch run, if any.
  virtual Result<std::optional<BatchRun>> LastBatchRun() = 0;
  virtual Result<std::vector<core::BadRow>> ReadBadRows(const BadRowQuery& query) = 0;

  // Model registry. Versions are immutable once registered and never reused; registering does
  // not make a version current.
  // Keeps a new version and returns its number (the greatest registered so far + 1, starting at
  // 1). Safe against concurrent registrations: each gets its own number.
  virtual Result<ModelInfo> RegisterModel(std::string_view metadata, std::string_view bytes,
                                          int64_t created_ms) = 0;
  // Every registered version's info (without bytes), ascending by version.
  virtual Result<std::vector<ModelInfo>> ListModels() = 0;
  // One version with its bytes; NotFound if it was never registered.
  virtual Result<StoredModel> ReadModel(int64_t version) = 0;
  // The current version, 0 when none was promoted. Cheap: serving polls it.
  virtual Result<int64_t> CurrentModel() = 0;
  // Makes `version` current if the current version is still `expected_current` (0: none), a
  // compare-and-set so that two trainers cannot overwrite each other's decision unseen: Aborted
  // when the current version changed in between, NotFound when `version` is not registered.
  virtual Status PromoteModel(int64_t version, int64_t expected_current) = 0;

  // Jobs (docs/jobs.md). Every method is safe against concurrent callers in other threads and
  // processes on the same store.
  // Queues a job and returns it (state queued, the next id). With `dedupe`, when a job of the
  // same kind is already queued or running, returns that one instead and queues nothing: a
  // schedule then never piles up runs behind a slow one (on MongoDB two dedupe calls racing
  // within moments can still both queue; the jobs then run one after the other).
  virtual Result<JobInfo> EnqueueJob(std::string_view kind, std::string_view params, int64_t now_ms,
                                     bool dedupe) = 0;
  // First fails the jobs whose lease expired (FailExpiredJobs), then atomically claims the
  // oldest queued job of one of `kinds` whose kind has no running job — at most one job of a
  // kind runs at any time — marking it running for `worker` until now_ms + lease_ms, with a new
  // token. nullopt when there is none. Of concurrent claimers, in any process, at most one gets
  // a given job, and none gets a job of a kind another one is running.
  virtual Result<std::optional<JobInfo>> ClaimJob(const std::vector<std::string>& kinds,
                                                  std::string_view worker, int64_t now_ms,
                                                  int64_t lease_ms) = 0;
  // Extends a running job's lease to now_ms + lease_ms. Aborted when `token` is not the job's
  // running claim (the job was failed meanwhile: its lease had expired); NotFound for no job.
  virtual Status RenewJobLease(int64_t id, int64_t token, int64_t now_ms, int64_t lease_ms) = 0;
  // Appends output to a running job's log (the store keeps the last kJobLogBytes). Aborted and
  // NotFound as for RenewJobLease.
  virtual Status AppendJobLog(int64_t id, int64_t token, std::string_view text) = 0;
  // Ends a running job: succeeded or failed, with `message`. Aborted and NotFound as for
  // RenewJobLease: a job is finished once, by its claim's holder or by recovery.
  virtual Status FinishJob(int64_t id, int64_t token, bool succeeded, std::string_view message,
                           int64_t now_ms) = 0;
  // One job with its log; NotFound if there is no such job.
  virtual Result<JobInfo> GetJob(int64_t id) = 0;
  // The newest `limit` jobs, newest first, without their logs.
  virtual Result<std::vector<JobInfo>> ListJobs(int64_t limit) = 0;
  // Fails every running job whose lease ended before now_ms (its worker died or hung), with
  // message "worker lost: lease expired at <time>". Returns how many it failed.
  virtual Result<int64_t> FailExpiredJobs(int64_t now_ms) = 0;
};

// Opens a store by URI: "sqlite:PATH" (created if missing; "sqlite:PATH?busy_timeout_ms=N" sets
// how long a write waits for another writer before failing with Unavailable, default 10 s), or
// "mongodb://[USER:PASSWORD@]HOST:PORT/DB[?options]" (store/mongo_store.h). InvalidArgument for
// an unknown or malformed URI, naming what was expected.
Result<std::unique_ptr<Store>> OpenStore(const std::string& uri);

}  // namespace duet::store
