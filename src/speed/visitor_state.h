// The speed layer's per-visitor state, compact: the visitor's complete sessions summarized
// (core::Session — a session that can no longer grow never changes) and the events of the
// sessions that still can. The same bytes are kept in memory (VisitorTable) and written as the
// visitor's checkpoint record, so a checkpoint costs no re-encoding.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "beacon/beacon.h"
#include "core/catalog.h"
#include "core/event.h"
#include "util/hash.h"
#include "util/serial.h"
#include "util/zeroed_array.h"

namespace duet::speed {

// One event of a session that can still grow. `id` only orders events with equal ts.
struct OpenEvent {
  int64_t ts = 0;
  double value = 0;  // kept for conversions only
  core::TagSetId tags = core::kEmptyTagSet;
  beacon::BeaconType type = beacon::BeaconType::kInteraction;
  std::string_view id;
  uint8_t context = 0;  // core::BeaconContext, for live scoring
};

inline bool OpenEventBefore(const OpenEvent& a, const OpenEvent& b) {
  if (a.ts != b.ts) return a.ts < b.ts;
  return a.id < b.id;
}

// Appends the encoding of `done` (complete sessions, in order) and `open` (sorted by
// OpenEventBefore, all after the sessions of `done`) to *w: varints, timestamps as deltas.
//
// Ids are written only for open events with ts >= `keep_ids_from`: an id only orders events
// with equal ts, and every event still to come has a ts at or above the watermark, so older
// events can never tie with a new one — their order among themselves is the stored order, which
// callers keep by merging new events in (std::merge), never re-sorting.
void EncodeVisitorState(const core::SessionSpan& done, std::span<const OpenEvent> open,
                        int64_t keep_ids_from, ByteWriter* w);

// Decodes what EncodeVisitorState wrote into *done and *open (both cleared first); the ids of
// `open` point into `bytes`. False when the bytes are malformed or name a tag set id that is not
// below `tag_sets`.
bool DecodeVisitorState(std::string_view bytes, size_t tag_sets, core::SessionList* done,
                        std::vector<OpenEvent>* open);

// Visitors by 128-bit key: an open-addressing table (linear probing, backward-shift deletion) of
// 40-byte entries, each owning one malloc'ed block with the visitor's encoded state. No
// per-visitor node, no std::vector or std::string per visitor.
class VisitorTable {
 public:
  struct Entry {
    Hash128 key;          // {0, 0} marks an empty slot
    int64_t last_ts;      // the visitor's greatest applied ts
    char* state;          // EncodeVisitorState bytes (malloc), or nullptr
    uint32_t state_size;  // bytes of *state
    uint32_t mark;        // free for the owner's bookkeeping; 0 for a new entry
  };

  VisitorTable() : slots_(1024) {}
  ~VisitorTable() { Clear(); }
  VisitorTable(const VisitorTable&) = delete;
  VisitorTable& operator=(const VisitorTable&) = delete;

  // nullptr if absent. Entry pointers are valid until the next Insert or EraseIf.
  Entry* Find(const Hash128& key);
  // The visitor's entry, created (last_ts INT64_MIN, no state, mark 0) if absent.
  Entry* Insert(const Hash128& key, bool* inserted);

  // Starts loading the slot where `key` would be looked up.
  // (key.lo, not Key(key): see IdSet::Prefetch.)
  void Prefetch(const Hash128& key) const {
    const Entry* home = slots_.begin() + Home(key);
    __builtin_prefetch(home);
    __builtin_prefetch(reinterpret_cast<const char*>(home) + 64);  // probes often go on
  }

  static std::string_view State(const Entry& e) { return {e.state, e.state_size}; }
  // Replaces the entry's state with a copy of `bytes`.
  static void SetState(Entry* e, std::string_view bytes);

  // Removes (and frees) every entry for which pred(entry) is true, calling pred once for each
  // entry removed (entries kept may be seen twice). Returns the number removed.
  template <typename Pred>
  size_t EraseIf(Pred&& pred) {
    size_t removed = 0;
    const size_t mask = slots_.size() - 1;
    for (size_t i = 0; i < slots_.size();) {
      Entry& e = slots_[i];
      if (Empty(e) || !pred(e)) {
        ++i;
        continue;
      }
      std::free(e.state);
      ++removed;
      --size_;
      // Backward shift: pull later entries of the probe chain into the hole.
      size_t hole = i;
      for (size_t j = (i + 1) & mask; !Empty(slots_[j]); j = (j + 1) & mask) {
        const size_t home = Home(slots_[j].key);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
          slots_[hole] = slots_[j];
          hole = j;
        }
      }
      slots_[hole] = Entry{};
      // Slot i now holds another entry (or none): look at it again.
    }
    if (removed > 0) ShrinkIfSparse();
    return removed;
  }

  template <typename F>
  void ForEach(F&& f) {  // f(Entry&)
    for (Entry& e : slots_) {
      if (!Empty(e)) f(e);
    }
  }
  template <typename F>
  void ForEach(F&& f) const {
    for (const Entry& e : slots_) {
      if (!Empty(e)) f(e);
    }
  }

  size_t size() const { return size_; }
  // Bytes held: the slot array plus every state block as the allocator sized it.
  size_t MemoryBytes() const;
  void Clear();

 private:
  static bool Empty(const Entry& e) { return e.key.lo == 0 && e.key.hi == 0; }
  static Hash128 Key(const Hash128& h) { return (h.lo == 0 && h.hi == 0) ? Hash128{1, 0} : h; }
  size_t Home(const Hash128& k) const { return k.lo & (slots_.size() - 1); }
  void Grow() { Rehash(slots_.size() * 2); }
  // Halves the table (repeatedly) while it would stay at most 60 % full (it grows at 70 %).
  void ShrinkIfSparse();
  void Rehash(size_t capacity);

  ZeroedArray<Entry> slots_;  // huge-page advised: lookups miss the cache anyway
  size_t size_ = 0;
};

}  // namespace duet::speed
