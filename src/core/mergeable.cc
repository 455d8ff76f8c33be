#include "core/mergeable.h"

#include <algorithm>
#include <string>

#include "beacon/beacon.h"

namespace duet::core {
namespace {

// Merged aggregators are only merged and finalized, never fed visitors: any gap works.
constexpr int64_t kUnusedGapMs = 0;
constexpr uint64_t kViewsStateVersion = 1;

Status Damaged(std::string_view what, std::string_view part) {
  return Status::Corruption(std::string(what) + ": damaged " + std::string(part));
}

}  // namespace

void SaveAggregatorState(const Catalog& catalog, const Aggregator& aggregator, ByteWriter* w) {
  catalog.Save(w);
  aggregator.Save(w);
}

void SaveViewsState(const InputTotals& input, int64_t final_before_ms, const Catalog& catalog,
                    const Aggregator& aggregator, ByteWriter* w) {
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
  SaveAggregatorState(catalog, aggregator, w);
}

ViewsMerger::ViewsMerger() : merged_(&catalog_, kUnusedGapMs) {}

Status ViewsMerger::ReadInput(ByteReader* r, std::string_view what) {
  if (r->U64() != kViewsStateVersion) return Damaged(what, "views state (unknown version)");
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
  return v;
}

}  // namespace duet::core
