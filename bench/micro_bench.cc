// Google Benchmark micro-benchmarks of the hot paths: parsing + validation of one beacon, exact
// revenue sums, and the per-visitor business logic.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "beacon/parser.h"
#include "core/aggregator.h"
#include "util/exact_sum.h"

namespace duet {
namespace {

const std::string kLine =
    R"({"id":"95ae87a8d1ab67bb","visitor":"vf166089ec7860680","ts":1793491756986,"type":"pageview",)"
    R"("page":"/product/2561?utm_source=newsletter","device":"mobile","referrer":"https://www.google.com/",)"
    R"("experiments":{"checkout_button":"control","pricing_page":"v1"}})";

void BM_ParseValidBeacon(benchmark::State& state) {
  beacon::Parser parser;
  beacon::Beacon b;
  beacon::BadReason r;
  std::string padded = kLine + std::string(64, '\0');
  const std::string_view line(padded.data(), kLine.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(parser.Parse(line, true, &b, &r));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * kLine.size());
}
BENCHMARK(BM_ParseValidBeacon);

// Interning an already-seen experiments object: done once per valid beacon.
void BM_InternKnownTagSet(benchmark::State& state) {
  core::Catalog catalog;
  const beacon::ExperimentTag tags[] = {{"checkout_button", "control"}, {"pricing_page", "v1"}};
  catalog.InternTagSet(tags);
  for (auto _ : state) benchmark::DoNotOptimize(catalog.InternTagSet(tags));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_InternKnownTagSet);

void BM_ExactSumAdd(benchmark::State& state) {
  ExactSum s;
  double x = 12.34;
  for (auto _ : state) {
    s.Add(x);
    x += 0.01;
  }
  benchmark::DoNotOptimize(s.Value());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExactSumAdd);

// A visitor with 25 beacons in 3 sessions, two experiments: the batch layer's unit of work.
void BM_AggregateVisitor(benchmark::State& state) {
  core::Catalog catalog;
  const beacon::ExperimentTag tags[] = {{"checkout_button", "control"}, {"pricing_page", "v1"}};
  const core::TagSetId t = catalog.InternTagSet(tags);
  core::Aggregator agg(&catalog, core::kDefaultSessionGapMs);
  std::vector<core::Event> ev;
  std::vector<std::string> ids;
  for (int i = 0; i < 25; ++i) ids.push_back("id" + std::to_string(i));
  int64_t ts = 1'793'491'200'000;
  for (int i = 0; i < 25; ++i) {
    ts += (i % 9 == 8) ? 3'600'000 : 40'000;
    const auto type =
        i % 12 == 11 ? beacon::BeaconType::kConversion : beacon::BeaconType::kPageview;
    ev.push_back(core::Event{ts, ids[i], 19.99, t, type});
  }
  for (auto _ : state) agg.AddVisitor(ev);
  state.SetItemsProcessed(state.iterations() * ev.size());
}
BENCHMARK(BM_AggregateVisitor);

}  // namespace
}  // namespace duet

BENCHMARK_MAIN();
