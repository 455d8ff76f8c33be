// Merging the Prometheus metrics of several processes (the prefork workers of `duet serve`) into
// one exposition, so that /metrics answers the same whichever worker the kernel picked.
//
// Workers exchange the text exposition prometheus-cpp's TextSerializer writes (GET
// /metrics/local on a worker's loopback peer port): it is what a worker with no siblings serves
// at /metrics, readable with curl, and the merged result is written by the same serializer, so
// one worker's output and the merged output have the same shape.
//
// Merge rule, per family and per identical label set:
// - counters: summed;
// - histograms: _count and _sum summed, each bucket's cumulative count summed (bucket bounds
//   that differ between sources are united; a source's count at a bound it lacks is its count
//   at its next lower bound, which is exact for cumulative buckets);
// - summaries: _count and _sum summed; a quantile cannot be merged exactly, the largest one of
//   the sources is kept (an upper bound);
// - gauges (and untyped): the largest value (NaN only if every source is NaN). The gauges of
//   `duet serve` describe the one shared view (its age, the pipeline's lag, the last batch run,
//   bad rows, the model version), so the largest is the worst case: the oldest view any worker
//   serves, the largest lag; the others are equal on every worker except for the moment between
//   two workers' refreshes.
// Families keep the order of first appearance (the first source's order), metrics within a
// family too. A family whose type differs from the one seen first for its name is dropped.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace duet::serve {

// Parses the text exposition exactly as prometheus::TextSerializer (1.0) writes it: "# HELP"
// and "# TYPE" lines, then one line per sample with labels in braces (values escaped with \\,
// \" and \n), the value ("+Inf", "-Inf", "Nan" or a number) and an optional timestamp;
// histograms as <name>_count, <name>_sum and <name>_bucket{le=…}, summaries as <name>_count,
// <name>_sum and <name>{quantile=…}. InvalidArgument, naming the line and what was expected,
// for anything else (a sample before its # TYPE line, a name that does not belong to the
// family, a malformed label or number).
Result<std::vector<prometheus::MetricFamily>> ParsePrometheusText(std::string_view text);

// The merge of every source by the rule above. Sources are not modified.
std::vector<prometheus::MetricFamily> MergeFamilies(
    const std::vector<std::vector<prometheus::MetricFamily>>& sources);

// The text exposition of `families` (prometheus::TextSerializer).
std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families);

}  // namespace duet::serve
