#include "speed/speed_layer.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "beacon/parser.h"
#include "core/aggregator.h"
#include "core/catalog.h"
#include "speed/id_set.h"
#include "util/hash.h"
#include "util/serial.h"

namespace duet::speed {
namespace {

constexpr std::string_view kMagic = "duet-speed-checkpoint";
constexpr uint64_t kFormatVersion = 2;
// Keys of the incremental records: a visitor's events, and the ids first seen in one epoch.
constexpr char kVisitorRecord = 'v';
constexpr char kIdsRecord = 'i';
constexpr char kFullRecord = 'f';  // every visitor and id at once (a full snapshot)

struct StoredEvent {
  int64_t ts;
  double value;
  core::TagSetId tags;
  uint32_t id_offset;  // into Visitor::ids
  uint8_t id_len;
  beacon::BeaconType type;
};

struct Visitor {
  int64_t last_ts = 0;
  bool dirty = false;
  std::vector<StoredEvent> events;
  std::string ids;  // the events' id bytes
  std::string_view Id(const StoredEvent& e) const { return {ids.data() + e.id_offset, e.id_len}; }
};

}  // namespace

class SpeedLayer::Impl {
 public:
  Impl(log::Log* log, store::Store* store, const SpeedOptions& o)
      : log_(log),
        store_(store),
        options_(o),
        aggregator_(&catalog_, o.session_gap_ms),
        delta_(std::make_unique<core::Aggregator>(&catalog_, o.session_gap_ms)) {}

  Status Recover() {
    auto cp = store_->LoadSpeedCheckpoint();
    if (!cp.ok()) return cp.status();
    if (!cp->has_value()) {
      views_ = aggregator_.Finalize();
      return Status::Ok();  // the first Step reads the batch boundary
    }
    const store::SpeedCheckpoint& c = **cp;
    std::string state;
    DUET_RETURN_IF_ERROR(Decompress(c.state, &state));
    DUET_RETURN_IF_ERROR(Decode(state));
    // Sorted, the full snapshot ('f') comes before id records ('i') and visitor records ('v'),
    // which are newer and replace what it says of a visitor.
    std::vector<std::pair<std::string, std::string>> records = c.records;
    std::sort(records.begin(), records.end());
    for (const auto& [key, value] : records) {
      if (key.size() == 1 && key[0] == kFullRecord) {
        DUET_RETURN_IF_ERROR(DecodeFull(value));
      } else if (!key.empty() && key[0] == kVisitorRecord) {
        DUET_RETURN_IF_ERROR(DecodeVisitor(key, value));
      } else if (!key.empty() && key[0] == kIdsRecord) {
        DUET_RETURN_IF_ERROR(DecodeIds(value));
      } else {
        return Corrupt();
      }
    }
    // A snapshot may still hold visitors forgotten since (their deletion removed only their own
    // record): forget them again, exactly as the running process did.
    const int64_t horizon = watermark_ - options_.ttl_ms;
    std::erase_if(visitors_, [horizon](const auto& kv) { return kv.second.last_ts < horizon; });
    epoch_ = c.epoch;
    DUET_RETURN_IF_ERROR(log_->Seek(c.positions));
    views_ = BuildViews();
    // The delta is derived state: rebuilt against the boundary it was committed with, so that
    // the first Step notices a batch run that happened since and commits the new delta.
    RebuildDelta(c.delta_boundary_ms);
    return Status::Ok();
  }

  Result<MicroBatchStats> Step(bool final) {
    MicroBatchStats st;
    bool boundary_moved = false;
    DUET_RETURN_IF_ERROR(RefreshBoundary(&boundary_moved));
    DUET_RETURN_IF_ERROR(log_->Poll(options_.max_batch_lines, final, &records_));
    if (records_.empty() && !boundary_moved) {
      st.watermark_ms = watermark_;
      return st;
    }
    bad_.clear();
    dirty_.clear();
    new_ids_.clear();
    checkpoint_.put_records.clear();
    checkpoint_.delete_keys.clear();
    const int64_t watermark = watermark_;  // fixed for the whole micro-batch
    beacon::Beacon b;
    beacon::BadReason reason;
    for (const log::LogRecord& r : records_) {
      ++st.lines;
      // The file log guarantees 64 readable bytes after each line (log/file_log.h).
      if (r.truncated || !parser_.Parse(r.bytes, true, &b, &reason)) {
        if (r.truncated) reason = beacon::BadReason::kLineTooLong;
        ++bad_by_reason_[static_cast<size_t>(reason)];
        ++st.bad_rows;
        bad_.push_back(core::BadRow{reason, std::string(r.source), r.line, r.offset, r.full_length,
                                    r.truncated, std::string(r.bytes)});
        continue;
      }
      const Hash128 id_key = HashBytes(b.id);
      if (!seen_ids_.InsertHash(id_key, b.ts.value())) {
        ++st.duplicates;
        continue;
      }
      new_ids_.emplace_back(id_key, b.ts.value());
      if (b.ts.value() < watermark) {
        ++st.late;
        continue;
      }
      ++st.applied;
      const Hash128 visitor_key = HashBytes(b.visitor);
      Visitor& v = visitors_[visitor_key];
      if (!v.dirty) {
        // Retract what the visitor contributed so far; it is added back with its new events.
        if (!v.events.empty()) {
          Contribute(v, -1);
        }
        v.dirty = true;
        dirty_.emplace_back(visitor_key, &v);
      }
      v.events.push_back(StoredEvent{b.ts.value(), b.value, catalog_.InternTagSet(b.experiments),
                                     static_cast<uint32_t>(v.ids.size()),
                                     static_cast<uint8_t>(b.id.size()), b.type});
      v.ids.append(b.id);
      v.last_ts = std::max(v.last_ts, b.ts.value());
      max_ts_ = std::max(max_ts_, b.ts.value());
    }
    for (const auto& touched : dirty_) {
      Visitor* v = touched.second;
      std::sort(v->events.begin(), v->events.end(),
                [v](const StoredEvent& x, const StoredEvent& y) {
                  if (x.ts != y.ts) return x.ts < y.ts;
                  return v->Id(x) < v->Id(y);
                });
      Contribute(*v, +1);
      v->dirty = false;
    }
    st.visitors_touched = dirty_.size();
    lines_ += st.lines;
    duplicates_ += st.duplicates;
    applied_ += st.applied;
    late_ += st.late;
    if (max_ts_ != INT64_MIN) watermark_ = std::max(watermark_, max_ts_ - options_.lateness_ms);
    checkpoint_.epoch = epoch_ + 1;
    // When a micro-batch touched a large share of the visitors (catching up), one compressed
    // snapshot of everything is cheaper than a record per visitor; otherwise (live), only the
    // touched visitors and the new ids are written.
    const bool full = dirty_.size() * 4 >= visitors_.size();
    checkpoint_.replace_records = full;
    st.full_snapshot = full;
    // Touched visitors are encoded before Expire, which may forget some of them at once; the
    // store applies deletions after puts.
    if (!full) {
      for (const auto& [key, v] : dirty_) {
        checkpoint_.put_records.emplace_back(VisitorKey(key), EncodeVisitor(*v));
      }
    }
    dirty_.clear();
    st.visitors_expired = Expire();
    if (full) {
      ByteWriter w;
      w.U64(visitors_.size());
      for (const auto& [key, v] : visitors_) {
        w.Str(VisitorKey(key));
        w.Str(EncodeVisitor(v));
      }
      w.U64(seen_ids_.size());
      seen_ids_.ForEach([&w](const Hash128& id, int64_t ts) { WriteId(&w, id, ts); });
      std::string packed;
      DUET_RETURN_IF_ERROR(Compress(w.buffer(), &packed));
      checkpoint_.put_records.emplace_back(std::string(1, kFullRecord), std::move(packed));
      id_chunks_.clear();
      new_ids_.clear();
    }
    if (!new_ids_.empty()) {
      ByteWriter w;
      w.U64(new_ids_.size());
      int64_t newest = INT64_MIN;
      for (const auto& [id, ts] : new_ids_) {
        WriteId(&w, id, ts);
        newest = std::max(newest, ts);
      }
      checkpoint_.put_records.emplace_back(IdsKey(checkpoint_.epoch), std::move(w.buffer()));
      id_chunks_.emplace_back(checkpoint_.epoch, newest);
    }

    views_ = BuildViews();
    // The encode and compress buffers are reused: fresh ones cost a page fault per 4 KiB.
    encoded_.buffer().clear();
    Encode(&encoded_);
    st.state_bytes = encoded_.buffer().size();
    for (const auto& [k, v] : checkpoint_.put_records) st.state_bytes += k.size() + v.size();
    DUET_RETURN_IF_ERROR(Compress(encoded_.buffer(), &checkpoint_.state));
    checkpoint_.positions = log_->Positions();
    delta_encoded_.buffer().clear();
    catalog_.Save(&delta_encoded_);
    (boundary_ == INT64_MIN ? aggregator_ : *delta_).Save(&delta_encoded_);
    checkpoint_.delta_state = delta_encoded_.buffer();
    checkpoint_.delta_boundary_ms = boundary_;
    DUET_RETURN_IF_ERROR(store_->CommitSpeed(views_, bad_, checkpoint_));
    epoch_ = checkpoint_.epoch;
    st.epoch = epoch_;
    st.watermark_ms = watermark_;
    st.visitors_active = visitors_.size();
    for (const auto& [k, v] : visitors_) st.events_held += v.events.size();
    return st;
  }

  const core::Views& views() const { return views_; }

 private:
  void Events(const Visitor& v) {
    scratch_.clear();
    for (const StoredEvent& e : v.events) {
      scratch_.push_back(core::Event{e.ts, v.Id(e), e.value, e.tags, e.type});
    }
  }

  // Adds (+1) or retracts (-1) the visitor's contribution to the views and to the merge delta,
  // building its event list once for both.
  void Contribute(const Visitor& v, int sign) {
    Events(v);
    aggregator_.AddVisitor(scratch_, sign);
    if (InDelta(v)) DeltaFromScratch(sign);
  }

  // The visitor's part of the merge delta: everything minus its sessions that are complete at
  // the batch boundary (which the batch layer's prefix view already holds). Zero for a visitor
  // whose sessions are all complete.
  bool InDelta(const Visitor& v) const {
    // Before any batch run the delta is the whole speed view: the main aggregator stands in.
    if (boundary_ == INT64_MIN) return false;
    return !v.events.empty() && v.last_ts + options_.session_gap_ms >= boundary_;
  }

  void AddToDelta(const Visitor& v, int sign) {
    if (!InDelta(v)) return;
    Events(v);
    DeltaFromScratch(sign);
  }

  // The delta part of the visitor whose events are in scratch_.
  void DeltaFromScratch(int sign) {
    const size_t k = core::SessionPrefixEnd(scratch_, options_.session_gap_ms, boundary_);
    if (k == scratch_.size()) return;
    delta_->AddVisitor(scratch_, sign);
    if (k > 0) delta_->AddVisitor(std::span<const core::Event>(scratch_).first(k), -sign);
  }

  // Reads the last batch run's boundary; when it moved, rebuilds the delta over the retained
  // visitors (forgotten visitors have no session after a recent boundary, so contribute zero).
  Status RefreshBoundary(bool* moved) {
    auto b = store_->BatchBoundary();
    if (!b.ok()) return b.status();
    *moved = *b != boundary_;
    if (*moved) RebuildDelta(*b);
    return Status::Ok();
  }

  void RebuildDelta(int64_t boundary) {
    boundary_ = boundary;
    delta_ = std::make_unique<core::Aggregator>(&catalog_, options_.session_gap_ms);
    for (const auto& [key, v] : visitors_) AddToDelta(v, +1);
  }

  // Forgets visitors and ids older than the TTL behind the watermark. Returns visitors dropped.
  uint64_t Expire() {
    const int64_t horizon = watermark_ - options_.ttl_ms;
    uint64_t n = 0;
    for (auto it = visitors_.begin(); it != visitors_.end();) {
      if (it->second.last_ts < horizon) {
        checkpoint_.delete_keys.push_back(VisitorKey(it->first));
        it = visitors_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    seen_ids_.ExpireBefore(horizon);
    // An epoch's id record goes once its newest id has expired.
    std::erase_if(id_chunks_, [&](const std::pair<int64_t, int64_t>& c) {
      if (c.second >= horizon) return false;
      checkpoint_.delete_keys.push_back(IdsKey(c.first));
      return true;
    });
    return n;
  }

  core::Views BuildViews() const {
    core::Views v = aggregator_.Finalize();
    v.final_before_ms = watermark_ == INT64_MIN ? 0 : watermark_ - options_.session_gap_ms;
    core::InputTotals& in = v.input;
    in.lines = static_cast<int64_t>(lines_);
    in.duplicates = static_cast<int64_t>(duplicates_);
    in.valid_beacons = static_cast<int64_t>(applied_);
    in.late_beacons = static_cast<int64_t>(late_);
    for (size_t r = 0; r < bad_by_reason_.size(); ++r) {
      if (bad_by_reason_[r] == 0) continue;
      in.bad_rows += static_cast<int64_t>(bad_by_reason_[r]);
      in.bad_rows_by_reason[std::string(beacon::ReasonName(static_cast<beacon::BadReason>(r)))] =
          static_cast<int64_t>(bad_by_reason_[r]);
    }
    return v;
  }

  // ---- checkpoint encoding

  void Encode(ByteWriter* w) const {
    w->Str(kMagic);
    w->U64(kFormatVersion);
    w->I64(options_.session_gap_ms);
    w->I64(options_.lateness_ms);
    w->I64(options_.ttl_ms);
    w->U64(lines_);
    w->U64(duplicates_);
    w->U64(applied_);
    w->U64(late_);
    w->U64(bad_by_reason_.size());
    for (const uint64_t n : bad_by_reason_) w->U64(n);
    w->I64(max_ts_);
    w->I64(watermark_);
    catalog_.Save(w);
    aggregator_.Save(w);
    w->U64(id_chunks_.size());
    for (const auto& [epoch, newest] : id_chunks_) {
      w->I64(epoch);
      w->I64(newest);
    }
  }

  static std::string VisitorKey(const Hash128& k) {
    std::string key(1, kVisitorRecord);
    key.append(reinterpret_cast<const char*>(&k.lo), 8);
    key.append(reinterpret_cast<const char*>(&k.hi), 8);
    return key;
  }

  static std::string IdsKey(int64_t epoch) {
    std::string key(1, kIdsRecord);
    for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(epoch >> shift));
    return key;
  }

  std::string EncodeVisitor(const Visitor& v) const {
    ByteWriter w;
    w.I64(v.last_ts);
    w.U64(v.events.size());
    for (const StoredEvent& e : v.events) {
      w.I64(e.ts);
      w.F64(e.value);
      w.U64(e.tags);
      w.U64(static_cast<uint64_t>(e.type));
      w.Str(v.Id(e));
    }
    return std::move(w.buffer());
  }

  Status DecodeFull(const std::string& packed) {
    std::string bytes;
    DUET_RETURN_IF_ERROR(Decompress(packed, &bytes));
    ByteReader r(bytes);
    const uint64_t nv = r.U64();
    for (uint64_t i = 0; r.ok() && i < nv; ++i) {
      const std::string_view key = r.Str();
      DUET_RETURN_IF_ERROR(DecodeVisitor(key, r.Str()));
    }
    ReadIdList(&r);
    return r.ok() && r.at_end() ? Status::Ok() : Corrupt();
  }

  // An id list is a count, then (hash lo, hash hi, ts) per id. Ids the TTL has passed are skipped.
  static void WriteId(ByteWriter* w, const Hash128& id, int64_t ts) {
    w->U64(id.lo);
    w->U64(id.hi);
    w->I64(ts);
  }

  void ReadIdList(ByteReader* r) {
    const int64_t horizon = watermark_ - options_.ttl_ms;
    const uint64_t n = r->U64();
    for (uint64_t i = 0; r->ok() && i < n; ++i) {
      Hash128 id;
      id.lo = r->U64();
      id.hi = r->U64();
      const int64_t ts = r->I64();
      if (ts >= horizon) seen_ids_.InsertHash(id, ts);
    }
  }

  Status DecodeVisitor(std::string_view key, std::string_view value) {
    if (key.size() != 17) return Corrupt();
    Hash128 k;
    std::memcpy(&k.lo, key.data() + 1, 8);
    std::memcpy(&k.hi, key.data() + 9, 8);
    ByteReader r(value);
    Visitor& v = visitors_[k];
    v = Visitor();  // a newer record replaces what the snapshot said
    v.last_ts = r.I64();
    const uint64_t ne = r.U64();
    for (uint64_t i = 0; r.ok() && i < ne; ++i) {
      StoredEvent e{};
      e.ts = r.I64();
      e.value = r.F64();
      e.tags = static_cast<core::TagSetId>(r.U64());
      e.type = static_cast<beacon::BeaconType>(r.U64());
      const std::string_view id = r.Str();
      if (e.tags >= catalog_.tag_set_count() || id.size() > beacon::kMaxIdBytes) return Corrupt();
      e.id_offset = static_cast<uint32_t>(v.ids.size());
      e.id_len = static_cast<uint8_t>(id.size());
      v.ids.append(id);
      v.events.push_back(e);
    }
    return r.ok() && r.at_end() ? Status::Ok() : Corrupt();
  }

  Status DecodeIds(std::string_view value) {
    ByteReader r(value);
    ReadIdList(&r);
    return r.ok() && r.at_end() ? Status::Ok() : Corrupt();
  }

  Status Decode(std::string_view bytes) {
    ByteReader r(bytes);
    if (r.Str() != kMagic)
      return Status::Corruption("speed checkpoint: not a Duet speed checkpoint");
    const uint64_t version = r.U64();
    if (version != kFormatVersion) {
      return Status::InvalidArgument("speed checkpoint: format version " + std::to_string(version) +
                                     " is not supported by this build (expected " +
                                     std::to_string(kFormatVersion) + ")");
    }
    const int64_t gap = r.I64(), lateness = r.I64(), ttl = r.I64();
    if (gap != options_.session_gap_ms || lateness != options_.lateness_ms ||
        ttl != options_.ttl_ms) {
      return Status::InvalidArgument(
          "speed checkpoint was written with --session-gap " + std::to_string(gap) +
          "ms --lateness " + std::to_string(lateness) + "ms --ttl " + std::to_string(ttl) +
          "ms; this process has " + std::to_string(options_.session_gap_ms) + "ms/" +
          std::to_string(options_.lateness_ms) + "ms/" + std::to_string(options_.ttl_ms) +
          "ms. Use the same settings, or start from an empty store.");
    }
    lines_ = r.U64();
    duplicates_ = r.U64();
    applied_ = r.U64();
    late_ = r.U64();
    if (r.U64() != bad_by_reason_.size()) return Corrupt();
    for (uint64_t& n : bad_by_reason_) n = r.U64();
    max_ts_ = r.I64();
    watermark_ = r.I64();
    if (!catalog_.Load(&r) || !aggregator_.Load(&r)) return Corrupt();
    const uint64_t chunks = r.U64();
    for (uint64_t i = 0; r.ok() && i < chunks; ++i) {
      const int64_t epoch = r.I64();
      id_chunks_.emplace_back(epoch, r.I64());
    }
    if (!r.ok() || !r.at_end()) return Corrupt();
    return Status::Ok();
  }

  static Status Corrupt() {
    return Status::Corruption("speed checkpoint: damaged or truncated state");
  }

  static Status Compress(const std::string& in, std::string* out) {
    out->resize(std::max(out->capacity(), ZSTD_compressBound(in.size())));
    const size_t n = ZSTD_compress(out->data(), out->size(), in.data(), in.size(), 1);
    if (ZSTD_isError(n)) return Status::IoError(std::string("zstd: ") + ZSTD_getErrorName(n));
    out->resize(n);
    return Status::Ok();
  }

  static Status Decompress(const std::string& in, std::string* out) {
    const unsigned long long n = ZSTD_getFrameContentSize(in.data(), in.size());
    if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN) return Corrupt();
    out->resize(n);
    const size_t got = ZSTD_decompress(out->data(), out->size(), in.data(), in.size());
    if (ZSTD_isError(got) || got != n) return Corrupt();
    return Status::Ok();
  }

  log::Log* const log_;
  store::Store* const store_;
  const SpeedOptions options_;
  core::Catalog catalog_;
  core::Aggregator aggregator_;
  beacon::Parser parser_;
  std::unordered_map<Hash128, Visitor, Hash128Hasher> visitors_;
  IdSet seen_ids_;  // ids applied, late or duplicated, until the TTL passes
  std::array<uint64_t, beacon::kReasonCount> bad_by_reason_{};
  uint64_t lines_ = 0, duplicates_ = 0, applied_ = 0, late_ = 0;
  int64_t max_ts_ = INT64_MIN;
  int64_t watermark_ = INT64_MIN;
  int64_t epoch_ = 0;
  core::Views views_;
  // Scratch reused across micro-batches.
  std::vector<log::LogRecord> records_;
  std::vector<core::BadRow> bad_;
  std::vector<std::pair<Hash128, Visitor*>> dirty_;
  std::vector<std::pair<Hash128, int64_t>> new_ids_;    // ids first seen in this batch
  std::vector<std::pair<int64_t, int64_t>> id_chunks_;  // (epoch, newest ts) of id records
  std::vector<core::Event> scratch_;
  ByteWriter encoded_;
  ByteWriter delta_encoded_;
  store::SpeedCheckpoint checkpoint_;
  // The serving merge's delta and the batch boundary it is computed against.
  std::unique_ptr<core::Aggregator> delta_;
  int64_t boundary_ = INT64_MIN;
};

SpeedLayer::SpeedLayer(log::Log* log, store::Store* store, const SpeedOptions& options)
    : impl_(std::make_unique<Impl>(log, store, options)) {}
SpeedLayer::~SpeedLayer() = default;
Status SpeedLayer::Recover() { return impl_->Recover(); }
Result<MicroBatchStats> SpeedLayer::Step(bool final) { return impl_->Step(final); }
const core::Views& SpeedLayer::views() const { return impl_->views(); }

}  // namespace duet::speed
