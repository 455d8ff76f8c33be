// Booster: a gradient-boosted binary classifier (XGBoost, through its C API from Debian's
// libxgboost-dev) — trained from a dense feature matrix, saved as bytes, loaded and used to
// predict. The building block of the conversion-propensity model (issue 7).
//
// Contract:
// - Features are float32, row-major, `features` columns per row; NaN means missing.
// - Training is deterministic for the same data, options and thread count (tree_method hist,
//   a fixed seed).
// - Save returns XGBoost's UBJSON model; Load accepts what Save returned (also from another
//   process or Python's xgboost: `Booster(model_file=...)` of the bytes written to a .ubj file).
// - Predict is thread-safe (XGBoost supports concurrent prediction on one booster since 1.4);
//   Train and Load return a new Booster, nothing mutates one after creation.
// - XGBoost's own errors come back as Status (InvalidArgument for bad input, Corruption for a
//   model that does not load), never as exceptions.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace duet::model {

struct TrainOptions {
  int rounds = 100;
  int max_depth = 6;
  double eta = 0.1;
  int threads = 2;
  uint64_t seed = 42;
};

// A labelled, dense data set.
struct Dataset {
  size_t features = 0;
  std::vector<float> x;  // rows × features, row-major
  std::vector<float> y;  // 0 or 1, one per row
  size_t rows() const { return y.size(); }
};

class Booster {
 public:
  ~Booster();
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;

  // InvalidArgument for an empty or inconsistent data set (x.size() != rows × features, labels
  // other than 0/1) or options out of range.
  static Result<std::unique_ptr<Booster>> Train(const Dataset& data, const TrainOptions& options);
  // Corruption when `bytes` is not a model XGBoost can load; InvalidArgument when it was not
  // trained on `features` columns. A loaded booster predicts on the calling thread only
  // (nthread 1): it serves requests, many at once.
  static Result<std::unique_ptr<Booster>> Load(std::string_view bytes, size_t features);

  Result<std::string> Save() const;
  // The model as XGBoost's JSON document (what Forest reads).
  Result<std::string> SaveJson() const;

  // Probabilities of the positive class, one per row of `x` (rows × features(), row-major).
  Status Predict(std::span<const float> x, std::vector<float>* out) const;

  size_t features() const { return features_; }

 private:
  Booster(void* handle, size_t features) : handle_(handle), features_(features) {}
  void* const handle_;  // BoosterHandle
  const size_t features_;
};

// The version of the XGBoost library loaded, "MAJOR.MINOR.PATCH".
std::string XgboostVersion();

}  // namespace duet::model
