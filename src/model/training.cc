#include "model/training.h"

#include <algorithm>
#include <cstring>
#include <tuple>

namespace duet::model {

ExampleCollector::ExampleCollector(int threads, int64_t session_gap_ms)
    : gap_ms_(session_gap_ms), threads_(static_cast<size_t>(std::max(threads, 1))) {}

void ExampleCollector::Visitor(int thread, const core::Catalog& catalog,
                               std::span<const core::Event> events) {
  PerThread& t = threads_[static_cast<size_t>(thread)];
  ++t.visitors;
  const size_t before = t.examples.size();
  core::VisitorExamples(events, gap_ms_, &t.bounds, &t.examples);
  if (t.set_index.size() < catalog.tag_set_count()) {
    t.set_index.resize(catalog.tag_set_count(), -1);
  }
  for (size_t i = before; i < t.examples.size(); ++i) {
    const core::TagSetId tags = t.examples[i].tags;
    if (t.set_index[tags] < 0) {
      std::vector<VariantPair> names;
      for (const beacon::ExperimentTag& tag : catalog.TagSetNames(tags)) {
        names.emplace_back(std::string(tag.experiment), std::string(tag.variant));
      }
      std::sort(names.begin(), names.end());
      t.set_index[tags] = static_cast<int64_t>(t.sets.size());
      t.sets.push_back(std::move(names));
    }
    t.set_of.push_back(static_cast<uint32_t>(t.set_index[tags]));
  }
}

size_t ExampleCollector::visitors() const {
  size_t n = 0;
  for (const PerThread& t : threads_) n += t.visitors;
  return n;
}

std::vector<ExampleCollector::Row> ExampleCollector::Rows() const {
  std::vector<Row> rows;
  for (const PerThread& t : threads_) {
    for (size_t i = 0; i < t.examples.size(); ++i) {
      rows.push_back({t.examples[i], &t.sets[t.set_of[i]]});
    }
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    const core::Example& x = a.example;
    const core::Example& y = b.example;
    if (x.session_start_ts != y.session_start_ts) return x.session_start_ts < y.session_start_ts;
    if (x.beacons != y.beacons) return x.beacons < y.beacons;
    if (x.converted != y.converted) return x.converted < y.converted;
    if (const int c = std::memcmp(x.features.data(), y.features.data(), sizeof(x.features));
        c != 0) {
      return c < 0;
    }
    return *a.variants < *b.variants;
  });
  return rows;
}

Dataset Encode(const FeatureEncoder& encoder, std::span<const ExampleCollector::Row> rows) {
  Dataset d;
  d.features = encoder.size();
  d.x.resize(rows.size() * d.features);
  d.y.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    encoder.EncodeExample(rows[i].example.features, *rows[i].variants, &d.x[i * d.features]);
    d.y.push_back(rows[i].example.converted ? 1.0F : 0.0F);
  }
  return d;
}

Result<TrainingSet> BuildTrainingSet(std::vector<ExampleCollector::Row> rows,
                                     double holdout_fraction) {
  if (rows.empty()) {
    return Status::FailedPrecondition(
        "no training examples: the input has no session with a beacon before its first "
        "conversion");
  }
  if (!(holdout_fraction > 0 && holdout_fraction < 1)) {
    return Status::InvalidArgument("holdout: " + std::to_string(holdout_fraction) +
                                   "; expected a fraction between 0 and 1");
  }
  const int64_t first = rows.front().example.session_start_ts;
  const int64_t last = rows.back().example.session_start_ts;
  // The latest `holdout_fraction` of the examples, cut between two session starts.
  const size_t at = static_cast<size_t>(static_cast<double>(rows.size()) * (1 - holdout_fraction));
  const int64_t cut = rows[std::min(at, rows.size() - 1)].example.session_start_ts;
  const auto split = std::partition_point(
      rows.begin(), rows.end(), [&](const auto& r) { return r.example.session_start_ts < cut; });
  const size_t n_train = static_cast<size_t>(split - rows.begin());
  if (n_train == 0 || n_train == rows.size()) {
    return Status::FailedPrecondition(
        "cannot split " + std::to_string(rows.size()) +
        " examples by time: every session starts at the same moment; more data is needed");
  }
  std::vector<VariantPair> variants;
  for (size_t i = 0; i < n_train; ++i) {
    for (const VariantPair& p : *rows[i].variants) variants.push_back(p);
    if (variants.size() > 4096) {  // keep the scratch small: dedupe as we go
      std::sort(variants.begin(), variants.end());
      variants.erase(std::unique(variants.begin(), variants.end()), variants.end());
    }
  }
  TrainingSet t;
  t.encoder = FeatureEncoder::ForVariants(std::move(variants));
  const std::span<const ExampleCollector::Row> all(rows);
  t.train = Encode(t.encoder, all.first(n_train));
  t.holdout = Encode(t.encoder, all.subspan(n_train));
  size_t positives = 0;
  for (const float y : t.train.y) positives += y > 0 ? 1 : 0;
  if (positives == 0 || positives == n_train) {
    return Status::FailedPrecondition(
        "the training part (" + std::to_string(n_train) + " examples) has " +
        (positives == 0 ? "no converting session" : "only converting sessions") +
        "; a model needs both: use more data");
  }
  size_t holdout_positives = 0;
  for (const float y : t.holdout.y) holdout_positives += y > 0 ? 1 : 0;
  if (holdout_positives == 0 || holdout_positives == t.holdout.rows()) {
    return Status::FailedPrecondition(
        "the holdout (" + std::to_string(t.holdout.rows()) + " examples) has " +
        (holdout_positives == 0 ? "no converting session" : "only converting sessions") +
        ": the model could not be evaluated; use more data");
  }
  t.train_window = {first, rows[n_train - 1].example.session_start_ts};
  t.holdout_window = {rows[n_train].example.session_start_ts, last};
  t.holdout_rows.assign(rows.begin() + static_cast<std::ptrdiff_t>(n_train), rows.end());
  return t;
}

}  // namespace duet::model
