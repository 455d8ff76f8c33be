#include "model/encoder.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace duet::model {
namespace {

namespace dom = simdjson::dom;
using core::kBaseFeatures;

constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();

// Column indexes of the base features (core::kBaseFeatureNames).
enum Col : size_t {
  kBeacons = 0,
  kSecondsSinceStart = 9,
  kHourOfDay = 10,
  kDayOfWeek = 11,
  kDeviceDesktop = 12,
  kReferrerSearch = 15,
  kPreviousSessions = 19,
  kPreviousConversions = 20,
  kHoursSincePrevious = 21,
};

std::string Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "'";
  out += s.substr(0, kMax);
  if (s.size() > kMax) out += "…";
  out += "'";
  return out;
}

std::string Describe(dom::element el) {
  switch (el.type()) {
    case dom::element_type::STRING: {
      std::string_view s;
      if (el.get_string().get(s) != simdjson::SUCCESS) return "a string";
      return "the string " + Quote(s);
    }
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: {
      std::string s = simdjson::minify(el);
      return s;
    }
    case dom::element_type::BOOL:
      return el.get_bool().value_unsafe() ? "true" : "false";
    case dom::element_type::ARRAY:
      return "an array";
    case dom::element_type::OBJECT:
      return "an object";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

Status Bad(std::string_view field, dom::element el, std::string_view expected) {
  return Status::InvalidArgument(std::string(field) + ": " + Describe(el) + " is not accepted; " +
                                 std::string(expected));
}

// A non-negative integer no greater than `max`.
Status Count(std::string_view field, dom::element el, int64_t min, int64_t max, float* out) {
  int64_t v = 0;
  uint64_t u = 0;
  if (el.get_int64().get(v) != simdjson::SUCCESS) {
    if (el.get_uint64().get(u) == simdjson::SUCCESS) {
      v = INT64_MAX;
    } else {
      return Bad(field, el,
                 "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
  }
  if (v < min || v > max) {
    return Status::InvalidArgument(std::string(field) + ": " + simdjson::minify(el) +
                                   " is out of range; expected an integer from " +
                                   std::to_string(min) + " to " + std::to_string(max));
  }
  *out = static_cast<float>(v);
  return Status::Ok();
}

// A finite number >= 0 (parsed as double, then rounded to float as training does).
Status NonNegative(std::string_view field, dom::element el, float* out) {
  double d = 0;
  if (el.get_double().get(d) != simdjson::SUCCESS) {
    return Bad(field, el, "expected a number >= 0");
  }
  if (!(d >= 0) || d > 1e12) {
    return Status::InvalidArgument(std::string(field) + ": " + simdjson::minify(el) +
                                   " is out of range; expected a number from 0 to 1e12");
  }
  *out = static_cast<float>(d);
  return Status::Ok();
}

constexpr int64_t kMaxCount = 1'000'000'000;

}  // namespace

const std::array<std::string_view, 18> kFeatureObjectFields = {"beacons",
                                                               "pageviews",
                                                               "clicks",
                                                               "scrolls",
                                                               "searches",
                                                               "add_to_carts",
                                                               "video_plays",
                                                               "form_submits",
                                                               "other_interactions",
                                                               "seconds_since_start",
                                                               "hour_of_day",
                                                               "day_of_week",
                                                               "device",
                                                               "referrer",
                                                               "previous_sessions",
                                                               "previous_conversions",
                                                               "hours_since_previous_session",
                                                               "experiments"};

Result<FeatureEncoder> FeatureEncoder::Create(std::vector<std::string> columns) {
  if (columns.size() < kBaseFeatures) {
    return Status::InvalidArgument("feature columns: " + std::to_string(columns.size()) +
                                   " columns; expected at least the " +
                                   std::to_string(kBaseFeatures) + " base features");
  }
  FeatureEncoder e;
  for (size_t i = 0; i < columns.size(); ++i) {
    const std::string& c = columns[i];
    if (i < kBaseFeatures) {
      if (c != core::kBaseFeatureNames[i]) {
        return Status::InvalidArgument("feature column " + std::to_string(i) + ": '" + c +
                                       "'; expected '" + std::string(core::kBaseFeatureNames[i]) +
                                       "'");
      }
      continue;
    }
    const std::string_view v(c);
    const size_t eq = v.find('=');
    if (!v.starts_with(core::kVariantColumnPrefix) || eq == std::string_view::npos ||
        eq == core::kVariantColumnPrefix.size() || eq + 1 == v.size()) {
      return Status::InvalidArgument("feature column " + std::to_string(i) + ": '" + c +
                                     "'; expected 'experiment:NAME=VARIANT'");
    }
    e.variants_.push_back({std::string(v.substr(core::kVariantColumnPrefix.size(),
                                                eq - core::kVariantColumnPrefix.size())),
                           std::string(v.substr(eq + 1)), i});
  }
  std::sort(e.variants_.begin(), e.variants_.end(), [](const auto& a, const auto& b) {
    return std::tie(a.experiment, a.variant) < std::tie(b.experiment, b.variant);
  });
  for (size_t i = 1; i < e.variants_.size(); ++i) {
    if (e.variants_[i].experiment == e.variants_[i - 1].experiment &&
        e.variants_[i].variant == e.variants_[i - 1].variant) {
      return Status::InvalidArgument("feature columns: '" + columns[e.variants_[i].column] +
                                     "' appears twice");
    }
  }
  e.columns_ = std::move(columns);
  return e;
}

FeatureEncoder FeatureEncoder::ForVariants(std::vector<VariantPair> variants) {
  std::sort(variants.begin(), variants.end());
  variants.erase(std::unique(variants.begin(), variants.end()), variants.end());
  std::vector<std::string> columns(core::kBaseFeatureNames.begin(), core::kBaseFeatureNames.end());
  for (const auto& [x, v] : variants) {
    columns.push_back(std::string(core::kVariantColumnPrefix) + x + "=" + v);
  }
  // Names with '=' in the experiment are ambiguous in a column name: Create splits at the first
  // '=', so such a pair is found by VariantColumn through the split Create makes.
  auto e = Create(std::move(columns));
  return std::move(*e);
}

int FeatureEncoder::VariantColumn(std::string_view experiment, std::string_view variant) const {
  const auto it = std::lower_bound(
      variants_.begin(), variants_.end(), std::pair(experiment, variant),
      [](const VariantColumnEntry& a, const std::pair<std::string_view, std::string_view>& b) {
        return std::pair<std::string_view, std::string_view>(a.experiment, a.variant) < b;
      });
  if (it == variants_.end() || it->experiment != experiment || it->variant != variant) return -1;
  return static_cast<int>(it->column);
}

void FeatureEncoder::EncodeExample(std::span<const float, kBaseFeatures> base,
                                   std::span<const VariantPair> variants, float* row) const {
  std::copy(base.begin(), base.end(), row);
  std::fill(row + kBaseFeatures, row + columns_.size(), 0.0F);
  for (const auto& [x, v] : variants) {
    if (const int c = VariantColumn(x, v); c >= 0) row[c] = 1.0F;
  }
}

Status FeatureEncoder::EncodeJson(dom::element el, float* row) const {
  dom::object obj;
  if (el.get_object().get(obj) != simdjson::SUCCESS) {
    return Status::InvalidArgument("the feature object is " + Describe(el) +
                                   "; expected a JSON object (docs/model.md)");
  }
  // Absent counts are 0, absent device and referrer unknown — as in training, where only
  // hours_since_previous_session is ever missing (no earlier session).
  std::fill(row, row + columns_.size(), 0.0F);
  row[kHoursSincePrevious] = kMissing;
  uint32_t seen = 0;
  for (const dom::key_value_pair kv : obj) {
    const std::string_view key = kv.key;
    const auto it = std::find(kFeatureObjectFields.begin(), kFeatureObjectFields.end(), key);
    if (it == kFeatureObjectFields.end()) {
      std::string names;
      for (const std::string_view f : kFeatureObjectFields) {
        names += names.empty() ? "" : ", ";
        names += f;
      }
      return Status::InvalidArgument("unknown field " + Quote(key) + "; expected one of: " + names);
    }
    const size_t f = static_cast<size_t>(it - kFeatureObjectFields.begin());
    if ((seen >> f & 1U) != 0) {
      return Status::InvalidArgument(std::string(key) + ": appears twice in one object");
    }
    seen |= 1U << f;
    const dom::element v = kv.value;
    if (v.is_null()) {  // null: absent
      seen &= ~(1U << f);
      continue;
    }
    if (key == "device") {
      std::string_view s;
      if (v.get_string().get(s) != simdjson::SUCCESS) return Bad(key, v, "expected a string");
      const core::DeviceClass d = core::ClassifyDevice(s);
      if (d != core::DeviceClass::kUnknown) {
        row[kDeviceDesktop + static_cast<size_t>(d) - 1] = 1.0F;
      }
    } else if (key == "referrer") {
      std::string_view s;
      if (v.get_string().get(s) != simdjson::SUCCESS) return Bad(key, v, "expected a string");
      const core::ReferrerClass r = core::ClassifyReferrer(s);
      if (r != core::ReferrerClass::kNone) {
        row[kReferrerSearch + static_cast<size_t>(r) - 1] = 1.0F;
      }
    } else if (key == "experiments") {
      dom::object xs;
      if (v.get_object().get(xs) != simdjson::SUCCESS) {
        return Bad(key, v, "expected an object of experiment name to variant name");
      }
      for (const dom::key_value_pair x : xs) {
        std::string_view variant;
        if (x.value.get_string().get(variant) != simdjson::SUCCESS) {
          return Bad("experiments." + std::string(x.key), x.value, "expected a variant name");
        }
        if (const int c = VariantColumn(x.key, variant); c >= 0) row[c] = 1.0F;
      }
    } else if (key == "seconds_since_start") {
      DUET_RETURN_IF_ERROR(NonNegative(key, v, &row[kSecondsSinceStart]));
    } else if (key == "hours_since_previous_session") {
      DUET_RETURN_IF_ERROR(NonNegative(key, v, &row[kHoursSincePrevious]));
    } else if (key == "hour_of_day") {
      DUET_RETURN_IF_ERROR(Count(key, v, 0, 23, &row[kHourOfDay]));
    } else if (key == "day_of_week") {
      DUET_RETURN_IF_ERROR(Count(key, v, 0, 6, &row[kDayOfWeek]));
    } else if (key == "previous_sessions") {
      DUET_RETURN_IF_ERROR(Count(key, v, 0, kMaxCount, &row[kPreviousSessions]));
    } else if (key == "previous_conversions") {
      DUET_RETURN_IF_ERROR(Count(key, v, 0, kMaxCount, &row[kPreviousConversions]));
    } else {
      // The counts: beacons (at least 1) and the eight kinds, in column order 0..8.
      DUET_RETURN_IF_ERROR(Count(key, v, f == 0 ? 1 : 0, kMaxCount, &row[f]));
    }
  }
  for (const size_t required : {size_t{0}, size_t{kHourOfDay}, size_t{kDayOfWeek}}) {
    if ((seen >> required & 1U) == 0) {
      return Status::InvalidArgument(std::string(kFeatureObjectFields[required]) +
                                     ": missing; it is required (with beacons, hour_of_day and "
                                     "day_of_week; other fields default to 0 or unknown)");
    }
  }
  return Status::Ok();
}

}  // namespace duet::model
