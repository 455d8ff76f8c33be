#include "serve/metrics_merge.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <utility>

namespace duet::serve {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Label = ClientMetric::Label;

// A line quoted in an error message: long enough to recognise, never a whole exposition.
constexpr size_t kQuotedChars = 160;

Status BadLine(size_t number, std::string_view line, std::string_view expected) {
  return Status::InvalidArgument("metrics text line " + std::to_string(number) + " '" +
                                 std::string(line.substr(0, kQuotedChars)) + "': expected " +
                                 std::string(expected));
}

bool ParseDouble(std::string_view s, double* out) {
  if (s == "+Inf" || s == "Inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "Nan" || s == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

template <typename Int>
bool ParseInt(std::string_view s, Int* out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool IsNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

// One sample line: `name{label="value",…} value [timestamp]`.
struct Sample {
  std::string_view name;
  std::vector<Label> labels;
  std::string_view value;
  int64_t timestamp_ms = 0;
};

// Parses a sample line; the expectation that failed otherwise.
std::optional<std::string_view> ParseSample(std::string_view line, Sample* s) {
  size_t i = 0;
  while (i < line.size() && IsNameChar(line[i], i == 0)) ++i;
  if (i == 0) return "a metric name";
  s->name = line.substr(0, i);
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t start = i;
      while (i < line.size() && IsNameChar(line[i], i == start)) ++i;
      if (i == start) return "a label name";
      Label label;
      label.name = std::string(line.substr(start, i - start));
      if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
        return "=\" after the label name";
      }
      i += 2;
      bool closed = false;
      while (i < line.size()) {
        const char c = line[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          label.value.push_back(c);
          continue;
        }
        if (i >= line.size()) break;
        const char e = line[i++];
        if (e == 'n') {
          label.value.push_back('\n');
        } else if (e == '\\' || e == '"') {
          label.value.push_back(e);
        } else {
          return "a label value escape \\\\, \\\" or \\n";
        }
      }
      if (!closed) return "a closing \" after the label value";
      s->labels.push_back(std::move(label));
      if (i < line.size() && line[i] == ',') {
        ++i;
        if (i < line.size() && line[i] == '}') return "a label after ','";
      } else if (i >= line.size() || line[i] != '}') {
        return "',' or '}' after a label";
      }
    }
    if (i >= line.size()) return "'}' closing the labels";
    ++i;
  }
  if (i >= line.size() || line[i] != ' ') return "a space before the value";
  ++i;
  const size_t space = line.find(' ', i);
  s->value = line.substr(i, space == std::string_view::npos ? std::string_view::npos : space - i);
  if (space != std::string_view::npos && !ParseInt(line.substr(space + 1), &s->timestamp_ms)) {
    return "an integer timestamp in milliseconds after the value";
  }
  return std::nullopt;
}

// Removes the label `name` from `labels` and puts its value in `value`; false if absent.
bool TakeLabel(std::vector<Label>* labels, std::string_view name, std::string* value) {
  const auto it =
      std::find_if(labels->begin(), labels->end(), [&](const Label& l) { return l.name == name; });
  if (it == labels->end()) return false;
  *value = std::move(it->value);
  labels->erase(it);
  return true;
}

// The family's metric with exactly these labels, added when absent. The lines of one metric are
// consecutive in the exposition, so the search starts from the back.
ClientMetric* MetricWith(MetricFamily* f, std::vector<Label>* labels) {
  for (auto it = f->metric.rbegin(); it != f->metric.rend(); ++it) {
    if (it->label == *labels) return &*it;
  }
  f->metric.emplace_back();
  f->metric.back().label = std::move(*labels);
  return &f->metric.back();
}

std::optional<MetricType> TypeNamed(std::string_view name) {
  if (name == "counter") return MetricType::Counter;
  if (name == "gauge") return MetricType::Gauge;
  if (name == "histogram") return MetricType::Histogram;
  if (name == "summary") return MetricType::Summary;
  if (name == "untyped") return MetricType::Untyped;
  return std::nullopt;
}

double Larger(double a, double b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  return std::max(a, b);
}

// Cumulative buckets of two sources, both sorted by bound: see the header.
std::vector<ClientMetric::Bucket> MergeBuckets(const std::vector<ClientMetric::Bucket>& a,
                                               const std::vector<ClientMetric::Bucket>& b) {
  std::vector<ClientMetric::Bucket> out;
  out.reserve(std::max(a.size(), b.size()));
  size_t i = 0, j = 0;
  uint64_t count_a = 0, count_b = 0;
  while (i < a.size() || j < b.size()) {
    ClientMetric::Bucket merged;
    if (j >= b.size() || (i < a.size() && a[i].upper_bound < b[j].upper_bound)) {
      merged.upper_bound = a[i].upper_bound;
      count_a = a[i++].cumulative_count;
    } else if (i >= a.size() || b[j].upper_bound < a[i].upper_bound) {
      merged.upper_bound = b[j].upper_bound;
      count_b = b[j++].cumulative_count;
    } else {
      merged.upper_bound = a[i].upper_bound;
      count_a = a[i++].cumulative_count;
      count_b = b[j++].cumulative_count;
    }
    merged.cumulative_count = count_a + count_b;
    out.push_back(merged);
  }
  return out;
}

void MergeMetric(MetricType type, const ClientMetric& from, ClientMetric* into) {
  into->timestamp_ms = std::max(into->timestamp_ms, from.timestamp_ms);
  switch (type) {
    case MetricType::Counter:
      into->counter.value += from.counter.value;
      break;
    case MetricType::Gauge:
      into->gauge.value = Larger(into->gauge.value, from.gauge.value);
      break;
    case MetricType::Untyped:
      into->untyped.value = Larger(into->untyped.value, from.untyped.value);
      break;
    case MetricType::Summary: {
      into->summary.sample_count += from.summary.sample_count;
      into->summary.sample_sum += from.summary.sample_sum;
      auto& quantiles = into->summary.quantile;
      for (const ClientMetric::Quantile& q : from.summary.quantile) {
        const auto it = std::find_if(quantiles.begin(), quantiles.end(),
                                     [&](const auto& x) { return x.quantile == q.quantile; });
        if (it == quantiles.end()) {
          quantiles.push_back(q);
        } else {
          it->value = Larger(it->value, q.value);
        }
      }
      std::sort(quantiles.begin(), quantiles.end(),
                [](const auto& x, const auto& y) { return x.quantile < y.quantile; });
      break;
    }
    case MetricType::Histogram:
      into->histogram.sample_count += from.histogram.sample_count;
      into->histogram.sample_sum += from.histogram.sample_sum;
      into->histogram.bucket = MergeBuckets(into->histogram.bucket, from.histogram.bucket);
      break;
  }
}

}  // namespace

Result<std::vector<MetricFamily>> ParsePrometheusText(std::string_view text) {
  std::vector<MetricFamily> families;
  std::map<std::string, size_t, std::less<>> index;
  auto family = [&](std::string_view name) -> MetricFamily* {
    auto [it, fresh] = index.emplace(std::string(name), families.size());
    if (fresh) {
      families.emplace_back();
      families.back().name = std::string(name);
    }
    return &families[it->second];
  };
  MetricFamily* current = nullptr;  // the family of the last # TYPE line
  size_t number = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++number;
    if (line.empty()) continue;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const std::string_view rest = line.substr(7);
      const size_t space = rest.find(' ');
      const std::string_view name = rest.substr(0, space);
      if (name.empty() || space == std::string_view::npos ||
          !std::all_of(name.begin(), name.end(), [](char c) { return IsNameChar(c, false); })) {
        return BadLine(number, line, "a metric name and a text after '# HELP' or '# TYPE'");
      }
      MetricFamily* f = family(name);
      if (line[2] == 'H') {
        f->help = std::string(rest.substr(space + 1));
        continue;
      }
      const std::optional<MetricType> type = TypeNamed(rest.substr(space + 1));
      if (!type) {
        return BadLine(number, line, "a type counter, gauge, histogram, summary or untyped");
      }
      if (!f->metric.empty() && f->type != *type) {
        return BadLine(number, line, "the type given before for this family");
      }
      f->type = *type;
      current = f;
      continue;
    }
    if (line.front() == '#') continue;  // a comment
    Sample s;
    if (auto expected = ParseSample(line, &s)) return BadLine(number, line, *expected);
    if (current == nullptr) return BadLine(number, line, "a '# TYPE' line before the samples");
    std::string_view suffix = s.name;
    if (!suffix.starts_with(current->name)) {
      return BadLine(number, line, "a sample of family '" + current->name + "'");
    }
    suffix.remove_prefix(current->name.size());
    double value = 0;
    uint64_t count = 0;
    const bool counted = suffix == "_count" || suffix == "_bucket";
    if (counted ? !ParseInt(s.value, &count) : !ParseDouble(s.value, &value)) {
      return BadLine(number, line,
                     counted ? "a sample count (an unsigned integer)"
                             : "a value (a number, +Inf, -Inf or Nan)");
    }
    switch (current->type) {
      case MetricType::Counter:
      case MetricType::Gauge:
      case MetricType::Untyped: {
        if (!suffix.empty()) {
          return BadLine(number, line, "the sample name '" + current->name + "'");
        }
        ClientMetric m;
        m.label = std::move(s.labels);
        m.timestamp_ms = s.timestamp_ms;
        (current->type == MetricType::Counter ? m.counter.value
         : current->type == MetricType::Gauge ? m.gauge.value
                                              : m.untyped.value) = value;
        current->metric.push_back(std::move(m));
        break;
      }
      case MetricType::Histogram: {
        std::string le;
        double bound = 0;
        if (suffix == "_bucket" && (!TakeLabel(&s.labels, "le", &le) || !ParseDouble(le, &bound))) {
          return BadLine(number, line, "a bucket bound le=\"NUMBER\" or le=\"+Inf\"");
        }
        if (suffix != "_count" && suffix != "_sum" && suffix != "_bucket") {
          return BadLine(number, line,
                         "a sample _count, _sum or _bucket of '" + current->name + "'");
        }
        ClientMetric* m = MetricWith(current, &s.labels);
        m->timestamp_ms = s.timestamp_ms;
        if (suffix == "_count") {
          m->histogram.sample_count = count;
        } else if (suffix == "_sum") {
          m->histogram.sample_sum = value;
        } else {
          m->histogram.bucket.push_back({count, bound});
        }
        break;
      }
      case MetricType::Summary: {
        std::string quantile;
        double q = 0;
        if (suffix.empty() &&
            (!TakeLabel(&s.labels, "quantile", &quantile) || !ParseDouble(quantile, &q))) {
          return BadLine(number, line, "a quantile=\"NUMBER\" label");
        }
        if (!suffix.empty() && suffix != "_count" && suffix != "_sum") {
          return BadLine(number, line,
                         "a sample _count, _sum or a quantile of '" + current->name + "'");
        }
        ClientMetric* m = MetricWith(current, &s.labels);
        m->timestamp_ms = s.timestamp_ms;
        if (suffix == "_count") {
          m->summary.sample_count = count;
        } else if (suffix == "_sum") {
          m->summary.sample_sum = value;
        } else {
          m->summary.quantile.push_back({q, value});
        }
        break;
      }
    }
  }
  return families;
}

std::vector<MetricFamily> MergeFamilies(const std::vector<std::vector<MetricFamily>>& sources) {
  std::vector<MetricFamily> out;
  std::map<std::string, size_t, std::less<>> family_at;
  // Per merged family: its metrics by sorted label set.
  std::vector<std::map<std::vector<Label>, size_t>> metric_at;
  for (const std::vector<MetricFamily>& source : sources) {
    for (const MetricFamily& f : source) {
      const auto [it, fresh] = family_at.emplace(f.name, out.size());
      if (fresh) {
        MetricFamily copy;
        copy.name = f.name;
        copy.help = f.help;
        copy.type = f.type;
        out.push_back(std::move(copy));
        metric_at.emplace_back();
      }
      MetricFamily& into = out[it->second];
      if (into.type != f.type) continue;
      if (into.help.empty()) into.help = f.help;
      for (const ClientMetric& m : f.metric) {
        std::vector<Label> key = m.label;
        std::sort(key.begin(), key.end());
        const auto [at, new_metric] = metric_at[it->second].emplace(key, into.metric.size());
        if (new_metric) {
          into.metric.push_back(m);
        } else {
          MergeMetric(f.type, m, &into.metric[at->second]);
        }
      }
    }
  }
  return out;
}

std::string SerializeFamilies(const std::vector<MetricFamily>& families) {
  const prometheus::TextSerializer serializer;
  return serializer.Serialize(families);
}

}  // namespace duet::serve
