#include "collect/overload.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace duet::collect {
namespace {

using Permit = InFlightLimit::Permit;

TEST(InFlightLimitTest, GrantsUpToMaxThenRefusesWithoutChangingThePermit) {
  InFlightLimit limit(2);
  std::optional<Permit> a, b, c;
  EXPECT_TRUE(limit.TryAcquire(&a));
  EXPECT_TRUE(limit.TryAcquire(&b));
  EXPECT_FALSE(limit.TryAcquire(&c));
  EXPECT_FALSE(c.has_value());
  EXPECT_EQ(limit.in_flight(), 2);
}

TEST(InFlightLimitTest, AnsweringARequestFreesItsSlot) {
  InFlightLimit limit(1);
  std::optional<Permit> a, b;
  ASSERT_TRUE(limit.TryAcquire(&a));
  EXPECT_FALSE(limit.TryAcquire(&b));
  a.reset();
  EXPECT_EQ(limit.in_flight(), 0);
  EXPECT_TRUE(limit.TryAcquire(&b));
}

TEST(InFlightLimitTest, AMovedPermitIsReleasedOnceAndExplicitReleaseIsIdempotent) {
  InFlightLimit limit(3);
  std::optional<Permit> a, b;
  ASSERT_TRUE(limit.TryAcquire(&a));
  ASSERT_TRUE(limit.TryAcquire(&b));
  {
    Permit moved(std::move(*a));
    a.reset();  // the moved-from permit holds nothing
    EXPECT_EQ(limit.in_flight(), 2);
    Permit other = std::move(*b);
    other = std::move(moved);  // `other` gives its own slot back and takes `moved`'s
    EXPECT_EQ(limit.in_flight(), 1);
    other.Release();
    other.Release();
    EXPECT_EQ(limit.in_flight(), 0);
  }
  b.reset();
  EXPECT_EQ(limit.in_flight(), 0);
}

TEST(InFlightLimitTest, ConcurrentRequestsNeverExceedTheBound) {
  constexpr int kMax = 3;
  constexpr int kThreads = 8;
  constexpr int kRounds = 20'000;
  InFlightLimit limit(kMax);
  std::atomic<int> holders{0};
  std::atomic<int> peak{0};
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        std::optional<Permit> p;
        if (!limit.TryAcquire(&p)) continue;
        const int now = holders.fetch_add(1) + 1;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        granted.fetch_add(1);
        holders.fetch_sub(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(peak.load(), kMax);
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(limit.in_flight(), 0);
}

TEST(ShedReasonTest, KafkaErrorsMapToTheMetricLabels) {
  EXPECT_EQ(ShedReasonOfKafkaError(RD_KAFKA_RESP_ERR__QUEUE_FULL), ShedReason::kQueueFull);
  EXPECT_EQ(ShedReasonOfKafkaError(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), ShedReason::kDeliveryTimeout);
  EXPECT_EQ(ShedReasonOfKafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE),
            ShedReason::kDeliveryTimeout);
  EXPECT_EQ(ShedReasonOfKafkaError(RD_KAFKA_RESP_ERR__FATAL), ShedReason::kKafkaError);
  EXPECT_EQ(ShedReasonName(ShedReason::kInFlight), "in_flight");
  EXPECT_EQ(ShedReasonName(ShedReason::kQueueFull), "queue_full");
  EXPECT_EQ(ShedReasonName(ShedReason::kDeliveryTimeout), "delivery_timeout");
  EXPECT_EQ(ShedReasonName(ShedReason::kKafkaError), "kafka_error");
  EXPECT_EQ(ShedReasonName(ShedReason::kShuttingDown), "shutting_down");
}

// Records the answers a tracker gives.
struct Answers {
  std::vector<RequestTracker::Outcome> got;
  RequestTracker::Done Done() {
    return [this](const RequestTracker::Outcome& o) { got.push_back(o); };
  }
};

TEST(RequestTrackerTest, AcceptedOnlyAfterTheLastBeaconIsAcknowledged) {
  Answers answers;
  RequestTracker* t = RequestTracker::Create(3, answers.Done());
  t->Release(1);  // all three queued: the producing thread drops its hold
  t->Delivered(true, ShedReason::kKafkaError, "");
  t->Delivered(true, ShedReason::kKafkaError, "");
  EXPECT_TRUE(answers.got.empty()) << "answered before the third acknowledgement";
  t->Delivered(true, ShedReason::kKafkaError, "");
  ASSERT_EQ(answers.got.size(), 1u);
  EXPECT_TRUE(answers.got[0].accepted);
}

TEST(RequestTrackerTest, AcknowledgementsBeforeTheProducerFinishesDoNotAnswer) {
  Answers answers;
  RequestTracker* t = RequestTracker::Create(2, answers.Done());
  t->Delivered(true, ShedReason::kKafkaError, "");  // reports can overtake the producing thread
  t->Delivered(true, ShedReason::kKafkaError, "");
  EXPECT_TRUE(answers.got.empty());
  t->Release(1);
  ASSERT_EQ(answers.got.size(), 1u);
  EXPECT_TRUE(answers.got[0].accepted);
}

TEST(RequestTrackerTest, OneTimedOutBeaconFailsTheRequestAtOnceAndNeverLaterAccepts) {
  Answers answers;
  RequestTracker* t = RequestTracker::Create(3, answers.Done());
  t->Release(1);
  t->Delivered(true, ShedReason::kKafkaError, "");
  t->Delivered(false, ShedReason::kDeliveryTimeout, "Local: Message timed out");
  ASSERT_EQ(answers.got.size(), 1u);  // answered now, one report still outstanding
  EXPECT_FALSE(answers.got[0].accepted);
  EXPECT_EQ(answers.got[0].reason, ShedReason::kDeliveryTimeout);
  EXPECT_EQ(answers.got[0].error, "Local: Message timed out");
  t->Delivered(true, ShedReason::kKafkaError, "");  // the last report frees the tracker
  EXPECT_EQ(answers.got.size(), 1u);
}

TEST(RequestTrackerTest, APartlyQueuedRequestFailsAndKeepsTheFirstReason) {
  Answers answers;
  RequestTracker* t = RequestTracker::Create(4, answers.Done());
  // Two queued, the third refused: queue full; the fourth never tried.
  t->Fail(ShedReason::kQueueFull, "the producer queue is full");
  ASSERT_EQ(answers.got.size(), 1u);
  EXPECT_FALSE(answers.got[0].accepted);
  EXPECT_EQ(answers.got[0].reason, ShedReason::kQueueFull);
  t->Release(2 + 1);
  t->Delivered(false, ShedReason::kKafkaError, "broker down");  // a later, other failure
  EXPECT_EQ(answers.got.size(), 1u);
  t->Delivered(true, ShedReason::kKafkaError, "");  // the queued ones may still reach Kafka
  EXPECT_EQ(answers.got.size(), 1u);
  EXPECT_FALSE(answers.got[0].accepted);
}

TEST(RequestTrackerTest, AnEarlyAnswerReleasesWhatTheCallbackHolds) {
  // The callback holds the HTTP session: a request answered 503 must not keep it until the last
  // delivery report of its queued beacons.
  auto session = std::make_shared<int>(0);
  RequestTracker* t = RequestTracker::Create(2, [session](const RequestTracker::Outcome&) {});
  EXPECT_EQ(session.use_count(), 2);
  t->Release(1);
  t->Delivered(false, ShedReason::kDeliveryTimeout, "timed out");
  EXPECT_EQ(session.use_count(), 1);
  t->Delivered(true, ShedReason::kKafkaError, "");
}

TEST(RequestTrackerTest, ConcurrentReportsAnswerExactlyOnce) {
  constexpr int kRequests = 200;
  constexpr int kBeacons = 16;
  for (const bool with_failure : {false, true}) {
    std::atomic<int> accepted{0};
    std::atomic<int> refused{0};
    for (int r = 0; r < kRequests; ++r) {
      RequestTracker* t = RequestTracker::Create(kBeacons, [&](const RequestTracker::Outcome& o) {
        (o.accepted ? accepted : refused).fetch_add(1);
      });
      std::vector<std::thread> reporters;
      for (int w = 0; w < 4; ++w) {
        reporters.emplace_back([t, w, with_failure] {
          for (int b = w; b < kBeacons; b += 4) {
            const bool ok = !(with_failure && b == kBeacons - 1);
            t->Delivered(ok, ShedReason::kDeliveryTimeout, ok ? "" : "timed out");
          }
        });
      }
      t->Release(1);
      for (std::thread& th : reporters) th.join();
    }
    EXPECT_EQ(accepted.load() + refused.load(), kRequests);
    EXPECT_EQ(accepted.load(), with_failure ? 0 : kRequests);
  }
}

}  // namespace
}  // namespace duet::collect
