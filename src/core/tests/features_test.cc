#include "core/features.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace duet::core {
namespace {

using beacon::BeaconType;

TEST(Classify, Types) {
  EXPECT_EQ(ClassifyType(BeaconType::kPageview, "pageview"), InteractionKind::kPageview);
  EXPECT_EQ(ClassifyType(BeaconType::kInteraction, "click"), InteractionKind::kClick);
  EXPECT_EQ(ClassifyType(BeaconType::kInteraction, "add_to_cart"), InteractionKind::kAddToCart);
  EXPECT_EQ(ClassifyType(BeaconType::kInteraction, "form_submit"), InteractionKind::kFormSubmit);
  EXPECT_EQ(ClassifyType(BeaconType::kInteraction, "Click"), InteractionKind::kOther);
  EXPECT_EQ(ClassifyType(BeaconType::kInteraction, "hover"), InteractionKind::kOther);
  EXPECT_EQ(ClassifyType(BeaconType::kConversion, "conversion"), InteractionKind::kOther);
}

TEST(Classify, Devices) {
  EXPECT_EQ(ClassifyDevice("desktop"), DeviceClass::kDesktop);
  EXPECT_EQ(ClassifyDevice(" Mobile "), DeviceClass::kMobile);
  EXPECT_EQ(ClassifyDevice("TABLET"), DeviceClass::kTablet);
  EXPECT_EQ(ClassifyDevice(""), DeviceClass::kUnknown);
  EXPECT_EQ(ClassifyDevice("phone"), DeviceClass::kUnknown);
  EXPECT_EQ(ClassifyDevice("mobiles"), DeviceClass::kUnknown);
}

TEST(Classify, Referrers) {
  struct Case {
    std::string url;
    ReferrerClass want;
  };
  const Case cases[] = {
      {"", ReferrerClass::kNone},
      {"https://www.google.com/", ReferrerClass::kSearch},
      {"https://www.google.de/search?q=x", ReferrerClass::kSearch},
      {"http://news.google.com", ReferrerClass::kSearch},
      {"https://www.bing.com/", ReferrerClass::kSearch},
      {"https://duckduckgo.com/", ReferrerClass::kSearch},
      {"HTTPS://WWW.BING.COM:443/x", ReferrerClass::kSearch},
      {"https://notgoogle.com/", ReferrerClass::kOther},
      {"https://www.facebook.com/", ReferrerClass::kSocial},
      {"https://m.facebook.com/story", ReferrerClass::kSocial},
      {"https://t.co/", ReferrerClass::kSocial},
      {"https://tt.co/", ReferrerClass::kOther},
      {"https://newsletter.example.com/2026-11", ReferrerClass::kEmail},
      {"https://mail.example.org/", ReferrerClass::kEmail},
      {"https://shop.example/?utm_medium=email", ReferrerClass::kEmail},
      {"https://partner-blog.example.org/reviews", ReferrerClass::kOther},
      {"android-app://com.google.android.gm", ReferrerClass::kOther},
      {"google.com", ReferrerClass::kSearch},
      {"https://" + std::string(300, 'b') + ".google.com/search", ReferrerClass::kSearch},
      {"https://" + std::string(300, 'b') + ".example.com/", ReferrerClass::kOther},
  };
  for (const Case& c : cases) EXPECT_EQ(ClassifyReferrer(c.url), c.want) << c.url;
}

TEST(Context, PacksEveryCombination) {
  for (int k = 0; k <= static_cast<int>(InteractionKind::kOther); ++k) {
    for (int d = 0; d <= static_cast<int>(DeviceClass::kTablet); ++d) {
      for (int r = 0; r <= static_cast<int>(ReferrerClass::kOther); ++r) {
        const uint8_t c = PackContext(static_cast<InteractionKind>(k), static_cast<DeviceClass>(d),
                                      static_cast<ReferrerClass>(r));
        EXPECT_EQ(ContextKind(c), static_cast<InteractionKind>(k));
        EXPECT_EQ(ContextDevice(c), static_cast<DeviceClass>(d));
        EXPECT_EQ(ContextReferrer(c), static_cast<ReferrerClass>(r));
      }
    }
  }
}

constexpr int64_t kMin = 60 * 1000;
// 2026-11-24T10:00:00Z, a Tuesday.
constexpr int64_t kT0 = 1795514400000;

Event Ev(int64_t ts, BeaconType type, InteractionKind kind, DeviceClass d = DeviceClass::kMobile,
         ReferrerClass r = ReferrerClass::kSearch) {
  Event e;
  e.ts = ts;
  e.id = "";
  e.type = type;
  e.context = PackContext(kind, d, r);
  return e;
}

TEST(SessionFeatures, CountsTimesAndContext) {
  const std::vector<Event> s = {
      Ev(kT0, BeaconType::kPageview, InteractionKind::kPageview),
      Ev(kT0 + 30000, BeaconType::kInteraction, InteractionKind::kClick, DeviceClass::kDesktop),
      Ev(kT0 + 45500, BeaconType::kInteraction, InteractionKind::kAddToCart),
      Ev(kT0 + 60000, BeaconType::kPageview, InteractionKind::kPageview),
  };
  SessionHistory h;
  h.Add(kT0 - 90 * kMin, true);
  h.Add(kT0 - 3 * 60 * kMin, false);  // the latest one added defines last_end_ts
  float f[kBaseFeatures];
  SessionFeatures(s, h, f);
  EXPECT_EQ(f[0], 4);  // beacons
  EXPECT_EQ(f[1], 2);  // pageviews
  EXPECT_EQ(f[2], 1);  // clicks
  EXPECT_EQ(f[3], 0);  // scrolls
  EXPECT_EQ(f[5], 1);  // add_to_carts
  EXPECT_EQ(f[8], 0);  // other
  EXPECT_EQ(f[9], 60.0F);
  EXPECT_EQ(f[10], 10);  // hour of day
  EXPECT_EQ(f[11], 1);   // Tuesday (Monday = 0)
  // The first beacon's device and referrer, not the second's.
  EXPECT_EQ(f[12], 0);
  EXPECT_EQ(f[13], 1);
  EXPECT_EQ(f[14], 0);
  EXPECT_EQ(f[15], 1);
  EXPECT_EQ(f[16] + f[17] + f[18], 0);
  EXPECT_EQ(f[19], 2);
  EXPECT_EQ(f[20], 1);
  EXPECT_EQ(f[21], 3.0F);
  EXPECT_EQ(kBaseFeatureNames[21], "hours_since_previous_session");

  SessionFeatures(std::span<const Event>(s).first(1), SessionHistory{}, f);
  EXPECT_EQ(f[0], 1);
  EXPECT_EQ(f[9], 0);
  EXPECT_EQ(f[19], 0);
  EXPECT_TRUE(std::isnan(f[21]));
}

TEST(SessionFeatures, DayOfWeekBeforeTheEpoch) {
  // 1969-12-29T23:00:00Z was a Monday.
  const std::vector<Event> s = {
      Ev(-3 * 24 * 60 * kMin + 23 * 60 * kMin, BeaconType::kPageview, InteractionKind::kPageview)};
  float f[kBaseFeatures];
  SessionFeatures(s, SessionHistory{}, f);
  EXPECT_EQ(f[10], 23);
  EXPECT_EQ(f[11], 0);
}

TEST(VisitorExamples, CheckpointsStopAtTheFirstConversion) {
  std::vector<Event> ev;
  // Session 1: 6 beacons, no conversion -> checkpoints 1..6, label 0.
  for (int i = 0; i < 6; ++i) {
    ev.push_back(Ev(kT0 + i * kMin, BeaconType::kPageview, InteractionKind::kPageview));
  }
  // Session 2 (2 h later): conversion as the 4th beacon -> checkpoints 1, 2, 3, label 1.
  const int64_t t2 = kT0 + 120 * kMin;
  for (int i = 0; i < 6; ++i) {
    ev.push_back(Ev(t2 + i * kMin, i == 3 ? BeaconType::kConversion : BeaconType::kPageview,
                    i == 3 ? InteractionKind::kOther : InteractionKind::kPageview));
  }
  // Session 3: a conversion first -> no example, but it counts in the history.
  const int64_t t3 = t2 + 120 * kMin;
  ev.push_back(Ev(t3, BeaconType::kConversion, InteractionKind::kOther));
  // Session 4: one beacon.
  const int64_t t4 = t3 + 60 * kMin;
  ev.push_back(Ev(t4, BeaconType::kPageview, InteractionKind::kPageview));

  std::vector<SessionBounds> bounds;
  std::vector<Example> out;
  VisitorExamples(ev, kDefaultSessionGapMs, &bounds, &out);
  ASSERT_EQ(out.size(), 6U + 3U + 1U);
  const uint32_t want_k[] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 1};
  const bool want_label[] = {false, false, false, false, false, false, true, true, true, false};
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].beacons, want_k[i]) << i;
    EXPECT_EQ(out[i].converted, want_label[i]) << i;
    EXPECT_EQ(out[i].features[0], static_cast<float>(want_k[i])) << i;
  }
  EXPECT_EQ(out[6].session_start_ts, t2);
  EXPECT_EQ(out[6].features[19], 1);  // one earlier session
  EXPECT_EQ(out[6].features[20], 0);
  EXPECT_EQ(out[6].features[21], (120.0F - 5.0F) / 60.0F);
  EXPECT_EQ(out[9].features[19], 3);
  EXPECT_EQ(out[9].features[20], 2);  // sessions 2 and 3 converted

  // A long session is observed up to kMaxCheckpoint beacons.
  std::vector<Event> longer;
  for (int i = 0; i < 40; ++i) {
    longer.push_back(Ev(kT0 + i * kMin, BeaconType::kPageview, InteractionKind::kPageview));
  }
  out.clear();
  VisitorExamples(longer, kDefaultSessionGapMs, &bounds, &out);
  ASSERT_EQ(out.size(), kMaxCheckpoint);
  EXPECT_EQ(out.back().features[0], static_cast<float>(kMaxCheckpoint));
}

}  // namespace
}  // namespace duet::core
