// Beacon contract v1 (docs/beacon-contract.md): the parsed form of one valid beacon, and the
// machine-readable reasons a line can be rejected for.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "util/strong_type.h"

namespace duet::beacon {

inline constexpr size_t kMaxLineBytes = 64 * 1024;
inline constexpr size_t kMaxIdBytes = 64;
inline constexpr size_t kMaxVisitorBytes = 128;
inline constexpr size_t kMaxTypeBytes = 32;
inline constexpr size_t kMaxExperiments = 32;
inline constexpr size_t kMaxExperimentNameBytes = 64;
inline constexpr size_t kMaxVariantBytes = 64;
inline constexpr size_t kMaxTextBytes = 2048;
inline constexpr int64_t kMinTsMs = 946684800000;   // 2000-01-01T00:00:00Z
inline constexpr int64_t kMaxTsMs = 4102444800000;  // 2100-01-01T00:00:00Z

enum class BeaconType : uint8_t { kInteraction = 0, kPageview = 1, kConversion = 2 };

// Why a line is a bad row. The string form (ReasonName) is the public, stable name.
// Order of checks, and so which reason wins when several apply, is the order below.
enum class BadReason : uint8_t {
  kLineTooLong,
  kUtf8Invalid,
  kLineEmpty,
  kJsonSyntax,
  kJsonNotObject,
  kIdMissing,
  kIdNotString,
  kIdEmpty,
  kIdTooLong,
  kIdDuplicateKey,
  kVisitorMissing,
  kVisitorNotString,
  kVisitorEmpty,
  kVisitorTooLong,
  kVisitorDuplicateKey,
  kTsMissing,
  kTsNotInteger,
  kTsOutOfRange,
  kTsDuplicateKey,
  kTypeMissing,
  kTypeNotString,
  kTypeEmpty,
  kTypeTooLong,
  kTypeDuplicateKey,
  kExperimentsNotObject,
  kExperimentsTooMany,
  kExperimentsNameEmpty,
  kExperimentsNameTooLong,
  kExperimentsNameDuplicate,
  kExperimentsVariantNotString,
  kExperimentsVariantEmpty,
  kExperimentsVariantTooLong,
  kExperimentsDuplicateKey,
  kValueNotNumber,
  kValueNegative,
  kValueDuplicateKey,
  kPageNotString,
  kPageTooLong,
  kPageDuplicateKey,
  kDeviceNotString,
  kDeviceTooLong,
  kDeviceDuplicateKey,
  kReferrerNotString,
  kReferrerTooLong,
  kReferrerDuplicateKey,
  kCount  // not a reason: the number of reasons
};
inline constexpr size_t kReasonCount = static_cast<size_t>(BadReason::kCount);

// Stable machine-readable name, e.g. "ts.not_integer".
std::string_view ReasonName(BadReason r);
// Inverse of ReasonName; false if `name` is not a reason.
bool ReasonFromName(std::string_view name, BadReason* out);

struct ExperimentTag {
  std::string_view experiment;
  std::string_view variant;
};

// A valid beacon. String views point into memory owned by the Parser that produced it and stay
// valid until that parser's next Parse call.
struct Beacon {
  std::string_view id;
  std::string_view visitor;
  EventTimeMs ts;
  std::string_view type_name;
  BeaconType type = BeaconType::kInteraction;
  double value = 0.0;  // 0 when absent
  bool has_value = false;
  std::span<const ExperimentTag> experiments;  // in the order they appear in the line
  std::string_view page, device, referrer;     // empty when absent
};

}  // namespace duet::beacon
