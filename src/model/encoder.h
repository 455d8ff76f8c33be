// FeatureEncoder: a model's feature columns and the encoding of one row — from a training
// example (the batch layer's sessions) or from a feature object (the predict API's JSON) — with
// one mapping, so that training and serving cannot disagree. The columns are
// core::kBaseFeatureNames in order, then one "experiment:NAME=VARIANT" indicator per variant of
// the model's vocabulary. The feature object is documented in docs/model.md.
#pragma once

#include <simdjson.h>

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/features.h"
#include "util/result.h"

namespace duet::model {

using VariantPair = std::pair<std::string, std::string>;  // (experiment, variant)

class FeatureEncoder {
 public:
  // InvalidArgument when `columns` do not start with the base features in order, or a later
  // column is not a distinct "experiment:NAME=VARIANT" (NAME and VARIANT non-empty).
  static Result<FeatureEncoder> Create(std::vector<std::string> columns);
  // The base columns and one indicator per pair of `variants` (sorted, duplicates removed).
  static FeatureEncoder ForVariants(std::vector<VariantPair> variants);

  size_t size() const { return columns_.size(); }
  const std::vector<std::string>& columns() const { return columns_; }

  // Writes size() values to `row`: the base features, then 1 for each column whose variant is
  // in `variants`, 0 for the others (pairs the model does not know are ignored).
  void EncodeExample(std::span<const float, core::kBaseFeatures> base,
                     std::span<const VariantPair> variants, float* row) const;

  // Encodes one feature object into `row` (size() values). beacons, hour_of_day and day_of_week
  // are required; absent (or null) counts and seconds_since_start are 0, an absent
  // hours_since_previous_session is missing (NaN: no earlier session), absent device, referrer
  // and experiments set their indicators to 0 — the values training sees for such sessions. On
  // invalid input returns InvalidArgument whose message names the field, the value and what
  // was expected ("hour_of_day: 24 is out of range; expected an integer from 0 to 23").
  Status EncodeJson(simdjson::dom::element object, float* row) const;

  // The column of (experiment, variant), or -1.
  int VariantColumn(std::string_view experiment, std::string_view variant) const;

 private:
  struct VariantColumnEntry {
    std::string experiment;
    std::string variant;
    size_t column;
  };
  FeatureEncoder() = default;
  std::vector<std::string> columns_;
  std::vector<VariantColumnEntry> variants_;  // sorted by (experiment, variant)
};

// The fields a feature object may have, in documentation order.
extern const std::array<std::string_view, 18> kFeatureObjectFields;

}  // namespace duet::model
