// libFuzzer target: the beacon parser/validator alone (contract v1, docs/beacon-contract.md), at
// parser speed — the deep field rules get far more inputs here than through beacon_fuzz, which
// runs both layers per input. The input is one line (a '\n' ends it). Asserted for every input:
// - the unpadded path (the line copied first) and the padded path (64 readable bytes after it,
//   as LineReader gives) agree: both valid with the same fields, or both bad with the same reason;
// - a bad line has exactly one reason, with a stable name that maps back to it;
// - a valid beacon meets the contract: id, visitor and type non-empty and within their limits,
//   ts within [2000-01-01, 2100-01-01], value finite and >= 0 (0 when absent), the type's enum
//   matching its name, at most 32 experiments with distinct non-empty names and non-empty variants,
//   text fields within their limits, every view inside the line or the parser's own buffers;
// - the same line parsed again gives the same answer (the parser reuses its buffers).
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "beacon/beacon.h"
#include "beacon/parser.h"
#include "fuzz/check.h"

namespace {

using duet::beacon::BadReason;
using duet::beacon::Beacon;

using duet::fuzz::Check;

// A parsed beacon's fields, copied (the views die with the next Parse).
struct Parsed {
  bool valid = false;
  BadReason reason = BadReason::kCount;
  std::string id, visitor, type_name, page, device, referrer;
  int64_t ts = 0;
  int type = -1;
  double value = 0;
  bool has_value = false;
  std::vector<std::pair<std::string, std::string>> experiments;
  bool operator==(const Parsed&) const = default;
};

Parsed Run(duet::beacon::Parser* parser, std::string_view line, bool padded) {
  Parsed p;
  Beacon b;
  BadReason reason = BadReason::kCount;
  p.valid = parser->Parse(line, padded, &b, &reason);
  if (!p.valid) {
    p.reason = reason;
    return p;
  }
  p.id = b.id;
  p.visitor = b.visitor;
  p.type_name = b.type_name;
  p.page = b.page;
  p.device = b.device;
  p.referrer = b.referrer;
  p.ts = b.ts.value();
  p.type = static_cast<int>(b.type);
  p.value = b.value;
  p.has_value = b.has_value;
  for (const auto& t : b.experiments) p.experiments.emplace_back(t.experiment, t.variant);
  return p;
}

void CheckValid(const Parsed& p) {
  using namespace duet::beacon;
  Check(!p.id.empty() && p.id.size() <= kMaxIdBytes, "id non-empty and within its limit");
  Check(!p.visitor.empty() && p.visitor.size() <= kMaxVisitorBytes,
        "visitor non-empty and within its limit");
  Check(!p.type_name.empty() && p.type_name.size() <= kMaxTypeBytes,
        "type non-empty and within its limit");
  Check(p.ts >= kMinTsMs && p.ts <= kMaxTsMs, "ts within [2000, 2100]");
  Check(std::isfinite(p.value) && p.value >= 0, "value finite and >= 0");
  Check(p.has_value || p.value == 0, "value 0 when absent");
  const int want = p.type_name == "conversion" ? static_cast<int>(BeaconType::kConversion)
                   : p.type_name == "pageview" ? static_cast<int>(BeaconType::kPageview)
                                               : static_cast<int>(BeaconType::kInteraction);
  Check(p.type == want, "the type's enum matches its name");
  Check(p.experiments.size() <= kMaxExperiments, "at most 32 experiments");
  std::set<std::string> names;
  for (const auto& [e, v] : p.experiments) {
    Check(!e.empty() && e.size() <= kMaxExperimentNameBytes, "experiment name within limits");
    Check(!v.empty() && v.size() <= kMaxVariantBytes, "variant within limits");
    Check(names.insert(e).second, "experiment names distinct");
  }
  for (const std::string* t : {&p.page, &p.device, &p.referrer}) {
    Check(t->size() <= kMaxTextBytes, "text field within its limit");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static duet::beacon::Parser parser;
  std::string_view line(reinterpret_cast<const char*>(data), size);
  if (const size_t nl = line.find('\n'); nl != std::string_view::npos) line = line.substr(0, nl);
  // The unpadded path: exactly the line's bytes are readable (ASan catches any read past them).
  const std::vector<char> exact(line.begin(), line.end());
  const Parsed a = Run(&parser, std::string_view(exact.data(), exact.size()), false);
  // The padded path: 64 readable bytes after the line, filled with bytes that would change the
  // answer if they were taken for part of it.
  std::string padded(line);
  padded.append(64, '}');
  const Parsed b = Run(&parser, std::string_view(padded.data(), line.size()), true);
  Check(a == b, "the padded and unpadded paths agree");
  const Parsed again = Run(&parser, std::string_view(exact.data(), exact.size()), false);
  Check(a == again, "parsing the same line twice gives the same answer");
  if (a.valid) {
    CheckValid(a);
  } else {
    Check(a.reason < BadReason::kCount, "a bad line has a reason");
    const std::string_view name = duet::beacon::ReasonName(a.reason);
    BadReason back = BadReason::kCount;
    Check(!name.empty() && duet::beacon::ReasonFromName(name, &back) && back == a.reason,
          "the reason's stable name maps back to it");
  }
  return 0;
}
