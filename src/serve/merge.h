// The serving merge: the batch layer's prefix view (sessions before its boundary) plus the speed
// layer's delta (everything after), merged exactly (docs/speed-layer.md, "serving merge").
#pragma once

#include "core/views.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::serve {

// Merged views from both sides. With only one layer present, that layer's figures. Unavailable
// when the speed layer's delta was computed against another batch boundary than the last batch
// run's (it catches up at its next micro-batch); Corruption for undecodable states. Input
// accounting is the speed layer's when it has run, else the batch layer's prefix carries none.
Result<core::Views> MergeViews(const store::MergeInputs& in);

}  // namespace duet::serve
