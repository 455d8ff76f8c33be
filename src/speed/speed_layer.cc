#include "speed/speed_layer.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "beacon/parser.h"
#include "core/aggregator.h"
#include "core/catalog.h"
#include "core/features.h"
#include "core/mergeable.h"
#include "speed/id_set.h"
#include "speed/visitor_state.h"
#include "util/hash.h"
#include "util/serial.h"

namespace duet::speed {
namespace {

constexpr std::string_view kMagic = "duet-speed-checkpoint";
// 3: visitors kept as summarized sessions plus open events (visitor_state.h); ids only in
// per-epoch records.
constexpr uint64_t kFormatVersion = 3;
// Keys of the incremental records: a visitor's state, and the ids first seen in one epoch.
constexpr char kVisitorRecord = 'v';
constexpr char kIdsRecord = 'i';
constexpr char kFullRecord = 'f';  // every visitor at once (a full snapshot)
// VisitorTable::Entry::mark: this bit says the state holds events of sessions that can still
// grow; the other bits are 1 + the visitor's index in dirty_ during a micro-batch, else 0.
constexpr uint32_t kOpenBit = 1u << 31;

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
    auto cp = store_->LoadSpeedCheckpoint(options_.scope);
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
    const int64_t horizon = TtlHorizon();
    visitors_.EraseIf([horizon](const VisitorTable::Entry& e) { return e.last_ts < horizon; });
    epoch_ = c.epoch;
    DUET_RETURN_IF_ERROR(log_->Seek(c.positions));
    core::LiveScores live;
    if (options_.model) {
      if (const std::shared_ptr<const model::LoadedModel> m = options_.model()) {
        DUET_RETURN_IF_ERROR(Score(*m, &live));
      }
    }
    views_ = BuildViews();
    views_.live = live;
    // The delta is derived state: rebuilt against the boundary it was committed with, so that
    // the first Step notices a batch run that happened since and commits the new delta.
    return RebuildDelta(c.delta_boundary_ms);
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
    pending_.clear();
    pending_ids_.clear();
    new_ids_.clear();
    checkpoint_.put_records.clear();
    checkpoint_.delete_keys.clear();
    const int64_t watermark = watermark_;  // fixed for the whole micro-batch
    id_horizon_ = TtlHorizon();
    // Two stages, kLag lines apart: parse a line and prefetch the id and visitor slots it will
    // need, then (kLag lines later, when they have arrived) dedup and apply it. Lines go through
    // the second stage in log order.
    size_t ring_head = 0;
    size_t ring_size = 0;
    // As of this micro-batch's Poll: which streams exist and which are caught up.
    const std::vector<log::Log::SourceState> sources = log_->Sources();
    const bool per_source = !sources.empty();
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
      if (ring_size == kLag) {
        Apply(ring_[ring_head], watermark, &st);
        ring_head = (ring_head + 1) % kLag;
        --ring_size;
      }
      Staged& x = ring_[(ring_head + ring_size++) % kLag];
      x.source = per_source ? SourceIndex(r.source) : 0;
      x.id_key = HashBytes(b.id);
      x.visitor_key = HashBytes(b.visitor);
      x.pending = Pending{0,
                          static_cast<uint32_t>(pending_ids_.size()),
                          static_cast<uint32_t>(b.id.size()),
                          b.type,
                          core::BeaconContext(b),
                          catalog_.InternTagSet(b.experiments),
                          b.ts.value(),
                          b.value};
      pending_ids_.append(b.id);
      seen_ids_.Prefetch(x.id_key);
      visitors_.Prefetch(x.visitor_key);
    }
    for (; ring_size > 0; --ring_size, ring_head = (ring_head + 1) % kLag) {
      Apply(ring_[ring_head], watermark, &st);
    }
    lines_ += st.lines;
    duplicates_ += st.duplicates;
    applied_ += st.applied;
    late_ += st.late;
    AdvanceWatermark(sources);

    // Each touched visitor's new events, grouped (a counting sort by visitor), then applied:
    // retract the old contribution, add the new one, fold sessions the new watermark completed.
    uint32_t at = 0;
    for (Dirty& d : dirty_) {
      d.first = at;
      at += d.count;
      d.count = 0;
    }
    grouped_.resize(pending_.size());
    for (const Pending& p : pending_) {
      Dirty& d = dirty_[p.visitor];
      grouped_[d.first + d.count++] =
          OpenEvent{p.ts,
                    p.value,
                    p.tags,
                    p.type,
                    std::string_view(pending_ids_).substr(p.id_offset, p.id_size),
                    p.context};
    }
    for (const Dirty& d : dirty_) {
      VisitorTable::Entry* e = visitors_.Find(d.key);
      DUET_RETURN_IF_ERROR(UpdateVisitor(
          e, d.old_last_ts, std::span<const OpenEvent>(grouped_).subspan(d.first, d.count)));
      e->mark &= kOpenBit;
    }
    st.visitors_touched = dirty_.size();
    DUET_RETURN_IF_ERROR(FoldCompleteSessions());

    checkpoint_.epoch = epoch_ + 1;
    checkpoint_.lease = options_.lease;
    checkpoint_.lease_token = options_.lease_token != nullptr ? options_.lease_token->load() : 0;
    // When a micro-batch touched a large share of the visitors (catching up), one compressed
    // snapshot of every visitor is cheaper than a record per visitor; otherwise (live), only the
    // touched visitors are written. Ids are always written once, as this epoch's id record.
    const bool full = dirty_.size() * 4 >= visitors_.size();
    checkpoint_.replace_records = full;
    checkpoint_.replace_prefix.assign(1, kVisitorRecord);
    st.full_snapshot = full;
    // Touched visitors are encoded before Expire, which may forget some of them at once; the
    // store applies deletions after puts.
    if (!full) {
      for (const Dirty& d : dirty_) {
        const VisitorTable::Entry* e = visitors_.Find(d.key);
        ByteWriter w;
        w.I64(e->last_ts);
        std::string value = std::move(w.buffer());
        value.append(VisitorTable::State(*e));
        checkpoint_.put_records.emplace_back(VisitorKey(d.key), std::move(value));
      }
    }
    st.visitors_expired = Expire();
    if (full) {
      snapshot_.buffer().clear();
      snapshot_.U64(visitors_.size());
      visitors_.ForEach([this](const VisitorTable::Entry& e) {
        snapshot_.Str(std::string_view(reinterpret_cast<const char*>(&e.key), sizeof(e.key)));
        snapshot_.I64(e.last_ts);
        snapshot_.Str(VisitorTable::State(e));
      });
      std::string packed;
      DUET_RETURN_IF_ERROR(Compress(snapshot_.buffer(), &packed));
      checkpoint_.put_records.emplace_back(std::string(1, kFullRecord), std::move(packed));
    }
    if (!new_ids_.empty()) {
      ByteWriter w;
      WriteIds(&w, new_ids_);
      int64_t newest = INT64_MIN;
      for (const auto& [id, ts] : new_ids_) newest = std::max(newest, ts);
      checkpoint_.put_records.emplace_back(IdsKey(checkpoint_.epoch), std::move(w.buffer()));
      id_chunks_.emplace_back(checkpoint_.epoch, newest);
    }

    core::LiveScores live;
    if (options_.model) {
      if (const std::shared_ptr<const model::LoadedModel> m = options_.model()) {
        DUET_RETURN_IF_ERROR(Score(*m, &live));
      }
    }
    views_ = BuildViews();
    views_.live = live;
    // The encode and compress buffers are reused: fresh ones cost a page fault per 4 KiB.
    encoded_.buffer().clear();
    Encode(&encoded_);
    st.state_bytes = encoded_.buffer().size();
    for (const auto& [k, v] : checkpoint_.put_records) st.state_bytes += k.size() + v.size();
    DUET_RETURN_IF_ERROR(Compress(encoded_.buffer(), &checkpoint_.state));
    checkpoint_.positions = log_->Positions();
    checkpoint_.scope = options_.scope;
    delta_encoded_.buffer().clear();
    core::SaveViewsState(views_.input, views_.final_before_ms, catalog_, aggregator_,
                         &delta_encoded_, live);
    checkpoint_.views_state = delta_encoded_.buffer();
    delta_encoded_.buffer().clear();
    core::SaveAggregatorState(catalog_, boundary_ == INT64_MIN ? aggregator_ : *delta_,
                              &delta_encoded_);
    checkpoint_.delta_state = delta_encoded_.buffer();
    checkpoint_.delta_boundary_ms = boundary_;
    if (options_.bad_row_sink != nullptr && !bad_.empty()) {
      DUET_RETURN_IF_ERROR(options_.bad_row_sink->Put(bad_));
    }
    DUET_RETURN_IF_ERROR(store_->CommitSpeed(bad_, checkpoint_));
    epoch_ = checkpoint_.epoch;
    st.epoch = epoch_;
    st.watermark_ms = watermark_;
    st.visitors_active = visitors_.size();
    st.visitor_state_bytes = visitors_.MemoryBytes();
    st.ids_held = seen_ids_.size();
    st.id_state_bytes = seen_ids_.MemoryBytes();
    return st;
  }

  const core::Views& views() const { return views_; }
  int64_t epoch() const { return epoch_; }

 private:
  struct Dirty {
    Hash128 key;
    int64_t old_last_ts;  // decides whether its old contribution is in the delta
    uint32_t first;       // its events in grouped_
    uint32_t count;
  };
  struct Pending {
    uint32_t visitor;  // index in dirty_
    uint32_t id_offset;
    uint32_t id_size;
    beacon::BeaconType type;
    uint8_t context;
    core::TagSetId tags;
    int64_t ts;
    double value;
  };

  // The watermark: the greatest applied ts minus the lateness — for a log of independent
  // streams (Kafka partitions), the least over the streams that are not caught up of their
  // greatest valid ts (a stream with no valid beacon yet holds it back entirely), so that one
  // partition read ahead of another does not make the other's beacons late. Never moves back.
  void AdvanceWatermark(const std::vector<log::Log::SourceState>& sources) {
    int64_t newest = max_ts_;
    if (!sources.empty()) {
      int64_t least = INT64_MAX;
      for (const log::Log::SourceState& s : sources) {
        if (s.caught_up) continue;
        const auto it = std::find(source_names_.begin(), source_names_.end(), s.name);
        least = std::min(least, it == source_names_.end()
                                    ? INT64_MIN
                                    : source_max_[static_cast<size_t>(it - source_names_.begin())]);
      }
      if (least != INT64_MAX) newest = least;
    }
    if (newest != INT64_MIN) watermark_ = std::max(watermark_, newest - options_.lateness_ms);
  }

  uint32_t SourceIndex(std::string_view name) {
    if (last_source_ < source_names_.size() && source_names_[last_source_] == name) {
      return last_source_;
    }
    const auto it = std::find(source_names_.begin(), source_names_.end(), name);
    if (it != source_names_.end()) {
      last_source_ = static_cast<uint32_t>(it - source_names_.begin());
    } else {
      last_source_ = static_cast<uint32_t>(source_names_.size());
      source_names_.emplace_back(name);
      source_max_.push_back(INT64_MIN);
    }
    return last_source_;
  }

  // Visitors and ids older than this are forgotten. INT64_MIN while there is no watermark yet
  // (a Kafka partition with nothing applied holds it back) — never an overflowed subtraction.
  int64_t TtlHorizon() const {
    return watermark_ == INT64_MIN ? INT64_MIN : watermark_ - options_.ttl_ms;
  }

  // A parsed valid line waiting for its second stage.
  struct Staged {
    uint32_t source;  // SourceIndex, for a log of independent streams; else 0
    Hash128 id_key;
    Hash128 visitor_key;
    Pending pending;  // visitor not yet set
  };
  static constexpr size_t kLag = 16;

  // Dedup by id, then either late (counted) or applied: queued for the visitor's update.
  void Apply(const Staged& x, int64_t watermark, MicroBatchStats* st) {
    const int64_t ts = x.pending.ts;
    // A stream's progress counts every valid beacon, so that one sending only duplicates does
    // not hold the watermark back (a duplicate's or late beacon's ts is old: it cannot push it).
    if (x.source < source_max_.size()) source_max_[x.source] = std::max(source_max_[x.source], ts);
    if (!seen_ids_.InsertHash(x.id_key, ts, id_horizon_)) {
      ++st->duplicates;
      return;
    }
    new_ids_.emplace_back(x.id_key, ts);
    if (ts < watermark) {
      ++st->late;
      return;
    }
    ++st->applied;
    bool inserted = false;
    VisitorTable::Entry* e = visitors_.Insert(x.visitor_key, &inserted);
    uint32_t d = e->mark & ~kOpenBit;
    if (d == 0) {
      // The visitor's previous contribution is retracted, and the new one added, once all of
      // this micro-batch's events are in (UpdateVisitor).
      dirty_.push_back(Dirty{x.visitor_key, e->last_ts, 0, 0});
      d = static_cast<uint32_t>(dirty_.size());
      e->mark |= d;
    }
    ++dirty_[d - 1].count;
    pending_.push_back(x.pending);
    pending_.back().visitor = d - 1;
    e->last_ts = std::max(e->last_ts, ts);
    max_ts_ = std::max(max_ts_, ts);
  }

  // Decodes the entry's state into done_ and open_.
  Status Load(const VisitorTable::Entry& e) {
    if (e.state_size == 0) {  // a visitor new in this micro-batch
      done_.Clear();
      open_.clear();
      return Status::Ok();
    }
    if (!DecodeVisitorState(VisitorTable::State(e), catalog_.tag_set_count(), &done_, &open_)) {
      return Status::Corruption("speed layer: a visitor's state does not decode");
    }
    return Status::Ok();
  }

  // full_ = done_ followed by the sessions of open_ (sorted).
  void BuildFull() {
    full_.Clear();
    full_.Append(done_.View());
    events_.clear();
    for (const OpenEvent& o : open_) {
      events_.push_back(core::Event{o.ts, o.id, o.value, o.tags, o.type, o.context});
    }
    core::Summarize(events_, options_.session_gap_ms, &catalog_, &full_);
  }

  // Writes full_ back into the entry: the sessions complete at the watermark summarized, the
  // events of the others kept (open_ must hold them, sorted, as BuildFull saw them).
  void Store(VisitorTable::Entry* e) {
    const size_t k = core::SessionPrefixEnd(std::span<const core::Session>(full_.sessions),
                                            options_.session_gap_ms, watermark_);
    size_t folded_events = 0;
    for (size_t i = done_.sessions.size(); i < k; ++i) folded_events += full_.sessions[i].events;
    state_.buffer().clear();
    EncodeVisitorState(full_.View().First(k),
                       std::span<const OpenEvent>(open_).subspan(folded_events), watermark_,
                       &state_);
    VisitorTable::SetState(e, state_.buffer());
    e->mark = (e->mark & ~kOpenBit) | (folded_events < open_.size() ? kOpenBit : 0);
  }

  Status UpdateVisitor(VisitorTable::Entry* e, int64_t old_last_ts,
                       std::span<const OpenEvent> fresh) {
    DUET_RETURN_IF_ERROR(Load(*e));
    // The complete sessions (done_) are the same before and after: their session-level figures
    // stay in the aggregator; only the visitor-level ones are recomputed.
    const size_t settled = done_.sessions.size();
    if (!done_.sessions.empty() || !open_.empty()) {
      BuildFull();
      aggregator_.AddSessions(full_.View(), -1, settled);
      if (InDelta(old_last_ts)) DeltaFrom(full_.View(), -1);
    }
    // Stored events keep their stored order (their ids may be gone: EncodeVisitorState); the
    // new ones, all at or above the watermark, are sorted and merged in.
    fresh_.assign(fresh.begin(), fresh.end());
    std::sort(fresh_.begin(), fresh_.end(), OpenEventBefore);
    merged_.clear();
    std::merge(open_.begin(), open_.end(), fresh_.begin(), fresh_.end(),
               std::back_inserter(merged_), OpenEventBefore);
    open_.swap(merged_);
    BuildFull();
    aggregator_.AddSessions(full_.View(), +1, settled);
    if (InDelta(e->last_ts)) DeltaFrom(full_.View(), +1);
    Store(e);
    return Status::Ok();
  }

  // Live scoring: the probability that each session in progress converts, summed per key of
  // its attribution. A session is in progress when it can still grow (not complete at the
  // watermark) and has no conversion yet; its features are computed exactly as for training
  // (core::SessionFeatures over its beacons so far, the visitor's earlier sessions as history).
  Status Score(const model::LoadedModel& m, core::LiveScores* live) {
    if (m.info.version != scored_version_) {
      scored_version_ = m.info.version;
      tag_columns_.clear();
    }
    const size_t width = m.encoder.size();
    score_rows_.clear();
    score_keys_.clear();
    const int64_t gap = options_.session_gap_ms;
    Status status = Status::Ok();
    visitors_.ForEach([&](const VisitorTable::Entry& e) {
      if (!status.ok() || (e.mark & kOpenBit) == 0 || e.last_ts + gap < watermark_) return;
      status = Load(e);
      if (!status.ok()) return;
      BuildFull();
      if (full_.sessions.empty() || events_.empty()) return;
      const core::Session& s = full_.sessions.back();
      if (s.conversions > 0 || s.end_ts + gap < watermark_ || s.events > events_.size()) return;
      core::SessionHistory history;
      for (size_t i = 0; i + 1 < full_.sessions.size(); ++i) {
        history.Add(full_.sessions[i].end_ts, full_.sessions[i].conversions > 0);
      }
      const std::span<const core::Event> session =
          std::span<const core::Event>(events_).last(s.events);
      const size_t at = score_rows_.size();
      score_rows_.resize(at + width, 0.0F);
      core::SessionFeatures(session, history, &score_rows_[at]);
      for (const int c : TagColumns(m.encoder, session.front().tags)) score_rows_[at + c] = 1.0F;
      score_keys_.push_back(s.attribution);
    });
    DUET_RETURN_IF_ERROR(status);
    live->model_version = m.info.version;
    live->max_model_version = m.info.version;
    live->as_of_ms = max_ts_ == INT64_MIN ? 0 : max_ts_;
    if (score_keys_.empty()) return Status::Ok();
    DUET_RETURN_IF_ERROR(m.Predict(score_rows_, &score_out_));
    // Summed per key id first (the site key and each key of a session's attribution), names
    // resolved once per key that has sessions.
    key_sums_.assign(catalog_.key_count(), KeySum{});
    for (size_t i = 0; i < score_keys_.size(); ++i) {
      const double p = score_out_[i];
      key_sums_[core::kSiteKey].Add(p);
      for (const core::KeyTag& k : catalog_.Tags(score_keys_[i])) key_sums_[k.key].Add(p);
    }
    for (core::KeyId k = 0; k < key_sums_.size(); ++k) {
      if (key_sums_[k].sessions == 0) continue;
      core::LiveRow& row = live->rows.emplace_back();
      if (k != core::kSiteKey) {
        row.experiment = catalog_.ExperimentName(catalog_.KeyExperiment(k));
        row.variant = catalog_.KeyVariant(k);
      }
      row.sessions = key_sums_[k].sessions;
      row.expected_conversions = key_sums_[k].expected;
    }
    std::sort(live->rows.begin(), live->rows.end(), [](const auto& a, const auto& b) {
      return std::tie(a.experiment, a.variant) < std::tie(b.experiment, b.variant);
    });
    return Status::Ok();
  }

  // The model's variant columns of a tag set (cached per model version).
  const std::vector<int>& TagColumns(const model::FeatureEncoder& encoder, core::TagSetId tags) {
    if (tag_columns_.size() <= tags) tag_columns_.resize(catalog_.tag_set_count());
    std::optional<std::vector<int>>& cols = tag_columns_[tags];
    if (!cols) {
      cols.emplace();
      for (const beacon::ExperimentTag& t : catalog_.TagSetNames(tags)) {
        if (const int c = encoder.VariantColumn(t.experiment, t.variant); c >= 0) {
          cols->push_back(c);
        }
      }
    }
    return *cols;
  }

  // Summarizes the sessions the watermark has completed in visitors that were not touched
  // (their contribution does not change; their state shrinks).
  Status FoldCompleteSessions() {
    Status status = Status::Ok();
    const int64_t gap = options_.session_gap_ms;
    visitors_.ForEach([&](VisitorTable::Entry& e) {
      if (!status.ok() || (e.mark & kOpenBit) == 0 || e.last_ts + gap >= watermark_) return;
      status = Load(e);
      if (!status.ok()) return;
      BuildFull();
      Store(&e);
    });
    return status;
  }

  // The visitor's part of the merge delta: everything minus its sessions that are complete at
  // the batch boundary (which the batch layer's prefix view already holds). Zero for a visitor
  // whose sessions are all complete.
  bool InDelta(int64_t last_ts) const {
    // Before any batch run the delta is the whole speed view: the main aggregator stands in.
    if (boundary_ == INT64_MIN) return false;
    return last_ts != INT64_MIN && last_ts + options_.session_gap_ms >= boundary_;
  }

  void DeltaFrom(const core::SessionSpan& sessions, int sign) {
    const size_t k = core::SessionPrefixEnd(sessions.sessions, options_.session_gap_ms, boundary_);
    if (k == sessions.sessions.size()) return;
    delta_->AddSessions(sessions, sign);
    if (k > 0) delta_->AddSessions(sessions.First(k), -sign);
  }

  // Reads the last batch run's boundary; when it moved, rebuilds the delta over the retained
  // visitors (forgotten visitors have no session after a recent boundary, so contribute zero).
  Status RefreshBoundary(bool* moved) {
    auto b = store_->BatchBoundary();
    if (!b.ok()) return b.status();
    *moved = *b != boundary_;
    if (*moved) return RebuildDelta(*b);
    return Status::Ok();
  }

  Status RebuildDelta(int64_t boundary) {
    boundary_ = boundary;
    delta_ = std::make_unique<core::Aggregator>(&catalog_, options_.session_gap_ms);
    Status status = Status::Ok();
    visitors_.ForEach([&](const VisitorTable::Entry& e) {
      if (!status.ok() || !InDelta(e.last_ts)) return;
      status = Load(e);
      if (!status.ok()) return;
      BuildFull();
      DeltaFrom(full_.View(), +1);
    });
    return status;
  }

  // Forgets visitors and ids older than the TTL behind the watermark. Returns visitors dropped.
  uint64_t Expire() {
    const int64_t horizon = TtlHorizon();
    const uint64_t n = visitors_.EraseIf([&](const VisitorTable::Entry& e) {
      if (e.last_ts >= horizon) return false;
      checkpoint_.delete_keys.push_back(VisitorKey(e.key));
      return true;
    });
    // Ids below the horizon count as absent from now on (InsertHash); they are removed from
    // memory when the table would otherwise have to grow.
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
    w->U64(source_names_.size());
    for (size_t i = 0; i < source_names_.size(); ++i) {
      w->Str(source_names_[i]);
      w->I64(source_max_[i]);
    }
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

  // A snapshot: the number of visitors, then per visitor its key, last_ts and state.
  Status DecodeFull(const std::string& packed) {
    std::string bytes;
    DUET_RETURN_IF_ERROR(Decompress(packed, &bytes));
    ByteReader r(bytes);
    const uint64_t nv = r.U64();
    for (uint64_t i = 0; r.ok() && i < nv; ++i) {
      const std::string_view key = r.Str();
      const int64_t last_ts = r.I64();
      const std::string_view state = r.Str();
      if (!r.ok() || key.size() != sizeof(Hash128)) return Corrupt();
      Hash128 k;
      std::memcpy(&k, key.data(), sizeof(k));
      DUET_RETURN_IF_ERROR(PutVisitor(k, last_ts, state));
    }
    return r.ok() && r.at_end() ? Status::Ok() : Corrupt();
  }

  // An id record is a count, then per id its hash (two fixed 64-bit words: random bits, which a
  // varint would lengthen) and its ts as the difference to the previous id's (arrival order is
  // nearly ts order, so this is short). Ids the TTL has passed are skipped on reading.
  static void WriteIds(ByteWriter* w, std::span<const std::pair<Hash128, int64_t>> ids) {
    w->U64(ids.size());
    int64_t prev = 0;
    for (const auto& [id, ts] : ids) {
      w->Fixed64(id.lo);
      w->Fixed64(id.hi);
      w->I64(ts - prev);
      prev = ts;
    }
  }

  void ReadIdList(ByteReader* r) {
    const int64_t horizon = TtlHorizon();
    const uint64_t n = r->U64();
    int64_t ts = 0;
    for (uint64_t i = 0; r->ok() && i < n; ++i) {
      Hash128 id;
      id.lo = r->Fixed64();
      id.hi = r->Fixed64();
      ts += r->I64();
      if (ts >= horizon) seen_ids_.InsertHash(id, ts, horizon);
    }
  }

  // A visitor record: its last_ts, then its state.
  Status DecodeVisitor(std::string_view key, std::string_view value) {
    if (key.size() != 17) return Corrupt();
    Hash128 k;
    std::memcpy(&k.lo, key.data() + 1, 8);
    std::memcpy(&k.hi, key.data() + 9, 8);
    ByteReader r(value);
    const int64_t last_ts = r.I64();
    if (!r.ok()) return Corrupt();
    return PutVisitor(k, last_ts, value.substr(value.size() - r.remaining()));
  }

  // Replaces what the table holds of visitor `k` (a newer record replaces the snapshot's).
  Status PutVisitor(const Hash128& k, int64_t last_ts, std::string_view state) {
    if (!DecodeVisitorState(state, catalog_.tag_set_count(), &done_, &open_)) return Corrupt();
    bool inserted = false;
    VisitorTable::Entry* e = visitors_.Insert(k, &inserted);
    e->last_ts = last_ts;
    VisitorTable::SetState(e, state);
    e->mark = open_.empty() ? 0 : kOpenBit;
    return Status::Ok();
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
    if (version > kFormatVersion) {
      return Status::FailedPrecondition(
          "speed checkpoint: format version " + std::to_string(version) +
          " was written by a newer Duet; this build reads version " +
          std::to_string(kFormatVersion) +
          " only. Run the newer version (a rollback needs an empty store: the speed layer then "
          "replays the log; docs/operations.md, Upgrades)");
    }
    if (version != kFormatVersion) {
      return Status::FailedPrecondition(
          "speed checkpoint: format version " + std::to_string(version) +
          " was written by an older Duet that this build no longer reads; this build reads "
          "version " +
          std::to_string(kFormatVersion) +
          " only. Finish with the older version, or start this one on an empty store (the speed "
          "layer then replays the log; docs/operations.md, Upgrades)");
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
    const uint64_t nsources = r.U64();
    if (!r.ok() || nsources > bytes.size()) return Corrupt();
    for (uint64_t i = 0; i < nsources; ++i) {
      source_names_.emplace_back(r.Str());
      source_max_.push_back(r.I64());
    }
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
  VisitorTable visitors_;
  IdSet seen_ids_;  // ids applied, late or duplicated, until the TTL passes
  std::array<uint64_t, beacon::kReasonCount> bad_by_reason_{};
  uint64_t lines_ = 0, duplicates_ = 0, applied_ = 0, late_ = 0;
  int64_t max_ts_ = INT64_MIN;
  int64_t watermark_ = INT64_MIN;
  int64_t epoch_ = 0;
  int64_t id_horizon_ = INT64_MIN;  // ids with a ts below are forgotten (watermark - TTL)
  // Per stream of a log of independent streams: its name and greatest applied ts.
  std::vector<std::string> source_names_;
  std::vector<int64_t> source_max_;
  uint32_t last_source_ = 0;
  core::Views views_;
  // Scratch reused across micro-batches.
  std::vector<log::LogRecord> records_;
  std::vector<core::BadRow> bad_;
  std::array<Staged, kLag> ring_;
  std::vector<Dirty> dirty_;
  std::vector<Pending> pending_;
  std::string pending_ids_;         // the id bytes of pending_
  std::vector<OpenEvent> grouped_;  // pending_ grouped by visitor
  core::SessionList done_;          // one visitor's complete sessions (Load)
  std::vector<OpenEvent> open_;     // one visitor's other events (Load)
  std::vector<OpenEvent> fresh_;    // a visitor's events of this micro-batch, sorted
  std::vector<OpenEvent> merged_;
  core::SessionList full_;           // done_ and the sessions of open_ (BuildFull)
  std::vector<core::Event> events_;  // open_ as core::Events
  // Live scoring scratch, and the variant columns of each tag set for the scored model version.
  int64_t scored_version_ = 0;
  std::vector<std::optional<std::vector<int>>> tag_columns_;
  std::vector<float> score_rows_;
  std::vector<float> score_out_;
  std::vector<core::TagSetId> score_keys_;
  struct KeySum {
    int64_t sessions = 0;
    double expected = 0;
    void Add(double p) {
      ++sessions;
      expected += p;
    }
  };
  std::vector<KeySum> key_sums_;
  ByteWriter state_;  // one visitor's encoded state (Store)
  ByteWriter snapshot_;
  std::vector<std::pair<Hash128, int64_t>> new_ids_;    // ids first seen in this batch
  std::vector<std::pair<int64_t, int64_t>> id_chunks_;  // (epoch, newest ts) of id records
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
int64_t SpeedLayer::epoch() const { return impl_->epoch(); }

}  // namespace duet::speed
