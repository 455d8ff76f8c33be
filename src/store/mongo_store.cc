#include "store/mongo_store.h"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "beacon/beacon.h"
#include "store/mongo_driver.h"
#include "util/log.h"

namespace duet::store {
namespace {

// 1: the first MongoDB layout (docs/mongodb.md).
constexpr int64_t kSchemaVersion = 1;
// Large values are split into documents of at most this many bytes (MongoDB's limit is 16 MB).
constexpr size_t kChunkBytes = 4 << 20;
// Transient failures are retried inside the store this many times, 100 ms, 200 ms, 400 ms apart;
// callers see Unavailable after that and back off themselves.
constexpr int kRetries = 3;

constexpr const char* kMeta = "duet_meta";
constexpr const char* kViews = "duet_views";
constexpr const char* kBlobs = "duet_blobs";
constexpr const char* kBadRows = "duet_bad_rows";
constexpr const char* kScopes = "duet_speed_scopes";
constexpr const char* kRecords = "duet_speed_records";
constexpr const char* kModels = "duet_models";
constexpr const char* kPromotions = "duet_model_promotions";
constexpr const char* kJobs = "duet_jobs";
constexpr const char* kJobClaims = "duet_job_claims";
constexpr const char* kJobFinishes = "duet_job_finishes";
constexpr const char* kJobLogs = "duet_job_logs";
// One document per holding of a writer lease, _id "<name>/<token>": taking a lease inserts the
// next token's document, so of two takers the _id index admits one (atomic on FerretDB too).
constexpr const char* kLeases = "duet_writer_leases";
// A claim that loses the race for its kind's next claim number re-reads and tries again; after
// this many lost races ClaimJob answers "nothing claimed" (the winners run the jobs).
constexpr int kJobClaimAttempts = 16;
// ClaimJob looks at this many of the oldest queued jobs per call.
constexpr int64_t kJobCandidates = 64;

// The owner and kind of the model files' chunks in duet_blobs.
constexpr const char* kModelOwner = "model";
constexpr const char* kModelKind = "model";
// A registration that loses the race for a version number (another registration inserted it
// first) tries the next one; after this many lost races it gives up with Aborted.
constexpr int kModelVersionAttempts = 64;

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool Unhex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  auto nibble = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

// Server error codes after which a retry may succeed (the server is stepping down, restarting,
// or unreachable from the one we talk to).
bool TransientServerCode(uint32_t code) {
  switch (code) {
    case 6:
    case 7:
    case 64:
    case 89:
    case 91:
    case 134:
    case 189:
    case 262:
    case 9001:
    case 10107:
    case 11600:
    case 11602:
    case 13435:
    case 13436:
      return true;
    default:
      return false;
  }
}

bool DuplicateKey(const bson_error_t& e) { return e.code == 11000; }

// A document's _id from its key fields, as one string: each part as its length, ':' and its
// bytes, so that no two different keys meet (names come from beacons and may hold any
// character). A string, not an embedded document: servers look up string _ids directly
// (FerretDB's SQLite backend scans the collection for any other kind of _id).
std::string Key(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (const std::string_view p : parts) {
    out.append(std::to_string(p.size())).push_back(':');
    out.append(p);
  }
  return out;
}

std::string NewToken() {
  std::random_device rd;
  const uint64_t hi = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  const uint64_t lo = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

// ---------------------------------------------------------------- the store

class MongoStore final : public Store {
 public:
  MongoStore(mongoc_uri_t* uri, mongoc_client_pool_t* pool, std::string db, std::string where)
      : uri_(uri), pool_(pool), db_(std::move(db)), where_(std::move(where)) {}
  ~MongoStore() override {
    mongoc_client_pool_destroy(pool_);
    mongoc_uri_destroy(uri_);
  }

  Status Init() {
    return Retry([&]() -> Status {
      Client c(pool_);
      Bson ping;
      ping.I64("ping", 1);
      bson_error_t e;
      if (!mongoc_client_command_simple(c.get(), db_.c_str(), ping.get(), nullptr, nullptr, &e)) {
        return Error(e, "reach the server");
      }
      // The schema document: created once; another version is refused.
      Colls k(this, c);
      Bson sel, doc;
      sel.Str("_id", "schema");
      doc.Str("_id", "schema").I64("version", kSchemaVersion);
      Bson found;
      bool exists = false;
      DUET_RETURN_IF_ERROR(FindOne(k.meta, sel, &found, &exists, "read the schema version"));
      if (exists) {
        const int64_t v = View(found.get()).I64("version");
        if (v != kSchemaVersion) {
          return Status::Corruption(where_ + ": store schema version " + std::to_string(v) +
                                    " is not supported by this build (expected " +
                                    std::to_string(kSchemaVersion) +
                                    "); use another database for this version of Duet");
        }
      } else {
        if (!mongoc_collection_insert_one(k.meta, doc.get(), nullptr, nullptr, &e) &&
            !DuplicateKey(e)) {
          return Error(e, "write the schema version");
        }
      }
      return CreateIndexes(c);
    });
  }

  // ---- speed layer

  Status CommitSpeed(std::span<const core::BadRow> bad_rows, const SpeedCheckpoint& cp) override {
    return Retry([&]() -> Status {
      // A failed attempt's documents may still land later (a reply lost, not the request): the
      // next attempt writes under a new token, so they can never be taken for its own.
      const std::string token = TokenFor(cp.scope);
      Status s = CommitSpeedOnce(bad_rows, cp, token);
      if (!s.ok()) NewTokenFor(cp.scope);
      return s;
    });
  }

  Status CommitSpeedOnce(std::span<const core::BadRow> bad_rows, const SpeedCheckpoint& cp,
                         const std::string& token) {
    {
      Client c(pool_);
      Colls k(this, c);
      // Early fencing check (the pointer flip below is the real one).
      Bson pointer;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadScope(k.scopes, cp.scope, &pointer, &exists));
      const int64_t current = exists ? View(pointer.get()).I64("epoch") : 0;
      if (cp.epoch == current && IsMine(pointer, cp)) {
        // A previous attempt of this very commit flipped the pointer; its reply was lost.
        CollectSpeedGarbage(k, cp, View(pointer.get()).Str("token"));
        return Status::Ok();
      }
      if (cp.epoch != current + 1) return EpochAborted(cp, current);
      if (!cp.lease.empty()) {
        // The lease's current holding, and the pointer's fence: once a newer holder committed,
        // no older one ever flips again (the flip below is conditional on the epoch read here).
        std::optional<WriterLease> lease;
        DUET_RETURN_IF_ERROR(LatestLease(k.leases, cp.lease, &lease));
        if (!lease || lease->token != cp.lease_token ||
            (exists && View(pointer.get()).I64("fence") > cp.lease_token)) {
          return FencedOff(cp, lease);
        }
      }
      // Bad rows are keyed by (source, offset) and the same on every replay: written first,
      // they may be visible a moment before the micro-batch that found them commits.
      DUET_RETURN_IF_ERROR(PutBadRowsIn(k.bad_rows, "speed", 0, bad_rows));
      const std::string owner = SpeedOwner(cp.scope);
      // Documents of attempts that never flipped (this writer's earlier tokens, other writers)
      // are never touched here: readers ignore them, as the pointer's history does not name
      // their token for their epoch.
      int64_t chunks_state = 0, chunks_views = 0, chunks_delta = 0;
      DUET_RETURN_IF_ERROR(
          PutBlob(k.blobs, owner, cp.epoch, token, "state", cp.state, &chunks_state));
      DUET_RETURN_IF_ERROR(
          PutBlob(k.blobs, owner, cp.epoch, token, "views", cp.views_state, &chunks_views));
      DUET_RETURN_IF_ERROR(
          PutBlob(k.blobs, owner, cp.epoch, token, "delta", cp.delta_state, &chunks_delta));
      // Records: a new version per key (a tombstone for a deletion); a key both put and
      // deleted ends up deleted.
      if (!cp.put_records.empty() || !cp.delete_keys.empty()) {
        InsertOnce bulk(k.records, where_, "write speed records");
        // A key both put and deleted ends up deleted: only its tombstone is written (the
        // documents are insert-once, so the first written would win).
        const std::set<std::string> deleted(cp.delete_keys.begin(), cp.delete_keys.end());
        for (const auto& [key, value] : cp.put_records) {
          if (deleted.count(key) > 0) continue;
          Bson doc;
          RecordDoc(cp, token, key, &value, &doc);
          DUET_RETURN_IF_ERROR(bulk.Add(doc));
        }
        for (const std::string& key : cp.delete_keys) {
          Bson doc;
          RecordDoc(cp, token, key, nullptr, &doc);
          DUET_RETURN_IF_ERROR(bulk.Add(doc));
        }
        DUET_RETURN_IF_ERROR(bulk.Finish());
      }
      // The flip: one document, conditional on the epoch it replaces. It names the writer of
      // this epoch's documents, and keeps the history of writers by epoch: a record is valid
      // only if written by the writer the history names for its epoch.
      std::vector<std::pair<int64_t, std::string>> history = History(pointer, exists);
      if (history.empty() || history.back().second != token) {
        history.emplace_back(cp.epoch, token);
      }
      Bson doc, chunks, hist;
      chunks.I64("state", chunks_state).I64("views", chunks_views).I64("delta", chunks_delta);
      for (size_t i = 0; i < history.size(); ++i) {
        Bson entry;
        entry.I64("e", history[i].first).Str("t", history[i].second);
        hist.Doc(std::to_string(i).c_str(), entry);
      }
      doc.Str("_id", cp.scope)
          .I64("epoch", cp.epoch)
          .I64("fence", std::max(exists ? View(pointer.get()).I64("fence") : 0, cp.lease_token))
          .Str("token", token)
          .Str("positions", cp.positions)
          .I64("delta_boundary", cp.delta_boundary_ms)
          .Doc("chunks", chunks);
      bson_append_array(doc.get(), "history", -1, hist.get());
      // Which record prefixes were replaced at which epoch: carried over, this commit's added.
      Bson replaced;
      std::map<std::string, int64_t> marks = ReplaceMarks(pointer, exists);
      if (cp.replace_records) marks["p" + Hex(cp.replace_prefix)] = cp.epoch;
      for (const auto& [prefix, epoch] : marks) replaced.I64(prefix.c_str(), epoch);
      doc.Doc("replaced", replaced);
      bson_error_t e;
      bool flipped = false;
      if (current == 0) {
        flipped = mongoc_collection_insert_one(k.scopes, doc.get(), nullptr, nullptr, &e);
        if (!flipped && !DuplicateKey(e)) return Error(e, "write the speed checkpoint pointer");
      } else {
        Bson sel, reply;
        sel.Str("_id", cp.scope).I64("epoch", current);
        if (!mongoc_collection_replace_one(k.scopes, sel.get(), doc.get(), nullptr, reply.get(),
                                           &e)) {
          return Error(e, "write the speed checkpoint pointer");
        }
        flipped = View(reply.get()).I64("matchedCount") == 1;
      }
      if (!flipped) {
        // Lost to another writer — unless this is a retry of our own flip whose answer was lost.
        Bson now;
        bool there = false;
        DUET_RETURN_IF_ERROR(ReadScope(k.scopes, cp.scope, &now, &there));
        const View v(now.get());
        if (!there || v.I64("epoch") != cp.epoch || v.Str("token") != token ||
            v.Str("positions") != cp.positions) {
          return EpochAborted(cp, there ? v.I64("epoch") : 0);
        }
      }
      // Garbage, best effort (leftovers are harmless: readers follow the pointer).
      CollectSpeedGarbage(k, cp, token);
      return Status::Ok();
    }
  }

  Result<WriterLease> AcquireWriterLease(std::string_view name, std::string_view holder,
                                         int64_t now_ms, int64_t ttl_ms) override {
    WriterLease out;
    DUET_RETURN_IF_ERROR(Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      std::optional<WriterLease> current;
      DUET_RETURN_IF_ERROR(LatestLease(k.leases, name, &current));
      out = WriterLease{std::string(name), std::string(holder), 1, now_ms + ttl_ms};
      bson_error_t e;
      if (current && current->holder == holder) {
        // A renewal: the holding's expiry moves; then the holding must still be the latest (a
        // taker may have inserted the next one meanwhile, seeing it expired).
        Bson sel, set, update;
        sel.Str("_id", LeaseId(name, current->token)).Str("holder", holder);
        set.I64("expires_ms", out.expires_ms);
        update.Doc("$set", set);
        if (!mongoc_collection_update_one(k.leases, sel.get(), update.get(), nullptr, nullptr,
                                          &e)) {
          return Error(e, "renew a writer lease");
        }
        std::optional<WriterLease> now;
        DUET_RETURN_IF_ERROR(LatestLease(k.leases, name, &now));
        if (!now || now->token != current->token) {
          return LeaseHeldElsewhere(now ? *now : *current, now_ms);
        }
        out.token = current->token;
        return Status::Ok();
      }
      if (current && current->expires_ms >= now_ms) return LeaseHeldElsewhere(*current, now_ms);
      out.token = current ? current->token + 1 : 1;
      Bson doc;
      doc.Str("_id", LeaseId(name, out.token))
          .Str("name", name)
          .Str("holder", holder)
          .I64("token", out.token)
          .I64("expires_ms", out.expires_ms);
      if (mongoc_collection_insert_one(k.leases, doc.get(), nullptr, nullptr, &e)) {
        return Status::Ok();
      }
      if (!DuplicateKey(e)) return Error(e, "take a writer lease");
      // Another taker got this token first (or a retry of our own insert whose reply was lost).
      std::optional<WriterLease> now;
      DUET_RETURN_IF_ERROR(LatestLease(k.leases, name, &now));
      if (now && now->token == out.token && now->holder == holder) return Status::Ok();
      return LeaseHeldElsewhere(now ? *now : out, now_ms);
    }));
    return out;
  }

  Result<std::optional<WriterLease>> ReadWriterLease(std::string_view name) override {
    std::optional<WriterLease> out;
    DUET_RETURN_IF_ERROR(Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      return LatestLease(k.leases, name, &out);
    }));
    return out;
  }

  Result<std::optional<SpeedCheckpoint>> LoadSpeedCheckpoint(std::string_view scope) override {
    return RetryResult<std::optional<SpeedCheckpoint>>(
        [&]() -> Result<std::optional<SpeedCheckpoint>> {
          Client c(pool_);
          Colls k(this, c);
          Bson pointer;
          bool exists = false;
          DUET_RETURN_IF_ERROR(ReadScope(k.scopes, scope, &pointer, &exists));
          if (!exists) return std::optional<SpeedCheckpoint>();
          const View p(pointer.get());
          SpeedCheckpoint cp;
          cp.scope = std::string(scope);
          cp.epoch = p.I64("epoch");
          cp.positions = p.Str("positions");
          cp.delta_boundary_ms = p.I64("delta_boundary");
          const std::string owner = SpeedOwner(cp.scope);
          const std::string token = p.Str("token");
          DUET_RETURN_IF_ERROR(
              GetBlob(k.blobs, owner, cp.epoch, token, "state", p.I64("chunks.state"), &cp.state));
          DUET_RETURN_IF_ERROR(GetBlob(k.blobs, owner, cp.epoch, token, "views",
                                       p.I64("chunks.views"), &cp.views_state));
          DUET_RETURN_IF_ERROR(GetBlob(k.blobs, owner, cp.epoch, token, "delta",
                                       p.I64("chunks.delta"), &cp.delta_state));
          DUET_RETURN_IF_ERROR(ReadRecords(k.records, pointer, cp.scope, cp.epoch, &cp.records));
          return std::optional<SpeedCheckpoint>(std::move(cp));
        });
  }

  Result<std::vector<SpeedScope>> ReadSpeedScopes() override {
    return RetryResult<std::vector<SpeedScope>>([&]() -> Result<std::vector<SpeedScope>> {
      Client c(pool_);
      Colls k(this, c);
      std::vector<SpeedScope> out;
      DUET_RETURN_IF_ERROR(ReadScopes(k, &out));
      return out;
    });
  }

  Result<int64_t> BatchBoundary() override {
    return RetryResult<int64_t>([&]() -> Result<int64_t> {
      Client c(pool_);
      Colls k(this, c);
      Bson batch;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &batch, &exists));
      if (!exists || !View(batch.get()).Has("generation")) return INT64_MIN;
      return View(batch.get()).I64("boundary", INT64_MIN);
    });
  }

  Result<MergeInputs> ReadMergeInputs() override {
    return RetryResult<MergeInputs>([&]() -> Result<MergeInputs> {
      Client c(pool_);
      Colls k(this, c);
      MergeInputs m;
      Bson batch;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &batch, &exists));
      const View b(batch.get());
      if (exists && b.Has("generation")) {
        m.has_batch = true;
        m.batch_boundary_ms = b.I64("boundary", INT64_MIN);
        DUET_RETURN_IF_ERROR(GetBlob(k.blobs, "batch", b.I64("generation"), b.Str("token"),
                                     "prefix", b.I64("chunks"), &m.batch_prefix_state));
      }
      DUET_RETURN_IF_ERROR(ReadScopes(k, &m.speed));
      return m;
    });
  }

  // ---- batch layer

  Result<int64_t> BeginBatch() override {
    return RetryResult<int64_t>([&]() -> Result<int64_t> {
      Client c(pool_);
      Colls k(this, c);
      // The run's generation: one more than any begun before (an atomic $inc on one document).
      Bson sel, update, inc, reply;
      sel.Str("_id", "batch");
      inc.I64("begun", 1);
      update.Doc("$inc", inc);
      mongoc_find_and_modify_opts_t* opts = mongoc_find_and_modify_opts_new();
      mongoc_find_and_modify_opts_set_update(opts, update.get());
      mongoc_find_and_modify_opts_set_flags(
          opts, static_cast<mongoc_find_and_modify_flags_t>(MONGOC_FIND_AND_MODIFY_UPSERT |
                                                            MONGOC_FIND_AND_MODIFY_RETURN_NEW));
      bson_error_t e;
      const bool ok =
          mongoc_collection_find_and_modify_with_opts(k.meta, sel.get(), opts, reply.get(), &e);
      mongoc_find_and_modify_opts_destroy(opts);
      if (!ok) return Error(e, "start a batch run");
      const int64_t gen = View(reply.get()).I64("value.begun");
      if (gen <= 0) return Status::Corruption(where_ + ": the batch run counter is damaged");
      const int64_t committed = View(reply.get()).I64("value.generation", 0);
      // Leftovers of runs that began after the committed one and never committed (older
      // generations are collected by CommitBatch, which keeps the previous one a moment for
      // readers that followed the old pointer).
      Bson leftovers, nin;
      nin.I64("$gt", committed).I64("$lt", gen);
      leftovers.Doc("g", nin);
      DUET_RETURN_IF_ERROR(DeleteMany(k.views, leftovers, "drop unfinished batch views"));
      Bson bad;
      bad.Str("l", "batch").Doc("g", nin);
      DUET_RETURN_IF_ERROR(DeleteMany(k.bad_rows, bad, "drop unfinished batch bad rows"));
      Bson blobs;
      blobs.Str("o", "batch").Doc("e", nin);
      DUET_RETURN_IF_ERROR(DeleteMany(k.blobs, blobs, "drop unfinished batch state"));
      return gen;
    });
  }

  Status PutBadRows(int64_t generation, std::span<const core::BadRow> rows) override {
    return Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      return PutBadRowsIn(k.bad_rows, "batch", generation, rows);
    });
  }

  Status CommitBatch(int64_t generation, const core::Views& views, const BatchRun& run) override {
    return Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      DUET_RETURN_IF_ERROR(WriteViews(k.views, generation, views));
      int64_t chunks = 0;
      DUET_RETURN_IF_ERROR(
          PutBlob(k.blobs, "batch", generation, token_, "prefix", run.prefix_state, &chunks));
      Bson batch;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &batch, &exists));
      const int64_t previous = View(batch.get()).I64("generation", 0);
      // The flip, only if no other run began since this one.
      Bson sel, set, update, reply;
      sel.Str("_id", "batch").I64("begun", generation);
      set.I64("generation", generation)
          .Str("token", token_)
          .I64("boundary", run.prefix_boundary_ms)
          .I64("chunks", chunks)
          .I64("started_ms", run.started_ms)
          .I64("finished_ms", run.finished_ms)
          .Str("input", run.input)
          .I64("high_water_mark_ms", run.high_water_mark_ms)
          .I64("lines", run.lines);
      update.Doc("$set", set);
      bson_error_t e;
      if (!mongoc_collection_update_one(k.meta, sel.get(), update.get(), nullptr, reply.get(),
                                        &e)) {
        return Error(e, "record the batch run");
      }
      if (View(reply.get()).I64("matchedCount") != 1) {
        // A retry of this very flip whose reply was lost finds the pointer already there.
        Bson now;
        bool there = false;
        DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &now, &there));
        if (there && View(now.get()).I64("generation", -1) == generation &&
            View(now.get()).Str("token") == token_) {
          return Status::Ok();
        }
        return Status::Aborted("batch run " + std::to_string(generation) +
                               " is no longer running (another batch run started since?)");
      }
      // Generations before the one just replaced (kept a moment for readers) are garbage.
      if (previous > 0 && previous != generation) {
        Bson lt;
        lt.I64("$lt", previous);
        Bson views_old, bad_old, blobs_old;
        views_old.Doc("g", lt);
        bad_old.Str("l", "batch").Doc("g", lt);
        blobs_old.Str("o", "batch").Doc("e", lt);
        (void)DeleteMany(k.views, views_old, "drop old batch views");
        (void)DeleteMany(k.bad_rows, bad_old, "drop old batch bad rows");
        (void)DeleteMany(k.blobs, blobs_old, "drop old batch state");
      }
      return Status::Ok();
    });
  }

  Result<core::Views> ReadBatchViews() override {
    return RetryResult<core::Views>([&]() -> Result<core::Views> {
      Client c(pool_);
      Colls k(this, c);
      Bson batch;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &batch, &exists));
      core::Views v;
      if (!exists || !View(batch.get()).Has("generation")) return v;
      DUET_RETURN_IF_ERROR(ReadViews(k.views, View(batch.get()).I64("generation"), &v));
      return v;
    });
  }

  Result<std::optional<BatchRun>> LastBatchRun() override {
    return RetryResult<std::optional<BatchRun>>([&]() -> Result<std::optional<BatchRun>> {
      Client c(pool_);
      Colls k(this, c);
      Bson batch;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &batch, &exists));
      const View b(batch.get());
      if (!exists || !b.Has("generation")) return std::optional<BatchRun>();
      BatchRun r;
      r.generation = b.I64("generation");
      r.started_ms = b.I64("started_ms");
      r.finished_ms = b.I64("finished_ms");
      r.input = b.Str("input");
      r.high_water_mark_ms = b.I64("high_water_mark_ms");
      r.lines = b.I64("lines");
      return std::optional<BatchRun>(std::move(r));
    });
  }

  Result<std::vector<core::BadRow>> ReadBadRows(const BadRowQuery& query) override {
    return RetryResult<std::vector<core::BadRow>>([&]() -> Result<std::vector<core::BadRow>> {
      Client c(pool_);
      Colls k(this, c);
      int64_t generation = 0;
      if (query.layer == Layer::kBatch) {
        Bson batch;
        bool exists = false;
        DUET_RETURN_IF_ERROR(ReadBatchPointer(k.meta, &batch, &exists));
        generation = View(batch.get()).I64("generation", -1);
        if (!exists || generation < 0) return std::vector<core::BadRow>();
      }
      Bson filter, opts, sort;
      filter.Str("l", std::string(LayerName(query.layer))).I64("g", generation);
      if (query.reason) filter.Str("reason", *query.reason);
      sort.I64("source", 1).I64("offset", 1);
      opts.Doc("sort", sort).I64("limit", query.limit);
      std::vector<core::BadRow> out;
      Status status = Status::Ok();
      DUET_RETURN_IF_ERROR(Find(k.bad_rows, filter, opts, "read bad rows", [&](const View& dv) {
        const bson_t* d = dv.raw();
        const View v(d);
        core::BadRow r;
        r.source = v.Str("source");
        r.offset = static_cast<uint64_t>(v.I64("offset"));
        r.line = static_cast<uint64_t>(v.I64("line"));
        r.length = static_cast<uint64_t>(v.I64("length"));
        r.truncated = v.Bool("truncated");
        if (!beacon::ReasonFromName(v.Str("reason"), &r.reason)) {
          status =
              Status::Corruption(where_ + ": unknown bad-row reason '" + v.Str("reason") + "'");
          return;
        }
        r.payload = v.Bin("payload");
        out.push_back(std::move(r));
      }));
      DUET_RETURN_IF_ERROR(status);
      return out;
    });
  }

  // ---- model registry (docs/mongodb.md): a document per version in duet_models, its file in
  // duet_blobs chunks, a document per promotion in duet_model_promotions (the newest names the
  // current version). Every change is an insert that the _id index lets one writer win: a
  // conditional update is no compare-and-set on FerretDB, which runs it as a query and then an
  // unconditional write.

  Result<ModelInfo> RegisterModel(std::string_view metadata, std::string_view bytes,
                                  int64_t created_ms) override {
    // The registration's token, the same over every attempt. It names the file's chunks, which
    // are written before the version exists (so a version is never visible without its bytes),
    // and lets a retry recognize the version an attempt registered whose reply was lost.
    const std::string token = NewToken();
    bool retried = false;
    return RetryResult<ModelInfo>([&]() -> Result<ModelInfo> {
      Client c(pool_);
      Colls k(this, c);
      if (retried) {
        Bson filter, found;
        filter.Str("t", token);
        bool exists = false;
        DUET_RETURN_IF_ERROR(FindOne(k.models, filter, &found, &exists, "read the model registry"));
        if (exists) return ModelInfoOf(View(found.get()));
      }
      retried = true;
      int64_t chunks = 0;
      DUET_RETURN_IF_ERROR(PutBlob(k.blobs, kModelOwner, 0, token, kModelKind, bytes, &chunks));
      // The version is claimed by inserting it: the _id index admits one document per version,
      // so of concurrent registrations that read the same greatest version exactly one wins it
      // and the others read again — no transaction needed.
      for (int attempt = 0; attempt < kModelVersionAttempts; ++attempt) {
        int64_t greatest = 0;
        DUET_RETURN_IF_ERROR(GreatestModelVersion(k.models, &greatest));
        ModelInfo info{greatest + 1, created_ms, std::string(metadata)};
        Bson doc;
        doc.I64("_id", info.version)
            .I64("created_ms", created_ms)
            .Str("metadata", metadata)
            .Str("t", token)
            .I64("chunks", chunks)
            .I64("size", static_cast<int64_t>(bytes.size()));
        bson_error_t e;
        if (mongoc_collection_insert_one(k.models, doc.get(), nullptr, nullptr, &e)) return info;
        if (!DuplicateKey(e)) return Error(e, "register a model");
      }
      return Status::Aborted(
          where_ + ": cannot register a model: lost the race for a version number " +
          std::to_string(kModelVersionAttempts) + " times (too many concurrent registrations)");
    });
  }

  Result<std::vector<ModelInfo>> ListModels() override {
    return RetryResult<std::vector<ModelInfo>>([&]() -> Result<std::vector<ModelInfo>> {
      Client c(pool_);
      Colls k(this, c);
      Bson opts, sort, projection;
      sort.I64("_id", 1);
      projection.I64("created_ms", 1).I64("metadata", 1);
      opts.Doc("sort", sort).Doc("projection", projection);
      std::vector<ModelInfo> out;
      DUET_RETURN_IF_ERROR(Find(k.models, Bson(), opts, "list the models",
                                [&](const View& v) { out.push_back(ModelInfoOf(v)); }));
      return out;
    });
  }

  Result<StoredModel> ReadModel(int64_t version) override {
    return RetryResult<StoredModel>([&]() -> Result<StoredModel> {
      Client c(pool_);
      Colls k(this, c);
      Bson doc;
      bool exists = false;
      DUET_RETURN_IF_ERROR(ReadModelDoc(k.models, version, &doc, &exists));
      if (!exists) return ModelNotFound(version);
      const View v(doc.get());
      StoredModel m{ModelInfoOf(v), {}};
      DUET_RETURN_IF_ERROR(ReadModelBytes(k.blobs, v, &m.bytes));
      return m;
    });
  }

  Result<int64_t> CurrentModel() override {
    return RetryResult<int64_t>([&]() -> Result<int64_t> {
      Client c(pool_);
      Colls k(this, c);
      Bson last;
      bool exists = false;
      DUET_RETURN_IF_ERROR(LastPromotion(k.promotions, &last, &exists));
      return exists ? View(last.get()).I64("version") : int64_t{0};
    });
  }

  Status PromoteModel(int64_t version, int64_t expected_current) override {
    // The promotion's token, the same over every attempt: it lets a retry recognize the
    // promotion an attempt made whose reply was lost.
    const std::string token = NewToken();
    bool retried = false;
    return Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      if (retried) {
        Bson filter, mine;
        filter.Str("t", token);
        bool done = false;
        DUET_RETURN_IF_ERROR(FindOne(k.promotions, filter, &mine, &done, "read the promotions"));
        if (done) return Status::Ok();
      }
      retried = true;
      Bson last;
      bool exists = false;
      DUET_RETURN_IF_ERROR(LastPromotion(k.promotions, &last, &exists));
      const View l(last.get());
      const int64_t current = exists ? l.I64("version") : 0;
      if (current != expected_current) return PromotionAborted(version, expected_current, current);
      Bson model;
      bool registered = false;
      DUET_RETURN_IF_ERROR(ReadModelDoc(k.models, version, &model, &registered));
      if (!registered) return ModelNotFound(version);
      // The compare-and-set: the promotion after the one read, inserted. Of two promotions that
      // read the same current version, the _id index admits one; the other is Aborted.
      const int64_t seq = exists ? l.I64("_id") + 1 : 1;
      Bson doc;
      doc.I64("_id", seq).I64("version", version).Str("t", token);
      bson_error_t e;
      if (mongoc_collection_insert_one(k.promotions, doc.get(), nullptr, nullptr, &e)) {
        return Status::Ok();
      }
      if (!DuplicateKey(e)) return Error(e, "promote a model");
      Bson now;
      bool there = false;
      DUET_RETURN_IF_ERROR(LastPromotion(k.promotions, &now, &there));
      return PromotionAborted(version, expected_current,
                              there ? View(now.get()).I64("version") : 0);
    });
  }

  // ---- jobs (docs/mongodb.md, "Jobs"): a document per job in duet_jobs (an int64 _id taken
  // like a model version); a claim per run of a kind in duet_job_claims, _id (kind, n), where
  // claim n of a kind is inserted only after claim n - 1 has a finish — so the _id index lets
  // at most one job of a kind run; a finish per claim in duet_job_finishes and the claim's log
  // in duet_job_logs, both under the claim's _id. A job's state is derived from its documents.
  // Every state change is an insert that the _id index lets one writer win (a conditional
  // update is no compare-and-set on FerretDB). The flags `q` (on jobs: maybe still queued) and
  // `open` (on claims: maybe still running) only narrow the queries; they are set best effort
  // and never trusted alone. The claim number n is the job's token.

  Result<JobInfo> EnqueueJob(std::string_view kind, std::string_view params, int64_t now_ms,
                             bool dedupe) override {
    // The same over every attempt: a retry recognizes the job an attempt queued whose reply
    // was lost.
    const std::string token = NewToken();
    bool retried = false;
    return RetryResult<JobInfo>([&]() -> Result<JobInfo> {
      Client c(pool_);
      Colls k(this, c);
      if (retried) {
        Bson filter, found;
        filter.Str("t", token);
        bool exists = false;
        DUET_RETURN_IF_ERROR(FindOne(k.jobs, filter, &found, &exists, "read the jobs"));
        if (exists) return JobDocInfo(View(found.get()));
      }
      retried = true;
      if (dedupe) {
        std::optional<JobInfo> pending;
        DUET_RETURN_IF_ERROR(PendingJobOfKind(k, kind, &pending));
        if (pending) return std::move(*pending);
      }
      for (int attempt = 0; attempt < kModelVersionAttempts; ++attempt) {
        int64_t greatest = 0;
        DUET_RETURN_IF_ERROR(GreatestId(k.jobs, "read the jobs", &greatest));
        Bson doc;
        doc.I64("_id", greatest + 1)
            .Str("kind", kind)
            .Str("params", params)
            .I64("created_ms", now_ms)
            .Str("t", token)
            .Bool("q", true);
        bson_error_t e;
        if (mongoc_collection_insert_one(k.jobs, doc.get(), nullptr, nullptr, &e)) {
          return JobDocInfo(View(doc.get()));
        }
        if (!DuplicateKey(e)) return Error(e, "queue a job");
      }
      return Status::Aborted(where_ + ": cannot queue a job: lost the race for a job id " +
                             std::to_string(kModelVersionAttempts) + " times");
    });
  }

  Result<std::optional<JobInfo>> ClaimJob(const std::vector<std::string>& kinds,
                                          std::string_view worker, int64_t now_ms,
                                          int64_t lease_ms) override {
    auto failed = FailExpiredJobs(now_ms);
    if (!failed.ok()) return failed.status();
    if (kinds.empty()) return std::optional<JobInfo>();
    // Marks this call's claim, so that a retry after a lost reply finds it.
    const std::string token = NewToken();
    bool retried = false;
    using Claimed = std::optional<JobInfo>;
    return RetryResult<Claimed>([&]() -> Result<Claimed> {
      Client c(pool_);
      Colls k(this, c);
      if (retried) {
        Bson filter, mine;
        filter.Str("t", token);
        bool exists = false;
        DUET_RETURN_IF_ERROR(FindOne(k.claims, filter, &mine, &exists, "read the job claims"));
        if (exists) {
          auto job = GetJobWith(k, View(mine.get()).I64("job"));
          if (!job.ok()) return job.status();
          return Claimed(std::move(*job));
        }
      }
      retried = true;
      for (int attempt = 0; attempt < kJobClaimAttempts; ++attempt) {
        // The next claim number of every kind that runs nothing now. Read before the queued
        // jobs: a job's claim is then either seen below or made after this read, and in that
        // case it took the number this call would insert, which the _id index refuses.
        std::map<std::string, int64_t> next;
        for (const std::string& kind : kinds) {
          Bson latest;
          bool exists = false, finished = false;
          DUET_RETURN_IF_ERROR(LatestClaim(k, kind, &latest, &exists, &finished));
          if (exists && !finished) continue;
          next[kind] = exists ? View(latest.get()).I64("n") + 1 : 1;
        }
        if (next.empty()) return Claimed();
        Bson filter, opts, sort;
        filter.Bool("q", true);
        AppendIn(&filter, "kind", next.size(), [&](bson_t* arr, const char* i, size_t n) {
          auto it = next.begin();
          std::advance(it, static_cast<std::ptrdiff_t>(n));
          bson_append_utf8(arr, i, -1, it->first.data(), static_cast<int>(it->first.size()));
        });
        sort.I64("_id", 1);
        opts.Doc("sort", sort).I64("limit", kJobCandidates);
        std::vector<JobInfo> queued;
        DUET_RETURN_IF_ERROR(Find(k.jobs, filter, opts, "read the queued jobs",
                                  [&](const View& v) { queued.push_back(JobDocInfo(v)); }));
        bool lost = false;
        for (JobInfo& j : queued) {
          Bson claim;
          bool claimed = false;
          DUET_RETURN_IF_ERROR(ClaimOfJob(k, j.id, &claim, &claimed));
          if (claimed) {
            MarkJobClaimed(k, j.id);
            continue;
          }
          const int64_t n = next[j.kind];
          Bson doc;
          doc.Str("_id", ClaimKey(j.kind, n))
              .Str("k", j.kind)
              .I64("n", n)
              .I64("job", j.id)
              .Str("worker", worker)
              .I64("started_ms", now_ms)
              .I64("lease_until_ms", now_ms + lease_ms)
              .Bool("open", true)
              .Str("t", token);
          bson_error_t e;
          if (mongoc_collection_insert_one(k.claims, doc.get(), nullptr, nullptr, &e)) {
            MarkJobClaimed(k, j.id);
            ApplyClaim(View(doc.get()), &j);
            return Claimed(std::move(j));
          }
          if (!DuplicateKey(e)) return Error(e, "claim a job");
          lost = true;  // another worker took the kind's slot: read again
          break;
        }
        if (!lost) return Claimed();
      }
      return Claimed();  // every race lost: the winners run jobs; the caller polls again
    });
  }

  Status RenewJobLease(int64_t id, int64_t token, int64_t now_ms, int64_t lease_ms) override {
    return Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      std::string key;
      Bson finish;
      bool finished = false;
      DUET_RETURN_IF_ERROR(ReadClaim(k, id, token, "renew its lease", &key, &finish, &finished));
      if (finished) return JobNotRunning(id, View(finish.get()), "renew its lease");
      // A plain update: only the claim's holder writes the lease. Recovery that read the old
      // lease may still fail the job; the holder then learns it on its next call.
      Bson sel, update, set;
      sel.Str("_id", key);
      set.I64("lease_until_ms", now_ms + lease_ms);
      update.Doc("$set", set);
      bson_error_t e;
      if (!mongoc_collection_update_one(k.claims, sel.get(), update.get(), nullptr, nullptr, &e)) {
        return Error(e, "renew a job's lease");
      }
      return Status::Ok();
    });
  }

  Status AppendJobLog(int64_t id, int64_t token, std::string_view text) override {
    return Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      std::string key;
      Bson finish;
      bool finished = false;
      DUET_RETURN_IF_ERROR(ReadClaim(k, id, token, "append to its log", &key, &finish, &finished));
      if (finished) return JobNotRunning(id, View(finish.get()), "append to its log");
      Bson sel, found;
      sel.Str("_id", key);
      bool exists = false;
      DUET_RETURN_IF_ERROR(FindOne(k.logs, sel, &found, &exists, "read a job's log"));
      const std::string log = AppendBoundedLog(View(found.get()).Bin("log"), text);
      bson_error_t e;
      if (exists) {
        Bson update, set;
        set.Bin("log", log);
        update.Doc("$set", set);
        if (!mongoc_collection_update_one(k.logs, sel.get(), update.get(), nullptr, nullptr, &e)) {
          return Error(e, "append to a job's log");
        }
        return Status::Ok();
      }
      Bson doc;
      doc.Str("_id", key).Bin("log", log);
      if (!mongoc_collection_insert_one(k.logs, doc.get(), nullptr, nullptr, &e)) {
        return Error(e, "append to a job's log");
      }
      return Status::Ok();
    });
  }

  Status FinishJob(int64_t id, int64_t token, bool succeeded, std::string_view message,
                   int64_t now_ms) override {
    const std::string mine = NewToken();
    return Retry([&]() -> Status {
      Client c(pool_);
      Colls k(this, c);
      std::string key;
      Bson finish;
      bool finished = false;
      DUET_RETURN_IF_ERROR(ReadClaim(k, id, token, "finish it", &key, &finish, &finished));
      if (finished) {
        // A retry whose first attempt's reply was lost finds its own finish.
        if (View(finish.get()).Str("t") == mine) return Status::Ok();
        return JobNotRunning(id, View(finish.get()), "finish it");
      }
      // The finish is an insert: of the holder and recovery, the _id index admits one.
      Bson doc;
      doc.Str("_id", key)
          .I64("job", id)
          .Bool("ok", succeeded)
          .Str("message", message)
          .I64("finished_ms", now_ms)
          .Str("t", mine);
      bson_error_t e;
      if (!mongoc_collection_insert_one(k.finishes, doc.get(), nullptr, nullptr, &e)) {
        if (!DuplicateKey(e)) return Error(e, "finish a job");
        Bson other;
        bool there = false;
        DUET_RETURN_IF_ERROR(ReadById(k.finishes, key, &other, &there, "read a job's finish"));
        return JobNotRunning(id, View(other.get()), "finish it");
      }
      CloseClaim(k, key);
      return Status::Ok();
    });
  }

  Result<JobInfo> GetJob(int64_t id) override {
    return RetryResult<JobInfo>([&]() -> Result<JobInfo> {
      Client c(pool_);
      Colls k(this, c);
      return GetJobWith(k, id);
    });
  }

  Result<std::vector<JobInfo>> ListJobs(int64_t limit) override {
    return RetryResult<std::vector<JobInfo>>([&]() -> Result<std::vector<JobInfo>> {
      Client c(pool_);
      Colls k(this, c);
      Bson opts, sort;
      sort.I64("_id", -1);
      opts.Doc("sort", sort).I64("limit", limit);
      std::vector<JobInfo> jobs;
      DUET_RETURN_IF_ERROR(Find(k.jobs, Bson(), opts, "list the jobs",
                                [&](const View& v) { jobs.push_back(JobDocInfo(v)); }));
      if (jobs.empty()) return jobs;
      // Their claims and finishes in one query each.
      std::map<int64_t, JobInfo*> by_id;
      for (JobInfo& j : jobs) by_id[j.id] = &j;
      Bson cf;
      AppendIn(&cf, "job", jobs.size(), [&](bson_t* arr, const char* i, size_t n) {
        BSON_APPEND_INT64(arr, i, jobs[n].id);
      });
      std::map<std::string, JobInfo*> by_claim;
      DUET_RETURN_IF_ERROR(Find(k.claims, cf, Bson(), "read the job claims", [&](const View& v) {
        auto it = by_id.find(v.I64("job"));
        if (it == by_id.end()) return;
        ApplyClaim(v, it->second);
        by_claim[v.Str("_id")] = it->second;
      }));
      if (by_claim.empty()) return jobs;
      std::vector<std::string> keys;
      for (const auto& [key, j] : by_claim) keys.push_back(key);
      Bson ff;
      AppendIn(&ff, "_id", keys.size(), [&](bson_t* arr, const char* i, size_t n) {
        bson_append_utf8(arr, i, -1, keys[n].data(), static_cast<int>(keys[n].size()));
      });
      DUET_RETURN_IF_ERROR(
          Find(k.finishes, ff, Bson(), "read the job finishes", [&](const View& v) {
            auto it = by_claim.find(v.Str("_id"));
            if (it != by_claim.end()) ApplyFinish(v, it->second);
          }));
      return jobs;
    });
  }

  Result<int64_t> FailExpiredJobs(int64_t now_ms) override {
    return RetryResult<int64_t>([&]() -> Result<int64_t> {
      Client c(pool_);
      Colls k(this, c);
      struct Open {
        std::string key;
        int64_t job;
        int64_t lease_until_ms;
      };
      std::vector<Open> open;
      Bson filter;
      filter.Bool("open", true);
      DUET_RETURN_IF_ERROR(
          Find(k.claims, filter, Bson(), "read the running jobs", [&](const View& v) {
            open.push_back({v.Str("_id"), v.I64("job"), v.I64("lease_until_ms")});
          }));
      int64_t failed = 0;
      for (const Open& o : open) {
        Bson finish;
        bool finished = false;
        DUET_RETURN_IF_ERROR(
            ReadById(k.finishes, o.key, &finish, &finished, "read a job's finish"));
        if (!finished && o.lease_until_ms < now_ms) {
          Bson doc;
          doc.Str("_id", o.key)
              .I64("job", o.job)
              .Bool("ok", false)
              .Str("message", WorkerLostMessage(o.lease_until_ms))
              .I64("finished_ms", now_ms)
              .Str("t", "recovery");
          bson_error_t e;
          if (mongoc_collection_insert_one(k.finishes, doc.get(), nullptr, nullptr, &e)) {
            ++failed;
          } else if (!DuplicateKey(e)) {
            return Error(e, "fail an expired job");
          }
          finished = true;
        }
        if (finished) CloseClaim(k, o.key);
      }
      return failed;
    });
  }

 private:
  // A client from the pool for the duration of one operation.
  class Client {
   public:
    explicit Client(mongoc_client_pool_t* pool) : pool_(pool), c_(mongoc_client_pool_pop(pool)) {}
    ~Client() { mongoc_client_pool_push(pool_, c_); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    mongoc_client_t* get() const { return c_; }

   private:
    mongoc_client_pool_t* pool_;
    mongoc_client_t* c_;
  };

  mongoc_collection_t* Coll(const Client& c, const char* name) const {
    return mongoc_client_get_collection(c.get(), db_.c_str(), name);
  }

  // Every collection of one operation.
  struct Colls {
    Colls(const MongoStore* s, const Client& c)
        : meta(s->Coll(c, kMeta)),
          views(s->Coll(c, kViews)),
          blobs(s->Coll(c, kBlobs)),
          bad_rows(s->Coll(c, kBadRows)),
          scopes(s->Coll(c, kScopes)),
          records(s->Coll(c, kRecords)),
          models(s->Coll(c, kModels)),
          promotions(s->Coll(c, kPromotions)),
          jobs(s->Coll(c, kJobs)),
          claims(s->Coll(c, kJobClaims)),
          finishes(s->Coll(c, kJobFinishes)),
          logs(s->Coll(c, kJobLogs)),
          leases(s->Coll(c, kLeases)) {}
    ~Colls() {
      for (mongoc_collection_t* x : {meta, views, blobs, bad_rows, scopes, records, models,
                                     promotions, jobs, claims, finishes, logs, leases}) {
        mongoc_collection_destroy(x);
      }
    }
    Colls(const Colls&) = delete;
    Colls& operator=(const Colls&) = delete;
    mongoc_collection_t *meta, *views, *blobs, *bad_rows, *scopes, *records, *models, *promotions;
    mongoc_collection_t *jobs, *claims, *finishes, *logs, *leases;
  };

  // ---- errors and retries

  Status Error(const bson_error_t& e, std::string_view what) const {
    return MongoStatus(e, where_, what);
  }

  static Status EpochAborted(const SpeedCheckpoint& cp, int64_t current) {
    return Status::Aborted("speed checkpoint of scope '" + cp.scope + "': epoch " +
                           std::to_string(cp.epoch) + " does not follow the stored epoch " +
                           std::to_string(current) +
                           " (another stream process committed it: the partition moved to "
                           "another group member, or two processes read the same input)");
  }

  // A quick transient failure (a primary stepping down, a dropped connection) is retried; a
  // slow one (no server answered within serverSelectionTimeoutMS) is returned at once: the
  // caller backs off with its own, longer schedule.
  static bool RetryAfter(StatusCode code, std::chrono::steady_clock::time_point start,
                         int attempt) {
    return code == StatusCode::kUnavailable && attempt < kRetries &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(1);
  }

  static Status Retry(const std::function<Status()>& f) {
    for (int attempt = 0;; ++attempt) {
      const auto start = std::chrono::steady_clock::now();
      Status s = f();
      if (!RetryAfter(s.code(), start, attempt)) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
    }
  }

  template <typename T>
  static Result<T> RetryResult(const std::function<Result<T>()>& f) {
    for (int attempt = 0;; ++attempt) {
      const auto start = std::chrono::steady_clock::now();
      Result<T> r = f();
      if (r.ok() || !RetryAfter(r.status().code(), start, attempt)) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
    }
  }

  // ---- primitives

  Status Find(mongoc_collection_t* coll, const Bson& filter, const Bson& opts,
              std::string_view what, const std::function<void(const View&)>& each) const {
    mongoc_cursor_t* cur =
        mongoc_collection_find_with_opts(coll, filter.get(), opts.get(), nullptr);
    const bson_t* d = nullptr;
    while (mongoc_cursor_next(cur, &d)) each(View(d));
    bson_error_t e;
    const bool failed = mongoc_cursor_error(cur, &e);
    mongoc_cursor_destroy(cur);
    if (failed) return Error(e, what);
    return Status::Ok();
  }

  Status FindOne(mongoc_collection_t* coll, const Bson& filter, Bson* out, bool* exists,
                 std::string_view what) const {
    Bson opts;
    opts.I64("limit", 1);
    *exists = false;
    return Find(coll, filter, opts, what, [&](const View& dv) {
      const bson_t* d = dv.raw();
      bson_copy_to_excluding_noinit(d, out->get(), "", nullptr);
      *exists = true;
    });
  }

  Status DeleteMany(mongoc_collection_t* coll, const Bson& filter, std::string_view what) const {
    bson_error_t e;
    if (!mongoc_collection_delete_many(coll, filter.get(), nullptr, nullptr, &e)) {
      return Error(e, what);
    }
    return Status::Ok();
  }

  Status CreateIndexes(const Client& c) const {
    struct Index {
      const char* coll;
      const char* name;
      std::vector<const char*> keys;
    };
    const std::vector<Index> indexes = {
        {kViews, "g", {"g"}},
        {kBlobs, "owner_epoch", {"o", "e", "t", "k", "i"}},
        {kBadRows, "layer_generation_source_offset", {"l", "g", "source", "offset"}},
        {kRecords, "scope_epoch", {"s", "e"}},
        {kRecords, "scope_key", {"s", "k"}},
        {kJobs, "queued_kind", {"q", "kind"}},
        {kJobClaims, "kind_number", {"k", "n"}},
        {kJobClaims, "job", {"job"}},
        {kJobClaims, "open", {"open"}},
    };
    for (const Index& ix : indexes) {
      Bson cmd, keys, index, list;
      for (const char* key : ix.keys) keys.I64(key, 1);
      index.Doc("key", keys).Str("name", ix.name);
      list.Doc("0", index);
      cmd.Str("createIndexes", ix.coll);
      bson_append_array(cmd.get(), "indexes", -1, list.get());
      bson_error_t e;
      if (!mongoc_client_command_simple(c.get(), db_.c_str(), cmd.get(), nullptr, nullptr, &e)) {
        return Error(e, std::string("create index ") + ix.name + " on " + ix.coll);
      }
    }
    return Status::Ok();
  }

  static std::string SpeedOwner(std::string_view scope) { return "speed:" + std::string(scope); }

  static std::string BlobId(std::string_view owner, int64_t epoch, std::string_view token,
                            std::string_view kind, int64_t i) {
    return Key({owner, std::to_string(epoch), token, kind, std::to_string(i)});
  }

  // A value split into documents {_id: {o, e, t, k, i}, o, e, t, k, i, data}, written by this
  // writer (t = its token); *chunks = how many.
  Status PutBlob(mongoc_collection_t* blobs, const std::string& owner, int64_t epoch,
                 const std::string& token, const char* kind, std::string_view value,
                 int64_t* chunks) const {
    InsertOnce bulk(blobs, where_, std::string("write ") + kind + " state");
    int64_t i = 0;
    for (size_t off = 0; off < value.size() || i == 0; off += kChunkBytes, ++i) {
      Bson doc;
      doc.Str("_id", BlobId(owner, epoch, token, kind, i))
          .Str("o", owner)
          .I64("e", epoch)
          .Str("t", token)
          .Str("k", kind)
          .I64("i", i);
      doc.Bin("data", off < value.size() ? value.substr(off, kChunkBytes) : std::string_view());
      DUET_RETURN_IF_ERROR(bulk.Add(doc));
    }
    *chunks = i;
    return bulk.Finish();
  }

  Status GetBlob(mongoc_collection_t* blobs, const std::string& owner, int64_t epoch,
                 const std::string& token, const char* kind, int64_t chunks,
                 std::string* out) const {
    out->clear();
    Bson filter, opts, sort;
    filter.Str("o", owner).I64("e", epoch).Str("t", token).Str("k", kind);
    sort.I64("i", 1);
    opts.Doc("sort", sort);
    int64_t seen = 0;
    DUET_RETURN_IF_ERROR(
        Find(blobs, filter, opts, std::string("read ") + kind + " state", [&](const View& d) {
          if (d.I64("i", -1) == seen) {
            out->append(d.Bin("data"));
            ++seen;
          }
        }));
    if (seen != chunks) {
      // Garbage-collected under a reader that followed an older pointer: a retry reads the new.
      return Status::Unavailable(where_ + ": " + kind + " state of " + owner + " epoch " +
                                 std::to_string(epoch) + " changed while being read");
    }
    return Status::Ok();
  }

  // This store's writer token for `scope`: kept while its commits succeed, replaced after a
  // failed attempt (NewTokenFor). Every token it ever used for the scope is remembered, to
  // recognize its own flip whose reply was lost.
  std::string TokenFor(const std::string& scope) const {
    std::lock_guard<std::mutex> l(tokens_mu_);
    auto& t = tokens_[scope];
    if (t.current.empty()) {
      t.current = NewToken();
      t.used.insert(t.current);
    }
    return t.current;
  }
  void NewTokenFor(const std::string& scope) const {
    std::lock_guard<std::mutex> l(tokens_mu_);
    auto& t = tokens_[scope];
    t.current = NewToken();
    t.used.insert(t.current);
  }
  // The stored pointer is `cp` as written by this store (same epoch, one of its tokens, same
  // positions).
  bool IsMine(const Bson& pointer, const SpeedCheckpoint& cp) const {
    const View v(pointer.get());
    std::lock_guard<std::mutex> l(tokens_mu_);
    auto it = tokens_.find(cp.scope);
    return it != tokens_.end() && it->second.used.count(v.Str("token")) > 0 &&
           v.I64("epoch") == cp.epoch && v.Str("positions") == cp.positions;
  }

  // The pointer's writer history: (first epoch, token) per run of epochs one writer committed.
  static std::vector<std::pair<int64_t, std::string>> History(const Bson& pointer, bool exists) {
    std::vector<std::pair<int64_t, std::string>> out;
    bson_iter_t it, child;
    if (!exists || !bson_iter_init_find(&it, pointer.get(), "history") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &child)) {
      return out;
    }
    while (bson_iter_next(&child)) {
      if (!BSON_ITER_HOLDS_DOCUMENT(&child)) continue;
      uint32_t len = 0;
      const uint8_t* data = nullptr;
      bson_iter_document(&child, &len, &data);
      bson_t entry;
      if (!bson_init_static(&entry, data, len)) continue;
      const View v(&entry);
      out.emplace_back(v.I64("e"), v.Str("t"));
    }
    return out;
  }

  Status ReadScope(mongoc_collection_t* scopes, std::string_view scope, Bson* out,
                   bool* exists) const {
    Bson filter;
    filter.Str("_id", scope);
    return FindOne(scopes, filter, out, exists, "read the speed checkpoint pointer");
  }

  Status ReadScopes(const Colls& k, std::vector<SpeedScope>* out) const {
    Bson filter, opts, sort;
    sort.I64("_id", 1);
    opts.Doc("sort", sort);
    std::vector<SpeedScope> scopes;
    std::vector<std::pair<int64_t, int64_t>> chunks;  // views, delta
    std::vector<std::string> tokens;
    DUET_RETURN_IF_ERROR(Find(k.scopes, filter, opts, "read the speed scopes", [&](const View& dv) {
      const bson_t* d = dv.raw();
      const View v(d);
      SpeedScope s;
      s.scope = v.Str("_id");
      s.epoch = v.I64("epoch");
      s.positions = v.Str("positions");
      s.delta_boundary_ms = v.I64("delta_boundary");
      scopes.push_back(std::move(s));
      chunks.emplace_back(v.I64("chunks.views"), v.I64("chunks.delta"));
      tokens.push_back(v.Str("token"));
    }));
    for (size_t i = 0; i < scopes.size(); ++i) {
      SpeedScope& s = scopes[i];
      const std::string owner = SpeedOwner(s.scope);
      DUET_RETURN_IF_ERROR(
          GetBlob(k.blobs, owner, s.epoch, tokens[i], "views", chunks[i].first, &s.views_state));
      DUET_RETURN_IF_ERROR(
          GetBlob(k.blobs, owner, s.epoch, tokens[i], "delta", chunks[i].second, &s.delta_state));
    }
    *out = std::move(scopes);
    return Status::Ok();
  }

  Status ReadBatchPointer(mongoc_collection_t* meta, Bson* out, bool* exists) const {
    Bson filter;
    filter.Str("_id", "batch");
    return FindOne(meta, filter, out, exists, "read the batch run pointer");
  }

  // ---- model registry

  static ModelInfo ModelInfoOf(const View& v) {
    return ModelInfo{v.I64("_id"), v.I64("created_ms"), v.Str("metadata")};
  }

  Status ModelNotFound(int64_t version) const {
    return Status::NotFound(where_ + ": model version " + std::to_string(version) +
                            " is not registered");
  }

  static Status PromotionAborted(int64_t version, int64_t expected, int64_t current) {
    return Status::Aborted("cannot promote model version " + std::to_string(version) +
                           ": the current version is " + std::to_string(current) + ", not " +
                           std::to_string(expected) +
                           " as expected (another promotion happened in between)");
  }

  // The newest promotion (greatest _id), if any.
  static std::string LeaseId(std::string_view name, int64_t token) {
    char digits[24];
    std::snprintf(digits, sizeof digits, "%020" PRId64, token);
    return std::string(name) + "/" + digits;
  }

  // The latest holding of the lease `name` (the greatest token), if any.
  Status LatestLease(mongoc_collection_t* leases, std::string_view name,
                     std::optional<WriterLease>* out) const {
    Bson filter, opts, sort;
    filter.Str("name", name);
    sort.I64("token", -1);
    opts.Doc("sort", sort).I64("limit", 1);
    out->reset();
    return Find(leases, filter, opts, "read a writer lease", [&](const View& v) {
      *out = WriterLease{std::string(name), v.Str("holder"), v.I64("token"), v.I64("expires_ms")};
    });
  }

  Status LastPromotion(mongoc_collection_t* promotions, Bson* out, bool* exists) const {
    Bson opts, sort;
    sort.I64("_id", -1);
    opts.Doc("sort", sort).I64("limit", 1);
    *exists = false;
    return Find(promotions, Bson(), opts, "read the current model", [&](const View& v) {
      bson_copy_to_excluding_noinit(v.raw(), out->get(), "", nullptr);
      *exists = true;
    });
  }

  Status ReadModelDoc(mongoc_collection_t* models, int64_t version, Bson* out, bool* exists) const {
    Bson filter;
    filter.I64("_id", version);
    return FindOne(models, filter, out, exists, "read the model registry");
  }

  Status GreatestModelVersion(mongoc_collection_t* models, int64_t* out) const {
    Bson opts, sort, projection;
    sort.I64("_id", -1);
    projection.I64("_id", 1);
    opts.Doc("sort", sort).Doc("projection", projection).I64("limit", 1);
    *out = 0;
    return Find(models, Bson(), opts, "read the model registry",
                [&](const View& v) { *out = v.I64("_id"); });
  }

  // A registered version's file, from its chunks, each looked up by _id (the one query
  // FerretDB answers without scanning the collection). Chunks of a registered version are never
  // removed, so a missing one is Corruption.
  Status ReadModelBytes(mongoc_collection_t* blobs, const View& model, std::string* out) const {
    const int64_t version = model.I64("_id");
    const int64_t chunks = model.I64("chunks");
    const int64_t size = model.I64("size");
    const std::string token = model.Str("t");
    out->clear();
    out->reserve(static_cast<size_t>(std::max<int64_t>(size, 0)));
    for (int64_t i = 0; i < chunks; ++i) {
      Bson filter, chunk;
      filter.Str("_id", BlobId(kModelOwner, 0, token, kModelKind, i));
      bool exists = false;
      DUET_RETURN_IF_ERROR(FindOne(blobs, filter, &chunk, &exists, "read a model file"));
      if (!exists) {
        return Status::Corruption(where_ + ": chunk " + std::to_string(i) + " of model version " +
                                  std::to_string(version) + " is missing");
      }
      out->append(View(chunk.get()).Bin("data"));
    }
    if (static_cast<int64_t>(out->size()) != size) {
      return Status::Corruption(where_ + ": model version " + std::to_string(version) + " has " +
                                std::to_string(out->size()) + " bytes, expected " +
                                std::to_string(size));
    }
    return Status::Ok();
  }

  // ---- jobs

  static std::string ClaimKey(std::string_view kind, int64_t n) {
    return Key({kind, std::to_string(n)});
  }

  static JobInfo JobDocInfo(const View& v) {
    JobInfo j;
    j.id = v.I64("_id");
    j.kind = v.Str("kind");
    j.params = v.Str("params");
    j.created_ms = v.I64("created_ms");
    return j;
  }
  static void ApplyClaim(const View& claim, JobInfo* j) {
    j->state = JobState::kRunning;
    j->started_ms = claim.I64("started_ms");
    j->worker = claim.Str("worker");
    j->token = claim.I64("n");
    j->lease_until_ms = claim.I64("lease_until_ms");
  }
  static void ApplyFinish(const View& finish, JobInfo* j) {
    j->state = finish.Bool("ok") ? JobState::kSucceeded : JobState::kFailed;
    j->message = finish.Str("message");
    j->finished_ms = finish.I64("finished_ms");
  }

  // `filter` gets {field: {$in: [n values]}}, each appended by add(array, index key, n).
  template <typename Add>
  static void AppendIn(Bson* filter, const char* field, size_t n, const Add& add) {
    bson_t in, arr;
    bson_append_document_begin(filter->get(), field, -1, &in);
    bson_append_array_begin(&in, "$in", -1, &arr);
    for (size_t i = 0; i < n; ++i) {
      char buf[16];
      const char* key = nullptr;
      bson_uint32_to_string(static_cast<uint32_t>(i), &key, buf, sizeof buf);
      add(&arr, key, i);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(filter->get(), &in);
  }

  Status ReadById(mongoc_collection_t* coll, const std::string& id, Bson* out, bool* exists,
                  std::string_view what) const {
    Bson filter;
    filter.Str("_id", id);
    return FindOne(coll, filter, out, exists, what);
  }

  Status GreatestId(mongoc_collection_t* coll, std::string_view what, int64_t* out) const {
    Bson opts, sort, projection;
    sort.I64("_id", -1);
    projection.I64("_id", 1);
    opts.Doc("sort", sort).Doc("projection", projection).I64("limit", 1);
    *out = 0;
    return Find(coll, Bson(), opts, what, [&](const View& v) { *out = v.I64("_id"); });
  }

  // The kind's newest claim (greatest n), if any, and whether it has a finish.
  Status LatestClaim(const Colls& k, std::string_view kind, Bson* claim, bool* exists,
                     bool* finished) const {
    Bson filter, opts, sort;
    filter.Str("k", kind);
    sort.I64("n", -1);
    opts.Doc("sort", sort).I64("limit", 1);
    *exists = false;
    *finished = false;
    DUET_RETURN_IF_ERROR(Find(k.claims, filter, opts, "read the job claims", [&](const View& v) {
      bson_copy_to_excluding_noinit(v.raw(), claim->get(), "", nullptr);
      *exists = true;
    }));
    if (!*exists) return Status::Ok();
    Bson finish;
    return ReadById(k.finishes, View(claim->get()).Str("_id"), &finish, finished,
                    "read a job's finish");
  }

  Status ClaimOfJob(const Colls& k, int64_t id, Bson* claim, bool* exists) const {
    Bson filter;
    filter.I64("job", id);
    return FindOne(k.claims, filter, claim, exists, "read the job claims");
  }

  // Best effort: the hints are only for narrowing queries.
  void MarkJobClaimed(const Colls& k, int64_t id) const {
    Bson sel, update, set;
    sel.I64("_id", id);
    set.Bool("q", false);
    update.Doc("$set", set);
    (void)mongoc_collection_update_one(k.jobs, sel.get(), update.get(), nullptr, nullptr, nullptr);
  }
  void CloseClaim(const Colls& k, const std::string& key) const {
    Bson sel, update, set;
    sel.Str("_id", key);
    set.Bool("open", false);
    update.Doc("$set", set);
    (void)mongoc_collection_update_one(k.claims, sel.get(), update.get(), nullptr, nullptr,
                                       nullptr);
  }

  Result<JobInfo> GetJobWith(const Colls& k, int64_t id) const {
    Bson sel, doc;
    sel.I64("_id", id);
    bool exists = false;
    DUET_RETURN_IF_ERROR(FindOne(k.jobs, sel, &doc, &exists, "read a job"));
    if (!exists) return Status::NotFound(where_ + ": no job " + std::to_string(id));
    JobInfo j = JobDocInfo(View(doc.get()));
    Bson claim;
    bool claimed = false;
    DUET_RETURN_IF_ERROR(ClaimOfJob(k, id, &claim, &claimed));
    if (!claimed) return j;
    const View cv(claim.get());
    ApplyClaim(cv, &j);
    const std::string key = cv.Str("_id");
    Bson finish, log;
    bool finished = false, logged = false;
    DUET_RETURN_IF_ERROR(ReadById(k.finishes, key, &finish, &finished, "read a job's finish"));
    if (finished) ApplyFinish(View(finish.get()), &j);
    DUET_RETURN_IF_ERROR(ReadById(k.logs, key, &log, &logged, "read a job's log"));
    if (logged) j.log = View(log.get()).Bin("log");
    return j;
  }

  // The job of `kind` that is running, or else the oldest queued one, if any.
  Status PendingJobOfKind(const Colls& k, std::string_view kind,
                          std::optional<JobInfo>* out) const {
    Bson latest;
    bool exists = false, finished = false;
    DUET_RETURN_IF_ERROR(LatestClaim(k, kind, &latest, &exists, &finished));
    if (exists && !finished) {
      auto j = GetJobWith(k, View(latest.get()).I64("job"));
      if (!j.ok()) return j.status();
      *out = std::move(*j);
      return Status::Ok();
    }
    Bson filter, opts, sort;
    filter.Bool("q", true).Str("kind", kind);
    sort.I64("_id", 1);
    opts.Doc("sort", sort).I64("limit", kJobCandidates);
    std::vector<JobInfo> queued;
    DUET_RETURN_IF_ERROR(Find(k.jobs, filter, opts, "read the queued jobs",
                              [&](const View& v) { queued.push_back(JobDocInfo(v)); }));
    for (JobInfo& j : queued) {
      Bson claim;
      bool claimed = false;
      DUET_RETURN_IF_ERROR(ClaimOfJob(k, j.id, &claim, &claimed));
      if (!claimed) {
        *out = std::move(j);
        return Status::Ok();
      }
      MarkJobClaimed(k, j.id);
    }
    return Status::Ok();
  }

  // The claim `token` of job `id`: *key its _id, *finished whether it has a finish (then in
  // *finish). NotFound for no such job; Aborted when the token is not a claim of the job.
  Status ReadClaim(const Colls& k, int64_t id, int64_t token, std::string_view what,
                   std::string* key, Bson* finish, bool* finished) const {
    Bson sel, job;
    sel.I64("_id", id);
    bool exists = false;
    DUET_RETURN_IF_ERROR(FindOne(k.jobs, sel, &job, &exists, "read a job"));
    if (!exists) return Status::NotFound(where_ + ": no job " + std::to_string(id));
    *key = ClaimKey(View(job.get()).Str("kind"), token);
    Bson claim;
    bool claimed = false;
    if (token > 0) DUET_RETURN_IF_ERROR(ReadById(k.claims, *key, &claim, &claimed, "read a claim"));
    if (!claimed || View(claim.get()).I64("job") != id) {
      return Status::Aborted("job " + std::to_string(id) + ": cannot " + std::string(what) +
                             ": token " + std::to_string(token) + " is not its claim");
    }
    return ReadById(k.finishes, *key, finish, finished, "read a job's finish");
  }

  static Status JobNotRunning(int64_t id, const View& finish, std::string_view what) {
    return Status::Aborted("job " + std::to_string(id) + ": cannot " + std::string(what) +
                           ": it is " + (finish.Bool("ok") ? "succeeded" : "failed") + " (" +
                           finish.Str("message") + ")");
  }

  static std::map<std::string, int64_t> ReplaceMarks(const Bson& pointer, bool exists) {
    std::map<std::string, int64_t> marks;
    bson_iter_t it, child;
    if (!exists || !bson_iter_init_find(&it, pointer.get(), "replaced") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &child)) {
      return marks;
    }
    while (bson_iter_next(&child)) marks[bson_iter_key(&child)] = bson_iter_as_int64(&child);
    return marks;
  }

  // A version of a speed record, written by this writer:
  // {_id: {s, k, e, t}, s, k (hex), e, t, v} or, for a deletion, {..., del: true}.
  static void RecordDoc(const SpeedCheckpoint& cp, const std::string& token, const std::string& key,
                        const std::string* value, Bson* doc) {
    const std::string hex = Hex(key);
    doc->Str("_id", Key({cp.scope, hex, std::to_string(cp.epoch), token}))
        .Str("s", cp.scope)
        .Str("k", hex)
        .I64("e", cp.epoch)
        .Str("t", token);
    if (value != nullptr) {
      doc->Bin("v", *value);
    } else {
      doc->Bool("del", true);
    }
  }

  // The records of `scope` as of `epoch`: per key the newest valid version at or before it (a
  // version is valid when the history names its token for its epoch), unless that is a
  // deletion or older than a replacement of its prefix.
  Status ReadRecords(mongoc_collection_t* records, const Bson& pointer, const std::string& scope,
                     int64_t epoch, std::vector<std::pair<std::string, std::string>>* out) const {
    const std::map<std::string, int64_t> marks = ReplaceMarks(pointer, true);
    std::vector<std::pair<std::string, int64_t>> replaced;  // hex prefix, epoch
    for (const auto& [name, e] : marks) replaced.emplace_back(name.substr(1), e);
    const std::vector<std::pair<int64_t, std::string>> history = History(pointer, true);
    auto writer_of = [&](int64_t e) -> const std::string* {
      const std::string* w = nullptr;
      for (const auto& [from, token] : history) {
        if (from <= e) w = &token;
      }
      return w;
    };
    Bson filter, le;
    le.I64("$lte", epoch);
    filter.Str("s", scope).Doc("e", le);
    struct Version {
      int64_t epoch;
      bool deleted;
      std::string value;
    };
    std::map<std::string, Version> newest;  // by hex key
    DUET_RETURN_IF_ERROR(Find(records, filter, Bson(), "read speed records", [&](const View& v) {
      const int64_t e = v.I64("e");
      const std::string* writer = writer_of(e);
      if (writer == nullptr || *writer != v.Str("t")) return;  // an attempt that never flipped
      std::string k = v.Str("k");
      auto it = newest.find(k);
      if (it != newest.end() && it->second.epoch >= e) return;
      newest[std::move(k)] = Version{e, v.Bool("del"), v.Bin("v")};
    }));
    out->clear();
    for (auto& entry : newest) {
      const std::string& hex = entry.first;
      Version& version = entry.second;
      if (version.deleted) continue;
      const int64_t epoch_of_version = version.epoch;
      const bool dropped = std::any_of(replaced.begin(), replaced.end(), [&](const auto& r) {
        return hex.rfind(r.first, 0) == 0 && epoch_of_version < r.second;
      });
      if (dropped) continue;
      std::string key;
      if (!Unhex(hex, &key)) {
        return Status::Corruption(where_ + ": a speed record key of scope '" + scope +
                                  "' is not hex");
      }
      out->emplace_back(std::move(key), std::move(version.value));
    }
    return Status::Ok();
  }

  // Best effort; every step leaves what readers see unchanged.
  void CollectSpeedGarbage(const Colls& k, const SpeedCheckpoint& cp,
                           const std::string& token) const {
    Bson lt;
    lt.I64("$lt", cp.epoch);
    // Older versions of the keys this commit wrote, whoever wrote them: this commit's version
    // is newer. Then this commit's own tombstones, which have nothing left to hide — only once
    // the older versions are gone, or they would come back.
    auto hexes = [](const auto& keys, auto key_of) {
      std::vector<std::string> out;
      for (const auto& x : keys) out.push_back(Hex(key_of(x)));
      return out;
    };
    const std::vector<std::string> put =
        hexes(cp.put_records, [](const auto& kv) { return kv.first; });
    const std::vector<std::string> deleted =
        hexes(cp.delete_keys, [](const auto& key) { return key; });
    auto delete_in = [&](const std::vector<std::string>& keys, const Bson& epoch_cond,
                         bool tombstones) {
      bool ok = true;
      for (size_t at = 0; at < keys.size(); at += 10000) {
        Bson filter, in, list;
        for (size_t i = at; i < std::min(keys.size(), at + 10000); ++i) {
          list.Str(std::to_string(i - at).c_str(), keys[i]);
        }
        bson_append_array(in.get(), "$in", -1, list.get());
        filter.Str("s", cp.scope).Doc("k", in).Doc("e", epoch_cond);
        if (tombstones) filter.Bool("del", true).Str("t", token);
        ok = DeleteMany(k.records, filter, "drop superseded speed records").ok() && ok;
      }
      return ok;
    };
    (void)delete_in(put, lt, false);
    if (delete_in(deleted, lt, false)) {
      Bson at;
      at.I64("$eq", cp.epoch);
      (void)delete_in(deleted, at, true);
    }
    // Every older record under a prefix this commit replaced.
    if (cp.replace_records) {
      Bson filter;
      filter.Str("s", cp.scope).Doc("e", lt);
      if (!cp.replace_prefix.empty()) {
        Bson range;
        const std::string lo = Hex(cp.replace_prefix);
        std::string hi = lo;
        hi.push_back('g');  // after every hex digit: the end of the prefix's range
        range.Str("$gte", lo).Str("$lt", hi);
        filter.Doc("k", range);
      }
      (void)DeleteMany(k.records, filter, "drop replaced speed records");
    }
    // State before the previous epoch (that one is kept a moment for readers that followed the
    // previous pointer).
    Bson filter, before;
    before.I64("$lt", cp.epoch - 1);
    filter.Str("o", SpeedOwner(cp.scope)).Doc("e", before);
    (void)DeleteMany(k.blobs, filter, "drop old speed state");
  }

  Status PutBadRowsIn(mongoc_collection_t* coll, std::string_view layer, int64_t generation,
                      std::span<const core::BadRow> rows) const {
    if (rows.empty()) return Status::Ok();
    InsertOnce bulk(coll, where_, "write bad rows");
    for (const core::BadRow& r : rows) {
      Bson doc;
      doc.Str("_id", Key({layer, std::to_string(generation), r.source, std::to_string(r.offset)}))
          .Str("l", layer)
          .I64("g", generation)
          .Str("source", r.source)
          .I64("offset", static_cast<int64_t>(r.offset))
          .I64("line", static_cast<int64_t>(r.line))
          .I64("length", static_cast<int64_t>(r.length))
          .Bool("truncated", r.truncated)
          .Str("reason", beacon::ReasonName(r.reason))
          .Bin("payload", r.payload);
      DUET_RETURN_IF_ERROR(bulk.Add(doc));
    }
    return bulk.Finish();
  }

  // ---- batch views as documents {_id: {g, t, e, v, h}, g, t (table), e, v, h, figures...}

  static void PutFigures(Bson* doc, const core::FigureValues& f) {
    doc->I64("visitors", f.visitors)
        .I64("sessions", f.sessions)
        .I64("events", f.events)
        .I64("pageviews", f.pageviews)
        .I64("conversions", f.conversions)
        .I64("bounces", f.bounces)
        .I64("duration_ms", f.duration_ms)
        .I64("converted_visitors", f.converted_visitors)
        .I64("sessions_sq", f.sessions_sq)
        .I64("conversions_sq", f.conversions_sq)
        .I64("sessions_x_conversions", f.sessions_x_conversions)
        .I64("visitors_in_multiple_variants", f.visitors_in_multiple_variants)
        .F64("revenue", f.revenue)
        .F64("revenue_sq", f.revenue_sq);
  }

  static core::FigureValues GetFigures(const View& v) {
    core::FigureValues f;
    f.visitors = v.I64("visitors");
    f.sessions = v.I64("sessions");
    f.events = v.I64("events");
    f.pageviews = v.I64("pageviews");
    f.conversions = v.I64("conversions");
    f.bounces = v.I64("bounces");
    f.duration_ms = v.I64("duration_ms");
    f.converted_visitors = v.I64("converted_visitors");
    f.sessions_sq = v.I64("sessions_sq");
    f.conversions_sq = v.I64("conversions_sq");
    f.sessions_x_conversions = v.I64("sessions_x_conversions");
    f.visitors_in_multiple_variants = v.I64("visitors_in_multiple_variants");
    f.revenue = v.F64("revenue");
    f.revenue_sq = v.F64("revenue_sq");
    return f;
  }

  static void ViewRow(Bson* doc, int64_t g, std::string_view table, std::string_view e,
                      std::string_view var, int64_t h) {
    doc->Str("_id", Key({std::to_string(g), table, e, var, std::to_string(h)}))
        .I64("g", g)
        .Str("t", table)
        .Str("e", e)
        .Str("v", var)
        .I64("h", h);
  }

  Status WriteViews(mongoc_collection_t* coll, int64_t g, const core::Views& v) const {
    InsertOnce bulk(coll, where_, "write batch views");
    for (const auto* rows : {&v.totals, &v.hourly}) {
      const char* table = rows == &v.totals ? "total" : "hour";
      for (const core::FigureRow& r : *rows) {
        Bson doc;
        ViewRow(&doc, g, table, r.experiment, r.variant, r.hour);
        PutFigures(&doc, r.v);
        DUET_RETURN_IF_ERROR(bulk.Add(doc));
      }
    }
    for (const core::UniquesRow& r : v.uniques) {
      Bson doc;
      ViewRow(&doc, g, "uniques", r.experiment, r.variant, r.hour);
      doc.I64("uniques_1h", r.uniques_1h).I64("uniques_24h", r.uniques_24h);
      DUET_RETURN_IF_ERROR(bulk.Add(doc));
    }
    for (const core::ExperimentRow& r : v.experiments) {
      Bson doc;
      ViewRow(&doc, g, "experiment", r.experiment, "", 0);
      doc.I64("visitors_in_multiple_variants", r.visitors_in_multiple_variants);
      DUET_RETURN_IF_ERROR(bulk.Add(doc));
    }
    {
      // Reasons hold dots ("json.syntax"), which field names may not: an array of pairs.
      Bson doc, reasons;
      ViewRow(&doc, g, "input", "", "", 0);
      int i = 0;
      for (const auto& [reason, n] : v.input.bad_rows_by_reason) {
        Bson pair;
        pair.Str("reason", reason).I64("count", n);
        reasons.Doc(std::to_string(i++).c_str(), pair);
      }
      doc.I64("lines", v.input.lines)
          .I64("bad_rows", v.input.bad_rows)
          .I64("duplicates", v.input.duplicates)
          .I64("valid_beacons", v.input.valid_beacons)
          .I64("late_beacons", v.input.late_beacons)
          .I64("min_ts", v.min_ts)
          .I64("max_ts", v.max_ts)
          .I64("final_before_ms", v.final_before_ms);
      bson_append_array(doc.get(), "bad_rows_by_reason", -1, reasons.get());
      DUET_RETURN_IF_ERROR(bulk.Add(doc));
    }
    return bulk.Finish();
  }

  Status ReadViews(mongoc_collection_t* coll, int64_t g, core::Views* v) const {
    Bson filter;
    filter.I64("g", g);
    DUET_RETURN_IF_ERROR(Find(coll, filter, Bson(), "read batch views", [&](const View& dv) {
      const bson_t* d = dv.raw();
      const View r(d);
      const std::string table = r.Str("t");
      if (table == "total" || table == "hour") {
        (table == "total" ? v->totals : v->hourly)
            .push_back(core::FigureRow{r.Str("e"), r.Str("v"), r.I64("h"), GetFigures(r)});
      } else if (table == "uniques") {
        v->uniques.push_back(core::UniquesRow{r.Str("e"), r.Str("v"), r.I64("h"),
                                              r.I64("uniques_1h"), r.I64("uniques_24h")});
      } else if (table == "experiment") {
        v->experiments.push_back(
            core::ExperimentRow{r.Str("e"), r.I64("visitors_in_multiple_variants")});
      } else if (table == "input") {
        core::InputTotals& in = v->input;
        in.lines = r.I64("lines");
        in.bad_rows = r.I64("bad_rows");
        in.duplicates = r.I64("duplicates");
        in.valid_beacons = r.I64("valid_beacons");
        in.late_beacons = r.I64("late_beacons");
        v->min_ts = r.I64("min_ts");
        v->max_ts = r.I64("max_ts");
        v->final_before_ms = r.I64("final_before_ms");
        bson_iter_t it, child;
        if (bson_iter_init_find(&it, d, "bad_rows_by_reason") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &child)) {
          while (bson_iter_next(&child)) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&child)) continue;
            uint32_t len = 0;
            const uint8_t* data = nullptr;
            bson_iter_document(&child, &len, &data);
            bson_t pair;
            if (!bson_init_static(&pair, data, len)) continue;
            const View p(&pair);
            in.bad_rows_by_reason[p.Str("reason")] = p.I64("count");
          }
        }
      }
    }));
    // Rows in the Views order: by (experiment, variant[, hour]), bytewise.
    auto by_key = [](const auto& a, const auto& b) {
      return std::tie(a.experiment, a.variant, a.hour) < std::tie(b.experiment, b.variant, b.hour);
    };
    std::sort(v->totals.begin(), v->totals.end(), by_key);
    std::sort(v->hourly.begin(), v->hourly.end(), by_key);
    std::sort(v->uniques.begin(), v->uniques.end(), by_key);
    std::sort(v->experiments.begin(), v->experiments.end(),
              [](const auto& a, const auto& b) { return a.experiment < b.experiment; });
    return Status::Ok();
  }

  mongoc_uri_t* const uri_;
  mongoc_client_pool_t* const pool_;
  const std::string db_;
  const std::string where_;  // the URI without credentials, for messages
  // The identity of this store's batch-layer writes (random per opened store).
  const std::string token_ = NewToken();
  struct Tokens {
    std::string current;
    std::set<std::string> used;
  };
  mutable std::mutex tokens_mu_;
  mutable std::map<std::string, Tokens> tokens_;  // per speed scope
};

}  // namespace

void InitMongoDriver() {
  static std::once_flag init;
  std::call_once(init, [] {
    mongoc_init();
    // The driver's own messages: warnings and errors as JSON log lines, the rest dropped.
    mongoc_log_set_handler(
        [](mongoc_log_level_t level, const char* domain, const char* message, void*) {
          if (level > MONGOC_LOG_LEVEL_WARNING) return;
          // FerretDB has no sessions: the driver's goodbye "endSessions" fails harmlessly.
          if (std::strstr(message, "endSessions") != nullptr) return;
          Log(LogLevel::kWarn, "mongodb.log", {{"domain", domain}, {"message", message}});
        },
        nullptr);
  });
}

Status MongoStatus(const bson_error_t& e, const std::string& where, std::string_view what) {
  std::string msg = where + ": cannot " + std::string(what) + ": " + e.message;
  if (e.domain == MONGOC_ERROR_CLIENT && e.code == MONGOC_ERROR_CLIENT_AUTHENTICATE) {
    return Status::InvalidArgument(msg + " (check the user and password in the URI)");
  }
  if (e.domain == MONGOC_ERROR_SERVER && e.code == 18) {
    return Status::InvalidArgument(msg + " (authentication failed: check the URI)");
  }
  if (e.domain == MONGOC_ERROR_SERVER_SELECTION || e.domain == MONGOC_ERROR_STREAM ||
      (e.domain == MONGOC_ERROR_SERVER && TransientServerCode(e.code)) ||
      (e.domain == MONGOC_ERROR_WRITE_CONCERN && TransientServerCode(e.code))) {
    return Status::Unavailable(std::move(msg));
  }
  return Status::IoError(std::move(msg));
}

InsertOnce::~InsertOnce() {
  if (bulk_ != nullptr) mongoc_bulk_operation_destroy(bulk_);
}

Status InsertOnce::Add(const Bson& doc) {
  if (bulk_ == nullptr) {
    Bson opts;
    opts.Bool("ordered", false);
    bulk_ = mongoc_collection_create_bulk_operation_with_opts(coll_, opts.get());
  }
  bson_error_t e;
  if (!mongoc_bulk_operation_insert_with_opts(bulk_, doc.get(), nullptr, &e)) {
    return MongoStatus(e, where_, what_);
  }
  if (++queued_ >= 1000) return Finish();
  return Status::Ok();
}

Status InsertOnce::Finish() {
  if (bulk_ == nullptr) return Status::Ok();
  Bson reply;
  bson_error_t e;
  const bool ok = mongoc_bulk_operation_execute(bulk_, reply.get(), &e) != 0;
  mongoc_bulk_operation_destroy(bulk_);
  bulk_ = nullptr;
  const size_t sent = queued_;
  queued_ = 0;
  if (ok) return Status::Ok();
  // Success only if every queued document is either inserted now or a duplicate _id (written
  // before). The driver reports the first error of a multi-message bulk, which may be a
  // duplicate while a later message failed: counted, not trusted.
  bson_iter_t it, errors;
  bool only_duplicates = bson_iter_init_find(&it, reply.get(), "writeErrors") &&
                         BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &errors);
  int64_t duplicates = 0;
  while (only_duplicates && bson_iter_next(&errors)) {
    bson_iter_t code;
    if (!BSON_ITER_HOLDS_DOCUMENT(&errors) || !bson_iter_recurse(&errors, &code) ||
        !bson_iter_find(&code, "code") || bson_iter_as_int64(&code) != 11000) {
      only_duplicates = false;
    } else {
      ++duplicates;
    }
  }
  const int64_t inserted = View(reply.get()).I64("nInserted", -1);
  const bool any = duplicates > 0 && inserted + duplicates == static_cast<int64_t>(sent);
  bson_iter_t wc;
  if (bson_iter_init_find(&wc, reply.get(), "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&wc)) {
    uint32_t len = 0;
    const uint8_t* data = nullptr;
    bson_iter_array(&wc, &len, &data);
    if (len > 5) only_duplicates = false;  // a non-empty array
  }
  if (only_duplicates && any) return Status::Ok();
  return MongoStatus(e, where_, what_);
}

Result<mongoc_uri_t*> ParseMongoUri(const std::string& text, std::string* where) {
  bson_error_t e;
  mongoc_uri_t* uri = mongoc_uri_new_with_error(text.c_str(), &e);
  if (uri == nullptr) {
    return Status::InvalidArgument("'" + text + "' is not a MongoDB URI (" + e.message +
                                   "); expected mongodb://HOST:PORT/DB[?options]");
  }
  // Messages name the servers and database, never the password.
  const char* db = mongoc_uri_get_database(uri);
  *where = "mongodb://";
  for (const mongoc_host_list_t* h = mongoc_uri_get_hosts(uri); h != nullptr; h = h->next) {
    *where += std::string(h->host_and_port) + (h->next != nullptr ? "," : "");
  }
  *where += "/" + std::string(db != nullptr ? db : "");
  // Fail fast when no server answers (the driver's default is 30 s), unless the URI says.
  if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
  }
  if (!mongoc_uri_has_option(uri, MONGOC_URI_APPNAME)) {
    mongoc_uri_set_option_as_utf8(uri, MONGOC_URI_APPNAME, "duet");
  }
  return uri;
}

Result<std::unique_ptr<Store>> OpenMongoStore(const std::string& uri_text) {
  InitMongoDriver();
  std::string where;
  auto parsed = ParseMongoUri(uri_text, &where);
  if (!parsed.ok()) return parsed.status();
  mongoc_uri_t* uri = *parsed;
  const char* db = mongoc_uri_get_database(uri);
  if (db == nullptr || *db == '\0') {
    mongoc_uri_destroy(uri);
    return Status::InvalidArgument("--store: '" + where +
                                   "' names no database; expected mongodb://HOST:PORT/DB");
  }
  mongoc_client_pool_t* pool = mongoc_client_pool_new(uri);
  if (pool == nullptr) {
    mongoc_uri_destroy(uri);
    return Status::InvalidArgument("--store: cannot use '" + where + "' (unsupported options?)");
  }
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  auto store = std::make_unique<MongoStore>(uri, pool, db, where);
  DUET_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace duet::store
