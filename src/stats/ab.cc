#include "stats/ab.h"

#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>

namespace duet::stats {
namespace {

// Every input is checked before it reaches Boost.Math; this policy is the second line: an error
// that slips through becomes NaN (or ±inf) instead of an exception on the serving path.
namespace bp = boost::math::policies;
using NanPolicy =
    bp::policy<bp::domain_error<bp::ignore_error>, bp::pole_error<bp::ignore_error>,
               bp::overflow_error<bp::ignore_error>, bp::evaluation_error<bp::ignore_error>,
               bp::rounding_error<bp::ignore_error>>;
using Normal = boost::math::normal_distribution<double, NanPolicy>;
using StudentsT = boost::math::students_t_distribution<double, NanPolicy>;
using ChiSquared = boost::math::chi_squared_distribution<double, NanPolicy>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Inference (variances, tests, intervals) needs at least this many visitors in each variant.
constexpr int64_t kMinVisitors = 2;

double Ratio(double num, double den) { return den != 0 ? num / den : kNaN; }

bool ValidConfidence(double confidence) { return confidence > 0 && confidence < 1; }

// Two-sided critical value of the standard normal: z with P(|Z| > z) = 1 - confidence.
double NormalCritical(double confidence) {
  if (!ValidConfidence(confidence)) return kNaN;
  return boost::math::quantile(boost::math::complement(Normal(), (1 - confidence) / 2));
}

double StudentCritical(double confidence, double df) {
  if (!ValidConfidence(confidence) || !(df > 0) || !std::isfinite(df)) return kNaN;
  return boost::math::quantile(boost::math::complement(StudentsT(df), (1 - confidence) / 2));
}

double NormalTwoSidedP(double z) {
  if (std::isnan(z)) return kNaN;
  return 2 * boost::math::cdf(boost::math::complement(Normal(), std::fabs(z)));
}

double StudentTwoSidedP(double t, double df) {
  if (std::isnan(t) || !(df > 0) || !std::isfinite(df)) return kNaN;
  return 2 * boost::math::cdf(boost::math::complement(StudentsT(df), std::fabs(t)));
}

// Sample (n - 1) variance of per-visitor values from their sum and sum of squares. Computed in
// long double because sum_sq - sum²/n cancels when the spread is small next to the mean;
// rounding can leave it slightly negative, which is clamped to 0.
double SampleVariance(int64_t n, long double sum, long double sum_sq) {
  if (n < kMinVisitors) return kNaN;
  const long double num = sum_sq - sum * sum / static_cast<long double>(n);
  return num > 0 ? static_cast<double>(num / static_cast<long double>(n - 1)) : 0.0;
}

// A metric's value in one variant and the variance of that estimate (NaN when undefined).
struct Estimate {
  double value = kNaN;
  double variance = kNaN;
};

Estimate VisitorConversion(const core::FigureValues& v) {
  Estimate e;
  if (v.visitors <= 0) return e;
  const double n = static_cast<double>(v.visitors);
  e.value = static_cast<double>(v.converted_visitors) / n;
  if (v.visitors >= kMinVisitors) e.variance = e.value * (1 - e.value) / n;
  return e;
}

Estimate SessionConversion(const core::FigureValues& v) {
  Estimate e;
  if (v.visitors <= 0 || v.sessions <= 0) return e;
  const long double sessions = static_cast<long double>(v.sessions);
  const long double r = static_cast<long double>(v.conversions) / sessions;
  e.value = static_cast<double>(r);
  if (v.visitors < kMinVisitors) return e;
  // Var(C) − 2r·Cov(C,S) + r²·Var(S) is the sample variance of C − r·S, whose mean is exactly 0
  // (r = C̄/S̄): (Σ C² − 2r Σ CS + r² Σ S²) / (n − 1). Written this way the n·mean² terms of the
  // three (co)variances, which cancel, are never formed.
  const long double n = static_cast<long double>(v.visitors);
  const long double q = static_cast<long double>(v.conversions_sq) -
                        2 * r * static_cast<long double>(v.sessions_x_conversions) +
                        r * r * static_cast<long double>(v.sessions_sq);
  const long double var_l = q > 0 ? q / (n - 1) : 0;
  const long double mean_s = sessions / n;
  e.variance = static_cast<double>(var_l / (n * mean_s * mean_s));
  return e;
}

Estimate RevenuePerVisitor(const core::FigureValues& v) {
  Estimate e;
  if (v.visitors <= 0) return e;
  const double n = static_cast<double>(v.visitors);
  e.value = v.revenue / n;
  e.variance = SampleVariance(v.visitors, v.revenue, v.revenue_sq) / n;  // NaN when n < 2
  return e;
}

// Fills everything but the statistic, p-value and df from the two estimates: absolute and
// relative lifts with intervals of half-width `critical` standard errors.
Comparison Lifts(Test test, const Estimate& c, const Estimate& t, double critical) {
  Comparison out;
  out.test = test;
  out.control = c.value;
  out.treatment = t.value;
  out.absolute_lift = t.value - c.value;
  out.absolute_ci = {kNaN, kNaN};
  out.relative_ci = {kNaN, kNaN};
  out.statistic = kNaN;
  out.df = kNaN;
  out.p_value = kNaN;
  const double se = std::sqrt(c.variance + t.variance);  // NaN if either is NaN
  if (se > 0 && std::isfinite(critical)) {
    out.absolute_ci = {out.absolute_lift - critical * se, out.absolute_lift + critical * se};
  }
  out.relative_lift = c.value != 0 ? t.value / c.value - 1 : kNaN;
  if (c.value != 0 && !std::isnan(out.relative_lift)) {
    const double c2 = c.value * c.value;
    const double var_rel = t.variance / c2 + t.value * t.value * c.variance / (c2 * c2);
    const double se_rel = std::sqrt(var_rel);
    if (se_rel > 0 && std::isfinite(se_rel) && std::isfinite(critical)) {
      out.relative_ci = {out.relative_lift - critical * se_rel,
                         out.relative_lift + critical * se_rel};
    }
  }
  return out;
}

void SetSignificance(Comparison* c, double confidence) {
  c->significant =
      ValidConfidence(confidence) && !std::isnan(c->p_value) && c->p_value < 1 - confidence;
}

Comparison CompareVisitorConversion(const core::FigureValues& control,
                                    const core::FigureValues& treatment, double confidence) {
  const Estimate c = VisitorConversion(control);
  const Estimate t = VisitorConversion(treatment);
  Comparison out = Lifts(Test::kTwoProportionZ, c, t, NormalCritical(confidence));
  if (control.visitors >= kMinVisitors && treatment.visitors >= kMinVisitors) {
    // The test's standard error is the one under H0 (one common rate), as in the textbook
    // two-proportion z-test; the interval keeps the unpooled one.
    const double n_c = static_cast<double>(control.visitors);
    const double n_t = static_cast<double>(treatment.visitors);
    const double pooled =
        static_cast<double>(control.converted_visitors + treatment.converted_visitors) /
        (n_c + n_t);
    const double se = std::sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t));
    if (se > 0) {
      out.statistic = out.absolute_lift / se;
      out.p_value = NormalTwoSidedP(out.statistic);
    }
  }
  SetSignificance(&out, confidence);
  return out;
}

Comparison CompareSessionConversion(const core::FigureValues& control,
                                    const core::FigureValues& treatment, double confidence) {
  const Estimate c = SessionConversion(control);
  const Estimate t = SessionConversion(treatment);
  Comparison out = Lifts(Test::kDeltaMethodZ, c, t, NormalCritical(confidence));
  const double se = std::sqrt(c.variance + t.variance);
  if (se > 0) {
    out.statistic = out.absolute_lift / se;
    out.p_value = NormalTwoSidedP(out.statistic);
  }
  SetSignificance(&out, confidence);
  return out;
}

Comparison CompareRevenue(const core::FigureValues& control, const core::FigureValues& treatment,
                          double confidence) {
  const Estimate c = RevenuePerVisitor(control);
  const Estimate t = RevenuePerVisitor(treatment);
  const double se2 = c.variance + t.variance;
  double df = kNaN;
  if (se2 > 0) {
    // Welch–Satterthwaite; c.variance is already Var(revenue)/n, the variance of the mean.
    const double n_c = static_cast<double>(control.visitors);
    const double n_t = static_cast<double>(treatment.visitors);
    df = se2 * se2 / (c.variance * c.variance / (n_c - 1) + t.variance * t.variance / (n_t - 1));
  }
  Comparison out = Lifts(Test::kWelchT, c, t, StudentCritical(confidence, df));
  out.df = df;
  if (se2 > 0) {
    out.statistic = out.absolute_lift / std::sqrt(se2);
    out.p_value = StudentTwoSidedP(out.statistic, df);
  }
  SetSignificance(&out, confidence);
  return out;
}

}  // namespace

const char* TestName(Test t) {
  switch (t) {
    case Test::kTwoProportionZ:
      return "two_proportion_z";
    case Test::kDeltaMethodZ:
      return "delta_method_z";
    case Test::kWelchT:
      return "welch_t";
  }
  return "unknown";
}

Rates RatesOf(const core::FigureValues& v) {
  Rates r;
  const double visitors = static_cast<double>(v.visitors);
  const double sessions = static_cast<double>(v.sessions);
  r.conversion_rate_visitor = Ratio(static_cast<double>(v.converted_visitors), visitors);
  r.conversion_rate_session = Ratio(static_cast<double>(v.conversions), sessions);
  r.revenue_per_visitor = Ratio(v.revenue, visitors);
  r.bounce_rate = Ratio(static_cast<double>(v.bounces), sessions);
  return r;
}

VariantComparison Compare(const core::FigureValues& control, const core::FigureValues& treatment,
                          double confidence) {
  VariantComparison out;
  out.conversion_rate_visitor = CompareVisitorConversion(control, treatment, confidence);
  out.conversion_rate_session = CompareSessionConversion(control, treatment, confidence);
  out.revenue_per_visitor = CompareRevenue(control, treatment, confidence);
  return out;
}

SampleRatio SampleRatioTest(std::span<const int64_t> visitors,
                            std::span<const double> expected_share, double threshold) {
  const size_t k = visitors.size();
  SampleRatio out;
  out.statistic = kNaN;
  out.df = k >= 2 ? static_cast<double>(k - 1) : kNaN;
  out.p_value = kNaN;
  out.expected_share.assign(k, kNaN);
  out.observed_share.assign(k, kNaN);

  bool weights_ok = expected_share.empty() || expected_share.size() == k;
  double weight_sum = 0;
  for (const double w : expected_share) {
    weights_ok = weights_ok && w > 0 && std::isfinite(w);
    weight_sum += w;
  }
  weights_ok = weights_ok && (expected_share.empty() || std::isfinite(weight_sum));
  if (weights_ok && k > 0) {
    for (size_t i = 0; i < k; ++i) {
      out.expected_share[i] =
          expected_share.empty() ? 1.0 / static_cast<double>(k) : expected_share[i] / weight_sum;
    }
  }

  int64_t total = 0;
  bool counts_ok = true;
  for (const int64_t v : visitors) {
    counts_ok = counts_ok && v >= 0;
    total += v;
  }
  if (!counts_ok || total <= 0) return out;
  const double n = static_cast<double>(total);
  for (size_t i = 0; i < k; ++i) out.observed_share[i] = static_cast<double>(visitors[i]) / n;
  if (k < 2 || !weights_ok) return out;

  double chi2 = 0;
  for (size_t i = 0; i < k; ++i) {
    const double expected = n * out.expected_share[i];
    const double d = static_cast<double>(visitors[i]) - expected;
    chi2 += d * d / expected;
  }
  out.statistic = chi2;
  out.p_value = boost::math::cdf(boost::math::complement(ChiSquared(out.df), chi2));
  out.mismatch = !std::isnan(out.p_value) && out.p_value < threshold;
  return out;
}

}  // namespace duet::stats
