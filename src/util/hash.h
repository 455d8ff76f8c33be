// 128-bit content hashes (XXH3-128) used as keys for beacon ids and visitors. With 128 bits the
// chance of any collision among 10^10 distinct keys is below 10^-18, so equality of hashes is
// treated as equality of keys; docs/beacon-contract.md states this.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <functional>
#include <string_view>

namespace duet {

struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  auto operator<=>(const Hash128&) const = default;
};

inline Hash128 HashBytes(std::string_view s) {
  const XXH128_hash_t h = XXH3_128bits(s.data(), s.size());
  return {h.low64, h.high64};
}

inline uint64_t Hash64(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

}  // namespace duet
