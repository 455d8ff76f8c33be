// The traffic model's fixed parts: experiment designs, catalogs, and the compact record of one
// pending line. Internal to src/gen; the numbers are explained in src/gen/README.md.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "gen/generator.h"

namespace duet::gen::internal {

inline constexpr int64_t kMsPerSecond = 1000;
inline constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
inline constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
inline constexpr int kMaxHours = 24 * 366;

// ---- Experiments --------------------------------------------------------------------------------

inline constexpr size_t kExperimentCount = 3;
inline constexpr size_t kMaxVariants = 3;
inline constexpr uint8_t kNotInExperiment = 0xff;
inline constexpr uint32_t kBasisPoints = 10000;

struct ExperimentDesign {
  std::string_view name;
  size_t variant_count;
  std::array<std::string_view, kMaxVariants> variants;
  std::array<uint32_t, kMaxVariants> weights_bp;  // sum to kBasisPoints
  uint32_t coverage_bp;                           // share of visitors enrolled
  // The experiment runs from start_ms + round(hours * start_fraction) hours; sessions starting
  // earlier do not carry it.
  double start_fraction;
  std::string_view effect;  // the true effect, for the manifest
};

inline constexpr double kCheckoutTreatmentConversionLift = 1.15;
inline constexpr double kPricingV2RevenueFactor = 1.10;

inline constexpr std::array<ExperimentDesign, kExperimentCount> kExperiments = {{
    {"checkout_button",
     2,
     {"control", "treatment"},
     {5000, 5000, 0},
     kBasisPoints,
     0.0,
     "treatment multiplies the conversion probability of a visit by 1.15"},
    {"pricing_page",
     3,
     {"control", "v1", "v2"},
     {3334, 3333, 3333},
     8000,
     0.0,
     "v2 multiplies order values by 1.10; v1 has no effect"},
    {"search_ranking", 2, {"control", "treatment"}, {5000, 5000, 0}, 3000, 0.4, "none (A/A)"},
}};
inline constexpr size_t kCheckoutButton = 0;
inline constexpr size_t kPricingPage = 1;
inline constexpr size_t kSearchRanking = 2;

// Share of visitors switched to another variant of one experiment from a visitor-specific moment
// on; about half of them have visits on both sides of it, so ~0.5 % of visitors end up in two.
inline constexpr uint32_t kContaminatedVisitorsBp = 100;

// ---- Catalogs -----------------------------------------------------------------------------------

enum class EventType : uint8_t {
  kPageview,
  kClick,
  kScroll,
  kSearch,
  kAddToCart,
  kVideoPlay,
  kFormSubmit,
  kConversion
};
inline constexpr std::array<std::string_view, 8> kEventTypeNames = {
    "pageview",    "click",      "scroll",      "search",
    "add_to_cart", "video_play", "form_submit", "conversion"};

enum class PageKind : uint8_t {
  kHome,
  kCategory,
  kProduct,
  kSearch,
  kCart,
  kCheckout,
  kConfirmation,
  kPricing,
  kAccount,
  kHelp
};

inline constexpr std::array<std::string_view, 10> kCategories = {
    "shoes",   "jackets", "bags", "watches", "outdoor",
    "kitchen", "garden",  "toys", "books",   "beauty"};
// Already JSON-escaped; two carry non-ASCII text, raw and as a \u escape.
inline constexpr std::array<std::string_view, 12> kSearchQueries = {
    "running+shoes",       "rain+jacket",  "gift+ideas",  "caf\xc3\xa9+table",
    "wireless+headphones", "winter+boots", "yoga+mat",    "na\\u00efve+art+print",
    "espresso+machine",    "backpack",     "smart+watch", "linen+shirt"};
inline constexpr std::array<std::string_view, 6> kHelpTopics = {"shipping", "returns", "payment",
                                                                "sizes",    "contact", "warranty"};
inline constexpr uint32_t kProductCount = 5000;

enum class Device : uint8_t { kDesktop, kMobile, kTablet };
inline constexpr std::array<std::string_view, 3> kDeviceNames = {"desktop", "mobile", "tablet"};

inline constexpr size_t kReferrerAbsent = 0;
inline constexpr size_t kReferrerEmpty = 1;
inline constexpr std::array<std::string_view, 9> kReferrers = {
    "",  // absent: the field is not written
    "",  // written as ""
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.facebook.com/",
    "https://t.co/",
    "https://newsletter.example.com/2026-11",
    "https://partner-blog.example.org/reviews",
    "https://duckduckgo.com/"};
inline constexpr std::array<uint32_t, 9> kReferrerWeights = {19, 19, 28, 4, 8, 3, 7, 5, 7};
inline constexpr std::array<double, 9> kReferrerConversionFactor = {1.0, 1.0, 1.1, 1.0, 0.7,
                                                                    0.7, 1.5, 1.2, 1.0};
inline constexpr std::array<double, 3> kDeviceConversionFactor = {1.25, 0.75, 1.0};

// Weights of the bad kinds, in BadKind order (per mille of bad rows, roughly).
inline constexpr std::array<uint32_t, kBadKindCount> kBadKindWeights = {
    90,   // not_json
    100,  // truncated_json
    60,   // empty_line
    40,   // json_array
    60,   // missing_id
    40,   // id_duplicate_key
    60,   // missing_visitor
    30,   // visitor_not_string
    50,   // missing_ts
    70,   // ts_string
    50,   // ts_fraction
    50,   // ts_seconds
    40,   // missing_type
    20,   // type_empty
    50,   // invalid_utf8
    40,   // page_too_long
    40,   // experiments_not_object
    20,   // too_many_experiments
    30,   // variant_not_string
    30,   // value_negative
    20,   // value_boolean
    2,    // huge_line
};

// ---- Pending lines ------------------------------------------------------------------------------

// Everything needed to render one line; rendering is a pure function of this record and the
// seed, so a re-send renders byte-identically to its original.
struct Pending {
  int64_t arrival_ms;
  int64_t ts;
  uint64_t id;  // event counter; rendered through a keyed bijection
  uint32_t visitor;
  uint32_t value_cents;
  uint32_t page_arg;
  EventType type;
  PageKind page;
  Device device;
  uint8_t referrer;
  std::array<uint8_t, kExperimentCount> variants;
  uint8_t flags;
  BadKind bad_kind;  // kCount when the line is valid
};

inline constexpr uint8_t kFlagLate = 1;
inline constexpr uint8_t kFlagResend = 2;
inline constexpr uint8_t kFlagAltered = 4;
inline constexpr uint8_t kFlagNoExperiments = 8;
inline constexpr uint8_t kFlagApp = 16;
inline constexpr uint8_t kFlagCrlf = 32;
inline constexpr uint8_t kFlagValueMissing = 64;

}  // namespace duet::gen::internal
