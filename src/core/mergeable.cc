#include "core/mergeable.h"

#include <algorithm>
#include <string>
#include <tuple>

#include "beacon/beacon.h"

namespace duet::core {
namespace {

// Merged aggregators are only merged and finalized, never fed visitors: any gap works.
constexpr int64_t kUnusedGapMs = 0;
constexpr uint64_t kViewsStateVersion = 2;  // 2: live scores after the input accounting

Status Damaged(std::string_view what, std::string_view part) {
  return Status::Corruption(std::string(what) + ": damaged " + std::string(part));
}

}  // namespace

void SaveAggregatorState(const Catalog& catalog, const Aggregator& aggregator, ByteWriter* w) {
  catalog.Save(w);
  aggregator.Save(w);
}

void SaveViewsState(const InputTotals& input, int64_t final_before_ms, const Catalog& catalog,
                    const Aggregator& aggregator, ByteWriter* w, const LiveScores& live) {
  w->U64(kViewsStateVersion);
  w->I64(input.lines);
  w->I64(input.bad_rows);
  w->I64(input.duplicates);
  w->I64(input.valid_beacons);
  w->I64(input.late_beacons);
  w->U64(input.bad_rows_by_reason.size());
  for (const auto& [reason, n] : input.bad_rows_by_reason) {
    w->Str(reason);
    w->I64(n);
  }
  w->I64(final_before_ms);
  w->I64(live.model_version);
  w->I64(live.max_model_version);
  w->I64(live.as_of_ms);
  w->U64(live.rows.size());
  for (const LiveRow& row : live.rows) {
    w->Str(row.experiment);
    w->Str(row.variant);
    w->I64(row.sessions);
    w->F64(row.expected_conversions);
  }
  SaveAggregatorState(catalog, aggregator, w);
}

ViewsMerger::ViewsMerger() : merged_(&catalog_, kUnusedGapMs) {}

Status ViewsMerger::ReadInput(ByteReader* r, std::string_view what) {
  const uint64_t version = r->U64();
  if (version != 1 && version != kViewsStateVersion) {
    return Damaged(what, "views state (unknown version " + std::to_string(version) + ")");
  }
  input_.lines += r->I64();
  input_.bad_rows += r->I64();
  input_.duplicates += r->I64();
  input_.valid_beacons += r->I64();
  input_.late_beacons += r->I64();
  const uint64_t reasons = r->U64();
  if (!r->ok() || reasons > beacon::kReasonCount) return Damaged(what, "input accounting");
  for (uint64_t i = 0; i < reasons; ++i) {
    const std::string reason(r->Str());
    input_.bad_rows_by_reason[reason] += r->I64();
  }
  final_before_ms_ = std::min(final_before_ms_, r->I64());
  if (!r->ok()) return Damaged(what, "input accounting");
  if (version >= 2) {
    const int64_t model = r->I64();
    const int64_t max_model = r->I64();
    const int64_t as_of = r->I64();
    const uint64_t rows = r->U64();
    if (!r->ok() || rows > r->remaining()) return Damaged(what, "live scores");
    if (model != 0) {
      live_.model_version = live_.model_version == 0 ? model : std::min(live_.model_version, model);
      live_.max_model_version = std::max(live_.max_model_version, max_model);
      live_.as_of_ms = std::max(live_.as_of_ms, as_of);
    }
    for (uint64_t i = 0; i < rows; ++i) {
      LiveRow row;
      row.experiment = std::string(r->Str());
      row.variant = std::string(r->Str());
      row.sessions = r->I64();
      row.expected_conversions = r->F64();
      if (!r->ok()) return Damaged(what, "live scores");
      auto it = std::lower_bound(
          live_.rows.begin(), live_.rows.end(), row, [](const LiveRow& a, const LiveRow& b) {
            return std::tie(a.experiment, a.variant) < std::tie(b.experiment, b.variant);
          });
      if (it != live_.rows.end() && it->experiment == row.experiment &&
          it->variant == row.variant) {
        it->sessions += row.sessions;
        it->expected_conversions += row.expected_conversions;
      } else {
        live_.rows.insert(it, std::move(row));
      }
    }
  }
  any_input_ = true;
  return Status::Ok();
}

Status ViewsMerger::ReadFigures(ByteReader* r, std::string_view what) {
  Catalog side_catalog;
  if (!side_catalog.Load(r)) return Damaged(what, "catalog");
  Aggregator side(&side_catalog, kUnusedGapMs);
  if (!side.Load(r) || !r->at_end()) return Damaged(what, "aggregator state");
  merged_.MergeFrom(side, side_catalog, &catalog_);
  return Status::Ok();
}

Status ViewsMerger::AddFigures(std::string_view aggregator_state, std::string_view what) {
  ByteReader r(aggregator_state);
  return ReadFigures(&r, what);
}

Status ViewsMerger::AddViews(std::string_view views_state, std::string_view what) {
  ByteReader r(views_state);
  DUET_RETURN_IF_ERROR(ReadInput(&r, what));
  return ReadFigures(&r, what);
}

Status ViewsMerger::AddInput(std::string_view views_state, std::string_view what) {
  ByteReader r(views_state);
  return ReadInput(&r, what);
}

Views ViewsMerger::Finish() const {
  Views v = merged_.Finalize();
  v.input = input_;
  v.final_before_ms = any_input_ ? final_before_ms_ : 0;
  v.live = live_;
  return v;
}

}  // namespace duet::core
