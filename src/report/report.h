// Rendering of Views for people (a fixed-width table) and programs (the JSON of `duet report
// --json`, whose field names are a public interface: see docs/report-json.md).
#pragma once

#include <optional>
#include <string>

#include "core/views.h"

namespace duet::report {

struct ReportOptions {
  std::optional<std::string>
      experiment;             // only this experiment (and no site/hourly rows of others)
  bool full = false;          // include "hourly" and "uniques"
  bool late_beacons = false;  // include input.late_beacons (speed layer)
  // Speed layer: include "final_before_ms" and a "final" flag on each hourly row.
  bool provisional_hours = false;
};

// "YYYY-MM-DDTHH:00:00Z" for an hour bucket (hours since the epoch).
std::string HourString(int64_t hour);

// Appends the figure fields of `f` as `"visitors":…,"sessions":…,` (no braces; a trailing comma)
// with the names of docs/report-json.md; visitors_in_multiple_variants only if `with_multi`.
void AppendFigureFields(std::string* out, const core::FigureValues& f, bool with_multi);

std::string ReportJson(const core::Views& views, const ReportOptions& options);
std::string ReportTable(const core::Views& views, const ReportOptions& options);

}  // namespace duet::report
