// The model registry on top of the Store (store::Store::RegisterModel and friends): training a
// version from a TrainingSet, deciding whether to promote it, and loading a version for serving.
// A version's metadata is a JSON document (docs/model.md, "Registry"); its bytes are XGBoost's
// UBJSON model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/booster.h"
#include "model/encoder.h"
#include "model/evaluate.h"
#include "model/forest.h"
#include "model/training.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::model {

inline constexpr std::string_view kMetadataSchema = "duet.model.v1";

struct RegisterOptions {
  std::string input;  // what the examples were read from, recorded in the metadata
  int64_t session_gap_ms = 0;
  int64_t now_ms = 0;  // created_at
  // Promote even when the current model does better on this holdout.
  bool force = false;
  // Register without promoting.
  bool no_promote = false;
};

struct TrainOutcome {
  store::ModelInfo info;  // the new version
  Evaluation holdout;
  int64_t previous_version = 0;                   // current before this run (0: none)
  std::optional<Evaluation> previous_on_holdout;  // the previous model on the same holdout
  bool promoted = false;
  std::string decision;  // why it was or was not promoted, for people
};

// Trains on set.train, evaluates on set.holdout, compares with the current version on the same
// holdout, registers the new version and promotes it unless it is worse (lower holdout AUC than
// the current version, or no better than chance when there is none) and not forced. Promotion is a
// compare-and-set: Aborted if another version was promoted while this one trained (the new version
// stays registered).
Result<TrainOutcome> TrainAndRegister(const TrainingSet& set, const TrainOptions& options,
                                      const RegisterOptions& register_options, store::Store* store);

// A version ready to serve: immutable, shared by request threads.
struct LoadedModel {
  store::ModelInfo info;
  FeatureEncoder encoder;
  std::unique_ptr<Booster> booster;
  // The same trees evaluated natively (bit for bit XGBoost's probabilities, without its per-call
  // overhead), when Forest::FromBooster supports the model; else why not (native_error).
  std::unique_ptr<Forest> native;
  std::string native_error;

  // Probabilities, one per row: the native forest when there is one, else XGBoost.
  Status Predict(std::span<const float> x, std::vector<float>* out) const {
    if (native != nullptr) {
      if (x.size() % native->features() != 0) {
        return Status::InvalidArgument("feature values are not whole rows");
      }
      native->Predict(x, out);
      return Status::Ok();
    }
    return booster->Predict(x, out);
  }
};

// Reads a version from the store, checks its metadata and loads the booster (Corruption when
// the metadata or the model is unreadable, NotFound when the version does not exist).
Result<std::shared_ptr<const LoadedModel>> LoadModel(store::Store* store, int64_t version);

// The feature columns listed in a version's metadata.
Result<std::vector<std::string>> MetadataColumns(std::string_view metadata);

}  // namespace duet::model
