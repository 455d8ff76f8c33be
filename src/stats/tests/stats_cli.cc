// Test-only driver for tests/stats/reference_check.py: reads
//   {"confidence":0.95,"srm_threshold":0.001,"expected_share":[...],"variants":[{figures}, ...]}
// from stdin (the first variant is the control; missing figure fields are 0) and prints
//   {"comparisons":[{"conversion_rate_visitor":{...},...}, ...],"sample_ratio":{...}}
// with one comparison per treatment, every field of stats::Comparison and stats::SampleRatio;
// NaN is printed as null. Exit status 1 and a message on stderr for malformed input.
#include <simdjson.h>

#include <cstdint>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "core/views.h"
#include "stats/ab.h"
#include "util/json_writer.h"

namespace {

namespace dom = simdjson::dom;
using duet::AppendJsonDouble;
using duet::AppendJsonString;

bool ReadInt(const dom::object& o, std::string_view key, int64_t* out) {
  dom::element e;
  if (o[key].get(e) != simdjson::SUCCESS) return true;  // absent: 0
  return e.get_int64().get(*out) == simdjson::SUCCESS;
}

bool ReadDouble(const dom::object& o, std::string_view key, double* out) {
  dom::element e;
  if (o[key].get(e) != simdjson::SUCCESS) return true;
  return e.get_double().get(*out) == simdjson::SUCCESS;
}

bool ReadFigures(const dom::object& o, duet::core::FigureValues* v) {
  return ReadInt(o, "visitors", &v->visitors) && ReadInt(o, "sessions", &v->sessions) &&
         ReadInt(o, "events", &v->events) && ReadInt(o, "pageviews", &v->pageviews) &&
         ReadInt(o, "conversions", &v->conversions) && ReadInt(o, "bounces", &v->bounces) &&
         ReadInt(o, "duration_ms", &v->duration_ms) &&
         ReadInt(o, "converted_visitors", &v->converted_visitors) &&
         ReadInt(o, "sessions_sq", &v->sessions_sq) &&
         ReadInt(o, "conversions_sq", &v->conversions_sq) &&
         ReadInt(o, "sessions_x_conversions", &v->sessions_x_conversions) &&
         ReadDouble(o, "revenue", &v->revenue) && ReadDouble(o, "revenue_sq", &v->revenue_sq);
}

void Key(std::string* out, std::string_view key) {
  AppendJsonString(out, key);
  out->push_back(':');
}

void WriteInterval(std::string* out, const duet::stats::Interval& i) {
  out->push_back('[');
  AppendJsonDouble(out, i.low);
  out->push_back(',');
  AppendJsonDouble(out, i.high);
  out->push_back(']');
}

void WriteComparison(std::string* out, const duet::stats::Comparison& c) {
  out->push_back('{');
  Key(out, "test");
  AppendJsonString(out, duet::stats::TestName(c.test));
  const std::pair<std::string_view, double> numbers[] = {{"control", c.control},
                                                         {"treatment", c.treatment},
                                                         {"absolute_lift", c.absolute_lift},
                                                         {"relative_lift", c.relative_lift},
                                                         {"statistic", c.statistic},
                                                         {"df", c.df},
                                                         {"p_value", c.p_value}};
  for (const auto& [key, value] : numbers) {
    out->push_back(',');
    Key(out, key);
    AppendJsonDouble(out, value);
  }
  out->push_back(',');
  Key(out, "absolute_ci");
  WriteInterval(out, c.absolute_ci);
  out->push_back(',');
  Key(out, "relative_ci");
  WriteInterval(out, c.relative_ci);
  out->push_back(',');
  Key(out, "significant");
  out->append(c.significant ? "true" : "false");
  out->push_back('}');
}

void WriteDoubles(std::string* out, const std::vector<double>& values) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonDouble(out, values[i]);
  }
  out->push_back(']');
}

int Fail(std::string_view message) {
  std::cerr << "stats_cli: " << message << "\n";
  return 1;
}

}  // namespace

int main() {
  const std::string input{std::istreambuf_iterator<char>(std::cin),
                          std::istreambuf_iterator<char>()};
  dom::parser parser;
  dom::object doc;
  if (parser.parse(input).get(doc) != simdjson::SUCCESS) return Fail("input is not a JSON object");
  double confidence = 0.95;
  double threshold = 0.001;
  if (!ReadDouble(doc, "confidence", &confidence) ||
      !ReadDouble(doc, "srm_threshold", &threshold)) {
    return Fail("confidence and srm_threshold must be numbers");
  }
  std::vector<double> expected_share;
  dom::array shares;
  if (doc["expected_share"].get(shares) == simdjson::SUCCESS) {
    for (const dom::element e : shares) {
      double w = 0;
      if (e.get_double().get(w) != simdjson::SUCCESS) return Fail("expected_share: not a number");
      expected_share.push_back(w);
    }
  }
  dom::array variants;
  if (doc["variants"].get(variants) != simdjson::SUCCESS) return Fail("variants: not an array");
  std::vector<duet::core::FigureValues> figures;
  for (const dom::element e : variants) {
    dom::object o;
    duet::core::FigureValues v;
    if (e.get_object().get(o) != simdjson::SUCCESS || !ReadFigures(o, &v)) {
      return Fail("variants: each must be an object of numeric figures");
    }
    figures.push_back(v);
  }
  if (figures.empty()) return Fail("variants: need at least the control");

  std::string out = "{";
  Key(&out, "comparisons");
  out.push_back('[');
  for (size_t i = 1; i < figures.size(); ++i) {
    if (i > 1) out.push_back(',');
    const duet::stats::VariantComparison vc =
        duet::stats::Compare(figures[0], figures[i], confidence);
    out.push_back('{');
    Key(&out, "conversion_rate_visitor");
    WriteComparison(&out, vc.conversion_rate_visitor);
    out.push_back(',');
    Key(&out, "conversion_rate_session");
    WriteComparison(&out, vc.conversion_rate_session);
    out.push_back(',');
    Key(&out, "revenue_per_visitor");
    WriteComparison(&out, vc.revenue_per_visitor);
    out.push_back('}');
  }
  out.append("],");
  std::vector<int64_t> visitors;
  for (const auto& v : figures) visitors.push_back(v.visitors);
  const duet::stats::SampleRatio srm =
      duet::stats::SampleRatioTest(visitors, expected_share, threshold);
  Key(&out, "sample_ratio");
  out.push_back('{');
  Key(&out, "statistic");
  AppendJsonDouble(&out, srm.statistic);
  out.push_back(',');
  Key(&out, "df");
  AppendJsonDouble(&out, srm.df);
  out.push_back(',');
  Key(&out, "p_value");
  AppendJsonDouble(&out, srm.p_value);
  out.push_back(',');
  Key(&out, "expected_share");
  WriteDoubles(&out, srm.expected_share);
  out.push_back(',');
  Key(&out, "observed_share");
  WriteDoubles(&out, srm.observed_share);
  out.push_back(',');
  Key(&out, "mismatch");
  out.append(srm.mismatch ? "true" : "false");
  out.append("}}\n");
  std::cout << out;
  return 0;
}
