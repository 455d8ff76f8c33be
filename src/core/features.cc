#include "core/features.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace duet::core {

const std::array<std::string_view, kBaseFeatures> kBaseFeatureNames = {
    "beacons",
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
    "device_desktop",
    "device_mobile",
    "device_tablet",
    "referrer_search",
    "referrer_social",
    "referrer_email",
    "referrer_other",
    "previous_sessions",
    "previous_conversions",
    "hours_since_previous_session"};

namespace {

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (Lower(s[i]) != lower[i]) return false;
  }
  return true;
}

// host equals `domain` or ends with "." + domain.
bool InDomain(std::string_view host, std::string_view domain) {
  if (host == domain) return true;
  return host.size() > domain.size() && host.ends_with(domain) &&
         host[host.size() - domain.size() - 1] == '.';
}

constexpr std::array<std::string_view, 7> kSearchDomains = {
    "google.com", "bing.com",  "duckduckgo.com", "yahoo.com",
    "yandex.ru",  "baidu.com", "ecosia.org"};
constexpr std::array<std::string_view, 10> kSocialDomains = {
    "facebook.com", "t.co",       "twitter.com",   "x.com",       "instagram.com",
    "linkedin.com", "reddit.com", "pinterest.com", "youtube.com", "tiktok.com"};

}  // namespace

InteractionKind ClassifyType(beacon::BeaconType type, std::string_view name) {
  switch (type) {
    case beacon::BeaconType::kPageview:
      return InteractionKind::kPageview;
    case beacon::BeaconType::kConversion:
      return InteractionKind::kOther;
    case beacon::BeaconType::kInteraction:
      break;
  }
  if (name == "click") return InteractionKind::kClick;
  if (name == "scroll") return InteractionKind::kScroll;
  if (name == "search") return InteractionKind::kSearch;
  if (name == "add_to_cart") return InteractionKind::kAddToCart;
  if (name == "video_play") return InteractionKind::kVideoPlay;
  if (name == "form_submit") return InteractionKind::kFormSubmit;
  return InteractionKind::kOther;
}

DeviceClass ClassifyDevice(std::string_view d) {
  while (!d.empty() && d.front() == ' ') d.remove_prefix(1);
  while (!d.empty() && d.back() == ' ') d.remove_suffix(1);
  if (EqualsLower(d, "desktop")) return DeviceClass::kDesktop;
  if (EqualsLower(d, "mobile")) return DeviceClass::kMobile;
  if (EqualsLower(d, "tablet")) return DeviceClass::kTablet;
  return DeviceClass::kUnknown;
}

ReferrerClass ClassifyReferrer(std::string_view r) {
  if (r.empty()) return ReferrerClass::kNone;
  std::string_view rest = r;
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  const size_t end = rest.find_first_of("/?#:");
  rest = rest.substr(0, end);
  // The host, lower-cased: in a stack buffer, or (rarely) on the heap when longer.
  char buf[256];
  std::string long_host;
  char* lowered = buf;
  if (rest.size() > sizeof(buf)) {
    long_host.resize(rest.size());
    lowered = long_host.data();
  }
  for (size_t i = 0; i < rest.size(); ++i) lowered[i] = Lower(rest[i]);
  std::string_view host(lowered, rest.size());
  if (host.starts_with("www.")) {
    host.remove_prefix(4);
  } else if (host.starts_with("m.")) {
    host.remove_prefix(2);
  }
  for (const std::string_view d : kSearchDomains) {
    if (InDomain(host, d)) return ReferrerClass::kSearch;
  }
  if (host.starts_with("google.")) return ReferrerClass::kSearch;
  for (const std::string_view d : kSocialDomains) {
    if (InDomain(host, d)) return ReferrerClass::kSocial;
  }
  if (host.starts_with("mail.") || host.starts_with("newsletter.") ||
      host.find("newsletter") != std::string_view::npos ||
      r.find("utm_medium=email") != std::string_view::npos) {
    return ReferrerClass::kEmail;
  }
  return ReferrerClass::kOther;
}

uint8_t BeaconContext(const beacon::Beacon& b) {
  return PackContext(ClassifyType(b.type, b.type_name), ClassifyDevice(b.device),
                     ClassifyReferrer(b.referrer));
}

void SessionFeatures(std::span<const Event> prefix, const SessionHistory& h, float* out) {
  constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();
  std::array<uint32_t, 8> kinds{};
  for (const Event& e : prefix) ++kinds[static_cast<size_t>(ContextKind(e.context))];
  const Event& first = prefix.front();
  const int64_t start = first.ts;
  out[0] = static_cast<float>(prefix.size());
  for (size_t k = 0; k < 8; ++k) out[1 + k] = static_cast<float>(kinds[k]);
  out[9] = static_cast<float>(static_cast<double>(prefix.back().ts - start) / 1000.0);
  constexpr int64_t kHour = 3600 * 1000, kDay = 24 * kHour;
  const int64_t day = start >= 0 ? start / kDay : (start - kDay + 1) / kDay;
  out[10] = static_cast<float>((start - day * kDay) / kHour);
  out[11] = static_cast<float>(((day % 7) + 7 + 3) % 7);  // 1970-01-01 was a Thursday (3)
  const DeviceClass d = ContextDevice(first.context);
  out[12] = d == DeviceClass::kDesktop ? 1.0F : 0.0F;
  out[13] = d == DeviceClass::kMobile ? 1.0F : 0.0F;
  out[14] = d == DeviceClass::kTablet ? 1.0F : 0.0F;
  const ReferrerClass r = ContextReferrer(first.context);
  out[15] = r == ReferrerClass::kSearch ? 1.0F : 0.0F;
  out[16] = r == ReferrerClass::kSocial ? 1.0F : 0.0F;
  out[17] = r == ReferrerClass::kEmail ? 1.0F : 0.0F;
  out[18] = r == ReferrerClass::kOther ? 1.0F : 0.0F;
  out[19] = static_cast<float>(h.sessions);
  out[20] = static_cast<float>(h.converted_sessions);
  out[21] = h.last_end_ts == INT64_MIN
                ? kMissing
                : static_cast<float>(static_cast<double>(start - h.last_end_ts) / kHour);
}

void VisitorExamples(std::span<const Event> events, int64_t gap_ms,
                     std::vector<SessionBounds>* bounds, std::vector<Example>* out) {
  Sessionize(events, gap_ms, bounds);
  SessionHistory history;
  for (const SessionBounds& b : *bounds) {
    const std::span<const Event> session = events.subspan(b.begin, b.end - b.begin);
    size_t before_conversion = session.size();
    for (size_t i = 0; i < session.size(); ++i) {
      if (session[i].type == beacon::BeaconType::kConversion) {
        before_conversion = i;
        break;
      }
    }
    const bool converted = before_conversion < session.size();
    const size_t last = std::min<size_t>(before_conversion, kMaxCheckpoint);
    for (uint32_t k = 1; k <= last; ++k) {
      Example& ex = out->emplace_back();
      ex.session_start_ts = session.front().ts;
      ex.beacons = k;
      ex.tags = session.front().tags;
      ex.converted = converted;
      SessionFeatures(session.first(k), history, ex.features.data());
    }
    history.Add(session.back().ts, converted);
  }
}

}  // namespace duet::core
