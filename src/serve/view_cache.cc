#include "serve/view_cache.h"

#include <utility>

#include "serve/merge.h"

namespace duet::serve {

Result<std::shared_ptr<const Snapshot>> ReadSnapshot(store::Store* store, int64_t now_ms) {
  auto snap = std::make_shared<Snapshot>();
  snap->loaded_ms = now_ms;
  auto in = store->ReadMergeInputs();
  if (!in.ok()) return in.status();
  auto run = store->LastBatchRun();
  if (!run.ok()) return run.status();
  if (run->has_value()) {
    snap->batch_run = std::move(**run);
    std::string().swap(snap->batch_run->prefix_state);  // not served: free it
  }
  snap->has_speed = !in->speed.empty();
  if (snap->has_speed) {
    auto speed = SpeedViews(in->speed);
    if (!speed.ok()) return speed.status();
    snap->speed_max_ts = speed->max_ts;
    snap->speed_final_before_ms = speed->final_before_ms;
    for (const store::SpeedScope& s : in->speed) {
      snap->scopes.push_back(ScopeInfo{s.scope, s.epoch, s.positions});
    }
    if (in->has_batch) {
      auto merged = MergeViews(*in);
      if (!merged.ok()) return merged.status();
      snap->views = std::move(*merged);
    } else {
      snap->views = std::move(*speed);
    }
  } else if (in->has_batch) {
    // No speed layer: the batch layer's views in full (its prefix view stops at the boundary).
    auto batch = store->ReadBatchViews();
    if (!batch.ok()) return batch.status();
    snap->views = std::move(*batch);
  }
  const core::Views& v = snap->views;
  for (size_t i = 0; i < v.totals.size(); ++i) {
    snap->totals_by_experiment[v.totals[i].experiment].push_back(i);
  }
  for (size_t i = 0; i < v.hourly.size(); ++i) {
    snap->hourly_by_experiment[v.hourly[i].experiment].push_back(i);
  }
  for (size_t i = 0; i < v.uniques.size(); ++i) {
    snap->uniques_by_experiment[v.uniques[i].experiment].push_back(i);
  }
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

ViewCache::ViewCache(store::Store* store, std::function<int64_t()> now_ms)
    : store_(store), now_ms_(std::move(now_ms)) {}

Status ViewCache::Refresh() {
  const int64_t now = now_ms_();
  auto snap = ReadSnapshot(store_, now);
  std::shared_ptr<const Snapshot> old;  // freed after the lock: readers never wait for it
  std::lock_guard<std::mutex> l(mu_);
  health_.last_attempt_ms = now;
  ++health_.refreshes;
  if (!snap.ok()) {
    ++health_.failures;
    health_.last_error = snap.status().ToString();
    return snap.status();
  }
  old = std::exchange(current_, std::move(*snap));
  health_.last_success_ms = now;
  health_.last_error.clear();
  return Status::Ok();
}

std::shared_ptr<const Snapshot> ViewCache::Current() const {
  std::lock_guard<std::mutex> l(mu_);
  return current_;
}

ViewCache::Health ViewCache::health() const {
  std::lock_guard<std::mutex> l(mu_);
  return health_;
}

}  // namespace duet::serve
