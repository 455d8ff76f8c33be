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
  uint8_t context = 0;  // interaction kind, device and referrer class (features.h); model only
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

// One session of a visitor, summarized: everything the figures need from its events. A session
// that can no longer grow never changes, so the speed layer keeps this instead of its events.
// A session's conversion values and (when they are not one contiguous run) the hours that have
// a beacon live in the side arrays of the SessionList or SessionSpan that holds it.
struct Session {
  int64_t start_ts = 0;  // first beacon's ts
  int64_t end_ts = 0;    // last beacon's ts
  uint32_t events = 0;   // beacons
  uint32_t pageviews = 0;
  uint32_t conversions = 0;  // conversion beacons: the session's next `conversions` values
  // 0: the hours with a beacon are every hour from hour(start_ts) to hour(end_ts) (always so
  // when the session gap is at most an hour); otherwise the session's next `hours` entries of the
  // hour list, ascending.
  uint32_t hours = 0;
  TagSetId attribution = kEmptyTagSet;  // the (experiment, variant)s the session counts for
};

// A read-only run of sessions with their side arrays.
struct SessionSpan {
  std::span<const Session> sessions;
  std::span<const double> values;
  std::span<const int64_t> hours;
  // The first k sessions with exactly their values and hours.
  SessionSpan First(size_t k) const;
};

// A visitor's sessions, in time order, with their side arrays.
struct SessionList {
  std::vector<Session> sessions;
  std::vector<double> values;
  std::vector<int64_t> hours;
  void Clear() {
    sessions.clear();
    values.clear();
    hours.clear();
  }
  // Appends `s`, whose values and hours are the given span's.
  void Append(const SessionSpan& s);
  SessionSpan View() const { return {sessions, values, hours}; }
};

// Splits one visitor's events, sorted by EventBefore, into sessions: a new session starts when
// the gap to the previous event is greater than gap_ms. Clears and fills *out.
void Sessionize(std::span<const Event> events, int64_t gap_ms, std::vector<SessionBounds>* out);

// The number of leading events that belong to sessions that are complete at `horizon_ms`: a
// session whose last event is more than gap_ms before the horizon cannot grow any more when no
// event older than the horizon is still to come. Complete sessions always form a prefix. This is
// the visitor's part of the batch layer's prefix view (docs/speed-layer.md, "serving merge").
size_t SessionPrefixEnd(std::span<const Event> events, int64_t gap_ms, int64_t horizon_ms);

// The same for summarized sessions: the number of leading sessions complete at `horizon_ms`.
size_t SessionPrefixEnd(std::span<const Session> sessions, int64_t gap_ms, int64_t horizon_ms);

// Summarizes one visitor's events, sorted by EventBefore, into sessions appended to *out —
// the same sessions, attribution and figures AddVisitor computes. Interns each session's
// attribution into `catalog` (which must hold every TagSetId of the events).
void Summarize(std::span<const Event> events, int64_t gap_ms, Catalog* catalog, SessionList* out);

}  // namespace duet::core
