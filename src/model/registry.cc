#include "model/registry.h"

#include <simdjson.h>

#include <cmath>

#include "util/json_writer.h"

namespace duet::model {
namespace {

void WriteEvaluation(const Evaluation& e, Json* j) {
  j->Key("rows").Int(e.rows).Key("positives").Int(e.positives);
  j->Key("base_rate").Num(e.rows > 0 ? static_cast<double>(e.positives) / e.rows : NAN);
  j->Key("auc").Num(e.auc).Key("log_loss").Num(e.log_loss);
  j->Key("calibration").OpenArray();
  for (const CalibrationBin& b : e.calibration) {
    j->Open().Key("low").Num(b.low).Key("high").Num(b.high).Key("count").Int(b.count);
    j->Key("mean_predicted").Num(b.mean_predicted).Key("observed_rate").Num(b.observed_rate);
    j->Close();
  }
  j->CloseArray();
}

std::string Metadata(const TrainingSet& set, const TrainOptions& o, const RegisterOptions& r,
                     const TrainOutcome& out) {
  Json j;
  j.Open();
  j.Key("schema").Str(kMetadataSchema);
  j.Key("kind").Str("conversion_propensity");
  j.Key("label").Str("the session converts after its first `beacons` beacons");
  j.Key("created_at").Str(UtcTimeString(r.now_ms));
  j.Key("xgboost_version").Str(XgboostVersion());
  j.Key("columns").OpenArray();
  for (const std::string& c : set.encoder.columns()) j.Str(c);
  j.CloseArray();
  j.Key("max_checkpoint").Int(core::kMaxCheckpoint);
  j.Key("session_gap_ms").Int(r.session_gap_ms);
  j.Key("training").Open();
  j.Key("input").Str(r.input);
  j.Key("from").Str(UtcTimeString(set.train_window.from_ms));
  j.Key("to").Str(UtcTimeString(set.train_window.to_ms));
  size_t positives = 0;
  for (const float y : set.train.y) positives += y > 0 ? 1 : 0;
  j.Key("rows").Int(static_cast<int64_t>(set.train.rows()));
  j.Key("positives").Int(static_cast<int64_t>(positives));
  j.Close();
  j.Key("holdout").Open();
  j.Key("from").Str(UtcTimeString(set.holdout_window.from_ms));
  j.Key("to").Str(UtcTimeString(set.holdout_window.to_ms));
  WriteEvaluation(out.holdout, &j);
  j.Close();
  j.Key("params").Open();
  j.Key("objective").Str("binary:logistic").Key("tree_method").Str("hist");
  j.Key("rounds").Int(o.rounds).Key("max_depth").Int(o.max_depth).Key("eta").Num(o.eta);
  j.Key("seed").Int(static_cast<int64_t>(o.seed)).Key("threads").Int(o.threads);
  j.Close();
  j.Key("compared_with");
  if (out.previous_on_holdout) {
    j.Open().Key("version").Int(out.previous_version);
    j.Key("holdout_auc").Num(out.previous_on_holdout->auc);
    j.Key("holdout_log_loss").Num(out.previous_on_holdout->log_loss).Close();
  } else {
    j.Null();
  }
  j.Close();
  return j.Take();
}

std::string Fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

Result<std::vector<std::string>> MetadataColumns(std::string_view metadata) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(metadata.data(), metadata.size()).get(doc) != simdjson::SUCCESS) {
    return Status::Corruption("model metadata is not JSON");
  }
  std::string_view schema;
  if (doc["schema"].get_string().get(schema) != simdjson::SUCCESS || schema != kMetadataSchema) {
    return Status::Corruption("model metadata: schema is not '" + std::string(kMetadataSchema) +
                              "' (a model from a newer or foreign trainer)");
  }
  simdjson::dom::array cols;
  if (doc["columns"].get_array().get(cols) != simdjson::SUCCESS) {
    return Status::Corruption("model metadata: no 'columns' array");
  }
  std::vector<std::string> out;
  for (const simdjson::dom::element c : cols) {
    std::string_view s;
    if (c.get_string().get(s) != simdjson::SUCCESS) {
      return Status::Corruption("model metadata: a column is not a string");
    }
    out.emplace_back(s);
  }
  return out;
}

Result<std::shared_ptr<const LoadedModel>> LoadModel(store::Store* store, int64_t version) {
  auto stored = store->ReadModel(version);
  if (!stored.ok()) return stored.status();
  auto columns = MetadataColumns(stored->info.metadata);
  if (!columns.ok()) {
    return Status::Corruption("model version " + std::to_string(version) + ": " +
                              columns.status().message());
  }
  auto encoder = FeatureEncoder::Create(std::move(*columns));
  if (!encoder.ok()) {
    return Status::Corruption("model version " + std::to_string(version) + ": " +
                              encoder.status().message());
  }
  auto booster = Booster::Load(stored->bytes, encoder->size());
  if (!booster.ok()) {
    return Status::Corruption("model version " + std::to_string(version) + ": " +
                              booster.status().message());
  }
  auto m = std::make_shared<LoadedModel>(
      LoadedModel{std::move(stored->info), std::move(*encoder), std::move(*booster)});
  if (auto forest = Forest::FromBooster(*m->booster); forest.ok()) {
    m->native = std::make_unique<Forest>(std::move(*forest));
  } else {
    m->native_error = forest.status().message();
  }
  return std::shared_ptr<const LoadedModel>(std::move(m));
}

Result<TrainOutcome> TrainAndRegister(const TrainingSet& set, const TrainOptions& options,
                                      const RegisterOptions& r, store::Store* store) {
  auto booster = Booster::Train(set.train, options);
  if (!booster.ok()) return booster.status();
  TrainOutcome out;
  std::vector<float> predicted;
  DUET_RETURN_IF_ERROR((*booster)->Predict(set.holdout.x, &predicted));
  out.holdout = Evaluate(predicted, set.holdout.y);

  auto current = store->CurrentModel();
  if (!current.ok()) return current.status();
  out.previous_version = *current;
  if (*current != 0) {
    auto previous = LoadModel(store, *current);
    if (!previous.ok()) return previous.status();
    const Dataset d = Encode((*previous)->encoder, set.holdout_rows);
    DUET_RETURN_IF_ERROR((*previous)->Predict(d.x, &predicted));
    out.previous_on_holdout = Evaluate(predicted, d.y);
  }
  auto bytes = (*booster)->Save();
  if (!bytes.ok()) return bytes.status();
  auto info = store->RegisterModel(Metadata(set, options, r, out), *bytes, r.now_ms);
  if (!info.ok()) return info.status();
  out.info = std::move(*info);

  const std::string auc = Fixed(out.holdout.auc, 4);
  const bool worse = out.previous_on_holdout && out.holdout.auc < out.previous_on_holdout->auc;
  if (r.no_promote) {
    out.decision = "registered without promotion (--no-promote)";
    return out;
  }
  // Without a current version, the bar is chance: an AUC of 0.5 is what a constant scores.
  if (!out.previous_on_holdout && !(out.holdout.auc > 0.5) && !r.force) {
    out.decision = "not promoted: its holdout AUC " + auc +
                   " is no better than chance (0.5) (use --force to promote anyway)";
    return out;
  }
  if (worse && !r.force) {
    out.decision = "not promoted: its holdout AUC " + auc + " is below the current version " +
                   std::to_string(out.previous_version) + "'s " +
                   Fixed(out.previous_on_holdout->auc, 4) +
                   " on the same holdout (use --force to promote anyway)";
    return out;
  }
  DUET_RETURN_IF_ERROR(store->PromoteModel(out.info.version, out.previous_version));
  out.promoted = true;
  if (!out.previous_on_holdout) {
    out.decision = "promoted: the first model (holdout AUC " + auc + ")";
  } else {
    out.decision = std::string("promoted") + (worse ? " (forced)" : "") + ": holdout AUC " + auc +
                   " vs " + Fixed(out.previous_on_holdout->auc, 4) + " for version " +
                   std::to_string(out.previous_version);
  }
  return out;
}

}  // namespace duet::model
