#include "stats/ab.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace duet::stats {
namespace {

// Inside a TEST body `Test` names testing::Test (the base class), hence stats::Test below.
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One visitor's activity in a variant.
struct Visitor {
  int64_t sessions = 1;
  int64_t conversions = 0;
  double revenue = 0;
};

// The figures a layer would keep for these visitors (docs/beacon-contract.md, "Figures").
core::FigureValues FiguresOf(const std::vector<Visitor>& visitors) {
  core::FigureValues v;
  for (const Visitor& x : visitors) {
    v.visitors += 1;
    v.sessions += x.sessions;
    v.conversions += x.conversions;
    v.converted_visitors += x.conversions > 0 ? 1 : 0;
    v.sessions_sq += x.sessions * x.sessions;
    v.conversions_sq += x.conversions * x.conversions;
    v.sessions_x_conversions += x.sessions * x.conversions;
    v.revenue += x.revenue;
    v.revenue_sq += x.revenue * x.revenue;
  }
  return v;
}

// Figures for the visitor conversion rate only: n visitors of whom `converted` converted once.
core::FigureValues Proportion(int64_t n, int64_t converted) {
  std::vector<Visitor> v(n);
  for (int64_t i = 0; i < converted; ++i) v[i].conversions = 1;
  return FiguresOf(v);
}

void ExpectAllInferenceNaN(const Comparison& c) {
  EXPECT_TRUE(std::isnan(c.statistic));
  EXPECT_TRUE(std::isnan(c.p_value));
  EXPECT_TRUE(std::isnan(c.absolute_ci.low));
  EXPECT_TRUE(std::isnan(c.absolute_ci.high));
  EXPECT_TRUE(std::isnan(c.relative_ci.low));
  EXPECT_TRUE(std::isnan(c.relative_ci.high));
  EXPECT_FALSE(c.significant);
}

std::vector<const Comparison*> All(const VariantComparison& vc) {
  return {&vc.conversion_rate_visitor, &vc.conversion_rate_session, &vc.revenue_per_visitor};
}

// A control and a treatment with spread in every metric.
std::vector<Visitor> ControlVisitors() {
  return {{1, 0, 0}, {2, 1, 10}, {3, 0, 0}, {1, 1, 25.5}, {4, 2, 40},
          {1, 0, 0}, {2, 0, 0},  {5, 1, 3}, {1, 0, 0},    {2, 2, 80}};
}
std::vector<Visitor> TreatmentVisitors() {
  return {{2, 1, 12}, {1, 1, 30}, {3, 2, 50}, {1, 0, 0}, {2, 1, 5},  {1, 1, 60},
          {4, 3, 90}, {1, 0, 0},  {2, 1, 20}, {3, 0, 0}, {1, 1, 15}, {2, 2, 44}};
}

TEST(TestNameTest, NamesAreTheDocumentedOnes) {
  EXPECT_STREQ(TestName(stats::Test::kTwoProportionZ), "two_proportion_z");
  EXPECT_STREQ(TestName(stats::Test::kDeltaMethodZ), "delta_method_z");
  EXPECT_STREQ(TestName(stats::Test::kWelchT), "welch_t");
}

TEST(RatesTest, RatiosOfFigures) {
  core::FigureValues v;
  v.visitors = 4;
  v.sessions = 10;
  v.converted_visitors = 1;
  v.conversions = 2;
  v.revenue = 30;
  v.bounces = 5;
  const Rates r = RatesOf(v);
  EXPECT_DOUBLE_EQ(r.conversion_rate_visitor, 0.25);
  EXPECT_DOUBLE_EQ(r.conversion_rate_session, 0.2);
  EXPECT_DOUBLE_EQ(r.revenue_per_visitor, 7.5);
  EXPECT_DOUBLE_EQ(r.bounce_rate, 0.5);
}

TEST(RatesTest, ZeroDenominatorsAreNaN) {
  const Rates r = RatesOf(core::FigureValues{});
  EXPECT_TRUE(std::isnan(r.conversion_rate_visitor));
  EXPECT_TRUE(std::isnan(r.conversion_rate_session));
  EXPECT_TRUE(std::isnan(r.revenue_per_visitor));
  EXPECT_TRUE(std::isnan(r.bounce_rate));
}

// 100/1000 against 130/1000. Pooled p = 0.115, SE0 = sqrt(0.115·0.885·(2/1000)) = 0.0142671,
// z = 0.03 / SE0 = 2.10274, p = 2·(1 − Φ(2.10274)) = 0.035488. Unpooled SE =
// sqrt(0.1·0.9/1000 + 0.13·0.87/1000) = 0.0142513, 95% CI 0.03 ± 1.959964·SE.
TEST(VisitorConversionTest, TextbookTwoProportionExample) {
  const Comparison c =
      Compare(Proportion(1000, 100), Proportion(1000, 130), 0.95).conversion_rate_visitor;
  EXPECT_EQ(c.test, stats::Test::kTwoProportionZ);
  EXPECT_DOUBLE_EQ(c.control, 0.1);
  EXPECT_DOUBLE_EQ(c.treatment, 0.13);
  EXPECT_NEAR(c.absolute_lift, 0.03, 1e-15);
  EXPECT_NEAR(c.relative_lift, 0.3, 1e-12);
  EXPECT_NEAR(c.statistic, 2.102740605622114, 1e-12);
  EXPECT_NEAR(c.p_value, 0.03548845046647471, 1e-12);
  EXPECT_NEAR(c.absolute_ci.low, 0.0020679344393763587, 1e-12);
  EXPECT_NEAR(c.absolute_ci.high, 0.057932065560623636, 1e-12);
  EXPECT_TRUE(std::isnan(c.df));
  EXPECT_TRUE(c.significant);
  // Var(t/c) = Var(t)/c² + t²·Var(c)/c⁴ = 0.0001131/0.01 + 0.0169·0.00009/0.0001 = 0.026520.
  const double se_rel = std::sqrt(0.13 * 0.87 / 1000 / 0.01 + 0.0169 * (0.1 * 0.9 / 1000) / 1e-4);
  EXPECT_NEAR(c.relative_ci.high - c.relative_lift, 1.959963984540054 * se_rel, 1e-12);
  EXPECT_NEAR(c.relative_lift - c.relative_ci.low, 1.959963984540054 * se_rel, 1e-12);
}

TEST(VisitorConversionTest, NotSignificantAtHigherConfidence) {
  const Comparison c =
      Compare(Proportion(1000, 100), Proportion(1000, 130), 0.99).conversion_rate_visitor;
  EXPECT_FALSE(c.significant);  // p = 0.035 ≥ 0.01
  EXPECT_LT(c.absolute_ci.low, 0);
}

// Revenue per visitor {1,2,3,4} against {2,4,6,8,10}: means 2.5 and 6, sample variances 5/3 and
// 10, SE² = (5/3)/4 + 10/5 = 29/12, t = 3.5/sqrt(29/12) = 2.25144,
// df = (29/12)² / ((5/12)²/3 + 2²/4) = 5.52079.
TEST(RevenueTest, WelchHandExample) {
  std::vector<Visitor> control;
  for (const double r : {1.0, 2.0, 3.0, 4.0}) control.push_back({1, 1, r});
  std::vector<Visitor> treatment;
  for (const double r : {2.0, 4.0, 6.0, 8.0, 10.0}) treatment.push_back({1, 1, r});
  const Comparison c = Compare(FiguresOf(control), FiguresOf(treatment), 0.95).revenue_per_visitor;
  EXPECT_EQ(c.test, stats::Test::kWelchT);
  EXPECT_DOUBLE_EQ(c.control, 2.5);
  EXPECT_DOUBLE_EQ(c.treatment, 6);
  EXPECT_NEAR(c.relative_lift, 1.4, 1e-12);
  EXPECT_NEAR(c.statistic, 2.2514363231593695, 1e-12);
  EXPECT_NEAR(c.df, 5.520787746170677, 1e-12);
  EXPECT_NEAR(c.p_value, 0.06913359319239236, 1e-10);
  EXPECT_NEAR(c.absolute_ci.low, -0.3853680805140427, 1e-10);
  EXPECT_NEAR(c.absolute_ci.high, 7.385368080514043, 1e-10);
  EXPECT_FALSE(c.significant);
}

// The delta-method variance equals the sample variance of the per-visitor linearization
// L = C − r·S divided by n·S̄², computed here the long way from the visitors.
TEST(SessionConversionTest, MatchesLinearizationOfVisitors) {
  const auto variance_of_rate = [](const std::vector<Visitor>& vs) {
    double s = 0;
    double c = 0;
    for (const Visitor& v : vs) {
      s += static_cast<double>(v.sessions);
      c += static_cast<double>(v.conversions);
    }
    const double n = static_cast<double>(vs.size());
    const double r = c / s;
    double ss = 0;
    for (const Visitor& v : vs) {
      const double l = static_cast<double>(v.conversions) - r * static_cast<double>(v.sessions);
      ss += l * l;
    }
    return ss / (n - 1) / (n * (s / n) * (s / n));
  };
  const auto cv = ControlVisitors();
  const auto tv = TreatmentVisitors();
  const Comparison c = Compare(FiguresOf(cv), FiguresOf(tv), 0.95).conversion_rate_session;
  EXPECT_EQ(c.test, stats::Test::kDeltaMethodZ);
  EXPECT_DOUBLE_EQ(c.control, 7.0 / 22);
  EXPECT_DOUBLE_EQ(c.treatment, 13.0 / 23);
  const double se = std::sqrt(variance_of_rate(cv) + variance_of_rate(tv));
  EXPECT_NEAR(c.statistic, (13.0 / 23 - 7.0 / 22) / se, 1e-12);
  EXPECT_NEAR(c.p_value, std::erfc(std::fabs(c.statistic) / std::sqrt(2.0)), 1e-12);
  EXPECT_NEAR(c.absolute_ci.high - c.absolute_lift, 1.959963984540054 * se, 1e-12);
  EXPECT_TRUE(std::isnan(c.df));
}

TEST(CompareTest, SwappingVariantsFlipsTheSignOfAbsoluteLift) {
  const auto a = FiguresOf(ControlVisitors());
  const auto b = FiguresOf(TreatmentVisitors());
  const VariantComparison ab = Compare(a, b, 0.95);
  const VariantComparison ba = Compare(b, a, 0.95);
  const auto x = All(ab);
  const auto y = All(ba);
  for (size_t i = 0; i < x.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_DOUBLE_EQ(x[i]->absolute_lift, -y[i]->absolute_lift);
    EXPECT_DOUBLE_EQ(x[i]->statistic, -y[i]->statistic);
    EXPECT_DOUBLE_EQ(x[i]->p_value, y[i]->p_value);
    EXPECT_DOUBLE_EQ(x[i]->absolute_ci.low, -y[i]->absolute_ci.high);
    EXPECT_DOUBLE_EQ(x[i]->absolute_ci.high, -y[i]->absolute_ci.low);
    EXPECT_DOUBLE_EQ(x[i]->control, y[i]->treatment);
    EXPECT_EQ(x[i]->significant, y[i]->significant);
  }
  EXPECT_DOUBLE_EQ(ab.revenue_per_visitor.df, ba.revenue_per_visitor.df);
}

TEST(CompareTest, IntervalsContainThePointEstimatesAndWidenWithConfidence) {
  const auto a = FiguresOf(ControlVisitors());
  const auto b = FiguresOf(TreatmentVisitors());
  const VariantComparison c95 = Compare(a, b, 0.95);
  const VariantComparison c99 = Compare(a, b, 0.99);
  const auto x = All(c95);
  const auto y = All(c99);
  for (size_t i = 0; i < x.size(); ++i) {
    SCOPED_TRACE(i);
    const Comparison& c = *x[i];
    EXPECT_LT(c.absolute_ci.low, c.absolute_lift);
    EXPECT_GT(c.absolute_ci.high, c.absolute_lift);
    EXPECT_LT(c.relative_ci.low, c.relative_lift);
    EXPECT_GT(c.relative_ci.high, c.relative_lift);
    EXPECT_NEAR(c.relative_lift, c.treatment / c.control - 1, 1e-15);
    EXPECT_LT(y[i]->absolute_ci.low, c.absolute_ci.low);
    EXPECT_GT(y[i]->absolute_ci.high, c.absolute_ci.high);
    EXPECT_DOUBLE_EQ(y[i]->p_value, c.p_value);
    // A 95% interval excludes 0 exactly when p < 0.05 (z and Welch use the same SE both ways).
    if (i != 0) {
      EXPECT_EQ(c.absolute_ci.low > 0 || c.absolute_ci.high < 0, c.p_value < 0.05);
    }
  }
}

TEST(CompareTest, IdenticalVariantsHaveZeroLiftAndPOne) {
  const auto a = FiguresOf(ControlVisitors());
  const VariantComparison compared = Compare(a, a, 0.95);
  for (const Comparison* c : All(compared)) {
    EXPECT_EQ(c->absolute_lift, 0);
    EXPECT_EQ(c->relative_lift, 0);
    EXPECT_EQ(c->statistic, 0);
    EXPECT_DOUBLE_EQ(c->p_value, 1);
    EXPECT_FALSE(c->significant);
  }
}

TEST(CompareTest, NoVisitorsGivesNaNEverywhere) {
  const core::FigureValues empty;
  const VariantComparison compared = Compare(empty, empty, 0.95);
  for (const Comparison* c : All(compared)) {
    EXPECT_TRUE(std::isnan(c->control));
    EXPECT_TRUE(std::isnan(c->treatment));
    EXPECT_TRUE(std::isnan(c->absolute_lift));
    EXPECT_TRUE(std::isnan(c->relative_lift));
    EXPECT_TRUE(std::isnan(c->df));
    ExpectAllInferenceNaN(*c);
  }
}

TEST(CompareTest, OneVisitorGivesPointEstimatesButNoInference) {
  const auto one = FiguresOf({{2, 1, 10}});
  const auto b = FiguresOf(TreatmentVisitors());
  for (const auto& vc : {Compare(one, b, 0.95), Compare(b, one, 0.95)}) {
    for (const Comparison* c : All(vc)) {
      EXPECT_FALSE(std::isnan(c->absolute_lift));
      EXPECT_FALSE(std::isnan(c->relative_lift));
      ExpectAllInferenceNaN(*c);
    }
  }
}

TEST(CompareTest, ZeroVarianceGivesNaNTests) {
  // Nobody converts, everyone has one session and no revenue: all variances are 0.
  const auto a = Proportion(50, 0);
  const auto b = Proportion(80, 0);
  const VariantComparison compared = Compare(a, b, 0.95);
  for (const Comparison* c : All(compared)) {
    EXPECT_EQ(c->absolute_lift, 0);
    EXPECT_TRUE(std::isnan(c->relative_lift));  // control rate 0
    ExpectAllInferenceNaN(*c);
  }
}

TEST(CompareTest, ZeroControlRateMakesRelativeLiftNaNOnly) {
  const Comparison c =
      Compare(Proportion(100, 0), Proportion(100, 10), 0.95).conversion_rate_visitor;
  EXPECT_DOUBLE_EQ(c.absolute_lift, 0.1);
  EXPECT_TRUE(std::isnan(c.relative_lift));
  EXPECT_TRUE(std::isnan(c.relative_ci.low));
  EXPECT_FALSE(std::isnan(c.p_value));
  EXPECT_FALSE(std::isnan(c.absolute_ci.low));
}

TEST(CompareTest, InvalidConfidenceGivesNaNIntervalsAndNothingSignificant) {
  const auto a = Proportion(1000, 100);
  const auto b = Proportion(1000, 300);
  for (const double confidence : {0.0, 1.0, 1.5, -0.2, kNaN}) {
    SCOPED_TRACE(confidence);
    const VariantComparison compared = Compare(a, b, confidence);
    for (const Comparison* c : All(compared)) {
      EXPECT_TRUE(std::isnan(c->absolute_ci.low));
      EXPECT_TRUE(std::isnan(c->relative_ci.high));
      EXPECT_FALSE(c->significant);
    }
  }
}

TEST(CompareTest, ImpossibleFiguresDoNotThrow) {
  core::FigureValues bad;
  bad.visitors = 3;
  bad.converted_visitors = 7;  // more than visitors
  bad.sessions = 0;            // visitors without sessions
  bad.revenue = -1;
  bad.revenue_sq = -5;
  EXPECT_NO_THROW(Compare(bad, Proportion(10, 1), 0.95));
  EXPECT_NO_THROW(Compare(Proportion(10, 1), bad, 0.95));
  EXPECT_TRUE(std::isnan(Compare(bad, Proportion(10, 1), 0.95).conversion_rate_session.control));
}

TEST(SampleRatioMismatchTest, BalancedSplitIsNoMismatch) {
  const std::vector<int64_t> v = {500, 500};
  const SampleRatio s = SampleRatioTest(v, {}, 0.001);
  EXPECT_EQ(s.statistic, 0);
  EXPECT_EQ(s.df, 1);
  EXPECT_DOUBLE_EQ(s.p_value, 1);
  EXPECT_FALSE(s.mismatch);
  EXPECT_EQ(s.expected_share, (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(s.observed_share, (std::vector<double>{0.5, 0.5}));
}

// 1000 vs 1100 against 50/50: χ² = 2·50²/1050 = 4.7619, p = 0.029096 (df 1).
TEST(SampleRatioMismatchTest, HandExample) {
  const std::vector<int64_t> v = {1000, 1100};
  const SampleRatio s = SampleRatioTest(v, {}, 0.001);
  EXPECT_NEAR(s.statistic, 100.0 / 21, 1e-12);
  EXPECT_NEAR(s.p_value, 0.029096331741252267, 1e-12);
  EXPECT_FALSE(s.mismatch);
  EXPECT_TRUE(SampleRatioTest(v, {}, 0.05).mismatch);
}

TEST(SampleRatioMismatchTest, WeightsAreNormalized) {
  const std::vector<int64_t> v = {200, 300, 500};
  const std::vector<double> w = {2, 3, 5};
  const SampleRatio s = SampleRatioTest(v, w, 0.001);
  EXPECT_NEAR(s.statistic, 0, 1e-12);
  EXPECT_EQ(s.df, 2);
  EXPECT_DOUBLE_EQ(s.expected_share[2], 0.5);
  EXPECT_FALSE(s.mismatch);
  // The same visitors against equal shares are a gross mismatch.
  EXPECT_TRUE(SampleRatioTest(v, {}, 0.001).mismatch);
}

TEST(SampleRatioMismatchTest, DegenerateInputsGiveNaN) {
  const std::vector<int64_t> one = {100};
  const std::vector<int64_t> none = {0, 0};
  const std::vector<int64_t> two = {100, 120};
  const std::vector<double> three_weights = {1, 1, 1};
  const std::vector<double> negative = {1, -1};
  const std::vector<double> zero = {1, 0};
  const std::vector<double> inf = {1, std::numeric_limits<double>::infinity()};
  struct Case {
    std::span<const int64_t> visitors;
    std::span<const double> weights;
  };
  for (const Case& c :
       {Case{one, {}}, Case{none, {}}, Case{two, three_weights}, Case{two, negative},
        Case{two, zero}, Case{two, inf}, Case{std::span<const int64_t>(), {}}}) {
    SampleRatio s;
    EXPECT_NO_THROW(s = SampleRatioTest(c.visitors, c.weights, 0.001));
    EXPECT_TRUE(std::isnan(s.statistic));
    EXPECT_TRUE(std::isnan(s.p_value));
    EXPECT_FALSE(s.mismatch);
    EXPECT_EQ(s.expected_share.size(), c.visitors.size());
    EXPECT_EQ(s.observed_share.size(), c.visitors.size());
  }
  EXPECT_TRUE(std::isnan(SampleRatioTest(none, {}, 0.001).observed_share[0]));
  EXPECT_EQ(SampleRatioTest(none, {}, 0.001).expected_share[0], 0.5);
  EXPECT_TRUE(std::isnan(SampleRatioTest(two, negative, 0.001).expected_share[0]));
}

}  // namespace
}  // namespace duet::stats
