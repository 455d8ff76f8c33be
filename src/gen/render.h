// Renders a Pending record as one NDJSON line: a valid beacon, or the bad row its BadKind asks
// for. Internal to src/gen.
#pragma once

#include <cstdint>

#include "gen/model.h"

namespace duet::gen::internal {

class Renderer {
 public:
  explicit Renderer(uint64_t seed);

  // Writes the line (without '\n') to buf, which must hold kRenderBufferBytes, and returns its
  // length. A pure function of `e` and the seed.
  size_t Render(const Pending& e, char* buf) const;

  // The visitor id string of visitor number `visitor` ("v" + 16 hex digits), into buf[17].
  void VisitorId(uint32_t visitor, char* buf) const;

 private:
  struct Mutation;
  char* RenderObject(const Pending& e, const Mutation& m, uint64_t bad_bits, char* p) const;
  char* RenderNotJson(const Pending& e, uint64_t bad_bits, char* p) const;

  const uint64_t id_key_;
  const uint64_t visitor_key_;
  const uint64_t bad_key_;
};

inline constexpr size_t kVisitorIdLength = 17;
// Longer than any line Render writes (the longest is a huge_line of < 86 KiB).
inline constexpr size_t kRenderBufferBytes = 128 * 1024;

}  // namespace duet::gen::internal
