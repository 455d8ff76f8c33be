// Forest: a trained XGBoost model (gbtree, binary:logistic, numerical splits) evaluated natively
// for serving — the same probabilities as XGBoost's predictor, bit for bit, without its per-call
// overhead (the in-place predict API parses two JSON configs and builds a proxy matrix on every
// call: ~22 µs for one row, against ~1 µs here; bench/micro_bench.cc).
//
// Contract:
// - FromBooster reads the model through XGBoost's JSON dump and then checks itself against
//   XGBoost on rows built from the model's own split thresholds (each feature just below, at and
//   above a threshold, or missing): NotSupported when the model has anything it does not
//   evaluate (another objective or booster, categorical splits, several targets) or when any
//   check row differs. A caller then keeps using XGBoost.
// - Predict is thread-safe and allocation-free apart from the output vector.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/booster.h"
#include "util/result.h"

namespace duet::model {

class Forest {
 public:
  static Result<Forest> FromBooster(const Booster& booster);

  // Probabilities, one per row of `x` (rows × features(), row-major, NaN = missing).
  void Predict(std::span<const float> x, std::vector<float>* out) const;
  float PredictRow(const float* row) const;

  size_t features() const { return features_; }
  size_t trees() const { return roots_.size(); }
  // The rows FromBooster compared with XGBoost.
  size_t checked_rows() const { return checked_rows_; }

 private:
  struct Node {
    int32_t left;  // -1 for a leaf
    int32_t right;
    uint32_t feature;
    bool default_left;
    float value;  // the split threshold, or the leaf's value
  };
  Forest() = default;
  size_t features_ = 0;
  float base_margin_ = 0;
  std::vector<Node> nodes_;
  std::vector<uint32_t> roots_;
  size_t checked_rows_ = 0;
};

}  // namespace duet::model
