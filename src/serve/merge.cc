#include "serve/merge.h"

#include "core/aggregator.h"
#include "core/catalog.h"
#include "util/serial.h"

namespace duet::serve {
namespace {

// Any gap works here: merged aggregators are only merged and finalized, never fed visitors.
constexpr int64_t kUnusedGapMs = 0;

Status MergeState(const std::string& state, core::Catalog* catalog, core::Aggregator* into,
                  const char* what) {
  ByteReader r(state);
  core::Catalog side_catalog;
  if (!side_catalog.Load(&r)) return Status::Corruption(std::string(what) + ": damaged catalog");
  core::Aggregator side(&side_catalog, kUnusedGapMs);
  if (!side.Load(&r) || !r.at_end()) {
    return Status::Corruption(std::string(what) + ": damaged aggregator state");
  }
  into->MergeFrom(side, side_catalog, catalog);
  return Status::Ok();
}

}  // namespace

Result<core::Views> MergeViews(const store::MergeInputs& in) {
  const bool batch = in.has_batch && !in.batch_prefix_state.empty();
  if (batch && in.has_speed && in.speed_boundary_ms != in.batch_boundary_ms) {
    return Status::Unavailable(
        "the speed layer has not yet applied the last batch run (its delta is against boundary " +
        std::to_string(in.speed_boundary_ms) + ", the batch boundary is " +
        std::to_string(in.batch_boundary_ms) + "); it will at its next micro-batch");
  }
  core::Catalog catalog;
  core::Aggregator merged(&catalog, kUnusedGapMs);
  if (batch)
    DUET_RETURN_IF_ERROR(MergeState(in.batch_prefix_state, &catalog, &merged, "batch prefix view"));
  if (in.has_speed) {
    DUET_RETURN_IF_ERROR(MergeState(in.speed_delta_state, &catalog, &merged, "speed delta"));
  }
  core::Views v = merged.Finalize();
  if (in.has_speed) v.input = in.speed_input;
  return v;
}

}  // namespace duet::serve
