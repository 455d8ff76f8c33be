// Views: the finished figures of one layer with names resolved — what the store keeps and the
// report shows. Definitions of every figure: docs/beacon-contract.md ("Figures").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace duet::core {

struct FigureValues {
  int64_t visitors = 0;
  int64_t sessions = 0;
  int64_t events = 0;
  int64_t pageviews = 0;
  int64_t conversions = 0;
  int64_t bounces = 0;
  int64_t duration_ms = 0;
  int64_t converted_visitors = 0;
  int64_t sessions_sq = 0;
  int64_t conversions_sq = 0;
  int64_t sessions_x_conversions = 0;
  int64_t visitors_in_multiple_variants = 0;  // totals only
  double revenue = 0;
  double revenue_sq = 0;
  bool operator==(const FigureValues&) const = default;
};

// experiment and variant are empty for the site-wide row.
struct FigureRow {
  std::string experiment;
  std::string variant;
  int64_t hour = 0;  // hours since the epoch (UTC); unused in totals
  FigureValues v;
  bool operator==(const FigureRow&) const = default;
};

struct UniquesRow {
  std::string experiment;
  std::string variant;
  int64_t hour = 0;
  int64_t uniques_1h = 0;
  int64_t uniques_24h = 0;
  bool operator==(const UniquesRow&) const = default;
};

struct ExperimentRow {
  std::string experiment;
  int64_t visitors_in_multiple_variants = 0;
  bool operator==(const ExperimentRow&) const = default;
};

struct InputTotals {
  int64_t lines = 0;
  int64_t bad_rows = 0;
  int64_t duplicates = 0;
  int64_t valid_beacons = 0;
  int64_t late_beacons = 0;                           // speed layer only
  std::map<std::string, int64_t> bad_rows_by_reason;  // only reasons that occurred
  bool Balanced() const { return lines == bad_rows + duplicates + valid_beacons + late_beacons; }
  bool operator==(const InputTotals&) const = default;
};

// Live scoring (speed layer only): the sessions in progress — not complete at the watermark and
// not converted yet — of one (experiment, variant) (empty names: the site), and the sum of the
// model's conversion probabilities over them: the conversions to expect among them.
struct LiveRow {
  std::string experiment;
  std::string variant;
  int64_t sessions = 0;
  double expected_conversions = 0;
  bool operator==(const LiveRow&) const = default;
};

struct LiveScores {
  int64_t model_version = 0;      // 0: no model scored (then no rows); the least over the parts
  int64_t max_model_version = 0;  // differs from model_version while parts switch versions
  int64_t as_of_ms = 0;           // the newest event time applied when they were scored
  std::vector<LiveRow> rows;      // sorted by (experiment, variant), the site row first
  bool operator==(const LiveScores&) const = default;
};

// Rows are sorted: by (experiment, variant[, hour]); the site row (empty names) first.
struct Views {
  std::vector<FigureRow> totals;
  std::vector<FigureRow> hourly;
  std::vector<UniquesRow> uniques;
  std::vector<ExperimentRow> experiments;
  InputTotals input;
  int64_t min_ts = 0;  // event-time range of the valid beacons; 0/0 when there are none
  int64_t max_ts = 0;
  // Speed layer only: hours that end at or before this event time are final (the watermark —
  // greatest applied ts minus the allowed lateness — minus the session gap); later hours may
  // still change. 0 for the batch layer, whose hours are all final.
  int64_t final_before_ms = 0;
  LiveScores live;  // speed layer only
  bool operator==(const Views&) const = default;
};

}  // namespace duet::core
