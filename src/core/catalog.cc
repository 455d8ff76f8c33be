#include "core/catalog.h"

#include <algorithm>

#include "util/hash.h"

namespace duet::core {
namespace {
constexpr uint64_t kMaxTagSetSize = 1 << 16;
}  // namespace

Catalog::Catalog() {
  keys_.push_back(Key{kNoExperiment, ""});  // kSiteKey
  tag_sets_.push_back(Range{0, 0});         // kEmptyTagSet
  tag_set_ids_.emplace("", kEmptyTagSet);
}

ExperimentId Catalog::InternExperiment(std::string_view name) {
  scratch_.assign(name);
  const auto it = experiment_ids_.find(scratch_);
  if (it != experiment_ids_.end()) return it->second;
  const auto id = static_cast<ExperimentId>(experiments_.size());
  experiments_.emplace_back(name);
  experiment_ids_.emplace(scratch_, id);
  return id;
}

KeyId Catalog::InternKey(std::string_view experiment, std::string_view variant) {
  std::string k;
  k.reserve(experiment.size() + variant.size() + 1);
  k.append(experiment).push_back('\0');
  k.append(variant);
  const auto it = key_ids_.find(k);
  if (it != key_ids_.end()) return it->second;
  const ExperimentId e = InternExperiment(experiment);
  const auto id = static_cast<KeyId>(keys_.size());
  keys_.push_back(Key{e, std::string(variant)});
  key_ids_.emplace(std::move(k), id);
  return id;
}

TagSetId Catalog::InternTagSet(std::span<const beacon::ExperimentTag> tags) {
  if (tags.empty()) return kEmptyTagSet;
  uint64_t h = tags.size();
  for (const beacon::ExperimentTag& t : tags) {
    h = (h ^ Hash64(t.experiment)) * 0x9e3779b97f4a7c15ULL;
    h = (h ^ Hash64(t.variant)) * 0xc2b2ae3d27d4eb4fULL;
  }
  if (h == FlatMap<uint32_t>::kEmpty) h = 0;
  uint32_t& slot = fast_[h];
  if (slot != 0) {
    const Cached& c = cached_[slot - 1];
    bool same = c.names.size() == tags.size();
    for (size_t i = 0; same && i < tags.size(); ++i) {
      same = c.names[i].first == tags[i].experiment && c.names[i].second == tags[i].variant;
    }
    if (same) return c.id;
    return InternTagSetSlow(tags);  // a hash collision: correct, just not cached
  }
  const TagSetId id = InternTagSetSlow(tags);
  Cached c{id, {}};
  for (const beacon::ExperimentTag& t : tags) c.names.emplace_back(t.experiment, t.variant);
  cached_.push_back(std::move(c));
  fast_[h] = static_cast<uint32_t>(cached_.size());
  return id;
}

TagSetId Catalog::InternTagSetSlow(std::span<const beacon::ExperimentTag> tags) {
  // Canonical encoding: entries sorted by experiment name, each "name\0variant\0".
  // Attribution sets (InternKeys) may hold more experiments than one beacon can carry.
  std::vector<const beacon::ExperimentTag*>& sorted = sorted_scratch_;
  sorted.clear();
  for (const beacon::ExperimentTag& t : tags) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->experiment < b->experiment; });
  std::string enc;
  for (size_t i = 0; i < tags.size(); ++i) {
    enc.append(sorted[i]->experiment).push_back('\0');
    enc.append(sorted[i]->variant).push_back('\0');
  }
  const auto it = tag_set_ids_.find(enc);
  if (it != tag_set_ids_.end()) return it->second;
  scratch_tags_.clear();
  for (size_t i = 0; i < tags.size(); ++i) {
    const KeyId k = InternKey(sorted[i]->experiment, sorted[i]->variant);
    scratch_tags_.push_back(KeyTag{keys_[k].experiment, k});
  }
  std::sort(scratch_tags_.begin(), scratch_tags_.end(),
            [](const KeyTag& a, const KeyTag& b) { return a.experiment < b.experiment; });
  const auto id = static_cast<TagSetId>(tag_sets_.size());
  tag_sets_.push_back(
      Range{static_cast<uint32_t>(tag_pool_.size()), static_cast<uint32_t>(scratch_tags_.size())});
  tag_pool_.insert(tag_pool_.end(), scratch_tags_.begin(), scratch_tags_.end());
  tag_set_ids_.emplace(std::move(enc), id);
  return id;
}

TagSetId Catalog::InternKeys(std::span<const KeyTag> tags) {
  if (tags.empty()) return kEmptyTagSet;
  key_scratch_.assign(tags.begin(), tags.end());
  std::sort(key_scratch_.begin(), key_scratch_.end(),
            [](const KeyTag& a, const KeyTag& b) { return a.experiment < b.experiment; });
  uint64_t h = key_scratch_.size();
  for (const KeyTag& t : key_scratch_) h = (h ^ t.key) * 0x9e3779b97f4a7c15ULL;
  if (h == FlatMap<uint32_t>::kEmpty) h = 0;
  const auto same = [this](TagSetId id) {
    const std::span<const KeyTag> have = Tags(id);
    if (have.size() != key_scratch_.size()) return false;
    for (size_t i = 0; i < have.size(); ++i) {
      if (have[i].key != key_scratch_[i].key) return false;
    }
    return true;
  };
  if (const uint32_t* slot = key_sets_.Find(h); slot != nullptr && same(*slot - 1)) {
    return *slot - 1;
  }
  std::vector<beacon::ExperimentTag> names;
  names.reserve(key_scratch_.size());
  for (const KeyTag& t : key_scratch_) {
    names.push_back(beacon::ExperimentTag{experiments_[t.experiment], keys_[t.key].variant});
  }
  const TagSetId id = InternTagSetSlow(names);
  if (key_sets_.Find(h) == nullptr) key_sets_[h] = id + 1;  // else a collision: just not cached
  return id;
}

void Catalog::Save(ByteWriter* w) const {
  w->U64(tag_sets_.size());
  w->U64(keys_.size());
  for (TagSetId id = 1; id < tag_sets_.size(); ++id) {
    const auto names = TagSetNames(id);
    w->U64(names.size());
    for (const auto& t : names) {
      w->Str(t.experiment);
      w->Str(t.variant);
    }
  }
}

bool Catalog::Load(ByteReader* r) {
  const uint64_t sets = r->U64();
  const uint64_t keys = r->U64();
  if (!r->ok() || tag_sets_.size() != 1 || sets == 0) return false;
  std::vector<std::pair<std::string, std::string>> owned;
  std::vector<beacon::ExperimentTag> tags;
  for (uint64_t id = 1; id < sets; ++id) {
    const uint64_t n = r->U64();
    // A beacon carries at most kMaxExperiments; an attribution set at most one per experiment.
    if (!r->ok() || n == 0 || n > kMaxTagSetSize) return false;
    owned.clear();
    for (uint64_t i = 0; i < n; ++i) {
      const std::string_view e = r->Str();
      const std::string_view v = r->Str();
      owned.emplace_back(e, v);
    }
    tags.clear();
    for (const auto& [e, v] : owned) tags.push_back(beacon::ExperimentTag{e, v});
    if (!r->ok() || InternTagSet(tags) != id) return false;
  }
  return r->ok() && keys_.size() == keys;
}

std::vector<beacon::ExperimentTag> Catalog::TagSetNames(TagSetId id) const {
  std::vector<beacon::ExperimentTag> out;
  for (const KeyTag& t : Tags(id)) {
    out.push_back(beacon::ExperimentTag{experiments_[t.experiment], keys_[t.key].variant});
  }
  return out;
}

}  // namespace duet::core
