// StreamProbe (speed/stream_probe.h): the speed layer's scheduling, processing and lag metrics
// and the readiness thresholds, with simulated times.
#include "speed/stream_probe.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>
#include <vector>

namespace duet::speed {
namespace {

constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z

std::string Text(prometheus::Registry& r) {
  return prometheus::TextSerializer().Serialize(r.Collect());
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(StreamProbeTest, RoundsGiveDelayProcessingRatioAndMicroBatchCounts) {
  prometheus::Registry registry;
  StreamProbe probe(&registry, 60'000, {});
  probe.Round(kT0, kT0 + 250, kT0 + 15'250, 4, 0);
  std::string t = Text(registry);
  EXPECT_TRUE(Has(t, "duet_stream_interval_seconds 60")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_scheduling_delay_seconds 0.25")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_processing_ratio 0.25")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_processing_seconds_count 1")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_processing_seconds_sum 15")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_processing_seconds_bucket{le=\"30\"} 1")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_processing_seconds_bucket{le=\"10\"} 0")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_micro_batches_total{result=\"committed\"} 4")) << t;

  // A round that took longer than the interval: the next starts late; a start before it was due
  // (a signal cut the sleep) is no delay.
  probe.Round(kT0 + 60'000, kT0 + 150'000, kT0 + 151'000, 3, 1);
  t = Text(registry);
  EXPECT_TRUE(Has(t, "duet_stream_scheduling_delay_seconds 90")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_micro_batches_total{result=\"committed\"} 7")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_micro_batches_total{result=\"failed\"} 1")) << t;
  probe.Round(kT0 + 200'000, kT0 + 199'000, kT0 + 199'500, 0, 0);
  EXPECT_TRUE(Has(Text(registry), "duet_stream_scheduling_delay_seconds 0"));
}

TEST(StreamProbeTest, LagPerPartitionFollowsTheAssignment) {
  prometheus::Registry registry;
  StreamProbe probe(&registry, 1000, {});
  std::vector<PartitionLag> lags = {{0, 120}, {1, -1}, {3, 5}};
  probe.Lag(lags);
  std::string t = Text(registry);
  EXPECT_TRUE(Has(t, "duet_stream_partition_lag_messages{partition=\"0\"} 120")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_partition_lag_messages{partition=\"3\"} 5")) << t;
  EXPECT_EQ(t.find("partition=\"1\""), std::string::npos) << "an unknown lag has no figure";
  EXPECT_TRUE(Has(t, "duet_stream_lag_messages 125")) << t;
  lags = {{3, 0}};  // partition 0 was revoked
  probe.Lag(lags);
  t = Text(registry);
  EXPECT_EQ(t.find("partition=\"0\""), std::string::npos) << t;
  EXPECT_TRUE(Has(t, "duet_stream_partition_lag_messages{partition=\"3\"} 0")) << t;
  EXPECT_TRUE(Has(t, "duet_stream_lag_messages 0")) << t;
}

TEST(StreamProbeTest, ThresholdsNameWhatIsCrossedAndClear) {
  prometheus::Registry registry;
  StreamProbe probe(&registry, 1000, {.max_lag_messages = 100, .max_delay_ms = 30'000});
  EXPECT_EQ(probe.Problems().at("lag"), "");
  EXPECT_EQ(probe.Problems().at("delay"), "");
  std::vector<PartitionLag> lags = {{0, 100}, {2, 101}, {5, 7}};
  probe.Lag(lags);
  EXPECT_EQ(probe.Problems().at("lag"), "101 messages behind on partition 2 (--ready-max-lag 100)");
  probe.Round(kT0, kT0 + 30'000, kT0 + 30'001, 1, 0);  // exactly at the threshold: fine
  EXPECT_EQ(probe.Problems().at("delay"), "");
  probe.Round(kT0, kT0 + 30'500, kT0 + 30'501, 1, 0);
  EXPECT_EQ(probe.Problems().at("delay"),
            "the last micro-batch started 30500ms after it was due (--ready-max-delay 30s)");
  lags = {{0, 3}, {2, 0}};
  probe.Lag(lags);
  probe.Round(kT0 + 40'000, kT0 + 40'000, kT0 + 40'010, 1, 0);
  EXPECT_EQ(probe.Problems().at("lag"), "");
  EXPECT_EQ(probe.Problems().at("delay"), "");
}

TEST(StreamProbeTest, NoThresholdsNeverUnready) {
  prometheus::Registry registry;
  StreamProbe probe(&registry, 1000, {});
  std::vector<PartitionLag> lags = {{0, 1'000'000'000}};
  probe.Lag(lags);
  probe.Round(kT0, kT0 + 3'600'000, kT0 + 3'600'001, 0, 5);
  EXPECT_EQ(probe.Problems().at("lag"), "");
  EXPECT_EQ(probe.Problems().at("delay"), "");
}

}  // namespace
}  // namespace duet::speed
