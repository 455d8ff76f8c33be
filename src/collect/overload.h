// Overload control of the collector: the bound on requests in flight (admission, 429), the
// reasons a request is shed, and the outcome of one request's beacons (202 only when Kafka
// acknowledged every one of them). No Kafka or HTTP here, so that the rules are unit-tested
// alone (tests/overload_test.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace duet::collect {

// Why a request was not accepted. kInFlight is answered 429 (the collector is saturated: try
// later); the others 503 (Kafka cannot take the beacons now, or the process is stopping).
enum class ShedReason {
  kInFlight,         // --max-in-flight requests were already received and not yet answered
  kQueueFull,        // the bounded producer queue had no room for the request's beacons
  kDeliveryTimeout,  // a beacon was not acknowledged within --delivery-timeout
  kKafkaError,       // Kafka refused a beacon otherwise (e.g. a fatal producer error)
  kShuttingDown,     // SIGTERM: the collector answers what it has and stops
};

// The `reason` label of duet_collect_shed_total: "in_flight", "queue_full", "delivery_timeout",
// "kafka_error", "shutting_down".
std::string_view ShedReasonName(ShedReason reason);

// The reason for a librdkafka error code (rd_kafka_resp_err_t as an int, to keep librdkafka out
// of this header): __QUEUE_FULL is kQueueFull; __MSG_TIMED_OUT, __TIMED_OUT and
// __TIMED_OUT_QUEUE are kDeliveryTimeout; anything else kKafkaError.
ShedReason ShedReasonOfKafkaError(int rd_kafka_resp_err);

// A bound on requests in flight (received — their header read — and not yet answered). Lock-free
// and thread-safe. A request that gets no permit is answered 429 at once, before its body is
// parsed or anything is produced: rejection stays cheap, and the memory held by requests (their
// bodies, their beacons in the producer queue) is bounded by max × the body limit.
class InFlightLimit {
 public:
  // One request's slot: released when destroyed (or moved from and the target destroyed).
  class Permit {
   public:
    Permit(Permit&& other) noexcept : limit_(other.limit_) { other.limit_ = nullptr; }
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { Release(); }
    // Gives the slot back now (idempotent).
    void Release();

   private:
    friend class InFlightLimit;
    explicit Permit(InFlightLimit* limit) : limit_(limit) {}
    InFlightLimit* limit_;
  };

  // max >= 1 (asserted).
  explicit InFlightLimit(int64_t max);
  // A permit when fewer than max are held, otherwise false and `permit` is left unchanged. Never
  // blocks. The limit must outlive its permits.
  bool TryAcquire(std::optional<Permit>* permit);
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int64_t max() const { return max_; }

 private:
  const int64_t max_;
  std::atomic<int64_t> in_flight_{0};
};

// The beacons of one request on their way to Kafka. The request's answer is decided exactly
// once: success only after every one of its beacons was acknowledged, failure as soon as one
// failed or could not be queued (the client is told at once; beacons already queued may still
// reach Kafka — a retried request is deduplicated downstream by id — but none of them is ever
// reported as accepted). The tracker frees itself after the last outstanding delivery report, so
// that late reports of an already answered request still find it.
//
// Use: Create(n, done); per beacon either the producer's delivery report calls Delivered(...) or,
// when it could not be queued, the producing thread calls Fail(...) and counts it in Release;
// finally the producing thread calls Release(not_queued + 1) (its own hold).
class RequestTracker {
 public:
  struct Outcome {
    bool accepted = false;                        // every beacon acknowledged
    ShedReason reason = ShedReason::kKafkaError;  // when !accepted: the first failure's reason
    std::string error;                            // when !accepted: the first failure, in words
  };
  using Done = std::function<void(const Outcome&)>;

  // A tracker of `beacons` beacons (>= 1) that calls `done` once, on any thread.
  static RequestTracker* Create(int64_t beacons, Done done);

  // One beacon's delivery report: acknowledged (ok) or failed for `reason`.
  void Delivered(bool ok, ShedReason reason, std::string_view error);
  // The request fails (the first call's reason is kept); answers it now if it was not answered.
  void Fail(ShedReason reason, std::string_view error);
  // Drops `n` outstanding holds (beacons never queued, plus the producing thread's own hold);
  // the release that reaches zero answers success if nothing failed, and frees the tracker.
  void Release(int64_t n);

 private:
  RequestTracker(int64_t beacons, Done done);
  void Answer(const Outcome& outcome);

  // Beacons without a report + 1 for the producing thread. A failing beacon calls Fail before
  // its Release, so the release that reaches zero sees every failure (answered_ is set).
  std::atomic<int64_t> pending_;
  std::atomic<bool> answered_{false};
  Done done_;  // called, and released, by the one Answer
};

}  // namespace duet::collect
