#include "model/evaluate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace duet::model {

Evaluation Evaluate(std::span<const float> predicted, std::span<const float> labels, int bins) {
  Evaluation e;
  const size_t n = std::min(predicted.size(), labels.size());
  e.rows = static_cast<int64_t>(n);
  bins = std::max(1, bins);
  e.calibration.resize(static_cast<size_t>(bins));
  std::vector<double> sum_predicted(static_cast<size_t>(bins), 0.0);
  std::vector<int64_t> sum_positive(static_cast<size_t>(bins), 0);
  double loss = 0;
  for (size_t i = 0; i < n; ++i) {
    const double p = predicted[i];
    const bool positive = labels[i] > 0.5f;
    e.positives += positive ? 1 : 0;
    const double q = std::clamp(p, 1e-15, 1 - 1e-15);
    loss -= positive ? std::log(q) : std::log(1 - q);
    const int b = std::clamp(static_cast<int>(p * bins), 0, bins - 1);
    ++e.calibration[static_cast<size_t>(b)].count;
    sum_predicted[static_cast<size_t>(b)] += p;
    sum_positive[static_cast<size_t>(b)] += positive ? 1 : 0;
  }
  e.log_loss = n > 0 ? loss / static_cast<double>(n) : std::nan("");
  for (int b = 0; b < bins; ++b) {
    CalibrationBin& c = e.calibration[static_cast<size_t>(b)];
    c.low = static_cast<double>(b) / bins;
    c.high = static_cast<double>(b + 1) / bins;
    c.mean_predicted = c.count > 0 ? sum_predicted[static_cast<size_t>(b)] / c.count : std::nan("");
    c.observed_rate = c.count > 0
                          ? static_cast<double>(sum_positive[static_cast<size_t>(b)]) / c.count
                          : std::nan("");
  }
  // AUC: the probability that a random positive scores above a random negative (ties: 1/2),
  // from the ranks of the scores (average ranks for ties).
  const int64_t negatives = e.rows - e.positives;
  if (e.positives == 0 || negatives == 0) {
    e.auc = std::nan("");
    return e;
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return predicted[a] < predicted[b]; });
  double positive_rank_sum = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && predicted[order[j]] == predicted[order[i]]) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;  // average
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] > 0.5f) positive_rank_sum += rank;
    }
    i = j;
  }
  const double p = static_cast<double>(e.positives);
  e.auc = (positive_rank_sum - p * (p + 1) / 2) / (p * static_cast<double>(negatives));
  return e;
}

}  // namespace duet::model
