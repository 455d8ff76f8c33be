#include "model/cache.h"

#include <cmath>

namespace duet::model {

ModelCache::ModelCache(store::Store* store, std::function<void(bool, int64_t)> on_load,
                       std::function<int64_t()> now_ms)
    : store_(store), on_load_(std::move(on_load)), now_ms_(std::move(now_ms)) {}

Status ModelCache::Refresh() {
  auto fail = [this](const Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    health_.last_error = s.ToString();
    return s;
  };
  auto current = store_->CurrentModel();
  if (!current.ok()) return fail(current.status());
  auto versions = store_->ListModels();
  if (!versions.ok()) return fail(versions.status());
  int64_t served = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    served = current_ != nullptr ? current_->info.version : 0;
  }
  std::shared_ptr<const LoadedModel> loaded;
  if (*current != 0 && *current != served) {
    auto m = LoadModel(store_, *current);
    Status check = m.status();
    if (m.ok()) {
      // One prediction before any request sees it: a model that loads but cannot predict on its
      // own columns is refused here, not on the request path.
      std::vector<float> row((*m)->encoder.size(), NAN), out;
      check = (*m)->Predict(row, &out);
    }
    if (!check.ok()) {
      if (on_load_) on_load_(false, served);
      return fail(check);
    }
    loaded = std::move(*m);
  }
  const bool swapped = loaded != nullptr;
  std::shared_ptr<const LoadedModel> old;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (loaded != nullptr) {
      old = std::move(current_);
      current_ = std::move(loaded);
    }
    versions_ = std::move(*versions);
    health_.current_version = *current;
    health_.served_version = current_ != nullptr ? current_->info.version : 0;
    health_.last_success_ms = now_ms_();
    health_.last_error.clear();
  }
  if (swapped && on_load_) on_load_(true, *current);
  return Status::Ok();  // `old` is freed here, outside the lock, unless a request still holds it
}

std::shared_ptr<const LoadedModel> ModelCache::Current() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_;
}

std::vector<store::ModelInfo> ModelCache::Versions() const {
  std::lock_guard<std::mutex> l(mu_);
  return versions_;
}

ModelCache::Health ModelCache::health() const {
  std::lock_guard<std::mutex> l(mu_);
  return health_;
}

}  // namespace duet::model
