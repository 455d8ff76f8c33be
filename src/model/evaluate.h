// Evaluation of predicted probabilities against 0/1 labels, for a model's holdout metrics:
// ROC AUC (ties between scores count one half: the Mann–Whitney statistic), mean log-loss and a
// calibration table (predicted vs observed rate per probability bin).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace duet::model {

struct CalibrationBin {
  double low = 0;  // predictions in [low, high) (the last bin includes 1)
  double high = 0;
  int64_t count = 0;
  double mean_predicted = 0;  // NaN when count is 0
  double observed_rate = 0;   // NaN when count is 0
};

struct Evaluation {
  int64_t rows = 0;
  int64_t positives = 0;
  double auc = 0;       // NaN without both classes
  double log_loss = 0;  // predictions clipped to [1e-15, 1 - 1e-15]; NaN without rows
  std::vector<CalibrationBin> calibration;
};

// `predicted` and `labels` have the same length; `bins` equal-width bins over [0, 1].
Evaluation Evaluate(std::span<const float> predicted, std::span<const float> labels, int bins = 10);

}  // namespace duet::model
