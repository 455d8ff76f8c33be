// Mergeable views: a layer's figures in an exact form that sums across parts — the speed layer's
// per-partition scopes, the batch layer's prefix view and the speed layer's delta. Finalized
// Views cannot be summed exactly (revenue is a double; rates are ratios), so the parts keep their
// catalog and aggregator state (Aggregator::Save) and are merged with Aggregator::MergeFrom, which
// gives exactly what one Aggregator fed every visitor would: visitors must not be split across
// parts (Kafka partitions keyed by visitor guarantee this).
//
// Two encodings:
// - an aggregator state: Catalog::Save then Aggregator::Save;
// - a views state: input accounting (InputTotals and final_before_ms), live scores (version 2;
//   a version 1 state has none), then an aggregator state.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/aggregator.h"
#include "core/catalog.h"
#include "core/views.h"
#include "util/result.h"
#include "util/serial.h"

namespace duet::core {

// Appends an aggregator state.
void SaveAggregatorState(const Catalog& catalog, const Aggregator& aggregator, ByteWriter* w);

// Appends a views state.
void SaveViewsState(const InputTotals& input, int64_t final_before_ms, const Catalog& catalog,
                    const Aggregator& aggregator, ByteWriter* w,
                    const LiveScores& live = LiveScores{});

// Sums parts into one set of Views.
class ViewsMerger {
 public:
  ViewsMerger();

  // Adds an aggregator state's figures. Corruption naming `what` if it does not decode.
  Status AddFigures(std::string_view aggregator_state, std::string_view what);
  // Adds a views state: its figures and its input accounting (totals summed; final_before_ms is
  // the least over the parts, since an hour is final only when every part says so) and its live
  // scores (summed by name).
  Status AddViews(std::string_view views_state, std::string_view what);
  // Adds only a views state's input accounting (the figures come from elsewhere).
  Status AddInput(std::string_view views_state, std::string_view what);

  // The merged figures (rows sorted), with the summed input accounting.
  Views Finish() const;

 private:
  Status ReadInput(ByteReader* r, std::string_view what);
  Status ReadFigures(ByteReader* r, std::string_view what);

  Catalog catalog_;
  Aggregator merged_;
  InputTotals input_;
  LiveScores live_;
  int64_t final_before_ms_ = INT64_MAX;
  bool any_input_ = false;
};

}  // namespace duet::core
