// IdSet: the ids the speed layer has seen, each with the event time it came with, so that ids
// older than the TTL can be forgotten. Ids are keyed by their 128-bit XXH3 hash (the contract's
// stated keying; see docs/beacon-contract.md) in an open-addressing table (linear probing,
// backward-shift deletion): 24 bytes per slot, no allocation per id, expiry is one sequential
// pass in place. Slots live in huge-page-advised memory (util/zeroed_array.h): nearly every
// lookup is a cache miss, so callers Prefetch a few lines ahead.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/hash.h"
#include "util/zeroed_array.h"

namespace duet::speed {

class IdSet {
 public:
  IdSet() : slots_(kMinCapacity) {}

  // Adds the id with its ts; returns false (and changes nothing) if it was already there.
  // Ids whose ts is below `horizon` count as forgotten: inserting one again succeeds (and
  // records the new ts). Expired ids are removed from memory when the table is full, before it
  // grows, so expiry costs no pass of its own.
  bool Insert(std::string_view id, int64_t ts, int64_t horizon = INT64_MIN) {
    return InsertHash(HashBytes(id), ts, horizon);
  }

  bool InsertHash(const Hash128& h, int64_t ts, int64_t horizon = INT64_MIN) {
    if ((size_ + 1) * 5 > slots_.size() * 3) {  // at most 60 % full: short probes for new ids
      ExpireBefore(horizon);
      if ((size_ + 1) * 5 > slots_.size() * 2) Resize(slots_.size() * 2);
    }
    const Hash128 k = Key(h);
    const size_t mask = slots_.size() - 1;
    for (size_t i = k.lo & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (Empty(s)) {
        s = Slot{k, ts};
        ++size_;
        return true;
      }
      if (s.key == k) {
        if (s.ts >= horizon) return false;
        s.ts = ts;
        return true;
      }
    }
  }

  // Starts loading the slot where `h` would be looked up. (h.lo, not Key(h).lo: they differ
  // only for the all-zero hash, and GCC 12 drops a prefetch whose address needs a branch.)
  void Prefetch(const Hash128& h) const {
    const Slot* home = slots_.begin() + (h.lo & (slots_.size() - 1));
    __builtin_prefetch(home);
    __builtin_prefetch(reinterpret_cast<const char*>(home) + 64);  // the probe usually goes on
  }

  // Removes every id whose ts is below `horizon` from memory. O(capacity).
  void ExpireBefore(int64_t horizon) {
    if (horizon == INT64_MIN) return;
    const size_t mask = slots_.size() - 1;
    for (size_t i = 0; i < slots_.size();) {
      if (Empty(slots_[i]) || slots_[i].ts >= horizon) {
        ++i;
        continue;
      }
      --size_;
      size_t hole = i;
      for (size_t j = (i + 1) & mask; !Empty(slots_[j]); j = (j + 1) & mask) {
        const size_t home = slots_[j].key.lo & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
          slots_[hole] = slots_[j];
          hole = j;
        }
      }
      slots_[hole] = Slot{};
    }
    // Give memory back once the table is mostly empty.
    if (slots_.size() > kMinCapacity && size_ * 8 < slots_.size()) {
      size_t cap = kMinCapacity;
      while (size_ * 2 > cap) cap *= 2;
      Resize(cap);
    }
  }

  size_t size() const { return size_; }  // ids in memory, including expired ones not yet removed
  size_t MemoryBytes() const { return slots_.bytes(); }
  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_) {
      if (!Empty(s)) f(s.key, s.ts);
    }
  }

 private:
  static constexpr size_t kMinCapacity = 1024;
  struct Slot {
    Hash128 key;  // {0, 0} marks an empty slot
    int64_t ts;
  };
  static bool Empty(const Slot& s) { return s.key.lo == 0 && s.key.hi == 0; }
  static Hash128 Key(const Hash128& h) { return (h.lo == 0 && h.hi == 0) ? Hash128{1, 0} : h; }

  void Resize(size_t capacity) {
    ZeroedArray<Slot> old(capacity);
    std::swap(old, slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (Empty(s)) continue;
      size_t i = s.key.lo & mask;
      while (!Empty(slots_[i])) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  ZeroedArray<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace duet::speed
