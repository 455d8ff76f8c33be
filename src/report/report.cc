#include "report/report.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <map>

#include "util/json_writer.h"
#include "util/strong_type.h"

namespace duet::report {
namespace {

void Field(std::string* o, std::string_view name, int64_t v) {
  AppendJsonString(o, name);
  o->push_back(':');
  AppendJsonInt(o, v);
  o->push_back(',');
}

void FieldD(std::string* o, std::string_view name, double v) {
  AppendJsonString(o, name);
  o->push_back(':');
  AppendJsonDouble(o, v);
  o->push_back(',');
}

}  // namespace

void AppendFigureFields(std::string* o, const core::FigureValues& f, bool with_multi) {
  Field(o, "visitors", f.visitors);
  Field(o, "sessions", f.sessions);
  Field(o, "events", f.events);
  Field(o, "pageviews", f.pageviews);
  Field(o, "conversions", f.conversions);
  FieldD(o, "revenue", f.revenue);
  Field(o, "bounces", f.bounces);
  Field(o, "duration_ms", f.duration_ms);
  if (with_multi) Field(o, "visitors_in_multiple_variants", f.visitors_in_multiple_variants);
  Field(o, "converted_visitors", f.converted_visitors);
  Field(o, "sessions_sq", f.sessions_sq);
  Field(o, "conversions_sq", f.conversions_sq);
  Field(o, "sessions_x_conversions", f.sessions_x_conversions);
  FieldD(o, "revenue_sq", f.revenue_sq);
}

namespace {

void CloseObject(std::string* o) {
  if (!o->empty() && o->back() == ',') o->pop_back();
  o->push_back('}');
}

void NameOrNull(std::string* o, const std::string& s) {
  if (s.empty()) {
    o->append("null");
  } else {
    AppendJsonString(o, s);
  }
}

// Starts `{"experiment":…,"variant":…,"hour":"…",` of an hourly or uniques row.
void OpenHourRow(std::string* o, bool* first, const std::string& experiment,
                 const std::string& variant, int64_t hour);

bool Selected(const ReportOptions& opt, const std::string& experiment) {
  return !opt.experiment || *opt.experiment == experiment;
}

void OpenHourRow(std::string* o, bool* first, const std::string& experiment,
                 const std::string& variant, int64_t hour) {
  if (!*first) o->push_back(',');
  *first = false;
  o->append("{\"experiment\":");
  NameOrNull(o, experiment);
  o->append(",\"variant\":");
  NameOrNull(o, variant);
  o->append(",\"hour\":");
  AppendJsonString(o, HourString(hour));
  o->push_back(',');
}

}  // namespace

std::string HourString(int64_t hour) {
  const std::time_t secs = static_cast<std::time_t>(hour * 3600);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:00:00Z", &tm);
  return buf;
}

std::string ReportJson(const core::Views& v, const ReportOptions& opt) {
  std::string o = "{\"experiments\":{";
  std::map<std::string, int64_t> multi;
  for (const auto& e : v.experiments) multi[e.experiment] = e.visitors_in_multiple_variants;
  std::string current;
  bool open = false;
  for (const auto& r : v.totals) {
    if (r.experiment.empty() || !Selected(opt, r.experiment)) continue;
    if (!open || r.experiment != current) {
      if (open) o.append("]},");
      AppendJsonString(&o, r.experiment);
      o.append(":{");
      Field(&o, "visitors_in_multiple_variants", multi[r.experiment]);
      o.append("\"variants\":[");
      current = r.experiment;
      open = true;
    } else {
      o.push_back(',');
    }
    o.append("{\"variant\":");
    AppendJsonString(&o, r.variant);
    o.push_back(',');
    AppendFigureFields(&o, r.v, true);
    CloseObject(&o);
  }
  if (open) o.append("]}");
  o.append("},\"site\":{");
  for (const auto& r : v.totals) {
    if (r.experiment.empty()) AppendFigureFields(&o, r.v, false);
  }
  CloseObject(&o);
  o.append(",\"input\":{");
  Field(&o, "lines", v.input.lines);
  Field(&o, "bad_rows", v.input.bad_rows);
  Field(&o, "duplicates", v.input.duplicates);
  Field(&o, "valid_beacons", v.input.valid_beacons);
  if (opt.late_beacons) Field(&o, "late_beacons", v.input.late_beacons);
  o.append("\"bad_rows_by_reason\":{");
  for (const auto& [reason, n] : v.input.bad_rows_by_reason) Field(&o, reason, n);
  CloseObject(&o);
  o.push_back('}');
  o.append(",\"event_time\":{");
  Field(&o, "min_ms", v.min_ts);
  Field(&o, "max_ms", v.max_ts);
  if (opt.provisional_hours) Field(&o, "final_before_ms", v.final_before_ms);
  CloseObject(&o);
  if (opt.full) {
    o.append(",\"hourly\":[");
    bool first = true;
    for (const auto& r : v.hourly) {
      if (!Selected(opt, r.experiment)) continue;
      OpenHourRow(&o, &first, r.experiment, r.variant, r.hour);
      if (opt.provisional_hours) {
        const bool final = (r.hour + 1) * kMsPerHour <= v.final_before_ms;
        o.append(final ? "\"final\":true," : "\"final\":false,");
      }
      AppendFigureFields(&o, r.v, false);
      CloseObject(&o);
    }
    o.append("],\"uniques\":[");
    first = true;
    for (const auto& r : v.uniques) {
      if (!Selected(opt, r.experiment)) continue;
      OpenHourRow(&o, &first, r.experiment, r.variant, r.hour);
      Field(&o, "uniques_1h", r.uniques_1h);
      Field(&o, "uniques_24h", r.uniques_24h);
      CloseObject(&o);
    }
    o.push_back(']');
  }
  o.append("}\n");
  return o;
}

std::string ReportTable(const core::Views& v, const ReportOptions& opt) {
  std::string o;
  char buf[512];
  auto rate = [](int64_t a, int64_t b) { return b > 0 ? 100.0 * static_cast<double>(a) / b : 0.0; };
  std::map<std::string, int64_t> multi;
  for (const auto& e : v.experiments) multi[e.experiment] = e.visitors_in_multiple_variants;
  std::string current;
  for (const auto& r : v.totals) {
    if (r.experiment.empty() || !Selected(opt, r.experiment)) continue;
    if (r.experiment != current) {
      current = r.experiment;
      std::snprintf(buf, sizeof(buf),
                    "\nexperiment %s  (visitors in multiple variants: %" PRId64 ")\n",
                    r.experiment.c_str(), multi[r.experiment]);
      o += buf;
      std::snprintf(buf, sizeof(buf), "  %-16s %10s %10s %11s %10s %11s %8s %12s %8s\n", "variant",
                    "visitors", "sessions", "events", "pageviews", "conversions", "conv/ses",
                    "revenue", "bounce");
      o += buf;
    }
    const auto& f = r.v;
    std::snprintf(buf, sizeof(buf),
                  "  %-16.16s %10" PRId64 " %10" PRId64 " %11" PRId64 " %10" PRId64 " %11" PRId64
                  " %7.2f%% %12.2f %7.2f%%\n",
                  r.variant.c_str(), f.visitors, f.sessions, f.events, f.pageviews, f.conversions,
                  rate(f.conversions, f.sessions), f.revenue, rate(f.bounces, f.sessions));
    o += buf;
  }
  if (!opt.experiment) {
    for (const auto& r : v.totals) {
      if (!r.experiment.empty()) continue;
      const auto& f = r.v;
      std::snprintf(buf, sizeof(buf),
                    "\nsite: %" PRId64 " visitors, %" PRId64 " sessions, %" PRId64
                    " events, %" PRId64 " conversions, revenue %.2f\n",
                    f.visitors, f.sessions, f.events, f.conversions, f.revenue);
      o += buf;
    }
  }
  std::snprintf(buf, sizeof(buf),
                "input: %" PRId64 " lines = %" PRId64 " valid + %" PRId64 " duplicates + %" PRId64
                " bad rows + %" PRId64 " late%s\n",
                v.input.lines, v.input.valid_beacons, v.input.duplicates, v.input.bad_rows,
                v.input.late_beacons, v.input.Balanced() ? "" : "  (DOES NOT BALANCE)");
  o += buf;
  if (!v.input.bad_rows_by_reason.empty()) {
    o += "bad rows by reason:";
    for (const auto& [reason, n] : v.input.bad_rows_by_reason) {
      std::snprintf(buf, sizeof(buf), " %s=%" PRId64, reason.c_str(), n);
      o += buf;
    }
    o += "\n";
  }
  return o;
}

}  // namespace duet::report
