#include "serve/merge.h"

#include <string>

#include "core/mergeable.h"

namespace duet::serve {

Result<core::Views> SpeedViews(const std::vector<store::SpeedScope>& scopes) {
  core::ViewsMerger merger;
  for (const store::SpeedScope& s : scopes) {
    DUET_RETURN_IF_ERROR(merger.AddViews(s.views_state, "speed views of scope '" + s.scope + "'"));
  }
  return merger.Finish();
}

Result<core::Views> MergeViews(const store::MergeInputs& in) {
  const bool batch = in.has_batch && !in.batch_prefix_state.empty();
  core::ViewsMerger merger;
  if (batch) DUET_RETURN_IF_ERROR(merger.AddFigures(in.batch_prefix_state, "batch prefix view"));
  for (const store::SpeedScope& s : in.speed) {
    if (batch && s.delta_boundary_ms != in.batch_boundary_ms) {
      return Status::Unavailable(
          "the speed layer has not yet applied the last batch run (the delta of scope '" + s.scope +
          "' is against boundary " + std::to_string(s.delta_boundary_ms) +
          ", the batch boundary is " + std::to_string(in.batch_boundary_ms) +
          "); it will at its next micro-batch");
    }
    const std::string what = "speed scope '" + s.scope + "'";
    // Before any batch run the delta is the scope's whole view.
    DUET_RETURN_IF_ERROR(merger.AddFigures(s.delta_state, what + " delta"));
    DUET_RETURN_IF_ERROR(merger.AddInput(s.views_state, what));
  }
  core::Views v = merger.Finish();
  v.final_before_ms = 0;  // merged hours are as final as the report says (no speed-only cut)
  return v;
}

}  // namespace duet::serve
