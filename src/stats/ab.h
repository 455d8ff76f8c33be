// A/B statistics from the sufficient statistics both layers keep per variant (core::FigureValues:
// counts, per-visitor sums and sums of squares) — no per-visitor data is needed, so the serving
// layer computes them exactly from the merged views.
//
// The statistical unit is the visitor (the unit of randomization). For each treatment variant
// against the control:
// - conversion rate per visitor (converted_visitors / visitors): two-proportion z-test. The
//   p-value uses the pooled standard error (H0: equal rates), the confidence interval of the
//   difference the unpooled one (Wald).
// - conversion rate per session (conversions / sessions): a ratio of per-visitor sums, so the
//   sessions of one visitor are not independent: its variance comes from the delta method,
//     Var(C̄/S̄) ≈ (Var(C) − 2·r·Cov(C,S) + r²·Var(S)) / (n·S̄²),   r = C̄/S̄,
//   with per-visitor C (conversions) and S (sessions); sample (n−1) variances from
//   sessions_sq, conversions_sq and sessions_x_conversions. z-test on the difference (unpooled).
// - revenue per visitor (revenue / visitors): Welch's t-test from the mean and the sample
//   variance (revenue_sq), Welch–Satterthwaite degrees of freedom, Student's t quantiles for the
//   confidence interval.
// For each: absolute lift (treatment − control) with its confidence interval, and relative lift
// (treatment / control − 1) with a delta-method interval:
//   Var(t/c) ≈ Var(t)/c² + t²·Var(c)/c⁴,
// where Var(t), Var(c) are the variances of the two estimates (the same ones as in the absolute
// interval) and the interval uses the same critical value (z, or t with Welch's df).
// Sample-ratio mismatch: Pearson's chi-square goodness-of-fit test of visitors per variant
// against the expected shares (equal unless given), k−1 degrees of freedom.
//
// Undefined values (no visitors, zero variance, a control rate of 0 for relative lift) are NaN;
// callers render them as JSON null. Point estimates need one visitor per variant; variances,
// statistics, p-values and intervals need two. Never throws. Distributions: Boost.Math.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/views.h"

namespace duet::stats {

// A confidence interval; both ends NaN when undefined.
struct Interval {
  double low = 0;
  double high = 0;
};

enum class Test { kTwoProportionZ, kDeltaMethodZ, kWelchT };
// "two_proportion_z", "delta_method_z", "welch_t".
const char* TestName(Test t);

// One metric of one treatment variant against the control.
struct Comparison {
  Test test = Test::kTwoProportionZ;
  double control = 0;    // the metric's value in the control
  double treatment = 0;  // ... and in the treatment
  double absolute_lift = 0;
  Interval absolute_ci;
  double relative_lift = 0;
  Interval relative_ci;
  double statistic = 0;      // z or t
  double df = 0;             // Welch's degrees of freedom (NaN for z-tests)
  double p_value = 0;        // two-sided
  bool significant = false;  // p_value < 1 - confidence
};

// The three metrics of one treatment against the control.
struct VariantComparison {
  Comparison conversion_rate_visitor;
  Comparison conversion_rate_session;
  Comparison revenue_per_visitor;
};

// Per-variant metric values (NaN when the denominator is 0).
struct Rates {
  double conversion_rate_visitor = 0;  // converted_visitors / visitors
  double conversion_rate_session = 0;  // conversions / sessions
  double revenue_per_visitor = 0;      // revenue / visitors
  double bounce_rate = 0;              // bounces / sessions
};
Rates RatesOf(const core::FigureValues& v);

// `confidence` in (0, 1), e.g. 0.95; outside it every interval is NaN and nothing is significant.
// `significant` is false when the p-value is NaN.
VariantComparison Compare(const core::FigureValues& control, const core::FigureValues& treatment,
                          double confidence);

struct SampleRatio {
  double statistic = 0;  // chi-square
  double df = 0;         // k − 1; NaN with fewer than two variants
  double p_value = 0;
  std::vector<double> expected_share;  // per variant, sums to 1
  std::vector<double> observed_share;
  bool mismatch = false;  // p_value < threshold
};
// Visitors per variant against `expected_share` (empty: equal shares; else one weight per
// variant, normalized). `threshold`: the p-value below which the split is called a mismatch
// (conventionally 0.001). NaN statistic and p-value with fewer than two variants or no visitors,
// or when the weights are invalid (count differs from the variants', a weight not finite and > 0):
// then expected_share is all NaN. observed_share is NaN when there are no visitors. `mismatch` is
// false when the p-value is NaN.
SampleRatio SampleRatioTest(std::span<const int64_t> visitors,
                            std::span<const double> expected_share, double threshold);

}  // namespace duet::stats
