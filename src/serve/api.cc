#include "serve/api.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "report/report.h"
#include "serve/job_api.h"
#include "serve/model_api.h"
#include "serve/worker_metrics.h"
#include "stats/ab.h"
#include "util/json_writer.h"

namespace duet::serve {
namespace {

constexpr int64_t kHourMs = 3'600'000;

std::string TimeString(int64_t ms) { return UtcTimeString(ms); }

HttpResponse JsonResponse(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// ------------------------------------------------------------------ query parameters

int FromHex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding ('+' is a space in a query). False for a malformed escape.
bool Decode(std::string_view in, bool query, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = FromHex(in[i + 1]);
      const int lo = FromHex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && query) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

using Params = std::map<std::string, std::string, std::less<>>;

// Parses the query; 400 for a malformed one, a repeated or an unknown parameter (named).
std::optional<HttpResponse> ParseQuery(std::string_view query,
                                       std::initializer_list<std::string_view> allowed,
                                       Params* out) {
  std::string key, value;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (!Decode(part.substr(0, eq), true, &key) ||
        !Decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1), true,
                &value)) {
      return Problem(400, "query: malformed percent-encoding in '" + std::string(part) + "'");
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string names;
      for (std::string_view a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
      return Problem(400, "query parameter '" + key + "' is not known here; expected " +
                              (names.empty() ? std::string("none") : names));
    }
    if (!out->emplace(key, value).second) {
      return Problem(400, "query parameter '" + key + "' is given more than once");
    }
  }
  return std::nullopt;
}

// RFC 3339 UTC ("2026-11-01T05:00:00Z", optional fraction, "+00:00" allowed) or epoch ms.
std::optional<int64_t> ParseTime(std::string_view s) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() > 15) return std::nullopt;
    return std::stoll(std::string(s));
  }
  int y, mo, d, h, mi, sec, n = 0;
  const std::string str(s);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
      n != 19) {
    return std::nullopt;
  }
  std::string_view rest = s.substr(19);
  int64_t ms = 0;
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    int64_t scale = 100;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
      ms += (rest[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == 1) return std::nullopt;
    rest.remove_prefix(i);
  }
  // "+00:00" arrives as " 00:00" when the '+' was not percent-encoded in the query.
  if (rest != "Z" && rest != "z" && rest != "+00:00" && rest != " 00:00") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// The hours selected by from/to: [from, to) on hour starts (in hours since the epoch).
struct HourRange {
  int64_t from = INT64_MIN;  // first hour selected
  int64_t to = INT64_MAX;    // first hour not selected
  bool limited = false;
  bool Has(int64_t hour) const { return hour >= from && hour < to; }
};

std::optional<HttpResponse> ParseRange(const Params& p, HourRange* r) {
  std::optional<int64_t> from_ms, to_ms;
  for (const auto& [name, field] : {std::pair{"from", &from_ms}, std::pair{"to", &to_ms}}) {
    auto it = p.find(name);
    if (it == p.end()) continue;
    *field = ParseTime(it->second);
    if (!*field) {
      return Problem(400, std::string("query parameter '") + name + "': '" + it->second +
                              "' is not a time; expected RFC 3339 UTC (2026-11-01T05:00:00Z) "
                              "or epoch milliseconds");
    }
  }
  if (from_ms && to_ms && *from_ms >= *to_ms) {
    return Problem(422, "query parameters 'from' (" + p.find("from")->second + ") and 'to' (" +
                            p.find("to")->second + "): 'from' must be before 'to'");
  }
  // An hour is selected when its start is in [from, to).
  if (from_ms) r->from = *from_ms >= 0 ? (*from_ms + kHourMs - 1) / kHourMs : *from_ms / kHourMs;
  if (to_ms) r->to = *to_ms >= 0 ? (*to_ms + kHourMs - 1) / kHourMs : *to_ms / kHourMs;
  r->limited = from_ms.has_value() || to_ms.has_value();
  if (r->from >= r->to) {
    return Problem(422,
                   "query parameters 'from' and 'to' select no whole hour (an hour is "
                   "selected when it starts at or after 'from' and before 'to')");
  }
  return std::nullopt;
}

// ------------------------------------------------------------------ figures and metrics

void Add(core::FigureValues* a, const core::FigureValues& b) {
  a->visitors += b.visitors;
  a->sessions += b.sessions;
  a->events += b.events;
  a->pageviews += b.pageviews;
  a->conversions += b.conversions;
  a->bounces += b.bounces;
  a->duration_ms += b.duration_ms;
  a->converted_visitors += b.converted_visitors;
  a->sessions_sq += b.sessions_sq;
  a->conversions_sq += b.conversions_sq;
  a->sessions_x_conversions += b.sessions_x_conversions;
  a->revenue += b.revenue;
  a->revenue_sq += b.revenue_sq;
}

// A metric of the timeseries endpoint: a figure or a rate, per hour.
struct Metric {
  std::string_view name;
  double (*value)(const core::FigureValues&);
  bool rate;
};

double Ratio(double n, double d) { return d > 0 ? n / d : std::nan(""); }

constexpr Metric kMetrics[] = {
    {"visitors", [](const core::FigureValues& v) { return double(v.visitors); }, false},
    {"sessions", [](const core::FigureValues& v) { return double(v.sessions); }, false},
    {"events", [](const core::FigureValues& v) { return double(v.events); }, false},
    {"pageviews", [](const core::FigureValues& v) { return double(v.pageviews); }, false},
    {"conversions", [](const core::FigureValues& v) { return double(v.conversions); }, false},
    {"revenue", [](const core::FigureValues& v) { return v.revenue; }, false},
    {"bounces", [](const core::FigureValues& v) { return double(v.bounces); }, false},
    {"duration_ms", [](const core::FigureValues& v) { return double(v.duration_ms); }, false},
    {"converted_visitors", [](const core::FigureValues& v) { return double(v.converted_visitors); },
     false},
    {"sessions_sq", [](const core::FigureValues& v) { return double(v.sessions_sq); }, false},
    {"conversions_sq", [](const core::FigureValues& v) { return double(v.conversions_sq); }, false},
    {"sessions_x_conversions",
     [](const core::FigureValues& v) { return double(v.sessions_x_conversions); }, false},
    {"revenue_sq", [](const core::FigureValues& v) { return v.revenue_sq; }, false},
    {"conversion_rate_visitor",
     [](const core::FigureValues& v) { return Ratio(v.converted_visitors, v.visitors); }, true},
    {"conversion_rate_session",
     [](const core::FigureValues& v) { return Ratio(v.conversions, v.sessions); }, true},
    {"revenue_per_visitor",
     [](const core::FigureValues& v) { return Ratio(v.revenue, v.visitors); }, true},
    {"bounce_rate", [](const core::FigureValues& v) { return Ratio(v.bounces, v.sessions); }, true},
};

// The default control variant: "control" if present, else the first by name.
std::string DefaultControl(const std::vector<std::string>& variants) {
  for (const std::string& v : variants) {
    if (v == "control") return v;
  }
  return variants.empty() ? std::string() : variants.front();
}

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void WriteComparison(Json* j, const stats::Comparison& c) {
  j->Open();
  j->Key("test").Str(stats::TestName(c.test));
  j->Key("control").Num(c.control);
  j->Key("treatment").Num(c.treatment);
  j->Key("absolute_lift").Num(c.absolute_lift);
  j->Key("absolute_ci").OpenArray().Num(c.absolute_ci.low).Num(c.absolute_ci.high).CloseArray();
  j->Key("relative_lift").Num(c.relative_lift);
  j->Key("relative_ci").OpenArray().Num(c.relative_ci.low).Num(c.relative_ci.high).CloseArray();
  j->Key("statistic").Num(c.statistic);
  j->Key("df").Num(c.df);
  j->Key("p_value").Num(c.p_value);
  j->Key("significant").Bool(c.significant);
  j->Close();
}

std::string FigureFields(const core::FigureValues& v, bool with_multi) {
  std::string out;
  report::AppendFigureFields(&out, v, with_multi);
  return out;
}

// ------------------------------------------------------------------ endpoints

struct Ctx {
  const Snapshot& snap;
  const Params& params;
  const ApiOptions& options;
  int64_t now_ms;
};

// The experiment's variants (sorted by name) and their total rows; empty if unknown.
std::vector<const core::FigureRow*> VariantTotals(const Snapshot& s, std::string_view experiment) {
  std::vector<const core::FigureRow*> out;
  auto it = s.totals_by_experiment.find(experiment);
  if (it == s.totals_by_experiment.end() || experiment.empty()) return out;
  for (size_t i : it->second) out.push_back(&s.views.totals[i]);
  return out;
}

// Indexes of the experiment's hourly rows (none when it has no sessions).
const std::vector<size_t>& HourlyRows(const Snapshot& s, std::string_view experiment) {
  static const std::vector<size_t> kNone;
  auto it = s.hourly_by_experiment.find(experiment);
  return it == s.hourly_by_experiment.end() ? kNone : it->second;
}

// Series list every hour from the first to the last with data: a stray event time (a device
// clock years off) would make that enormous, so a longer span needs an explicit from/to.
constexpr int64_t kMaxSeriesHours = 24 * 400;
std::optional<HttpResponse> TooLong(int64_t first, int64_t last) {
  if (last - first + 1 <= kMaxSeriesHours) return std::nullopt;
  return Problem(422, "the data spans " + std::to_string(last - first + 1) + " hours (" +
                          TimeString(first * kHourMs) + " to " + TimeString(last * kHourMs) +
                          "); give 'from' and 'to' selecting at most " +
                          std::to_string(kMaxSeriesHours) + " hours");
}

HttpResponse UnknownExperiment(const Snapshot& s, std::string_view id) {
  std::vector<std::string> names;
  for (const auto& e : s.views.experiments) names.push_back(e.experiment);
  return Problem(404, "experiment '" + std::string(id) + "' is not in the served views; known: " +
                          (names.empty() ? std::string("(none)") : Joined(names)));
}

int64_t Contamination(const Snapshot& s, std::string_view experiment) {
  for (const auto& e : s.views.experiments) {
    if (e.experiment == experiment) return e.visitors_in_multiple_variants;
  }
  return 0;
}

HttpResponse Experiments(const Ctx& c) {
  const Snapshot& s = c.snap;
  Json j;
  j.Open().Key("experiments").OpenArray();
  for (const auto& e : s.views.experiments) {
    const auto rows = VariantTotals(s, e.experiment);
    std::vector<std::string> names;
    core::FigureValues sum;
    for (const core::FigureRow* r : rows) {
      names.push_back(r->variant);
      Add(&sum, r->v);
    }
    int64_t first = INT64_MAX, last = INT64_MIN;
    if (auto h = s.hourly_by_experiment.find(e.experiment); h != s.hourly_by_experiment.end()) {
      for (size_t i : h->second) {
        first = std::min(first, s.views.hourly[i].hour);
        last = std::max(last, s.views.hourly[i].hour);
      }
    }
    j.Open();
    j.Key("id").Str(e.experiment);
    j.Key("control").Str(DefaultControl(names));
    j.Key("variants").OpenArray();
    for (const core::FigureRow* r : rows) {
      j.Open().Key("variant").Str(r->variant);
      j.Key("visitors").Int(r->v.visitors).Key("sessions").Int(r->v.sessions).Close();
    }
    j.CloseArray();
    j.Key("visitors").Int(sum.visitors).Key("sessions").Int(sum.sessions);
    j.Key("visitors_in_multiple_variants").Int(e.visitors_in_multiple_variants);
    if (first == INT64_MAX) {
      j.Key("first_seen").Null().Key("last_seen").Null();
    } else {
      j.Key("first_seen").Str(TimeString(first * kHourMs));
      j.Key("last_seen").Str(TimeString(last * kHourMs));
    }
    j.Close();
  }
  j.CloseArray().Key("as_of").Str(TimeString(s.loaded_ms)).Close();
  return JsonResponse(j.Take());
}

HttpResponse Report(const Ctx& c, std::string_view id) {
  const Snapshot& s = c.snap;
  const auto rows = VariantTotals(s, id);
  if (rows.empty()) return UnknownExperiment(s, id);
  HourRange range;
  if (auto bad = ParseRange(c.params, &range)) return *bad;
  double confidence = 0.95;
  if (auto it = c.params.find("confidence"); it != c.params.end()) {
    char* end = nullptr;
    confidence = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end != '\0' || !(confidence > 0 && confidence < 1)) {
      return Problem(400, "query parameter 'confidence': '" + it->second +
                              "' is not a number in (0, 1), e.g. 0.95");
    }
  }
  std::vector<std::string> names;
  std::vector<core::FigureValues> figures;
  for (const core::FigureRow* r : rows) {
    names.push_back(r->variant);
    core::FigureValues v = r->v;
    if (range.limited) {
      const int64_t multi = v.visitors_in_multiple_variants;
      v = core::FigureValues();
      v.visitors_in_multiple_variants = multi;
      for (size_t i : HourlyRows(s, id)) {
        const core::FigureRow& h = s.views.hourly[i];
        if (h.variant == r->variant && range.Has(h.hour)) Add(&v, h.v);
      }
    }
    figures.push_back(v);
  }
  std::string control = DefaultControl(names);
  if (auto it = c.params.find("control"); it != c.params.end()) {
    if (std::find(names.begin(), names.end(), it->second) == names.end()) {
      return Problem(422, "query parameter 'control': experiment '" + std::string(id) +
                              "' has no variant '" + it->second +
                              "'; its variants: " + Joined(names));
    }
    control = it->second;
  }
  const size_t ci = std::find(names.begin(), names.end(), control) - names.begin();
  Json j;
  j.Open();
  j.Key("experiment").Str(id);
  j.Key("control").Str(control);
  j.Key("confidence").Num(confidence);
  j.Key("from");
  if (range.from != INT64_MIN)
    j.Str(TimeString(range.from * kHourMs));
  else
    j.Null();
  j.Key("to");
  if (range.to != INT64_MAX)
    j.Str(TimeString(range.to * kHourMs));
  else
    j.Null();
  j.Key("unit").Str(range.limited ? "visitor_hour" : "visitor");
  j.Key("visitors_in_multiple_variants").Int(Contamination(s, id));
  j.Key("variants").OpenArray();
  std::vector<int64_t> visitors;
  for (size_t i = 0; i < names.size(); ++i) {
    const core::FigureValues& v = figures[i];
    visitors.push_back(v.visitors);
    const stats::Rates rates = stats::RatesOf(v);
    j.Open().Key("variant").Str(names[i]);
    j.Fields(FigureFields(v, true));
    j.Key("conversion_rate_visitor").Num(rates.conversion_rate_visitor);
    j.Key("conversion_rate_session").Num(rates.conversion_rate_session);
    j.Key("revenue_per_visitor").Num(rates.revenue_per_visitor);
    j.Key("bounce_rate").Num(rates.bounce_rate);
    j.Key("vs_control");
    if (i == ci) {
      j.Null();
    } else {
      const stats::VariantComparison vc = stats::Compare(figures[ci], v, confidence);
      j.Open();
      j.Key("conversion_rate_visitor");
      WriteComparison(&j, vc.conversion_rate_visitor);
      j.Key("conversion_rate_session");
      WriteComparison(&j, vc.conversion_rate_session);
      j.Key("revenue_per_visitor");
      WriteComparison(&j, vc.revenue_per_visitor);
      j.Close();
    }
    j.Close();
  }
  j.CloseArray();
  const stats::SampleRatio srm = stats::SampleRatioTest(visitors, {}, c.options.srm_threshold);
  j.Key("srm").Open();
  j.Key("test").Str("chi_square");
  j.Key("statistic").Num(srm.statistic);
  j.Key("df").Num(srm.df);
  j.Key("p_value").Num(srm.p_value);
  j.Key("expected_share").OpenArray();
  for (double x : srm.expected_share) j.Num(x);
  j.CloseArray().Key("observed_share").OpenArray();
  for (double x : srm.observed_share) j.Num(x);
  j.CloseArray();
  j.Key("threshold").Num(c.options.srm_threshold);
  j.Key("mismatch").Bool(srm.mismatch);
  j.Key("warning");
  if (srm.mismatch) {
    char buf[320];
    std::snprintf(buf, sizeof(buf),
                  "sample ratio mismatch: chi-square %.2f, p = %.2g < %g — the split of visitors "
                  "differs from the expected one beyond chance; the lifts are not trustworthy "
                  "until its cause is found",
                  srm.statistic, srm.p_value, c.options.srm_threshold);
    j.Str(buf);
  } else {
    j.Null();
  }
  j.Close();
  // Live scoring: the speed layer's model read of the sessions in progress, next to the
  // conversions observed so far (docs/model.md, "Live scoring").
  j.Key("live");
  const core::LiveScores& live = s.views.live;
  if (live.model_version == 0) {
    j.Null();
  } else {
    j.Open().Key("model_version").Int(live.model_version);
    j.Key("max_model_version").Int(live.max_model_version);
    j.Key("as_of").Str(TimeString(live.as_of_ms));
    j.Key("variants").OpenArray();
    for (size_t i = 0; i < names.size(); ++i) {
      int64_t sessions = 0;
      double expected = 0;
      for (const core::LiveRow& row : live.rows) {
        if (row.experiment == id && row.variant == names[i]) {
          sessions = row.sessions;
          expected = row.expected_conversions;
        }
      }
      j.Open().Key("variant").Str(names[i]);
      j.Key("observed_conversions").Int(figures[i].conversions);
      j.Key("sessions_in_progress").Int(sessions);
      j.Key("expected_conversions").Num(expected);
      j.Key("expected_rate_in_progress");
      if (sessions > 0) {
        j.Num(expected / static_cast<double>(sessions));
      } else {
        j.Null();
      }
      j.Close();
    }
    j.CloseArray().Close();
  }
  j.Key("as_of").Str(TimeString(s.loaded_ms));
  j.Close();
  return JsonResponse(j.Take());
}

// The first hour that may still change (speed layer), if any.
std::optional<int64_t> FirstProvisionalHour(const Snapshot& s) {
  if (!s.has_speed || s.speed_final_before_ms <= 0) return std::nullopt;
  return s.speed_final_before_ms / kHourMs;
}

HttpResponse Timeseries(const Ctx& c, std::string_view id) {
  const Snapshot& s = c.snap;
  const auto rows = VariantTotals(s, id);
  if (rows.empty()) return UnknownExperiment(s, id);
  auto m = c.params.find("metric");
  if (m == c.params.end()) {
    return Problem(400, "query parameter 'metric' is required, e.g. metric=conversions");
  }
  const Metric* metric = nullptr;
  std::string known;
  for (const Metric& k : kMetrics) {
    if (k.name == m->second) metric = &k;
    known += (known.empty() ? "" : ", ") + std::string(k.name);
  }
  if (metric == nullptr) {
    return Problem(400, "query parameter 'metric': '" + m->second +
                            "' is not a figure or rate; expected one of " + known);
  }
  HourRange range;
  if (auto bad = ParseRange(c.params, &range)) return *bad;
  std::vector<std::string> names;
  for (const core::FigureRow* r : rows) names.push_back(r->variant);
  // hour -> per variant figures
  std::map<int64_t, std::vector<core::FigureValues>> by_hour;
  for (size_t i : HourlyRows(s, id)) {
    const core::FigureRow& h = s.views.hourly[i];
    if (!range.Has(h.hour)) continue;
    const size_t vi = std::find(names.begin(), names.end(), h.variant) - names.begin();
    if (vi == names.size()) continue;
    auto& slot = by_hour[h.hour];
    slot.resize(names.size());
    slot[vi] = h.v;
  }
  const int64_t first = by_hour.empty() ? 0 : by_hour.begin()->first;
  const int64_t last = by_hour.empty() ? -1 : by_hour.rbegin()->first;
  if (auto bad = TooLong(first, last)) return *bad;
  Json j;
  j.Open().Key("experiment").Str(id).Key("metric").Str(metric->name);
  j.Key("hours").OpenArray();
  for (int64_t h = first; h <= last; ++h) j.Str(TimeString(h * kHourMs));
  j.CloseArray().Key("series").OpenArray();
  const core::FigureValues zero;
  for (size_t vi = 0; vi < names.size(); ++vi) {
    j.Open().Key("variant").Str(names[vi]).Key("values").OpenArray();
    for (int64_t h = first; h <= last; ++h) {
      auto it = by_hour.find(h);
      const core::FigureValues& v = it != by_hour.end() ? it->second[vi] : zero;
      j.Num(metric->value(v));
    }
    j.CloseArray().Close();
  }
  j.CloseArray();
  j.Key("final_before");
  if (auto p = FirstProvisionalHour(s))
    j.Str(TimeString(*p * kHourMs));
  else
    j.Null();
  j.Key("as_of").Str(TimeString(s.loaded_ms)).Close();
  return JsonResponse(j.Take());
}

HttpResponse Uniques(const Ctx& c) {
  const Snapshot& s = c.snap;
  std::string window = "1h";
  if (auto it = c.params.find("window"); it != c.params.end()) window = it->second;
  if (window != "1h" && window != "24h") {
    return Problem(
        400, "query parameter 'window': '" + window + "' is not a window; expected 1h or 24h");
  }
  std::string experiment;
  if (auto it = c.params.find("experiment"); it != c.params.end()) {
    experiment = it->second;
    if (experiment.empty() || VariantTotals(s, experiment).empty()) {
      return UnknownExperiment(s, experiment);
    }
  }
  HourRange range;
  if (auto bad = ParseRange(c.params, &range)) return *bad;
  std::vector<std::string> names;
  if (experiment.empty()) {
    names.emplace_back();
  } else {
    for (const core::FigureRow* r : VariantTotals(s, experiment)) names.push_back(r->variant);
  }
  std::map<int64_t, std::vector<int64_t>> by_hour;
  if (auto it = s.uniques_by_experiment.find(experiment); it != s.uniques_by_experiment.end()) {
    for (size_t i : it->second) {
      const core::UniquesRow& u = s.views.uniques[i];
      if (!range.Has(u.hour)) continue;
      const size_t vi = std::find(names.begin(), names.end(), u.variant) - names.begin();
      if (vi == names.size()) continue;
      auto& slot = by_hour[u.hour];
      slot.resize(names.size());
      slot[vi] = window == "1h" ? u.uniques_1h : u.uniques_24h;
    }
  }
  const int64_t first = by_hour.empty() ? 0 : by_hour.begin()->first;
  const int64_t last = by_hour.empty() ? -1 : by_hour.rbegin()->first;
  if (auto bad = TooLong(first, last)) return *bad;
  Json j;
  j.Open().Key("window").Str(window).Key("experiment");
  if (experiment.empty())
    j.Null();
  else
    j.Str(experiment);
  j.Key("hours").OpenArray();
  for (int64_t h = first; h <= last; ++h) j.Str(TimeString(h * kHourMs));
  j.CloseArray().Key("series").OpenArray();
  for (size_t vi = 0; vi < names.size(); ++vi) {
    j.Open().Key("variant");
    if (names[vi].empty())
      j.Null();
    else
      j.Str(names[vi]);
    j.Key("values").OpenArray();
    for (int64_t h = first; h <= last; ++h) {
      auto it = by_hour.find(h);
      j.Int(it != by_hour.end() ? it->second[vi] : 0);
    }
    j.CloseArray().Close();
  }
  j.CloseArray().Key("as_of").Str(TimeString(s.loaded_ms)).Close();
  return JsonResponse(j.Take());
}

}  // namespace

// ------------------------------------------------------------------ metrics

struct ServeProbe::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("duet_http_requests_total")
          .Help("HTTP requests answered, by route template and status code")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("duet_http_request_duration_seconds")
          .Help("Time to handle a request (from parsed request to response), by route template")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& refreshes =
      prometheus::BuildCounter()
          .Name("duet_serve_refresh_total")
          .Help("Reads of the served views from the store, by result")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& gauges =
      prometheus::BuildGauge()
          .Name("duet_serve_views_age_seconds")
          .Help("Age of the served views (since they were read from the store)")
          .Register(*registry);
  prometheus::Gauge& age = gauges.Add({});
  prometheus::Gauge& lag = prometheus::BuildGauge()
                               .Name("duet_pipeline_event_time_lag_seconds")
                               .Help(
                                   "Wall clock minus the newest event time the speed layer "
                                   "applied, at the last refresh")
                               .Register(*registry)
                               .Add({});
  prometheus::Gauge& batch_duration = prometheus::BuildGauge()
                                          .Name("duet_batch_run_duration_seconds")
                                          .Help("Duration of the last committed batch run")
                                          .Register(*registry)
                                          .Add({});
  prometheus::Gauge& hwm = prometheus::BuildGauge()
                               .Name("duet_batch_high_water_mark_seconds")
                               .Help(
                                   "Event time up to which the batch layer is authoritative "
                                   "(seconds since the epoch)")
                               .Register(*registry)
                               .Add({});
  prometheus::Family<prometheus::Gauge>& bad_rows =
      prometheus::BuildGauge()
          .Name("duet_bad_rows")
          .Help("Bad rows in the served views' input accounting, by reason")
          .Register(*registry);
  // The request metrics of each route and status, found once: Family::Add builds and hashes a
  // label map on every call, which would cost more than a prediction.
  struct RouteMetrics {
    prometheus::Histogram* latency = nullptr;
    std::map<int, prometheus::Counter*> requests;
  };
  std::mutex routes_mu;
  std::map<std::string, RouteMetrics, std::less<>> routes;
  prometheus::Counter& predictions = prometheus::BuildCounter()
                                         .Name("duet_model_predictions_total")
                                         .Help("Rows scored by POST /v1/predict")
                                         .Register(*registry)
                                         .Add({});
  prometheus::Family<prometheus::Counter>& model_loads =
      prometheus::BuildCounter()
          .Name("duet_model_loads_total")
          .Help("Loads of a newly promoted model version, by result")
          .Register(*registry);
  prometheus::Gauge& model_version = prometheus::BuildGauge()
                                         .Name("duet_model_version")
                                         .Help("The model version served (0: none)")
                                         .Register(*registry)
                                         .Add({});
  std::mutex mu;  // Text
};

ServeProbe::ServeProbe() : impl_(std::make_unique<Impl>()) {}
ServeProbe::~ServeProbe() = default;

void ServeProbe::Predicted(int64_t rows) {
  impl_->predictions.Increment(static_cast<double>(rows));
}

void ServeProbe::ModelLoaded(bool ok, int64_t version) {
  impl_->model_loads.Add({{"result", ok ? "ok" : "error"}}).Increment();
  impl_->model_version.Set(static_cast<double>(version));
}

void ServeProbe::Request(std::string_view route, int status, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5};
  prometheus::Counter* counter = nullptr;
  prometheus::Histogram* latency = nullptr;
  {
    std::lock_guard<std::mutex> l(impl_->routes_mu);
    auto it = impl_->routes.find(route);
    if (it == impl_->routes.end()) {
      it = impl_->routes.emplace(std::string(route), Impl::RouteMetrics{}).first;
      it->second.latency = &impl_->latency.Add({{"route", it->first}}, kBuckets);
    }
    latency = it->second.latency;
    prometheus::Counter*& c = it->second.requests[status];
    if (c == nullptr) {
      c = &impl_->requests.Add({{"route", it->first}, {"code", std::to_string(status)}});
    }
    counter = c;
  }
  counter->Increment();
  latency->Observe(seconds);
}

void ServeProbe::Refreshed(bool ok, const Snapshot* s, int64_t now_ms) {
  impl_->refreshes.Add({{"result", ok ? "ok" : "error"}}).Increment();
  if (s == nullptr) return;
  if (s->has_speed && s->speed_max_ts > 0) impl_->lag.Set((now_ms - s->speed_max_ts) / 1000.0);
  if (s->batch_run) {
    impl_->batch_duration.Set((s->batch_run->finished_ms - s->batch_run->started_ms) / 1000.0);
    impl_->hwm.Set(s->batch_run->high_water_mark_ms / 1000.0);
  }
  for (const auto& [reason, n] : s->views.input.bad_rows_by_reason) {
    impl_->bad_rows.Add({{"reason", reason}}).Set(static_cast<double>(n));
  }
}

std::vector<prometheus::MetricFamily> ServeProbe::Collect(int64_t now_ms, int64_t loaded_ms) {
  std::lock_guard<std::mutex> l(impl_->mu);
  if (loaded_ms > 0) impl_->age.Set((now_ms - loaded_ms) / 1000.0);
  return impl_->registry->Collect();
}

std::string ServeProbe::Text(int64_t now_ms, int64_t loaded_ms) {
  const prometheus::TextSerializer serializer;
  return serializer.Serialize(Collect(now_ms, loaded_ms));
}

// ------------------------------------------------------------------ routing

Api::Api(const ViewCache* cache, ServeProbe* probe, ApiOptions options,
         std::function<int64_t()> now_ms, const std::vector<Asset>* assets, const ModelApi* models,
         const JobApi* jobs, const WorkerMetrics* workers)
    : cache_(cache),
      probe_(probe),
      options_(options),
      now_ms_(std::move(now_ms)),
      assets_(assets),
      models_(models),
      jobs_(jobs),
      workers_(workers) {}

HttpResponse Api::Handle(const HttpRequest& request) const {
  const auto start = std::chrono::steady_clock::now();
  std::string route;
  HttpResponse r = Route(request, &route);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (probe_ != nullptr) probe_->Request(route, r.status, secs);
  return r;
}

HttpResponse Api::Route(const HttpRequest& req, std::string* route) const {
  std::string path;
  if (!Decode(req.path, false, &path)) {
    *route = "other";
    return Problem(400, "path: malformed percent-encoding in '" + req.path + "'");
  }
  // Every route is read-only.
  auto method_ok = [&]() -> std::optional<HttpResponse> {
    if (req.method == "GET" || req.method == "HEAD") {
      if (!req.body.empty() && !req.content_type.empty() &&
          req.content_type.rfind("application/json", 0) != 0) {
        return Problem(415, "content type '" + req.content_type +
                                "' is not accepted; this route takes no body (or "
                                "application/json)");
      }
      return std::nullopt;
    }
    HttpResponse r = Problem(
        405, "method " + req.method + " is not allowed on " + path + "; allowed: GET, HEAD");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  };
  const int64_t now = now_ms_();
  Params params;

  // Static files: the dashboard and the OpenAPI document (a query, e.g. ?v=2, is ignored).
  if (assets_ != nullptr) {
    for (const Asset& a : *assets_) {
      if (a.path != path) continue;
      *route = path == "/" ? "/" : path == "/openapi.json" ? "/openapi.json" : "/assets";
      if (auto bad = method_ok()) return *bad;
      HttpResponse r;
      r.content_type = std::string(a.content_type);
      r.body = std::string(a.bytes);
      r.headers.emplace_back("Cache-Control", path == "/" ? "no-cache" : "max-age=300");
      return r;
    }
  }
  if (path == "/healthz") {
    *route = path;
    if (auto bad = method_ok()) return *bad;
    return JsonResponse("{\"status\":\"ok\"}");
  }
  if (path == "/metrics") {
    *route = path;
    if (auto bad = method_ok()) return *bad;
    auto snap = cache_->Current();
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (workers_ != nullptr) {
      r.body = workers_->MergedText();
    } else if (probe_ != nullptr) {
      r.body = probe_->Text(now, snap ? snap->loaded_ms : 0);
    }
    return r;
  }
  if (path == "/readyz") {
    *route = path;
    if (auto bad = method_ok()) return *bad;
    const ViewCache::Health h = cache_->health();
    if (cache_->Current() == nullptr) {
      return Problem(503, "no views loaded yet" + (h.last_error.empty()
                                                       ? std::string()
                                                       : ": the store answered: " + h.last_error));
    }
    if (now - h.last_success_ms > options_.max_staleness_ms) {
      return Problem(
          503,
          "the served views are " + std::to_string((now - h.last_success_ms) / 1000) +
              " s old (limit " + std::to_string(options_.max_staleness_ms / 1000) +
              " s); last error: " + (h.last_error.empty() ? std::string("none") : h.last_error));
    }
    return JsonResponse("{\"status\":\"ready\"}");
  }

  if (models_ != nullptr && (path == "/v1/predict" || path == "/v1/models")) {
    *route = path;
    return models_->Handle(req, path);
  }

  if (jobs_ != nullptr && (path == "/v1/jobs" || path.rfind("/v1/jobs/", 0) == 0)) {
    *route = path == "/v1/jobs" ? "/v1/jobs" : "/v1/jobs/{id}";
    return jobs_->Handle(req, path);  // checks the admin token and the methods itself
  }

  // The JSON API: every route needs views.
  std::string_view rest = path;
  std::string id;
  enum class R { kNone, kExperiments, kReport, kTimeseries, kUniques, kStatus } which = R::kNone;
  if (rest == "/v1/experiments") {
    which = R::kExperiments;
    *route = "/v1/experiments";
  } else if (rest == "/v1/uniques") {
    which = R::kUniques;
    *route = "/v1/uniques";
  } else if (rest == "/v1/status") {
    which = R::kStatus;
    *route = "/v1/status";
  } else if (rest.rfind("/v1/experiments/", 0) == 0) {
    rest.remove_prefix(std::string_view("/v1/experiments/").size());
    const size_t slash = rest.rfind('/');
    if (slash != std::string_view::npos && slash > 0) {
      const std::string_view tail = rest.substr(slash + 1);
      id = std::string(rest.substr(0, slash));
      if (tail == "report") {
        which = R::kReport;
        *route = "/v1/experiments/{id}/report";
      } else if (tail == "timeseries") {
        which = R::kTimeseries;
        *route = "/v1/experiments/{id}/timeseries";
      }
    }
  }
  if (which == R::kNone) {
    *route = "other";
    return Problem(
        404, "no route " + path +
                 "; see /openapi.json (routes: /v1/experiments, "
                 "/v1/experiments/{id}/report, /v1/experiments/{id}/timeseries, "
                 "/v1/uniques, /v1/status, /v1/predict, /v1/models, /v1/jobs, /healthz, /readyz, "
                 "/metrics, /)");
  }
  if (auto bad = method_ok()) return *bad;
  std::optional<HttpResponse> bad;
  switch (which) {
    case R::kExperiments:
      bad = ParseQuery(req.query, {}, &params);
      break;
    case R::kReport:
      bad = ParseQuery(req.query, {"from", "to", "control", "confidence"}, &params);
      break;
    case R::kTimeseries:
      bad = ParseQuery(req.query, {"metric", "from", "to"}, &params);
      break;
    case R::kUniques:
      bad = ParseQuery(req.query, {"window", "experiment", "from", "to"}, &params);
      break;
    case R::kStatus:
      bad = ParseQuery(req.query, {}, &params);
      break;
    case R::kNone:
      break;
  }
  if (bad) return *bad;
  const std::shared_ptr<const Snapshot> snap = cache_->Current();
  if (snap == nullptr) {
    const ViewCache::Health h = cache_->health();
    HttpResponse r =
        Problem(503, "no views loaded yet" + (h.last_error.empty() ? std::string("; retry shortly")
                                                                   : ": " + h.last_error));
    r.headers.emplace_back("Retry-After", "2");
    return r;
  }
  const Ctx ctx{*snap, params, options_, now};
  switch (which) {
    case R::kExperiments:
      return Experiments(ctx);
    case R::kReport:
      return Report(ctx, id);
    case R::kTimeseries:
      return Timeseries(ctx, id);
    case R::kUniques:
      return Uniques(ctx);
    case R::kStatus:
      break;
    case R::kNone:
      break;
  }
  // /v1/status
  const Snapshot& s = *snap;
  const ViewCache::Health h = cache_->health();
  Json j;
  j.Open();
  j.Key("as_of").Str(TimeString(s.loaded_ms));
  j.Key("now").Str(TimeString(now));
  j.Key("refresh").Open();
  j.Key("interval_s").Num(options_.refresh_ms / 1000.0);
  j.Key("age_s").Num((now - s.loaded_ms) / 1000.0);
  j.Key("last_error");
  if (h.last_error.empty())
    j.Null();
  else
    j.Str(h.last_error);
  j.Close();
  j.Key("batch").Open();
  j.Key("high_water_mark");
  if (s.batch_run)
    j.Str(TimeString(s.batch_run->high_water_mark_ms));
  else
    j.Null();
  j.Key("last_run");
  if (s.batch_run) {
    const store::BatchRun& b = *s.batch_run;
    j.Open().Key("generation").Int(b.generation);
    j.Key("started_at").Str(TimeString(b.started_ms));
    j.Key("finished_at").Str(TimeString(b.finished_ms));
    j.Key("duration_s").Num((b.finished_ms - b.started_ms) / 1000.0);
    j.Key("lines").Int(b.lines).Key("input").Str(b.input).Close();
  } else {
    j.Null();
  }
  j.Close();
  j.Key("speed").Open();
  j.Key("max_event_time");
  if (s.has_speed && s.speed_max_ts > 0)
    j.Str(TimeString(s.speed_max_ts));
  else
    j.Null();
  j.Key("final_before");
  if (auto p = FirstProvisionalHour(s))
    j.Str(TimeString(*p * kHourMs));
  else
    j.Null();
  j.Key("event_time_lag_s");
  if (s.has_speed && s.speed_max_ts > 0)
    j.Num((now - s.speed_max_ts) / 1000.0);
  else
    j.Null();
  j.Key("scopes").OpenArray();
  for (const ScopeInfo& sc : s.scopes) {
    // A folder read as a log lists every file in its positions: only the start is shown.
    constexpr size_t kMaxPositions = 512;
    const bool cut = sc.positions.size() > kMaxPositions;
    j.Open().Key("scope").Str(sc.scope).Key("epoch").Int(sc.epoch);
    j.Key("positions").Str(ValidUtf8(std::string_view(sc.positions).substr(0, kMaxPositions)));
    j.Key("positions_truncated").Bool(cut).Close();
  }
  j.CloseArray().Close();
  const core::InputTotals& in = s.views.input;
  j.Key("input").Open();
  j.Key("lines").Int(in.lines).Key("valid_beacons").Int(in.valid_beacons);
  j.Key("duplicates").Int(in.duplicates).Key("bad_rows").Int(in.bad_rows);
  j.Key("late_beacons").Int(in.late_beacons);
  j.Key("bad_rows_by_reason").Open();
  for (const auto& [reason, n] : in.bad_rows_by_reason) j.Key(reason).Int(n);
  j.Close().Close();
  j.Close();
  return JsonResponse(j.Take());
}

}  // namespace duet::serve
