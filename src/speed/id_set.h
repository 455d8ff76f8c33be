// IdSet: the ids the speed layer has seen, each with the event time it came with, so that ids
// older than the TTL can be forgotten. Ids are keyed by their 128-bit XXH3 hash (the contract's
// stated keying; see docs/beacon-contract.md) in an open-addressing table: 24 bytes per id, no
// allocation per id, and expiry is one sequential pass.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "util/hash.h"

namespace duet::speed {

class IdSet {
 public:
  IdSet() { slots_.resize(1024); }

  // Adds the id with its ts; returns false (and changes nothing) if it was already there.
  bool Insert(std::string_view id, int64_t ts) { return InsertHash(HashBytes(id), ts); }

  bool InsertHash(const Hash128& h, int64_t ts) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(slots_.size() * 2, INT64_MIN);
    const Hash128 k = Key(h);
    for (size_t i = k.lo & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      Slot& s = slots_[i];
      if (s.key.lo == 0 && s.key.hi == 0) {
        s = Slot{k, ts};
        ++size_;
        return true;
      }
      if (s.key == k) return false;
    }
  }

  // Forgets every id whose ts is below `horizon`. O(capacity).
  void ExpireBefore(int64_t horizon) {
    size_t live = 0;
    for (const Slot& s : slots_) live += !Empty(s) && s.ts >= horizon;
    if (live == size_) return;
    size_t cap = 1024;
    while (live * 2 > cap) cap *= 2;  // at most half full after a purge
    Rehash(std::max(cap, slots_.size() / 4 >= live * 2 ? slots_.size() / 2 : slots_.size()),
           horizon);
  }

  size_t size() const { return size_; }
  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_) {
      if (!Empty(s)) f(s.key, s.ts);
    }
  }

 private:
  struct Slot {
    Hash128 key;  // {0, 0} marks an empty slot
    int64_t ts;
  };
  static bool Empty(const Slot& s) { return s.key.lo == 0 && s.key.hi == 0; }
  static Hash128 Key(const Hash128& h) { return (h.lo == 0 && h.hi == 0) ? Hash128{1, 0} : h; }

  void Rehash(size_t capacity, int64_t horizon) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    size_ = 0;
    for (const Slot& s : old) {
      if (!Empty(s) && s.ts >= horizon) InsertHash(s.key, s.ts);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace duet::speed
