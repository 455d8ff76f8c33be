// Training sets for the conversion-propensity model: examples collected from the batch layer's
// visitors (core::VisitorExamples through batch::BatchOptions::on_visitor), put in a
// deterministic order and split by time into a training part and a later holdout part.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/catalog.h"
#include "core/event.h"
#include "core/features.h"
#include "model/booster.h"
#include "model/encoder.h"
#include "util/result.h"

namespace duet::model {

// Collects examples from visitors, one buffer per thread (Visitor may be called from
// `threads` threads at once, each with its own thread index).
class ExampleCollector {
 public:
  ExampleCollector(int threads, int64_t session_gap_ms);
  void Visitor(int thread, const core::Catalog& catalog, std::span<const core::Event> events);

  struct Row {
    core::Example example;                     // example.tags is unused here
    const std::vector<VariantPair>* variants;  // the session's experiments, sorted
  };
  // Every example collected, in a deterministic order: by session start, then content. The
  // pointers stay valid while the collector lives.
  std::vector<Row> Rows() const;
  size_t visitors() const;

 private:
  struct PerThread {
    std::vector<core::Example> examples;
    std::vector<uint32_t> set_of;  // per example: index into sets
    std::vector<std::vector<VariantPair>> sets;
    std::vector<int64_t> set_index;  // catalog tag set id -> index into sets, -1 unknown
    std::vector<core::SessionBounds> bounds;
    size_t visitors = 0;
  };
  const int64_t gap_ms_;
  std::vector<PerThread> threads_;
};

struct TimeWindow {
  int64_t from_ms = 0;  // session starts in [from_ms, to_ms]
  int64_t to_ms = 0;
};

struct TrainingSet {
  FeatureEncoder encoder = FeatureEncoder::ForVariants({});
  Dataset train;
  Dataset holdout;
  TimeWindow train_window;
  TimeWindow holdout_window;
  // The holdout's base features and variants, so that another model's columns can be encoded.
  std::vector<ExampleCollector::Row> holdout_rows;
};

// Splits rows (in Rows() order) by time: the holdout is the examples of the latest sessions,
// about `holdout_fraction` of them (the cut falls between two session starts). Both parts must
// hold both classes (a model must be learnable and its AUC defined). FailedPrecondition,
// saying what is missing, when either part would be empty or the training part lacks one of the
// classes.
Result<TrainingSet> BuildTrainingSet(std::vector<ExampleCollector::Row> rows,
                                     double holdout_fraction);

// Encodes rows with `encoder`'s columns (another model's, for comparing on the same holdout).
Dataset Encode(const FeatureEncoder& encoder, std::span<const ExampleCollector::Row> rows);

}  // namespace duet::model
