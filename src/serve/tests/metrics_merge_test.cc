// ParsePrometheusText and MergeFamilies (serve/metrics_merge.h): the text prometheus-cpp writes
// parses back to the same families, and the metrics of several workers merge by the documented
// rule (counters and histograms summed per label set, gauges the largest).
#include "serve/metrics_merge.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "serve/tests/metrics_text.h"

namespace duet::serve {
namespace {

using prometheus::MetricFamily;

// The families of one worker, as it would send them: serialized, then parsed.
std::vector<MetricFamily> ThroughText(const prometheus::Registry& r) {
  auto parsed = ParsePrometheusText(SerializeFamilies(r.Collect()));
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : std::vector<MetricFamily>{};
}

const MetricFamily* Find(const std::vector<MetricFamily>& fs, const std::string& name) {
  for (const MetricFamily& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

TEST(MetricsMergeTest, TextOfEveryTypeParsesBackToTheSameText) {
  prometheus::Registry r;
  auto& requests = prometheus::BuildCounter()
                       .Name("duet_http_requests_total")
                       .Help("HTTP requests answered, by route template and status code")
                       .Register(r);
  requests.Add({{"route", "/v1/experiments/{id}/report"}, {"code", "200"}}).Increment(41);
  // Every escape of a label value: backslash, quote, newline.
  requests.Add({{"route", "a\\b \"quoted\"\nnext"}, {"code", "404"}}).Increment(2);
  prometheus::BuildCounter().Name("plain_total").Help("").Register(r).Add({}).Increment(0.25);
  auto& gauge = prometheus::BuildGauge().Name("duet_bad_rows").Help("bad rows").Register(r);
  gauge.Add({{"reason", "json"}}).Set(7);
  gauge.Add({{"reason", "inf"}}).Set(std::numeric_limits<double>::infinity());
  gauge.Add({{"reason", "neg"}}).Set(-1.5e-9);
  prometheus::BuildHistogram()
      .Name("latency_seconds")
      .Help("latency")
      .Register(r)
      .Add({{"route", "/x"}}, prometheus::Histogram::BucketBoundaries{0.00005, 0.001, 0.5})
      .Observe(0.0004);
  prometheus::BuildSummary()
      .Name("sizes")
      .Help("sizes")
      .Register(r)
      .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}})
      .Observe(3);
  const std::string text = SerializeFamilies(r.Collect());
  auto parsed = ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(SerializeFamilies(*parsed), text);
  const MetricFamily* f = Find(*parsed, "duet_http_requests_total");
  ASSERT_NE(f, nullptr);
  bool escaped = false;
  for (const auto& m : f->metric) {
    for (const auto& l : m.label) escaped |= l.value == "a\\b \"quoted\"\nnext";
  }
  EXPECT_TRUE(escaped) << "label value with escapes not read back";
  EXPECT_EQ(f->type, prometheus::MetricType::Counter);
  EXPECT_EQ(f->help, "HTTP requests answered, by route template and status code");
}

TEST(MetricsMergeTest, CountersAreSummedPerLabelSet) {
  prometheus::Registry a, b;
  auto& fa = prometheus::BuildCounter().Name("req_total").Help("h").Register(a);
  auto& fb = prometheus::BuildCounter().Name("req_total").Help("h").Register(b);
  fa.Add({{"route", "/r"}, {"code", "200"}}).Increment(3);
  fa.Add({{"route", "/r"}, {"code", "500"}}).Increment(1);
  fb.Add({{"route", "/r"}, {"code", "200"}}).Increment(4);
  fb.Add({{"route", "quote\"d"}, {"code", "200"}}).Increment(2);
  const std::string text = SerializeFamilies(MergeFamilies({ThroughText(a), ThroughText(b)}));
  EXPECT_EQ(ValueOf(text, "req_total{code=\"200\",route=\"/r\"}"), "7") << text;
  EXPECT_EQ(ValueOf(text, "req_total{code=\"500\",route=\"/r\"}"), "1") << text;
  EXPECT_EQ(ValueOf(text, "req_total{code=\"200\",route=\"quote\\\"d\"}"), "2") << text;
  EXPECT_EQ(text.find("# TYPE req_total counter"), text.rfind("# TYPE req_total counter"))
      << "one family, not one per worker";
}

TEST(MetricsMergeTest, LabelOrderDoesNotSplitAMetric) {
  MetricFamily x;
  x.name = "c_total";
  x.type = prometheus::MetricType::Counter;
  x.metric.resize(1);
  x.metric[0].label = {{"a", "1"}, {"b", "2"}};
  x.metric[0].counter.value = 1;
  MetricFamily y = x;
  y.metric[0].label = {{"b", "2"}, {"a", "1"}};
  y.metric[0].counter.value = 2;
  const auto merged = MergeFamilies({{x}, {y}});
  ASSERT_EQ(merged.size(), 1u);
  ASSERT_EQ(merged[0].metric.size(), 1u);
  EXPECT_EQ(merged[0].metric[0].counter.value, 3);
}

TEST(MetricsMergeTest, HistogramsSumCountSumAndEveryBucket) {
  const prometheus::Histogram::BucketBoundaries bounds{0.001, 0.01, 0.1};
  prometheus::Registry a, b;
  auto& ha = prometheus::BuildHistogram().Name("lat").Help("h").Register(a).Add({}, bounds);
  auto& hb = prometheus::BuildHistogram().Name("lat").Help("h").Register(b).Add({}, bounds);
  ha.Observe(0.0005);
  ha.Observe(0.05);
  hb.Observe(0.005);
  hb.Observe(0.5);
  hb.Observe(0.0001);
  const std::string text = SerializeFamilies(MergeFamilies({ThroughText(a), ThroughText(b)}));
  EXPECT_EQ(ValueOf(text, "lat_count"), "5") << text;
  EXPECT_NEAR(std::stod(ValueOf(text, "lat_sum")), 0.5556, 1e-12) << text;
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"0.001\"}"), "2") << text;
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"0.01\"}"), "3") << text;
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"0.1\"}"), "4") << text;
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"+Inf\"}"), "5") << text;
}

TEST(MetricsMergeTest, HistogramsWithOtherBoundsMergeCumulatively) {
  prometheus::Registry a, b;
  auto& ha = prometheus::BuildHistogram().Name("lat").Help("h").Register(a).Add(
      {}, prometheus::Histogram::BucketBoundaries{1, 10});
  auto& hb = prometheus::BuildHistogram().Name("lat").Help("h").Register(b).Add(
      {}, prometheus::Histogram::BucketBoundaries{5});
  ha.Observe(0.5);  // a: le1=1 le10=2 inf=2
  ha.Observe(7);
  hb.Observe(2);  // b: le5=1 inf=2
  hb.Observe(50);
  const std::string text = SerializeFamilies(MergeFamilies({ThroughText(a), ThroughText(b)}));
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"1\"}"), "1") << text;
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"5\"}"), "2") << text;   // a's 1 (at le=1) + b's 1
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"10\"}"), "3") << text;  // a's 2 + b's 1 (at le=5)
  EXPECT_EQ(ValueOf(text, "lat_bucket{le=\"+Inf\"}"), "4") << text;
  EXPECT_EQ(ValueOf(text, "lat_count"), "4") << text;
}

TEST(MetricsMergeTest, GaugesTakeTheLargestValue) {
  prometheus::Registry a, b, c;
  prometheus::BuildGauge().Name("age").Help("h").Register(a).Add({}).Set(1.5);
  prometheus::BuildGauge().Name("age").Help("h").Register(b).Add({}).Set(4.25);
  prometheus::BuildGauge().Name("age").Help("h").Register(c).Add({}).Set(
      std::numeric_limits<double>::quiet_NaN());
  prometheus::BuildGauge().Name("lag").Help("h").Register(a).Add({}).Set(-3);
  prometheus::BuildGauge().Name("lag").Help("h").Register(b).Add({}).Set(-7);
  const auto merged = MergeFamilies({ThroughText(a), ThroughText(b), ThroughText(c)});
  const std::string text = SerializeFamilies(merged);
  EXPECT_EQ(ValueOf(text, "age"), "4.25") << text;
  EXPECT_EQ(ValueOf(text, "lag"), "-3") << text;
  // NaN only when every source is NaN.
  MetricFamily nan_only = *Find(ThroughText(c), "age");
  const auto both_nan = MergeFamilies({{nan_only}, {nan_only}});
  EXPECT_TRUE(std::isnan(both_nan[0].metric[0].gauge.value));
}

TEST(MetricsMergeTest, SummariesSumCountAndSumAndKeepTheLargestQuantile) {
  const prometheus::Summary::Quantiles q{{0.5, 0.05}};
  prometheus::Registry a, b;
  auto& sa = prometheus::BuildSummary().Name("s").Help("h").Register(a).Add({}, q);
  auto& sb = prometheus::BuildSummary().Name("s").Help("h").Register(b).Add({}, q);
  sa.Observe(2);
  sb.Observe(10);
  sb.Observe(10);
  const std::string text = SerializeFamilies(MergeFamilies({ThroughText(a), ThroughText(b)}));
  EXPECT_EQ(ValueOf(text, "s_count"), "3") << text;
  EXPECT_EQ(ValueOf(text, "s_sum"), "22") << text;
  EXPECT_EQ(ValueOf(text, "s{quantile=\"0.5\"}"), "10") << text;
}

TEST(MetricsMergeTest, FamiliesKeepTheFirstSourcesOrderAndTheOthersAppend) {
  prometheus::Registry a, b;
  prometheus::BuildCounter().Name("z_total").Help("h").Register(a).Add({}).Increment();
  prometheus::BuildCounter().Name("a_total").Help("h").Register(a).Add({}).Increment();
  prometheus::BuildCounter().Name("only_b_total").Help("h").Register(b).Add({}).Increment(5);
  prometheus::BuildCounter().Name("a_total").Help("h").Register(b).Add({}).Increment();
  const auto merged = MergeFamilies({ThroughText(a), ThroughText(b)});
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].name, "z_total");
  EXPECT_EQ(merged[1].name, "a_total");
  EXPECT_EQ(merged[1].metric[0].counter.value, 2);
  EXPECT_EQ(merged[2].name, "only_b_total");
  EXPECT_EQ(merged[2].metric[0].counter.value, 5);
}

TEST(MetricsMergeTest, AFamilyOfAnotherTypeIsDropped) {
  prometheus::Registry a, b;
  prometheus::BuildCounter().Name("x").Help("h").Register(a).Add({}).Increment(2);
  prometheus::BuildGauge().Name("x").Help("h").Register(b).Add({}).Set(100);
  const auto merged = MergeFamilies({ThroughText(a), ThroughText(b)});
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_EQ(merged[0].type, prometheus::MetricType::Counter);
  EXPECT_EQ(merged[0].metric[0].counter.value, 2);
}

TEST(MetricsMergeTest, NoSourceAndEmptyTextGiveNothing) {
  EXPECT_TRUE(MergeFamilies({}).empty());
  auto parsed = ParsePrometheusText("");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->empty());
}

TEST(MetricsMergeTest, MalformedTextIsRejectedNamingTheLine) {
  struct Case {
    const char* text;
    const char* expected;  // part of the message
  };
  const Case cases[] = {
      {"x_total 1\n", "line 1 'x_total 1': expected a '# TYPE' line before the samples"},
      {"# TYPE x counter\nx{a=\"1\\t\"} 1\n", "line 2"},
      {"# TYPE x counter\nx{a=\"1\"} one\n", "a value (a number, +Inf, -Inf or Nan)"},
      {"# TYPE x counter\ny 1\n", "a sample of family 'x'"},
      {"# TYPE x counter\nx_sum 1\n", "the sample name 'x'"},
      {"# TYPE x counter\nx{a=\"1\" 1\n", "',' or '}' after a label"},
      {"# TYPE x counter\nx{a=\"1} 1\n", "a closing \" after the label value"},
      {"# TYPE x histogram\nx_bucket{le=\"abc\"} 1\n", "a bucket bound"},
      {"# TYPE x histogram\nx_count 1.5\n", "a sample count"},
      {"# TYPE x summary\nx 1\n", "a quantile=\"NUMBER\" label"},
      {"# TYPE x wibble\n", "a type counter, gauge"},
      {"# TYPE x counter\nx 1 12a\n", "an integer timestamp"},
  };
  for (const Case& c : cases) {
    auto parsed = ParsePrometheusText(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_NE(parsed.status().ToString().find(c.expected), std::string::npos)
        << c.text << " -> " << parsed.status().ToString();
  }
}

}  // namespace
}  // namespace duet::serve
