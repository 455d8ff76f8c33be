// Google Benchmark micro-benchmarks of the hot paths: parsing + validation of one beacon, exact
// revenue sums, and the per-visitor business logic.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "beacon/parser.h"
#include "core/aggregator.h"
#include "model/booster.h"
#include "model/encoder.h"
#include "model/forest.h"
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

// The predict route's two costs per request: encoding a feature object and XGBoost's in-place
// prediction of one row (100 trees of depth 4 over the 22 base columns and 7 variant columns,
// the shape `duet train` produces by default).
const model::FeatureEncoder& BenchEncoder() {
  static const model::FeatureEncoder e =
      model::FeatureEncoder::ForVariants({{"checkout_button", "control"},
                                          {"checkout_button", "treatment"},
                                          {"pricing_page", "control"},
                                          {"pricing_page", "v1"},
                                          {"pricing_page", "v2"},
                                          {"search_ranking", "control"},
                                          {"search_ranking", "treatment"}});
  return e;
}

// Leaked on purpose: XGBoost's own globals may be gone when statics are destroyed at exit.
const model::Booster& BenchBooster() {
  static const model::Booster* const b = [] {
    model::Dataset d;
    d.features = BenchEncoder().size();
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; ++i) {
      float score = 0;
      for (size_t c = 0; c < d.features; ++c) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const float v = static_cast<float>(x % 16);
        d.x.push_back(v);
        score += c % 3 == 0 ? v : -v / 2;
      }
      d.y.push_back(score > 0 ? 1.0F : 0.0F);
    }
    model::TrainOptions o;
    o.max_depth = 4;
    o.threads = 1;
    auto trained = model::Booster::Train(d, o);
    auto bytes = (*trained)->Save();
    // Loaded like a served model (one thread per prediction).
    return model::Booster::Load(*bytes, d.features)->release();
  }();
  return *b;
}

constexpr std::string_view kFeatureObject =
    R"({"beacons":4,"pageviews":2,"clicks":1,"add_to_carts":1,"seconds_since_start":95.5,)"
    R"("hour_of_day":14,"day_of_week":2,"device":"mobile","referrer":"https://www.google.com/",)"
    R"("previous_sessions":1,"hours_since_previous_session":20,)"
    R"("experiments":{"checkout_button":"treatment","pricing_page":"v2"}})";

void BM_EncodeFeatureObject(benchmark::State& state) {
  simdjson::dom::parser parser;
  std::vector<float> row(BenchEncoder().size());
  const simdjson::padded_string body(kFeatureObject);
  for (auto _ : state) {
    simdjson::dom::element doc;
    if (parser.parse(body).get(doc) != simdjson::SUCCESS) state.SkipWithError("parse");
    benchmark::DoNotOptimize(BenchEncoder().EncodeJson(doc, row.data()));
  }
}
BENCHMARK(BM_EncodeFeatureObject);

void BM_PredictOneRow(benchmark::State& state) {
  const model::Booster& b = BenchBooster();
  std::vector<float> row(BenchEncoder().size(), 1.0F), out;
  for (auto _ : state) benchmark::DoNotOptimize(b.Predict(row, &out));
}
BENCHMARK(BM_PredictOneRow);

// The same model evaluated natively (model/forest.h), as `duet serve` does.
void BM_PredictOneRowNative(benchmark::State& state) {
  static const model::Forest* const f =
      new model::Forest(*model::Forest::FromBooster(BenchBooster()));
  std::vector<float> row(BenchEncoder().size(), 1.0F);
  for (auto _ : state) benchmark::DoNotOptimize(f->PredictRow(row.data()));
}
BENCHMARK(BM_PredictOneRowNative);

}  // namespace
}  // namespace duet

BENCHMARK_MAIN();
