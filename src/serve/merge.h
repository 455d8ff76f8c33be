// The serving merge: the batch layer's prefix view (sessions before its boundary) plus the speed
// layer's delta (everything after), merged exactly (docs/speed-layer.md, "serving merge"); and
// the speed layer's views, the merge of its scopes (one per Kafka partition of a consumer group,
// or one for a log read whole).
#pragma once

#include <vector>

#include "core/views.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::serve {

// The speed layer's views: every scope's figures and input accounting summed exactly (empty
// Views when there is no scope). Corruption for an undecodable state.
Result<core::Views> SpeedViews(const std::vector<store::SpeedScope>& scopes);

// Merged views from both sides. With only one layer present, that layer's figures. Unavailable
// when a scope's delta was computed against another batch boundary than the last batch run's
// (it catches up at its next micro-batch); Corruption for undecodable states. Input accounting
// is the speed layer's when it has run, else empty (the batch prefix carries none).
Result<core::Views> MergeViews(const store::MergeInputs& in);

}  // namespace duet::serve
