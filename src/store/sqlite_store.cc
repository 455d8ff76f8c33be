#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "beacon/beacon.h"

namespace duet::store {
namespace {

// 3: the speed layer's checkpoint per scope (speed_scopes); speed views kept as mergeable
// states, not rows.
constexpr int kSchemaVersion = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS figures(
  layer TEXT NOT NULL, scope TEXT NOT NULL, experiment TEXT NOT NULL, variant TEXT NOT NULL,
  hour INTEGER NOT NULL,
  visitors INTEGER NOT NULL, sessions INTEGER NOT NULL, events INTEGER NOT NULL,
  pageviews INTEGER NOT NULL, conversions INTEGER NOT NULL, revenue REAL NOT NULL,
  bounces INTEGER NOT NULL, duration_ms INTEGER NOT NULL, converted_visitors INTEGER NOT NULL,
  sessions_sq INTEGER NOT NULL, conversions_sq INTEGER NOT NULL,
  sessions_x_conversions INTEGER NOT NULL, revenue_sq REAL NOT NULL,
  visitors_in_multiple_variants INTEGER NOT NULL,
  PRIMARY KEY(layer, scope, experiment, variant, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uniques(
  layer TEXT NOT NULL, experiment TEXT NOT NULL, variant TEXT NOT NULL, hour INTEGER NOT NULL,
  uniques_1h INTEGER NOT NULL, uniques_24h INTEGER NOT NULL,
  PRIMARY KEY(layer, experiment, variant, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS experiments(
  layer TEXT NOT NULL, experiment TEXT NOT NULL, visitors_in_multiple_variants INTEGER NOT NULL,
  PRIMARY KEY(layer, experiment)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS input_totals(
  layer TEXT PRIMARY KEY, lines INTEGER NOT NULL, bad_rows INTEGER NOT NULL,
  duplicates INTEGER NOT NULL, valid_beacons INTEGER NOT NULL, late_beacons INTEGER NOT NULL,
  min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL, final_before_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bad_reasons(
  layer TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY(layer, reason)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bad_rows(
  layer TEXT NOT NULL, generation INTEGER NOT NULL, source TEXT NOT NULL, offset INTEGER NOT NULL,
  line INTEGER NOT NULL, length INTEGER NOT NULL, truncated INTEGER NOT NULL, reason TEXT NOT NULL,
  payload BLOB NOT NULL,
  PRIMARY KEY(layer, generation, source, offset));
-- No index by reason: bad rows are a small share of the input, and a reason filter with a LIMIT
-- scans them quickly, while every index slows the inserts on the batch hot path.
CREATE TABLE IF NOT EXISTS speed_scopes(
  scope TEXT PRIMARY KEY, epoch INTEGER NOT NULL, positions TEXT NOT NULL,
  views_state BLOB NOT NULL, delta_boundary INTEGER NOT NULL, delta_state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS speed_checkpoint(
  scope TEXT NOT NULL, chunk INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(scope, chunk));
CREATE TABLE IF NOT EXISTS blobs(name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS writer_leases(
  name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
-- Records can be large (a full snapshot is one record): a rowid table, not WITHOUT ROWID.
CREATE TABLE IF NOT EXISTS speed_records(
  scope TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY(scope, key));
CREATE TABLE IF NOT EXISTS batch_runs(
  generation INTEGER PRIMARY KEY, state TEXT NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, input TEXT NOT NULL, high_water_mark_ms INTEGER NOT NULL,
  lines INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models(
  version INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL, metadata TEXT NOT NULL,
  bytes BLOB NOT NULL);
-- Jobs (docs/jobs.md): state is queued, running, succeeded or failed; token is the claim's
-- fencing token (0 until claimed), unique across claims. The log is kept as bytes (a child
-- process may write anything).
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, params TEXT NOT NULL,
  state TEXT NOT NULL, created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, worker TEXT NOT NULL, token INTEGER NOT NULL,
  lease_until_ms INTEGER NOT NULL, message TEXT NOT NULL, log BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, kind, id);
)sql";

// RAII prepared statement with positional binding helpers.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Stmt& Bind(int i, std::string_view v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, std::string_view v) {
    sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(st_); }
  void Reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  int64_t Int(int c) const { return sqlite3_column_int64(st_, c); }
  double Real(int c) const { return sqlite3_column_double(st_, c); }
  std::string Text(int c) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    return p != nullptr ? std::string(p, sqlite3_column_bytes(st_, c)) : std::string();
  }
  std::string Blob(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st_, c));
    return p != nullptr ? std::string(p, sqlite3_column_bytes(st_, c)) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  int rc_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteStore() override { sqlite3_close(db_); }

  Status Init() {
    DUET_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"));
    Stmt v(db_, "PRAGMA user_version");
    if (!v.ok() || v.Step() != SQLITE_ROW) return Error("read the schema version");
    const int64_t version = v.Int(0);
    if (version != 0 && version != kSchemaVersion) {
      return Status::Corruption(path_ + ": store schema version " + std::to_string(version) +
                                " is not supported by this build (expected " +
                                std::to_string(kSchemaVersion) +
                                "); rebuild it with duet batch / duet stream into a new file");
    }
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s = Exec(kSchema);
    if (s.ok()) s = Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Result<int64_t> BeginBatch() override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    // Leftovers of runs that never committed.
    Status s = Exec(
        "DELETE FROM bad_rows WHERE layer='batch' AND generation NOT IN "
        "(SELECT generation FROM batch_runs WHERE state='committed');"
        "DELETE FROM batch_runs WHERE state='running';");
    int64_t gen = 0;
    if (s.ok()) {
      Stmt ins(db_,
               "INSERT INTO batch_runs(generation, state, started_ms, finished_ms, input, "
               "high_water_mark_ms, lines) VALUES((SELECT IFNULL(MAX(generation),0)+1 FROM "
               "batch_runs), 'running', 0, 0, '', 0, 0)");
      if (!ins.ok() || ins.Step() != SQLITE_DONE) s = Error("start a batch run");
      gen = sqlite3_last_insert_rowid(db_);
    }
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    DUET_RETURN_IF_ERROR(Exec("COMMIT"));
    return gen;
  }

  Status PutBadRows(int64_t generation, std::span<const core::BadRow> rows) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    const Status s = InsertBadRows("batch", generation, rows);
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Status CommitBatch(int64_t generation, const core::Views& views, const BatchRun& run) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s = WriteViews("batch", views);
    if (s.ok()) {
      Stmt up(db_,
              "UPDATE batch_runs SET state='committed', started_ms=?, finished_ms=?, input=?, "
              "high_water_mark_ms=?, lines=? WHERE generation=? AND state='running'");
      up.Bind(1, run.started_ms)
          .Bind(2, run.finished_ms)
          .Bind(3, run.input)
          .Bind(4, run.high_water_mark_ms)
          .Bind(5, run.lines)
          .Bind(6, generation);
      if (!up.ok() || up.Step() != SQLITE_DONE) {
        s = Error("record the batch run");
      } else if (sqlite3_changes(db_) != 1) {
        s = Status::Aborted("batch run " + std::to_string(generation) +
                            " is no longer running (another batch run started since?)");
      }
    }
    if (s.ok()) s = SetBlob("batch_prefix", run.prefix_state);
    if (s.ok()) s = SetMeta("batch_boundary", std::to_string(run.prefix_boundary_ms));
    if (s.ok()) {
      Stmt del(db_, "DELETE FROM bad_rows WHERE layer='batch' AND generation != ?");
      del.Bind(1, generation);
      if (del.Step() != SQLITE_DONE) s = Error("drop the previous run's bad rows");
    }
    if (s.ok()) {
      Stmt del(db_, "DELETE FROM batch_runs WHERE generation < ?");
      del.Bind(1, generation);
      if (del.Step() != SQLITE_DONE) s = Error("drop old batch runs");
    }
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Status CommitSpeed(std::span<const core::BadRow> bad_rows, const SpeedCheckpoint& cp) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s = Status::Ok();
    int64_t current = 0;
    {
      Stmt q(db_, "SELECT epoch FROM speed_scopes WHERE scope=?");
      q.Bind(1, cp.scope);
      const int rc = q.Step();
      if (rc == SQLITE_ROW) {
        current = q.Int(0);
      } else if (rc != SQLITE_DONE) {
        s = Error("read the speed epoch");
      }
    }
    if (s.ok() && cp.epoch != current + 1) {
      s = Status::Aborted("speed checkpoint of scope '" + cp.scope + "': epoch " +
                          std::to_string(cp.epoch) + " does not follow the stored epoch " +
                          std::to_string(current) +
                          " (another stream process committed it: the partition moved to another "
                          "group member, or two processes read the same input)");
    }
    if (s.ok() && !cp.lease.empty()) {
      auto lease = ReadLeaseLocked(cp.lease);
      if (!lease.ok()) {
        s = lease.status();
      } else if (!lease->has_value() || (*lease)->token != cp.lease_token) {
        s = FencedOff(cp, *lease);
      }
    }
    if (s.ok()) s = InsertBadRows("speed", 0, bad_rows);
    if (s.ok()) {
      Stmt del(db_, "DELETE FROM speed_checkpoint WHERE scope=?");
      del.Bind(1, cp.scope);
      if (del.Step() != SQLITE_DONE) s = Error("replace the speed checkpoint");
    }
    if (s.ok()) {
      Stmt ins(db_, "INSERT INTO speed_checkpoint(scope, chunk, data) VALUES(?, ?, ?)");
      for (size_t off = 0, chunk = 0; s.ok() && (off < cp.state.size() || chunk == 0);
           off += kChunkBytes, ++chunk) {
        ins.Bind(1, cp.scope)
            .Bind(2, static_cast<int64_t>(chunk))
            .BindBlob(3, std::string_view(cp.state).substr(off, kChunkBytes));
        if (ins.Step() != SQLITE_DONE) s = Error("write the speed checkpoint");
        ins.Reset();
      }
    }
    if (s.ok() && cp.replace_records) s = DeleteRecordsWithPrefix(cp.scope, cp.replace_prefix);
    if (s.ok() && !cp.put_records.empty()) {
      Stmt put(db_, "INSERT OR REPLACE INTO speed_records(scope, key, value) VALUES(?, ?, ?)");
      for (const auto& [k, v] : cp.put_records) {
        put.Bind(1, cp.scope).BindBlob(2, k).BindBlob(3, v);
        if (put.Step() != SQLITE_DONE) {
          s = Error("write a speed record");
          break;
        }
        put.Reset();
      }
    }
    if (s.ok() && !cp.delete_keys.empty()) {
      Stmt del(db_, "DELETE FROM speed_records WHERE scope=? AND key=?");
      for (const std::string& k : cp.delete_keys) {
        del.Bind(1, cp.scope).BindBlob(2, k);
        if (del.Step() != SQLITE_DONE) {
          s = Error("delete a speed record");
          break;
        }
        del.Reset();
      }
    }
    if (s.ok()) {
      Stmt up(db_,
              "INSERT OR REPLACE INTO speed_scopes(scope, epoch, positions, views_state, "
              "delta_boundary, delta_state) VALUES(?, ?, ?, ?, ?, ?)");
      up.Bind(1, cp.scope)
          .Bind(2, cp.epoch)
          .Bind(3, cp.positions)
          .BindBlob(4, cp.views_state)
          .Bind(5, cp.delta_boundary_ms)
          .BindBlob(6, cp.delta_state);
      if (up.Step() != SQLITE_DONE) s = Error("write the speed scope");
    }
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Result<WriterLease> AcquireWriterLease(std::string_view name, std::string_view holder,
                                         int64_t now_ms, int64_t ttl_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    WriterLease w{std::string(name), std::string(holder), 1, now_ms + ttl_ms};
    Status s = TakeLeaseLocked(now_ms, &w);
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    DUET_RETURN_IF_ERROR(Exec("COMMIT"));
    return w;
  }

  Result<std::optional<WriterLease>> ReadWriterLease(std::string_view name) override {
    std::lock_guard<std::mutex> l(mu_);
    return ReadLeaseLocked(name);
  }

  Result<std::optional<SpeedCheckpoint>> LoadSpeedCheckpoint(std::string_view scope) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN"));  // one snapshot of the scope
    Status s = Status::Ok();
    SpeedCheckpoint cp;
    cp.scope = std::string(scope);
    bool found = false;
    {
      Stmt q(db_,
             "SELECT epoch, positions, views_state, delta_boundary, delta_state FROM "
             "speed_scopes WHERE scope=?");
      q.Bind(1, scope);
      const int rc = q.Step();
      if (rc == SQLITE_ROW) {
        found = true;
        cp.epoch = q.Int(0);
        cp.positions = q.Text(1);
        cp.views_state = q.Blob(2);
        cp.delta_boundary_ms = q.Int(3);
        cp.delta_state = q.Blob(4);
      } else if (rc != SQLITE_DONE) {
        s = Error("read the speed scope");
      }
    }
    if (s.ok() && found) {
      Stmt c(db_, "SELECT data FROM speed_checkpoint WHERE scope=? ORDER BY chunk");
      c.Bind(1, scope);
      int rc;
      while ((rc = c.Step()) == SQLITE_ROW) cp.state += c.Blob(0);
      if (rc != SQLITE_DONE) s = Error("read the speed checkpoint");
      Stmt r(db_, "SELECT key, value FROM speed_records WHERE scope=?");
      r.Bind(1, scope);
      while (s.ok() && (rc = r.Step()) == SQLITE_ROW) cp.records.emplace_back(r.Blob(0), r.Blob(1));
      if (s.ok() && rc != SQLITE_DONE) s = Error("read the speed records");
    }
    (void)Exec("COMMIT");
    if (!s.ok()) return s;
    if (!found) return std::optional<SpeedCheckpoint>();
    return std::optional<SpeedCheckpoint>(std::move(cp));
  }

  Result<std::vector<SpeedScope>> ReadSpeedScopes() override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<SpeedScope> out;
    DUET_RETURN_IF_ERROR(ReadScopes(&out));
    return out;
  }

  Result<int64_t> BatchBoundary() override {
    std::lock_guard<std::mutex> l(mu_);
    Status s = Status::Ok();
    const std::optional<int64_t> b = MetaOptional("batch_boundary", &s);
    if (!s.ok()) return s;
    return b.value_or(INT64_MIN);
  }

  Result<MergeInputs> ReadMergeInputs() override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN"));  // one snapshot of both sides
    MergeInputs m;
    Status s = Status::Ok();
    const auto batch = MetaOptional("batch_boundary", &s);
    if (s.ok() && batch) {
      m.has_batch = true;
      m.batch_boundary_ms = *batch;
      s = GetBlob("batch_prefix", &m.batch_prefix_state);
    }
    if (s.ok()) s = ReadScopes(&m.speed);
    (void)Exec("COMMIT");
    if (!s.ok()) return s;
    return m;
  }

  Result<core::Views> ReadBatchViews() override {
    std::lock_guard<std::mutex> l(mu_);
    core::Views v;
    DUET_RETURN_IF_ERROR(Exec("BEGIN"));  // one consistent snapshot for all tables
    Status s = ReadAll("batch", &v);
    (void)Exec("COMMIT");
    if (!s.ok()) return s;
    return v;
  }

  Result<std::optional<BatchRun>> LastBatchRun() override {
    std::lock_guard<std::mutex> l(mu_);
    Stmt q(db_,
           "SELECT generation, started_ms, finished_ms, input, high_water_mark_ms, lines FROM "
           "batch_runs WHERE state='committed' ORDER BY generation DESC LIMIT 1");
    if (!q.ok()) return Error("read batch runs");
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<BatchRun>();
    if (rc != SQLITE_ROW) return Error("read batch runs");
    BatchRun r{q.Int(0), q.Int(1), q.Int(2), q.Text(3), q.Int(4), q.Int(5)};
    return std::optional<BatchRun>(r);
  }

  Result<ModelInfo> RegisterModel(std::string_view metadata, std::string_view bytes,
                                  int64_t created_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Stmt ins(db_,
             "INSERT INTO models(version, created_ms, metadata, bytes) VALUES((SELECT "
             "IFNULL(MAX(version),0)+1 FROM models), ?, ?, ?)");
    if (ins.ok()) ins.Bind(1, created_ms).Bind(2, metadata).BindBlob(3, bytes);
    if (!ins.ok() || ins.Step() != SQLITE_DONE) {
      const Status s = Error("register a model");
      (void)Exec("ROLLBACK");
      return s;
    }
    const int64_t version = sqlite3_last_insert_rowid(db_);
    DUET_RETURN_IF_ERROR(Exec("COMMIT"));
    return ModelInfo{version, created_ms, std::string(metadata)};
  }

  Result<std::vector<ModelInfo>> ListModels() override {
    std::lock_guard<std::mutex> l(mu_);
    Stmt q(db_, "SELECT version, created_ms, metadata FROM models ORDER BY version");
    if (!q.ok()) return Error("list models");
    std::vector<ModelInfo> out;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) out.push_back({q.Int(0), q.Int(1), q.Text(2)});
    if (rc != SQLITE_DONE) return Error("list models");
    return out;
  }

  Result<StoredModel> ReadModel(int64_t version) override {
    std::lock_guard<std::mutex> l(mu_);
    Stmt q(db_, "SELECT created_ms, metadata, bytes FROM models WHERE version=?");
    if (!q.ok()) return Error("read a model");
    q.Bind(1, version);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) {
      return Status::NotFound(path_ + ": model version " + std::to_string(version) +
                              " is not registered");
    }
    if (rc != SQLITE_ROW) return Error("read a model");
    return StoredModel{{version, q.Int(0), q.Text(1)}, q.Blob(2)};
  }

  Result<int64_t> CurrentModel() override {
    std::lock_guard<std::mutex> l(mu_);
    return CurrentModelLocked();
  }

  Status PromoteModel(int64_t version, int64_t expected_current) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s;
    auto current = CurrentModelLocked();
    if (!current.ok()) {
      s = current.status();
    } else if (*current != expected_current) {
      s = Status::Aborted("the current model is version " + std::to_string(*current) + ", not " +
                          std::to_string(expected_current) +
                          " as expected: another promotion happened in between");
    } else {
      Stmt q(db_, "SELECT 1 FROM models WHERE version=?");
      if (q.ok()) q.Bind(1, version);
      const int rc = q.ok() ? q.Step() : SQLITE_ERROR;
      if (rc == SQLITE_DONE) {
        s = Status::NotFound(path_ + ": model version " + std::to_string(version) +
                             " is not registered");
      } else if (rc != SQLITE_ROW) {
        s = Error("read a model");
      } else {
        Stmt up(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('model_current', ?)");
        if (up.ok()) up.Bind(1, std::to_string(version));
        if (!up.ok() || up.Step() != SQLITE_DONE) s = Error("promote a model");
      }
    }
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  // ---- jobs: one row per job; every change is one BEGIN IMMEDIATE transaction, which also
  // serializes claimers in other processes.

  Result<JobInfo> EnqueueJob(std::string_view kind, std::string_view params, int64_t now_ms,
                             bool dedupe) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Result<JobInfo> r = EnqueueJobLocked(kind, params, now_ms, dedupe);
    if (!r.ok()) {
      (void)Exec("ROLLBACK");
      return r;
    }
    DUET_RETURN_IF_ERROR(Exec("COMMIT"));
    return r;
  }

  Result<std::optional<JobInfo>> ClaimJob(const std::vector<std::string>& kinds,
                                          std::string_view worker, int64_t now_ms,
                                          int64_t lease_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Result<std::optional<JobInfo>> r = ClaimJobLocked(kinds, worker, now_ms, lease_ms);
    if (!r.ok()) {
      (void)Exec("ROLLBACK");
      return r;
    }
    DUET_RETURN_IF_ERROR(Exec("COMMIT"));
    return r;
  }

  Status RenewJobLease(int64_t id, int64_t token, int64_t now_ms, int64_t lease_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    Stmt up(db_, "UPDATE jobs SET lease_until_ms=? WHERE id=? AND token=? AND state='running'");
    if (up.ok()) up.Bind(1, now_ms + lease_ms).Bind(2, id).Bind(3, token);
    if (!up.ok() || up.Step() != SQLITE_DONE) return Error("renew a job's lease");
    if (sqlite3_changes(db_) == 1) return Status::Ok();
    return NotRunning(id, token, "renew its lease");
  }

  Status AppendJobLog(int64_t id, int64_t token, std::string_view text) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s;
    {
      Stmt q(db_, "SELECT log FROM jobs WHERE id=? AND token=? AND state='running'");
      if (q.ok()) q.Bind(1, id).Bind(2, token);
      const int rc = q.ok() ? q.Step() : SQLITE_ERROR;
      if (rc == SQLITE_ROW) {
        Stmt up(db_, "UPDATE jobs SET log=? WHERE id=?");
        if (up.ok()) up.BindBlob(1, AppendBoundedLog(q.Blob(0), text)).Bind(2, id);
        if (!up.ok() || up.Step() != SQLITE_DONE) s = Error("append to a job's log");
      } else if (rc == SQLITE_DONE) {
        s = NotRunning(id, token, "append to its log");
      } else {
        s = Error("read a job");
      }
    }
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Status FinishJob(int64_t id, int64_t token, bool succeeded, std::string_view message,
                   int64_t now_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    Stmt up(db_,
            "UPDATE jobs SET state=?, message=?, finished_ms=? WHERE id=? AND token=? AND "
            "state='running'");
    if (up.ok()) {
      up.Bind(1, JobStateName(succeeded ? JobState::kSucceeded : JobState::kFailed))
          .Bind(2, message)
          .Bind(3, now_ms)
          .Bind(4, id)
          .Bind(5, token);
    }
    if (!up.ok() || up.Step() != SQLITE_DONE) return Error("finish a job");
    if (sqlite3_changes(db_) == 1) return Status::Ok();
    return NotRunning(id, token, "finish it");
  }

  Result<JobInfo> GetJob(int64_t id) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string sql = std::string("SELECT ") + kJobColumns + ", log FROM jobs WHERE id=?";
    Stmt q(db_, sql.c_str());
    if (q.ok()) q.Bind(1, id);
    const int rc = q.ok() ? q.Step() : SQLITE_ERROR;
    if (rc == SQLITE_DONE) return Status::NotFound(path_ + ": no job " + std::to_string(id));
    if (rc != SQLITE_ROW) return Error("read a job");
    Result<JobInfo> job = JobOf(q);
    if (job.ok()) job->log = q.Blob(11);
    return job;
  }

  Result<std::vector<JobInfo>> ListJobs(int64_t limit) override {
    std::lock_guard<std::mutex> l(mu_);
    const std::string sql =
        std::string("SELECT ") + kJobColumns + " FROM jobs ORDER BY id DESC LIMIT ?";
    Stmt q(db_, sql.c_str());
    if (q.ok()) q.Bind(1, limit);
    std::vector<JobInfo> out;
    int rc = q.ok() ? SQLITE_ROW : SQLITE_ERROR;
    while (q.ok() && (rc = q.Step()) == SQLITE_ROW) {
      Result<JobInfo> job = JobOf(q);
      if (!job.ok()) return job.status();
      out.push_back(std::move(*job));
    }
    if (rc != SQLITE_DONE) return Error("list jobs");
    return out;
  }

  Result<int64_t> FailExpiredJobs(int64_t now_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    DUET_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Result<int64_t> r = FailExpiredJobsLocked(now_ms);
    if (!r.ok()) {
      (void)Exec("ROLLBACK");
      return r;
    }
    DUET_RETURN_IF_ERROR(Exec("COMMIT"));
    return r;
  }

  Result<std::vector<core::BadRow>> ReadBadRows(const BadRowQuery& query) override {
    std::lock_guard<std::mutex> l(mu_);
    std::string sql =
        "SELECT source, offset, line, length, truncated, reason, payload FROM bad_rows WHERE "
        "layer=? AND (layer != 'batch' OR generation = (SELECT IFNULL(MAX(generation), -1) FROM "
        "batch_runs WHERE state='committed'))";
    if (query.reason) sql += " AND reason=?";
    sql += " ORDER BY source, offset LIMIT ?";
    Stmt q(db_, sql.c_str());
    if (!q.ok()) return Error("query bad rows");
    int i = 1;
    q.Bind(i++, LayerName(query.layer));
    if (query.reason) q.Bind(i++, *query.reason);
    q.Bind(i, query.limit);
    std::vector<core::BadRow> out;
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      core::BadRow r;
      r.source = q.Text(0);
      r.offset = static_cast<uint64_t>(q.Int(1));
      r.line = static_cast<uint64_t>(q.Int(2));
      r.length = static_cast<uint64_t>(q.Int(3));
      r.truncated = q.Int(4) != 0;
      if (!beacon::ReasonFromName(q.Text(5), &r.reason)) {
        return Status::Corruption(path_ + ": unknown bad-row reason '" + q.Text(5) + "'");
      }
      r.payload = q.Blob(6);
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("read bad rows");
    return out;
  }

 private:
  Result<int64_t> CurrentModelLocked() {
    Stmt q(db_, "SELECT value FROM meta WHERE key='model_current'");
    if (!q.ok()) return Error("read the current model");
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return int64_t{0};
    if (rc != SQLITE_ROW) return Error("read the current model");
    const std::string v = q.Text(0);
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0) {
      return Status::Corruption(path_ + ": meta.model_current is '" + v +
                                "', expected a model version");
    }
    return static_cast<int64_t>(n);
  }

  static constexpr const char* kJobColumns =
      "id, kind, params, state, created_ms, started_ms, finished_ms, worker, token, "
      "lease_until_ms, message";

  // A job from a row that starts with kJobColumns.
  Result<JobInfo> JobOf(const Stmt& q) const {
    JobInfo j;
    j.id = q.Int(0);
    j.kind = q.Text(1);
    j.params = q.Text(2);
    const std::string state = q.Text(3);
    bool known = false;
    for (const JobState st :
         {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed}) {
      if (state == JobStateName(st)) {
        j.state = st;
        known = true;
      }
    }
    if (!known) {
      return Status::Corruption(path_ + ": job " + std::to_string(j.id) + " has state '" + state +
                                "'");
    }
    j.created_ms = q.Int(4);
    j.started_ms = q.Int(5);
    j.finished_ms = q.Int(6);
    j.worker = q.Text(7);
    j.token = q.Int(8);
    j.lease_until_ms = q.Int(9);
    j.message = q.Text(10);
    return j;
  }

  // Why a job is not running under `token`: NotFound for no such job, else Aborted.
  Status NotRunning(int64_t id, int64_t token, std::string_view what) {
    Stmt q(db_, "SELECT state, token, message FROM jobs WHERE id=?");
    if (q.ok()) q.Bind(1, id);
    const int rc = q.ok() ? q.Step() : SQLITE_ERROR;
    if (rc == SQLITE_DONE) return Status::NotFound(path_ + ": no job " + std::to_string(id));
    if (rc != SQLITE_ROW) return Error("read a job");
    std::string why = "it is " + q.Text(0);
    if (q.Int(1) != token) why += " under another claim";
    if (!q.Text(2).empty()) why += " (" + q.Text(2) + ")";
    return Status::Aborted("job " + std::to_string(id) + ": cannot " + std::string(what) + ": " +
                           why);
  }

  Result<JobInfo> EnqueueJobLocked(std::string_view kind, std::string_view params, int64_t now_ms,
                                   bool dedupe) {
    if (dedupe) {
      const std::string sql = std::string("SELECT ") + kJobColumns +
                              " FROM jobs WHERE state IN ('queued', 'running') AND kind=? ORDER "
                              "BY id LIMIT 1";
      Stmt q(db_, sql.c_str());
      if (q.ok()) q.Bind(1, kind);
      const int rc = q.ok() ? q.Step() : SQLITE_ERROR;
      if (rc == SQLITE_ROW) return JobOf(q);
      if (rc != SQLITE_DONE) return Error("read the queued jobs");
    }
    Stmt ins(db_,
             "INSERT INTO jobs(kind, params, state, created_ms, started_ms, finished_ms, worker, "
             "token, lease_until_ms, message, log) VALUES(?, ?, 'queued', ?, 0, 0, '', 0, 0, "
             "'', x'')");
    if (ins.ok()) ins.Bind(1, kind).Bind(2, params).Bind(3, now_ms);
    if (!ins.ok() || ins.Step() != SQLITE_DONE) return Error("queue a job");
    JobInfo j;
    j.id = sqlite3_last_insert_rowid(db_);
    j.kind = std::string(kind);
    j.params = std::string(params);
    j.created_ms = now_ms;
    return j;
  }

  Result<std::optional<JobInfo>> ClaimJobLocked(const std::vector<std::string>& kinds,
                                                std::string_view worker, int64_t now_ms,
                                                int64_t lease_ms) {
    auto failed = FailExpiredJobsLocked(now_ms);
    if (!failed.ok()) return failed.status();
    if (kinds.empty()) return std::optional<JobInfo>();
    // The oldest queued job of the kinds, skipping kinds that have a running job.
    std::string sql =
        std::string("SELECT ") + kJobColumns + " FROM jobs AS j WHERE state='queued' AND kind IN (";
    for (size_t i = 0; i < kinds.size(); ++i) sql += i == 0 ? "?" : ", ?";
    sql +=
        ") AND NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.state='running' AND r.kind=j.kind) "
        "ORDER BY id LIMIT 1";
    Stmt q(db_, sql.c_str());
    if (!q.ok()) return Error("find a queued job");
    for (size_t i = 0; i < kinds.size(); ++i) q.Bind(static_cast<int>(i + 1), kinds[i]);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<JobInfo>();
    if (rc != SQLITE_ROW) return Error("find a queued job");
    Result<JobInfo> job = JobOf(q);
    if (!job.ok()) return job.status();
    Stmt up(db_,
            "UPDATE jobs SET state='running', started_ms=?, worker=?, lease_until_ms=?, "
            "token=(SELECT IFNULL(MAX(token), 0) + 1 FROM jobs) WHERE id=?");
    if (up.ok()) up.Bind(1, now_ms).Bind(2, worker).Bind(3, now_ms + lease_ms).Bind(4, job->id);
    if (!up.ok() || up.Step() != SQLITE_DONE) return Error("claim a job");
    Stmt t(db_, "SELECT token FROM jobs WHERE id=?");
    if (t.ok()) t.Bind(1, job->id);
    if (!t.ok() || t.Step() != SQLITE_ROW) return Error("read a claimed job");
    job->state = JobState::kRunning;
    job->started_ms = now_ms;
    job->worker = std::string(worker);
    job->lease_until_ms = now_ms + lease_ms;
    job->token = t.Int(0);
    return std::optional<JobInfo>(std::move(*job));
  }

  // Inside a transaction: takes or renews `w` (name, holder, expiry set; the token is set here).
  Status TakeLeaseLocked(int64_t now_ms, WriterLease* w) {
    auto current = ReadLeaseLocked(w->name);
    if (!current.ok()) return current.status();
    if (current->has_value()) {
      const WriterLease& c = **current;
      if (c.holder != w->holder && c.expires_ms >= now_ms) return LeaseHeldElsewhere(c, now_ms);
      w->token = c.holder == w->holder ? c.token : c.token + 1;
    }
    Stmt up(db_,
            "INSERT OR REPLACE INTO writer_leases(name, holder, token, expires_ms) VALUES(?, ?, ?, "
            "?)");
    if (!up.ok()) return Error("take a writer lease");
    up.Bind(1, w->name).Bind(2, w->holder).Bind(3, w->token).Bind(4, w->expires_ms);
    if (up.Step() != SQLITE_DONE) return Error("take a writer lease");
    return Status::Ok();
  }

  Result<std::optional<WriterLease>> ReadLeaseLocked(std::string_view name) {
    Stmt q(db_, "SELECT holder, token, expires_ms FROM writer_leases WHERE name=?");
    if (!q.ok()) return Error("read a writer lease");
    q.Bind(1, name);
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::optional<WriterLease>();
    if (rc != SQLITE_ROW) return Error("read a writer lease");
    return std::optional<WriterLease>(
        WriterLease{std::string(name), q.Text(0), q.Int(1), q.Int(2)});
  }

  Result<int64_t> FailExpiredJobsLocked(int64_t now_ms) {
    std::vector<std::pair<int64_t, int64_t>> expired;  // id, lease end
    {
      Stmt q(db_, "SELECT id, lease_until_ms FROM jobs WHERE state='running' AND lease_until_ms<?");
      if (q.ok()) q.Bind(1, now_ms);
      int rc = q.ok() ? SQLITE_ROW : SQLITE_ERROR;
      while (q.ok() && (rc = q.Step()) == SQLITE_ROW) expired.emplace_back(q.Int(0), q.Int(1));
      if (rc != SQLITE_DONE) return Error("find expired jobs");
    }
    Stmt up(db_, "UPDATE jobs SET state='failed', message=?, finished_ms=? WHERE id=?");
    for (const auto& [id, until] : expired) {
      if (up.ok()) up.Bind(1, WorkerLostMessage(until)).Bind(2, now_ms).Bind(3, id);
      if (!up.ok() || up.Step() != SQLITE_DONE) return Error("fail an expired job");
      up.Reset();
    }
    return static_cast<int64_t>(expired.size());
  }

  // The Status for the connection's last error: a busy or locked database is Unavailable (a
  // retry may succeed), a damaged one Corruption, anything else IoError.
  Status FromSqlite(std::string msg) const {
    const int code = sqlite3_errcode(db_);
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return Status::Unavailable(std::move(msg));
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return Status::Corruption(std::move(msg));
    return Status::IoError(std::move(msg));
  }

  Status Error(std::string_view what) const {
    return FromSqlite(path_ + ": cannot " + std::string(what) + ": " + sqlite3_errmsg(db_));
  }

  Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = path_ + ": " + (err != nullptr ? err : "unknown error");
      sqlite3_free(err);
      return FromSqlite(msg);
    }
    return Status::Ok();
  }

  static constexpr size_t kChunkBytes = 8 << 20;

  Status ReadScopes(std::vector<SpeedScope>* out) {
    Stmt q(db_,
           "SELECT scope, epoch, positions, views_state, delta_boundary, delta_state FROM "
           "speed_scopes ORDER BY scope");
    int rc;
    while ((rc = q.Step()) == SQLITE_ROW) {
      out->push_back(SpeedScope{q.Text(0), q.Int(1), q.Text(2), q.Blob(3), q.Int(4), q.Blob(5)});
    }
    if (rc != SQLITE_DONE) return Error("read the speed scopes");
    return Status::Ok();
  }

  // Records are BLOB keys, ordered bytewise: a prefix is the range [prefix, prefix + 1).
  Status DeleteRecordsWithPrefix(const std::string& scope, const std::string& prefix) {
    std::string upper = prefix;
    while (!upper.empty() && static_cast<uint8_t>(upper.back()) == 0xff) upper.pop_back();
    if (!upper.empty()) upper.back() = static_cast<char>(static_cast<uint8_t>(upper.back()) + 1);
    Stmt del(db_, prefix.empty()  ? "DELETE FROM speed_records WHERE scope=?1"
                  : upper.empty() ? "DELETE FROM speed_records WHERE scope=?1 AND key >= ?2"
                                  : "DELETE FROM speed_records WHERE scope=?1 AND key >= ?2 AND "
                                    "key < ?3");
    del.Bind(1, scope);
    if (!prefix.empty()) del.BindBlob(2, prefix);
    if (!upper.empty()) del.BindBlob(3, upper);
    if (del.Step() != SQLITE_DONE) return Error("replace the speed records");
    return Status::Ok();
  }

  Status InsertBadRows(std::string_view layer, int64_t generation,
                       std::span<const core::BadRow> rows) {
    if (rows.empty()) return Status::Ok();
    Stmt ins(db_,
             "INSERT OR REPLACE INTO bad_rows(layer, generation, source, offset, line, length, "
             "truncated, reason, payload) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!ins.ok()) return Error("prepare the bad-row insert");
    for (const core::BadRow& r : rows) {
      ins.Bind(1, layer)
          .Bind(2, generation)
          .Bind(3, r.source)
          .Bind(4, static_cast<int64_t>(r.offset))
          .Bind(5, static_cast<int64_t>(r.line))
          .Bind(6, static_cast<int64_t>(r.length))
          .Bind(7, static_cast<int64_t>(r.truncated))
          .Bind(8, beacon::ReasonName(r.reason))
          .BindBlob(9, r.payload);
      if (ins.Step() != SQLITE_DONE) return Error("insert a bad row");
      ins.Reset();
    }
    return Status::Ok();
  }

  std::optional<int64_t> MetaOptional(const char* key, Status* s) {
    Stmt q(db_, "SELECT value FROM meta WHERE key=?");
    q.Bind(1, std::string_view(key));
    const int rc = q.Step();
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) {
      *s = Error("read meta");
      return std::nullopt;
    }
    return std::strtoll(q.Text(0).c_str(), nullptr, 10);
  }

  Status SetBlob(const char* name, const std::string& data) {
    Stmt q(db_, "INSERT OR REPLACE INTO blobs(name, data) VALUES(?, ?)");
    q.Bind(1, std::string_view(name)).BindBlob(2, data);
    if (q.Step() != SQLITE_DONE) return Error("write a blob");
    return Status::Ok();
  }

  Status GetBlob(const char* name, std::string* out) {
    Stmt q(db_, "SELECT data FROM blobs WHERE name=?");
    q.Bind(1, std::string_view(name));
    const int rc = q.Step();
    if (rc == SQLITE_ROW) {
      *out = q.Blob(0);
      return Status::Ok();
    }
    if (rc == SQLITE_DONE) return Status::Corruption(path_ + ": missing blob '" + name + "'");
    return Error("read a blob");
  }

  Status SetMeta(const char* key, const std::string& value) {
    Stmt q(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    q.Bind(1, std::string_view(key)).Bind(2, value);
    if (q.Step() != SQLITE_DONE) return Error("write meta");
    return Status::Ok();
  }

  Status WriteViews(std::string_view layer, const core::Views& v) {
    for (const char* table : {"figures", "uniques", "experiments", "input_totals", "bad_reasons"}) {
      Stmt del(db_, (std::string("DELETE FROM ") + table + " WHERE layer=?").c_str());
      del.Bind(1, layer);
      if (del.Step() != SQLITE_DONE) return Error("clear the previous views");
    }
    Stmt fig(db_, "INSERT INTO figures VALUES(?,?,?,?,?, ?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    auto put_fig = [&](std::string_view scope, const core::FigureRow& r) {
      const core::FigureValues& f = r.v;
      fig.Bind(1, layer).Bind(2, scope).Bind(3, r.experiment).Bind(4, r.variant).Bind(5, r.hour);
      fig.Bind(6, f.visitors).Bind(7, f.sessions).Bind(8, f.events).Bind(9, f.pageviews);
      fig.Bind(10, f.conversions).Bind(11, f.revenue).Bind(12, f.bounces).Bind(13, f.duration_ms);
      fig.Bind(14, f.converted_visitors).Bind(15, f.sessions_sq).Bind(16, f.conversions_sq);
      fig.Bind(17, f.sessions_x_conversions).Bind(18, f.revenue_sq);
      fig.Bind(19, f.visitors_in_multiple_variants);
      const bool ok = fig.Step() == SQLITE_DONE;
      fig.Reset();
      return ok;
    };
    for (const auto& r : v.totals) {
      if (!put_fig("total", r)) return Error("write figures");
    }
    for (const auto& r : v.hourly) {
      if (!put_fig("hour", r)) return Error("write hourly figures");
    }
    Stmt uq(db_, "INSERT INTO uniques VALUES(?,?,?,?,?,?)");
    for (const auto& r : v.uniques) {
      uq.Bind(1, layer).Bind(2, r.experiment).Bind(3, r.variant).Bind(4, r.hour);
      uq.Bind(5, r.uniques_1h).Bind(6, r.uniques_24h);
      if (uq.Step() != SQLITE_DONE) return Error("write uniques");
      uq.Reset();
    }
    Stmt ex(db_, "INSERT INTO experiments VALUES(?,?,?)");
    for (const auto& r : v.experiments) {
      ex.Bind(1, layer).Bind(2, r.experiment).Bind(3, r.visitors_in_multiple_variants);
      if (ex.Step() != SQLITE_DONE) return Error("write experiments");
      ex.Reset();
    }
    Stmt in(db_, "INSERT INTO input_totals VALUES(?,?,?,?,?,?,?,?,?)");
    in.Bind(1, layer).Bind(2, v.input.lines).Bind(3, v.input.bad_rows).Bind(4, v.input.duplicates);
    in.Bind(5, v.input.valid_beacons)
        .Bind(6, v.input.late_beacons)
        .Bind(7, v.min_ts)
        .Bind(8, v.max_ts)
        .Bind(9, v.final_before_ms);
    if (in.Step() != SQLITE_DONE) return Error("write input totals");
    Stmt br(db_, "INSERT INTO bad_reasons VALUES(?,?,?)");
    for (const auto& [reason, n] : v.input.bad_rows_by_reason) {
      br.Bind(1, layer).Bind(2, reason).Bind(3, n);
      if (br.Step() != SQLITE_DONE) return Error("write bad-row counts");
      br.Reset();
    }
    return Status::Ok();
  }

  Status ReadAll(std::string_view layer, core::Views* v) {
    Stmt fig(db_,
             "SELECT scope, experiment, variant, hour, visitors, sessions, events, pageviews, "
             "conversions, revenue, bounces, duration_ms, converted_visitors, sessions_sq, "
             "conversions_sq, sessions_x_conversions, revenue_sq, visitors_in_multiple_variants "
             "FROM figures WHERE layer=? ORDER BY scope, experiment, variant, hour");
    fig.Bind(1, layer);
    int rc;
    while ((rc = fig.Step()) == SQLITE_ROW) {
      core::FigureRow r{fig.Text(1), fig.Text(2), fig.Int(3), {}};
      core::FigureValues& f = r.v;
      f.visitors = fig.Int(4);
      f.sessions = fig.Int(5);
      f.events = fig.Int(6);
      f.pageviews = fig.Int(7);
      f.conversions = fig.Int(8);
      f.revenue = fig.Real(9);
      f.bounces = fig.Int(10);
      f.duration_ms = fig.Int(11);
      f.converted_visitors = fig.Int(12);
      f.sessions_sq = fig.Int(13);
      f.conversions_sq = fig.Int(14);
      f.sessions_x_conversions = fig.Int(15);
      f.revenue_sq = fig.Real(16);
      f.visitors_in_multiple_variants = fig.Int(17);
      (fig.Text(0) == "total" ? v->totals : v->hourly).push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("read figures");
    Stmt uq(db_,
            "SELECT experiment, variant, hour, uniques_1h, uniques_24h FROM uniques WHERE layer=? "
            "ORDER BY experiment, variant, hour");
    uq.Bind(1, layer);
    while ((rc = uq.Step()) == SQLITE_ROW) {
      v->uniques.push_back(
          core::UniquesRow{uq.Text(0), uq.Text(1), uq.Int(2), uq.Int(3), uq.Int(4)});
    }
    if (rc != SQLITE_DONE) return Error("read uniques");
    Stmt ex(db_,
            "SELECT experiment, visitors_in_multiple_variants FROM experiments WHERE layer=? "
            "ORDER BY experiment");
    ex.Bind(1, layer);
    while ((rc = ex.Step()) == SQLITE_ROW) {
      v->experiments.push_back(core::ExperimentRow{ex.Text(0), ex.Int(1)});
    }
    if (rc != SQLITE_DONE) return Error("read experiments");
    Stmt in(db_,
            "SELECT lines, bad_rows, duplicates, valid_beacons, late_beacons, min_ts, max_ts, "
            "final_before_ms FROM input_totals WHERE layer=?");
    in.Bind(1, layer);
    rc = in.Step();
    if (rc == SQLITE_ROW) {
      v->input.lines = in.Int(0);
      v->input.bad_rows = in.Int(1);
      v->input.duplicates = in.Int(2);
      v->input.valid_beacons = in.Int(3);
      v->input.late_beacons = in.Int(4);
      v->min_ts = in.Int(5);
      v->max_ts = in.Int(6);
      v->final_before_ms = in.Int(7);
    } else if (rc != SQLITE_DONE) {
      return Error("read input totals");
    }
    Stmt br(db_, "SELECT reason, count FROM bad_reasons WHERE layer=? ORDER BY reason");
    br.Bind(1, layer);
    while ((rc = br.Step()) == SQLITE_ROW) v->input.bad_rows_by_reason[br.Text(0)] = br.Int(1);
    if (rc != SQLITE_DONE) return Error("read bad-row counts");
    return Status::Ok();
  }

  std::mutex mu_;
  sqlite3* const db_;
  const std::string path_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = path + ": cannot open the SQLite store: " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return Status::IoError(msg);
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  auto store = std::make_unique<SqliteStore>(db, path);
  // Processes starting together (the members of a consumer group) race to create the file and
  // switch it to WAL, and SQLite answers some of those steps SQLITE_BUSY without waiting: retry
  // them for as long as a write would wait.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
  Status s = store->Init();
  while (s.code() == StatusCode::kUnavailable && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    s = store->Init();
  }
  DUET_RETURN_IF_ERROR(s);
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace duet::store
