// Evaluate (model/evaluate.h) on cases small enough to check by hand.
#include "model/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace duet::model {
namespace {

TEST(EvaluateTest, AucCountsOrderedPairsAndHalvesTies) {
  // Positives score 0.8 and 0.4; negatives 0.6, 0.4 and 0.2. Pairs (positive above negative):
  // 0.8 beats all 3; 0.4 beats 0.2, ties 0.4 (one half), loses to 0.6: 4.5 of 6.
  const std::vector<float> p = {0.8f, 0.4f, 0.6f, 0.4f, 0.2f};
  const std::vector<float> y = {1, 1, 0, 0, 0};
  const Evaluation e = Evaluate(p, y);
  EXPECT_DOUBLE_EQ(e.auc, 4.5 / 6);
  EXPECT_EQ(e.rows, 5);
  EXPECT_EQ(e.positives, 2);
}

TEST(EvaluateTest, LogLossAndCalibrationByHand) {
  const std::vector<float> p = {0.25f, 0.75f, 0.75f};
  const std::vector<float> y = {0, 1, 0};
  const Evaluation e = Evaluate(p, y, 2);
  EXPECT_NEAR(e.log_loss, -(std::log(0.75) + std::log(0.75) + std::log(0.25)) / 3, 1e-12);
  ASSERT_EQ(e.calibration.size(), 2u);
  EXPECT_EQ(e.calibration[0].count, 1);
  EXPECT_DOUBLE_EQ(e.calibration[0].observed_rate, 0);
  EXPECT_EQ(e.calibration[1].count, 2);
  EXPECT_DOUBLE_EQ(e.calibration[1].mean_predicted, 0.75);
  EXPECT_DOUBLE_EQ(e.calibration[1].observed_rate, 0.5);
}

TEST(EvaluateTest, OneClassHasNoAucAndExtremesDoNotOverflow) {
  const std::vector<float> p = {0.0f, 1.0f};
  const std::vector<float> y = {1, 1};
  const Evaluation e = Evaluate(p, y);
  EXPECT_TRUE(std::isnan(e.auc));
  EXPECT_TRUE(std::isfinite(e.log_loss));    // clipped: log(1e-15) for the prediction 0
  EXPECT_EQ(e.calibration.back().count, 1);  // a prediction of exactly 1 is in the last bin
  EXPECT_TRUE(std::isnan(Evaluate({}, {}).log_loss));
}

}  // namespace
}  // namespace duet::model
