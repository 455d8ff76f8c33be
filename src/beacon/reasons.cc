#include <array>
#include <string_view>

#include "beacon/beacon.h"

namespace duet::beacon {
namespace {

constexpr std::array<std::string_view, kReasonCount> kNames = {
    "line.too_long",
    "utf8.invalid",
    "line.empty",
    "json.syntax",
    "json.not_object",
    "id.missing",
    "id.not_string",
    "id.empty",
    "id.too_long",
    "id.duplicate_key",
    "visitor.missing",
    "visitor.not_string",
    "visitor.empty",
    "visitor.too_long",
    "visitor.duplicate_key",
    "ts.missing",
    "ts.not_integer",
    "ts.out_of_range",
    "ts.duplicate_key",
    "type.missing",
    "type.not_string",
    "type.empty",
    "type.too_long",
    "type.duplicate_key",
    "experiments.not_object",
    "experiments.too_many",
    "experiments.name_empty",
    "experiments.name_too_long",
    "experiments.name_duplicate",
    "experiments.variant_not_string",
    "experiments.variant_empty",
    "experiments.variant_too_long",
    "experiments.duplicate_key",
    "value.not_number",
    "value.negative",
    "value.duplicate_key",
    "page.not_string",
    "page.too_long",
    "page.duplicate_key",
    "device.not_string",
    "device.too_long",
    "device.duplicate_key",
    "referrer.not_string",
    "referrer.too_long",
    "referrer.duplicate_key",
};

}  // namespace

std::string_view ReasonName(BadReason r) {
  const auto i = static_cast<size_t>(r);
  return i < kNames.size() ? kNames[i] : std::string_view("unknown");
}

bool ReasonFromName(std::string_view name, BadReason* out) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      *out = static_cast<BadReason>(i);
      return true;
    }
  }
  return false;
}

}  // namespace duet::beacon
