// StrongType<T, Tag>: a value that cannot be mixed up with another of the same representation
// (an event time with a byte offset, say). Modeled on Redpanda's named_type.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace duet {

template <typename T, typename Tag>
class StrongType {
 public:
  using ValueType = T;
  constexpr StrongType() = default;
  constexpr explicit StrongType(T v) : v_(v) {}
  constexpr T value() const { return v_; }
  constexpr auto operator<=>(const StrongType&) const = default;

 private:
  T v_{};
};

// Event time in milliseconds since the Unix epoch, UTC.
using EventTimeMs = StrongType<int64_t, struct EventTimeMsTag>;
// Hours since the Unix epoch, UTC: the bucket of an hourly figure.
using HourBucket = StrongType<int64_t, struct HourBucketTag>;
// A duration in milliseconds.
using DurationMs = StrongType<int64_t, struct DurationMsTag>;

inline constexpr int64_t kMsPerHour = 3'600'000;
constexpr HourBucket HourOf(EventTimeMs t) {
  // Floor division: event times are >= 2000-01-01 by contract, so never negative.
  return HourBucket(t.value() / kMsPerHour);
}

}  // namespace duet

template <typename T, typename Tag>
struct std::hash<duet::StrongType<T, Tag>> {
  size_t operator()(const duet::StrongType<T, Tag>& s) const { return std::hash<T>()(s.value()); }
};
