// Parser: turns one NDJSON line into a valid Beacon or a BadReason, by contract v1.
// Not thread-safe; use one Parser per thread. Reuses its buffers, so steady-state parsing does
// not allocate.
#pragma once

#include <array>
#include <memory>
#include <string_view>
#include <variant>

#include "beacon/beacon.h"

namespace simdjson::dom {
class parser;
}

namespace duet::beacon {

class Parser {
 public:
  Parser();
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Parses `line` (without its '\n'). `padded` says that at least 64 bytes past the end of
  // `line` are readable (LineReader guarantees it); otherwise the line is copied first.
  // On success fills *out and returns true; otherwise sets *reason and returns false.
  // A line longer than kMaxLineBytes is always kLineTooLong.
  bool Parse(std::string_view line, bool padded, Beacon* out, BadReason* reason);

 private:
  std::unique_ptr<simdjson::dom::parser> json_;
  std::array<ExperimentTag, kMaxExperiments> tags_;
  std::string copy_;
};

}  // namespace duet::beacon
