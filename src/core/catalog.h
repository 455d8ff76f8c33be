// Catalog: interns experiment names, variant names and whole experiment tag sets into small
// integer ids, so that per-beacon records and per-key tables stay compact. Not thread-safe:
// each thread keeps its own, or one is filled before workers read it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "beacon/beacon.h"
#include "util/flat_map.h"
#include "util/serial.h"

namespace duet::core {

// Index of an (experiment, variant) pair in a Catalog; kSiteKey is the site-wide key.
using KeyId = uint32_t;
inline constexpr KeyId kSiteKey = 0;
using ExperimentId = uint32_t;
using TagSetId = uint32_t;
// The tag set of a beacon without experiments.
inline constexpr TagSetId kEmptyTagSet = 0;

struct KeyTag {
  ExperimentId experiment;
  KeyId key;
};

class Catalog {
 public:
  Catalog();

  // Interns the experiments object of a beacon (order-insensitive) and returns its id.
  TagSetId InternTagSet(std::span<const beacon::ExperimentTag> tags);
  // Interns a set of (experiment, key) pairs with at most one key per experiment — e.g. the keys
  // a session is attributed to — as a tag set: the id InternTagSet gives for their names.
  TagSetId InternKeys(std::span<const KeyTag> tags);
  // Interns one (experiment, variant) pair.
  KeyId InternKey(std::string_view experiment, std::string_view variant);
  ExperimentId InternExperiment(std::string_view name);

  // The (experiment, key) pairs of a tag set, sorted by experiment id. Valid until the next
  // Intern call.
  std::span<const KeyTag> Tags(TagSetId id) const {
    const auto& r = tag_sets_[id];
    return {tag_pool_.data() + r.begin, r.count};
  }
  size_t key_count() const { return keys_.size(); }
  size_t experiment_count() const { return experiments_.size(); }
  size_t tag_set_count() const { return tag_sets_.size(); }
  // Key 0 (site) has experiment kNoExperiment and empty names.
  static constexpr ExperimentId kNoExperiment = UINT32_MAX;
  ExperimentId KeyExperiment(KeyId k) const { return keys_[k].experiment; }
  const std::string& ExperimentName(ExperimentId e) const { return experiments_[e]; }
  const std::string& KeyVariant(KeyId k) const { return keys_[k].variant; }
  // Encodes every tag set in id order; Load into an empty catalog re-creates the same ids.
  void Save(ByteWriter* w) const;
  bool Load(ByteReader* r);
  // The tag set's (experiment name, variant name) pairs, for re-interning in another catalog.
  std::vector<beacon::ExperimentTag> TagSetNames(TagSetId id) const;

 private:
  struct Key {
    ExperimentId experiment;
    std::string variant;
  };
  struct Range {
    uint32_t begin;
    uint32_t count;
  };

  std::vector<std::string> experiments_;
  std::unordered_map<std::string, ExperimentId> experiment_ids_;
  std::vector<Key> keys_;
  std::unordered_map<std::string, KeyId> key_ids_;  // "experiment\0variant"
  std::vector<Range> tag_sets_;
  std::vector<KeyTag> tag_pool_;
  std::unordered_map<std::string, TagSetId> tag_set_ids_;  // canonical encoding
  TagSetId InternTagSetSlow(std::span<const beacon::ExperimentTag> tags);

  // Fast path: written-order hash of a tag list -> (id, its names in written order), so that
  // the common case of an already-seen experiments object costs no allocation.
  struct Cached {
    TagSetId id;
    std::vector<std::pair<std::string, std::string>> names;
  };
  FlatMap<uint32_t> fast_;  // hash -> index in cached_ + 1
  std::vector<Cached> cached_;
  std::string scratch_;
  std::vector<KeyTag> scratch_tags_;
  // InternKeys' fast path: hash of the sorted key ids -> tag set id + 1.
  FlatMap<uint32_t> key_sets_;
  std::vector<KeyTag> key_scratch_;
  std::vector<const beacon::ExperimentTag*> sorted_scratch_;
};

}  // namespace duet::core
