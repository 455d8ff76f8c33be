// FlatMap<V>: an open-addressing hash map from uint64_t keys (except UINT64_MAX, reserved) to V,
// for hot aggregation tables. Values live in a dense vector in insertion order, so iteration is
// a plain loop. References returned by operator[] are invalidated by the next insertion.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace duet {

template <typename V>
class FlatMap {
 public:
  static constexpr uint64_t kEmpty = UINT64_MAX;

  FlatMap() { slots_.assign(16, kNone); }

  V& operator[](uint64_t key) {
    size_t i = Mix(key) & (slots_.size() - 1);
    while (true) {
      const uint32_t s = slots_[i];
      if (s == kNone) break;
      if (entries_[s].first == key) return entries_[s].second;
      i = (i + 1) & (slots_.size() - 1);
    }
    if ((entries_.size() + 1) * 4 > slots_.size() * 3) {
      Grow();
      return (*this)[key];
    }
    slots_[i] = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back(key, V{});
    return entries_.back().second;
  }

  const V* Find(uint64_t key) const {
    size_t i = Mix(key) & (slots_.size() - 1);
    while (true) {
      const uint32_t s = slots_[i];
      if (s == kNone) return nullptr;
      if (entries_[s].first == key) return &entries_[s].second;
      i = (i + 1) & (slots_.size() - 1);
    }
  }

  // Removes every entry; keeps the capacity.
  void clear() {
    if (!entries_.empty()) std::fill(slots_.begin(), slots_.end(), kNone);
    entries_.clear();
  }
  size_t size() const { return entries_.size(); }
  const std::vector<std::pair<uint64_t, V>>& entries() const { return entries_; }
  std::vector<std::pair<uint64_t, V>>& entries() { return entries_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static uint64_t Mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  void Grow() {
    std::vector<uint32_t> bigger(slots_.size() * 2, kNone);
    for (uint32_t s = 0; s < entries_.size(); ++s) {
      size_t i = Mix(entries_[s].first) & (bigger.size() - 1);
      while (bigger[i] != kNone) i = (i + 1) & (bigger.size() - 1);
      bigger[i] = s;
    }
    slots_.swap(bigger);
  }

  std::vector<uint32_t> slots_;
  std::vector<std::pair<uint64_t, V>> entries_;
};

}  // namespace duet
