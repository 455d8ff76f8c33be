// BadRow: a line that broke contract v1, kept with where it came from and its original bytes.
#pragma once

#include <cstdint>
#include <string>

#include "beacon/beacon.h"

namespace duet::core {

struct BadRow {
  beacon::BadReason reason = beacon::BadReason::kJsonSyntax;
  std::string source;      // file path relative to the input root, or a log position
  uint64_t line = 0;       // 1-based line number in the source
  uint64_t offset = 0;     // byte offset of the line in the (decompressed) source
  uint64_t length = 0;     // the whole line's length in bytes
  bool truncated = false;  // payload holds only the first kMaxLineBytes bytes
  std::string payload;     // the original bytes, without the '\n'
};

}  // namespace duet::core
