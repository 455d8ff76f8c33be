// Event: the compact form of one valid, non-duplicate beacon that the business logic works on.
// Both layers build Events from parsed beacons; nothing else of a beacon matters to the figures.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "beacon/beacon.h"
#include "core/catalog.h"

namespace duet::core {

inline constexpr int64_t kDefaultSessionGapMs = 30 * 60 * 1000;

struct Event {
  int64_t ts = 0;
  std::string_view id;  // owned by the caller; only used to order events with equal ts
  double value = 0;     // only read for conversions
  TagSetId tags = kEmptyTagSet;
  beacon::BeaconType type = beacon::BeaconType::kInteraction;
};

// The order of events inside a visitor: (ts, id bytewise).
inline bool EventBefore(const Event& a, const Event& b) {
  if (a.ts != b.ts) return a.ts < b.ts;
  return a.id < b.id;
}

// [begin, end) indexes into a visitor's sorted events.
struct SessionBounds {
  uint32_t begin;
  uint32_t end;
};

// Splits one visitor's events, sorted by EventBefore, into sessions: a new session starts when
// the gap to the previous event is greater than gap_ms. Clears and fills *out.
void Sessionize(std::span<const Event> events, int64_t gap_ms, std::vector<SessionBounds>* out);

// The number of leading events that belong to sessions that are complete at `horizon_ms`: a
// session whose last event is more than gap_ms before the horizon cannot grow any more when no
// event older than the horizon is still to come. Complete sessions always form a prefix. This is
// the visitor's part of the batch layer's prefix view (docs/speed-layer.md, "serving merge").
size_t SessionPrefixEnd(std::span<const Event> events, int64_t gap_ms, int64_t horizon_ms);

}  // namespace duet::core
