// Features of a session in progress for the conversion-propensity model (docs/model.md): what
// is known about a session after its first k beacons — counts by interaction kind, time in the
// session, when it started, the device and referrer it came with, the visitor's earlier
// sessions. One definition for both layers: the batch layer builds training examples with it,
// the speed layer scores open sessions with it, and the predict API encodes the same columns
// from a JSON object (model/encoder.h).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "beacon/beacon.h"
#include "core/catalog.h"
#include "core/event.h"

namespace duet::core {

// What kind of interaction a beacon is, from its type (the contract's `type` string).
enum class InteractionKind : uint8_t {
  kPageview,
  kClick,
  kScroll,
  kSearch,
  kAddToCart,
  kVideoPlay,
  kFormSubmit,
  kOther,  // any other type, and conversions
};
enum class DeviceClass : uint8_t { kUnknown, kDesktop, kMobile, kTablet };
enum class ReferrerClass : uint8_t { kNone, kSearch, kSocial, kEmail, kOther };

InteractionKind ClassifyType(beacon::BeaconType type, std::string_view type_name);
// "desktop", "mobile", "tablet" (ASCII case and surrounding spaces ignored); anything else
// kUnknown.
DeviceClass ClassifyDevice(std::string_view device);
// By the referrer URL's host (docs/model.md lists the hosts): empty is kNone.
ReferrerClass ClassifyReferrer(std::string_view referrer);

// The three classes of a beacon in one byte (Event::context): kind in bits 0-2, device in bits
// 3-4, referrer in bits 5-7.
inline uint8_t PackContext(InteractionKind k, DeviceClass d, ReferrerClass r) {
  return static_cast<uint8_t>(static_cast<unsigned>(k) | static_cast<unsigned>(d) << 3 |
                              static_cast<unsigned>(r) << 5);
}
inline InteractionKind ContextKind(uint8_t c) { return static_cast<InteractionKind>(c & 7); }
inline DeviceClass ContextDevice(uint8_t c) { return static_cast<DeviceClass>((c >> 3) & 3); }
inline ReferrerClass ContextReferrer(uint8_t c) { return static_cast<ReferrerClass>(c >> 5); }
// Classifies a parsed beacon.
uint8_t BeaconContext(const beacon::Beacon& b);

// The fixed feature columns, in order; a model's columns are these followed by one
// "experiment:NAME=VARIANT" indicator per variant of its vocabulary.
inline constexpr size_t kBaseFeatures = 22;
extern const std::array<std::string_view, kBaseFeatures> kBaseFeatureNames;
inline constexpr std::string_view kVariantColumnPrefix = "experiment:";

// What a session's features need of the visitor's earlier sessions.
struct SessionHistory {
  int64_t sessions = 0;             // earlier sessions
  int64_t converted_sessions = 0;   // of which with a conversion
  int64_t last_end_ts = INT64_MIN;  // the latest one's last beacon; INT64_MIN when none
  // Adds one earlier session (in time order).
  void Add(int64_t end_ts, bool converted) {
    ++sessions;
    converted_sessions += converted ? 1 : 0;
    last_end_ts = end_ts;
  }
};

// The base features of a session as of its first beacons `prefix` (non-empty, sorted by
// EventBefore), written to out[0, kBaseFeatures). The device and referrer are those of the
// session's first beacon (a session keeps the device and referrer it arrived with).
void SessionFeatures(std::span<const Event> prefix, const SessionHistory& history, float* out);

// A session is observed for training after each of its first beacons: it contributes one
// example per k in [1, kMaxCheckpoint] that is at most its number of beacons before its first
// conversion.
inline constexpr uint32_t kMaxCheckpoint = 16;

struct Example {
  int64_t session_start_ts = 0;
  uint32_t beacons = 0;          // the checkpoint k
  TagSetId tags = kEmptyTagSet;  // the experiments of the session's first beacon
  bool converted = false;  // the label: the session has a conversion after its first k beacons
  std::array<float, kBaseFeatures> features{};
};

// Appends the training examples of one visitor (all valid, non-duplicate events, sorted by
// EventBefore) to *out: sessions split by Sessionize with `gap_ms`. `bounds` is scratch.
void VisitorExamples(std::span<const Event> events, int64_t gap_ms,
                     std::vector<SessionBounds>* bounds, std::vector<Example>* out);

}  // namespace duet::core
