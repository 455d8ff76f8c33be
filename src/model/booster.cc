#include "model/booster.h"

#include <xgboost/c_api.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace duet::model {
namespace {

// XGBoost's message for the failed call `what`: Corruption for a model that does not load,
// InvalidArgument otherwise (XGBoost fails on what it was given).
Status Failed(StatusCode code, std::string_view what) {
  std::string msg = std::string(what) + ": " + XGBGetLastError();
  return code == StatusCode::kCorruption ? Status::Corruption(std::move(msg))
                                         : Status::InvalidArgument(std::move(msg));
}

// Frees a DMatrix when leaving scope.
struct MatrixGuard {
  DMatrixHandle h = nullptr;
  ~MatrixGuard() {
    if (h != nullptr) XGDMatrixFree(h);
  }
};

}  // namespace

Booster::~Booster() { XGBoosterFree(handle_); }

std::string XgboostVersion() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

Result<std::unique_ptr<Booster>> Booster::Train(const Dataset& data, const TrainOptions& o) {
  const size_t rows = data.rows();
  if (rows == 0 || data.features == 0) {
    return Status::InvalidArgument("training set: no rows or no features");
  }
  if (data.x.size() != rows * data.features) {
    return Status::InvalidArgument("training set: " + std::to_string(data.x.size()) +
                                   " feature values for " + std::to_string(rows) + " rows of " +
                                   std::to_string(data.features) + " features");
  }
  for (size_t i = 0; i < rows; ++i) {
    if (data.y[i] != 0.0f && data.y[i] != 1.0f) {
      return Status::InvalidArgument("training set: label of row " + std::to_string(i) + " is " +
                                     std::to_string(data.y[i]) + "; expected 0 or 1");
    }
  }
  if (o.rounds < 1 || o.rounds > 100'000 || o.max_depth < 1 || o.max_depth > 64 ||
      !(o.eta > 0 && o.eta <= 1) || o.threads < 1) {
    return Status::InvalidArgument(
        "training options: rounds in 1..100000, max_depth in 1..64, eta in (0, 1] and threads "
        ">= 1 expected");
  }
  MatrixGuard m;
  if (XGDMatrixCreateFromMat(data.x.data(), rows, data.features, NAN, &m.h) != 0) {
    return Failed(StatusCode::kInvalidArgument, "XGDMatrixCreateFromMat");
  }
  if (XGDMatrixSetFloatInfo(m.h, "label", data.y.data(), rows) != 0) {
    return Failed(StatusCode::kInvalidArgument, "XGDMatrixSetFloatInfo(label)");
  }
  BoosterHandle b = nullptr;
  if (XGBoosterCreate(&m.h, 1, &b) != 0)
    return Failed(StatusCode::kInvalidArgument, "XGBoosterCreate");
  std::unique_ptr<Booster> booster(new Booster(b, data.features));
  const std::pair<const char*, std::string> params[] = {
      {"objective", "binary:logistic"},
      {"tree_method", "hist"},
      {"max_depth", std::to_string(o.max_depth)},
      {"eta", std::to_string(o.eta)},
      {"nthread", std::to_string(o.threads)},
      {"seed", std::to_string(o.seed)},
      {"validate_parameters", "1"},
  };
  for (const auto& [name, value] : params) {
    if (XGBoosterSetParam(b, name, value.c_str()) != 0) {
      return Failed(StatusCode::kInvalidArgument, std::string("XGBoosterSetParam(") + name + ")");
    }
  }
  for (int i = 0; i < o.rounds; ++i) {
    if (XGBoosterUpdateOneIter(b, i, m.h) != 0) {
      return Failed(StatusCode::kInvalidArgument, "XGBoosterUpdateOneIter");
    }
  }
  return booster;
}

Result<std::unique_ptr<Booster>> Booster::Load(std::string_view bytes, size_t features) {
  BoosterHandle b = nullptr;
  if (XGBoosterCreate(nullptr, 0, &b) != 0)
    return Failed(StatusCode::kInvalidArgument, "XGBoosterCreate");
  std::unique_ptr<Booster> booster(new Booster(b, features));
  if (bytes.empty() || XGBoosterLoadModelFromBuffer(b, bytes.data(), bytes.size()) != 0) {
    return Failed(StatusCode::kCorruption, "the model does not load");
  }
  bst_ulong n = 0;
  if (XGBoosterGetNumFeature(b, &n) != 0) {
    return Failed(StatusCode::kCorruption, "XGBoosterGetNumFeature");
  }
  if (n != features) {
    return Status::InvalidArgument("the model was trained on " + std::to_string(n) +
                                   " features; expected " + std::to_string(features));
  }
  // A loaded model serves requests: one thread per prediction (the caller's). XGBoost's default
  // (every core) enters an OpenMP parallel region per call, which costs far more than a few
  // rows' trees.
  if (XGBoosterSetParam(b, "nthread", "1") != 0) {
    return Failed(StatusCode::kInvalidArgument, "XGBoosterSetParam(nthread)");
  }
  return booster;
}

Result<std::string> Booster::Save() const {
  bst_ulong len = 0;
  const char* buf = nullptr;
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format": "ubj"})", &len, &buf) != 0) {
    return Failed(StatusCode::kInvalidArgument, "XGBoosterSaveModelToBuffer");
  }
  return std::string(buf, len);  // the buffer is XGBoost's (per thread): copied at once
}

Result<std::string> Booster::SaveJson() const {
  bst_ulong len = 0;
  const char* buf = nullptr;
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format": "json"})", &len, &buf) != 0) {
    return Failed(StatusCode::kInvalidArgument, "XGBoosterSaveModelToBuffer(json)");
  }
  return std::string(buf, len);
}

Status Booster::Predict(std::span<const float> x, std::vector<float>* out) const {
  out->clear();
  if (x.size() % features_ != 0) {
    return Status::InvalidArgument(std::to_string(x.size()) +
                                   " feature values are not whole rows of " +
                                   std::to_string(features_) + " features");
  }
  const size_t rows = x.size() / features_;
  if (rows == 0) return Status::Ok();
  // The array interface of the caller's memory (no copy).
  char iface[192];
  std::snprintf(iface, sizeof(iface),
                R"({"data": [%)" PRIuPTR
                R"(, true], "shape": [%zu, %zu], "typestr": "<f4", "version": 3})",
                reinterpret_cast<uintptr_t>(x.data()), rows, features_);
  static constexpr char kConfig[] =
      R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, )"
      R"("strict_shape": false, "cache_id": 0, "missing": NaN})";
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  if (XGBoosterPredictFromDense(handle_, iface, kConfig, nullptr, &shape, &dim, &result) != 0) {
    return Failed(StatusCode::kInvalidArgument, "XGBoosterPredictFromDense");
  }
  out->assign(result, result + rows);  // per-thread buffer: copied at once
  return Status::Ok();
}

}  // namespace duet::model
