// Aggregator: turns visitors' events into the figures of docs/beacon-contract.md. This is the one
// piece of business logic both layers call: the batch layer adds every visitor once; the speed
// layer retracts a visitor's previous contribution and adds the new one when its events change.
// Every figure is a sum of per-visitor contributions, so the result does not depend on the order
// visitors are added in, nor on how visitors are split across Aggregators that are later merged.
// Not thread-safe: one Aggregator per thread, merged at the end.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/catalog.h"
#include "core/event.h"
#include "core/views.h"
#include "util/exact_sum.h"
#include "util/flat_map.h"
#include "util/serial.h"

namespace duet::core {

class Aggregator {
 public:
  // `catalog` must outlive the Aggregator and hold every TagSetId passed in.
  Aggregator(const Catalog* catalog, int64_t session_gap_ms);

  // Adds (sign = +1) or retracts (sign = -1) everything one visitor contributes. `events` are
  // all of the visitor's valid, non-duplicate beacons, sorted by EventBefore.
  void AddVisitor(std::span<const Event> events, int sign = 1);

  // The same for a visitor given as summarized sessions (Summarize): equal to AddVisitor over
  // the events they were summarized from. Every attribution must be in the catalog.
  //
  // `settled` leaves out the session-level figures (sessions, events, pageviews, conversions,
  // bounces, duration, revenue of each key and hour) of the first `settled` sessions; their
  // visitor-level figures are still computed. For a caller that retracts a visitor and adds it
  // back with the same first sessions (the speed layer's complete sessions): those sessions'
  // own figures would be subtracted and added unchanged, so both calls may leave them out.
  void AddSessions(const SessionSpan& sessions, int sign = 1, size_t settled = 0);

  // Adds everything `other` holds; both must use the same catalog.
  void Merge(const Aggregator& other);

  // Adds everything `other` holds, where `other` uses `other_catalog`: keys and experiments are
  // matched by name and interned into `catalog`, which must be this Aggregator's catalog.
  void MergeFrom(const Aggregator& other, const Catalog& other_catalog, Catalog* catalog);

  // Exact encoding of everything added so far (for checkpoints). Load expects a fresh
  // Aggregator over a catalog restored from the same checkpoint; false on malformed input.
  void Save(ByteWriter* w) const;
  bool Load(ByteReader* r);

  // The figures with names resolved, rows sorted. Input totals are left empty (the caller owns
  // input accounting). min_ts/max_ts span the events added.
  Views Finalize() const;

 private:
  struct Acc {
    int64_t visitors = 0, sessions = 0, events = 0, pageviews = 0, conversions = 0, bounces = 0,
            duration_ms = 0, converted_visitors = 0, sessions_sq = 0, conversions_sq = 0,
            sessions_x_conversions = 0, multi = 0;
    ExactSum revenue;
    ExactSum revenue_sq;
    void Merge(const Acc& o);
    FigureValues Values() const;
    void Save(ByteWriter* w) const;
    bool Load(ByteReader* r);
  };
  // Per-visitor running figures of one key (or one key and hour).
  struct VisitorCell {
    uint64_t slot;  // key, or key << 32 | hour
    int64_t sessions;
    int64_t conversions;
    int64_t nvalues;
    double first_value;
    uint32_t sum;  // index into sums_ when nvalues >= 2
  };

  // One session as Contribute reads it: its keys, values and hours are ranges of the pools.
  struct SessionData {
    int64_t start_ts;
    int64_t end_ts;
    uint32_t events;
    uint32_t pageviews;
    uint32_t conversions;
    uint32_t keys_begin, keys_count;    // into keys_pool_ (the site key first)
    uint32_t values_begin;              // into values_pool_ (conversions entries)
    uint32_t hours_begin, hours_count;  // into hours_pool_
    bool settled;                       // skip the session-level figures (AddSessions)
  };
  // Adds or retracts the visitor whose sessions are in the pools.
  void Contribute(int sign);
  void ClearPools();

  Acc& Total(KeyId k);
  VisitorCell& Cell(std::vector<VisitorCell>* cells, uint64_t slot);
  void AddValue(VisitorCell* c, double v);
  double CellRevenue(const VisitorCell& c) const;
  void CloseCell(const VisitorCell& c, Acc* acc, int sign) const;

  const Catalog* const catalog_;
  const int64_t gap_ms_;
  std::vector<Acc> totals_;            // by KeyId
  FlatMap<Acc> hourly_;                // key << 32 | hour
  FlatMap<int64_t> uniques_1h_;        // key << 32 | hour -> visitors
  FlatMap<int64_t> uniques_24h_diff_;  // key << 32 | hour -> change in 24 h uniques
  std::vector<int64_t> multi_;         // by ExperimentId
  int64_t min_ts_ = INT64_MAX;
  int64_t max_ts_ = INT64_MIN;

  // Scratch reused across visitors (no allocation per visitor in steady state).
  std::vector<SessionBounds> sessions_;
  std::vector<SessionData> session_data_;
  std::vector<KeyTag> keys_pool_;
  std::vector<double> values_pool_;
  std::vector<int64_t> hours_pool_;
  std::vector<VisitorCell> key_cells_;
  std::vector<VisitorCell> hour_cells_;
  std::vector<uint64_t> active_;  // key << 32 | hour of each beacon
  std::vector<ExactSum> sums_;
  uint32_t sums_used_ = 0;
};

}  // namespace duet::core
