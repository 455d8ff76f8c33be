// LineReader: streams the lines of a plain or zstd-compressed (".zst") NDJSON file with constant
// memory, whatever the file size. Each line handed out is followed by at least kLinePadding
// readable bytes, so that simdjson can parse it in place without a copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace duet {

inline constexpr size_t kLinePadding = 64;

struct Line {
  // The line without its terminating '\n'. For a line longer than the reader's max_line, the
  // first max_line bytes only (truncated = true).
  std::string_view bytes;
  uint64_t offset = 0;       // byte offset of the line's first byte in the (decompressed) stream
  uint64_t number = 0;       // 1-based line number
  uint64_t full_length = 0;  // length of the whole line, even when truncated
  bool truncated = false;
};

class LineReader {
 public:
  virtual ~LineReader() = default;
  // Opens `path`; names ending in ".zst" are decompressed on the fly. max_line is the longest
  // line kept whole. Fails with IoError if the file cannot be opened.
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path, size_t max_line);

  // On success sets *line and returns true, or returns false at the end of the input. The line
  // stays valid until the next call. A read or decompression failure returns a non-ok Status
  // (Corruption for a damaged .zst stream); the reader must not be used after that.
  virtual Result<bool> Next(Line* line) = 0;
};

}  // namespace duet
