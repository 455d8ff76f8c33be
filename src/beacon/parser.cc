#include "beacon/parser.h"

#include <simdjson.h>

#include <cstring>

namespace duet::beacon {
namespace {

namespace dom = simdjson::dom;

// The known top-level fields, in the order their checks run.
enum Field : uint8_t {
  kId,
  kVisitor,
  kTs,
  kType,
  kExperiments,
  kValue,
  kPage,
  kDevice,
  kReferrer,
  kFieldCount
};

struct Found {
  std::array<dom::element, kFieldCount> el;
  std::array<uint8_t, kFieldCount> count{};
};

// Maps a key to a known field; kFieldCount for unknown keys.
Field Classify(std::string_view k) {
  switch (k.size()) {
    case 2:
      if (k == "id") return kId;
      if (k == "ts") return kTs;
      return kFieldCount;
    case 4:
      if (k == "type") return kType;
      if (k == "page") return kPage;
      return kFieldCount;
    case 5:
      return k == "value" ? kValue : kFieldCount;
    case 6:
      return k == "device" ? kDevice : kFieldCount;
    case 7:
      return k == "visitor" ? kVisitor : kFieldCount;
    case 8:
      return k == "referrer" ? kReferrer : kFieldCount;
    case 11:
      return k == "experiments" ? kExperiments : kFieldCount;
    default:
      return kFieldCount;
  }
}

bool IsJsonWhitespaceOnly(std::string_view s) {
  for (const char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

struct StringRule {
  BadReason missing, not_string, empty, too_long, duplicate;
  size_t max;
  bool required;
};

// Checks a string field. Returns false with *reason set when the rule is broken.
bool CheckString(const Found& f, Field field, const StringRule& rule, std::string_view* out,
                 BadReason* reason) {
  if (f.count[field] > 1) {
    *reason = rule.duplicate;
    return false;
  }
  if (f.count[field] == 0) {
    if (rule.required) {
      *reason = rule.missing;
      return false;
    }
    *out = {};
    return true;
  }
  std::string_view s;
  if (f.el[field].get_string().get(s) != simdjson::SUCCESS) {
    *reason = rule.not_string;
    return false;
  }
  if (rule.required && s.empty()) {
    *reason = rule.empty;
    return false;
  }
  if (s.size() > rule.max) {
    *reason = rule.too_long;
    return false;
  }
  *out = s;
  return true;
}

constexpr StringRule kIdRule{BadReason::kIdMissing,
                             BadReason::kIdNotString,
                             BadReason::kIdEmpty,
                             BadReason::kIdTooLong,
                             BadReason::kIdDuplicateKey,
                             kMaxIdBytes,
                             true};
constexpr StringRule kVisitorRule{BadReason::kVisitorMissing,
                                  BadReason::kVisitorNotString,
                                  BadReason::kVisitorEmpty,
                                  BadReason::kVisitorTooLong,
                                  BadReason::kVisitorDuplicateKey,
                                  kMaxVisitorBytes,
                                  true};
constexpr StringRule kTypeRule{BadReason::kTypeMissing,
                               BadReason::kTypeNotString,
                               BadReason::kTypeEmpty,
                               BadReason::kTypeTooLong,
                               BadReason::kTypeDuplicateKey,
                               kMaxTypeBytes,
                               true};
constexpr StringRule kPageRule{BadReason::kCount,
                               BadReason::kPageNotString,
                               BadReason::kCount,
                               BadReason::kPageTooLong,
                               BadReason::kPageDuplicateKey,
                               kMaxTextBytes,
                               false};
constexpr StringRule kDeviceRule{BadReason::kCount,
                                 BadReason::kDeviceNotString,
                                 BadReason::kCount,
                                 BadReason::kDeviceTooLong,
                                 BadReason::kDeviceDuplicateKey,
                                 kMaxTextBytes,
                                 false};
constexpr StringRule kReferrerRule{BadReason::kCount,
                                   BadReason::kReferrerNotString,
                                   BadReason::kCount,
                                   BadReason::kReferrerTooLong,
                                   BadReason::kReferrerDuplicateKey,
                                   kMaxTextBytes,
                                   false};

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

}  // namespace

Parser::Parser() : json_(std::make_unique<dom::parser>()) {
  // One allocation up front for the largest acceptable line; parsing then never allocates.
  // Depth: any nesting that fits in a 64 KiB line is valid JSON (simdjson defaults to 1024).
  [[maybe_unused]] const auto err = json_->allocate(kMaxLineBytes + 1, kMaxLineBytes / 2 + 2);
}

Parser::~Parser() = default;

bool Parser::Parse(std::string_view line, bool padded, Beacon* out, BadReason* reason) {
  if (line.size() > kMaxLineBytes) {
    *reason = BadReason::kLineTooLong;
    return false;
  }
  if (IsJsonWhitespaceOnly(line)) {
    *reason = BadReason::kLineEmpty;
    return false;
  }
  // simdjson skips a byte-order mark; contract v1 does not allow one.
  if (line.substr(0, 3) == kUtf8Bom) {
    *reason = simdjson::validate_utf8(line.data(), line.size()) ? BadReason::kJsonSyntax
                                                                : BadReason::kUtf8Invalid;
    return false;
  }
  // simdjson's DOM parse validates UTF-8 as part of stage 1, so a line that parses is valid
  // UTF-8; only a failed parse needs the separate check to report utf8.invalid before json.syntax
  // as the contract orders them.
  const char* data = line.data();
  if (!padded) {
    copy_.assign(line);
    copy_.append(simdjson::SIMDJSON_PADDING, '\0');
    data = copy_.data();
  }
  dom::element root;
  if (json_->parse(data, line.size(), false).get(root) != simdjson::SUCCESS) {
    *reason = simdjson::validate_utf8(line.data(), line.size()) ? BadReason::kJsonSyntax
                                                                : BadReason::kUtf8Invalid;
    return false;
  }
  dom::object obj;
  if (root.get_object().get(obj) != simdjson::SUCCESS) {
    *reason = BadReason::kJsonNotObject;
    return false;
  }
  Found f;
  for (const dom::key_value_pair kv : obj) {
    const Field field = Classify(kv.key);
    if (field == kFieldCount) continue;
    if (f.count[field] < 2) ++f.count[field];
    if (f.count[field] == 1) f.el[field] = kv.value;
  }

  if (!CheckString(f, kId, kIdRule, &out->id, reason)) return false;
  if (!CheckString(f, kVisitor, kVisitorRule, &out->visitor, reason)) return false;

  // ts: a JSON integer literal in range.
  if (f.count[kTs] > 1) {
    *reason = BadReason::kTsDuplicateKey;
    return false;
  }
  if (f.count[kTs] == 0) {
    *reason = BadReason::kTsMissing;
    return false;
  }
  {
    const dom::element_type t = f.el[kTs].type();
    int64_t ts = 0;
    if (t == dom::element_type::INT64) {
      ts = f.el[kTs].get_int64().value_unsafe();
    } else if (t == dom::element_type::UINT64) {
      *reason = BadReason::kTsOutOfRange;  // above INT64_MAX, so above kMaxTsMs
      return false;
    } else {
      *reason = BadReason::kTsNotInteger;
      return false;
    }
    if (ts < kMinTsMs || ts > kMaxTsMs) {
      *reason = BadReason::kTsOutOfRange;
      return false;
    }
    out->ts = EventTimeMs(ts);
  }

  if (!CheckString(f, kType, kTypeRule, &out->type_name, reason)) return false;
  if (out->type_name == "pageview") {
    out->type = BeaconType::kPageview;
  } else if (out->type_name == "conversion") {
    out->type = BeaconType::kConversion;
  } else {
    out->type = BeaconType::kInteraction;
  }

  // experiments: object of name -> variant.
  size_t n_tags = 0;
  if (f.count[kExperiments] > 1) {
    *reason = BadReason::kExperimentsDuplicateKey;
    return false;
  }
  if (f.count[kExperiments] == 1) {
    dom::object exps;
    if (f.el[kExperiments].get_object().get(exps) != simdjson::SUCCESS) {
      *reason = BadReason::kExperimentsNotObject;
      return false;
    }
    if (exps.size() > kMaxExperiments) {
      *reason = BadReason::kExperimentsTooMany;
      return false;
    }
    for (const dom::key_value_pair kv : exps) {
      if (kv.key.empty()) {
        *reason = BadReason::kExperimentsNameEmpty;
        return false;
      }
      if (kv.key.size() > kMaxExperimentNameBytes) {
        *reason = BadReason::kExperimentsNameTooLong;
        return false;
      }
      for (size_t i = 0; i < n_tags; ++i) {
        if (tags_[i].experiment == kv.key) {
          *reason = BadReason::kExperimentsNameDuplicate;
          return false;
        }
      }
      std::string_view variant;
      if (kv.value.get_string().get(variant) != simdjson::SUCCESS) {
        *reason = BadReason::kExperimentsVariantNotString;
        return false;
      }
      if (variant.empty()) {
        *reason = BadReason::kExperimentsVariantEmpty;
        return false;
      }
      if (variant.size() > kMaxVariantBytes) {
        *reason = BadReason::kExperimentsVariantTooLong;
        return false;
      }
      tags_[n_tags++] = ExperimentTag{kv.key, variant};
    }
  }
  out->experiments = std::span<const ExperimentTag>(tags_.data(), n_tags);

  // value: finite number >= 0 (JSON cannot spell NaN or infinity; overflowing literals are
  // already json.syntax).
  out->value = 0.0;
  out->has_value = false;
  if (f.count[kValue] > 1) {
    *reason = BadReason::kValueDuplicateKey;
    return false;
  }
  if (f.count[kValue] == 1) {
    const dom::element& v = f.el[kValue];
    double d;
    switch (v.type()) {
      case dom::element_type::INT64:
        d = static_cast<double>(v.get_int64().value_unsafe());
        break;
      case dom::element_type::UINT64:
        d = static_cast<double>(v.get_uint64().value_unsafe());
        break;
      case dom::element_type::DOUBLE:
        d = v.get_double().value_unsafe();
        break;
      default:
        *reason = BadReason::kValueNotNumber;
        return false;
    }
    if (d < 0) {
      *reason = BadReason::kValueNegative;
      return false;
    }
    out->value = d + 0.0;  // turns -0.0 into +0.0
    out->has_value = true;
  }

  if (!CheckString(f, kPage, kPageRule, &out->page, reason)) return false;
  if (!CheckString(f, kDevice, kDeviceRule, &out->device, reason)) return false;
  if (!CheckString(f, kReferrer, kReferrerRule, &out->referrer, reason)) return false;
  return true;
}

}  // namespace duet::beacon
