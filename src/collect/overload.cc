#include "collect/overload.h"

#include <librdkafka/rdkafka.h>

#include <cassert>
#include <utility>

namespace duet::collect {

std::string_view ShedReasonName(ShedReason reason) {
  switch (reason) {
    case ShedReason::kInFlight:
      return "in_flight";
    case ShedReason::kQueueFull:
      return "queue_full";
    case ShedReason::kDeliveryTimeout:
      return "delivery_timeout";
    case ShedReason::kKafkaError:
      return "kafka_error";
    case ShedReason::kShuttingDown:
      return "shutting_down";
  }
  return "kafka_error";
}

ShedReason ShedReasonOfKafkaError(int rd_kafka_resp_err) {
  switch (static_cast<rd_kafka_resp_err_t>(rd_kafka_resp_err)) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return ShedReason::kQueueFull;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
      return ShedReason::kDeliveryTimeout;
    default:
      return ShedReason::kKafkaError;
  }
}

InFlightLimit::Permit& InFlightLimit::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    Release();
    limit_ = std::exchange(other.limit_, nullptr);
  }
  return *this;
}

void InFlightLimit::Permit::Release() {
  if (limit_ != nullptr) std::exchange(limit_, nullptr)->in_flight_.fetch_sub(1);
}

InFlightLimit::InFlightLimit(int64_t max) : max_(max) { assert(max >= 1); }

bool InFlightLimit::TryAcquire(std::optional<Permit>* permit) {
  int64_t n = in_flight_.load(std::memory_order_relaxed);
  // A compare-exchange loop rather than add-then-undo: the count never exceeds max, not even for
  // an instant, so the gauge and the bound agree.
  do {
    if (n >= max_) return false;
  } while (!in_flight_.compare_exchange_weak(n, n + 1));
  permit->emplace(Permit(this));
  return true;
}

RequestTracker::RequestTracker(int64_t beacons, Done done)
    : pending_(beacons + 1), done_(std::move(done)) {}

RequestTracker* RequestTracker::Create(int64_t beacons, Done done) {
  assert(beacons >= 1);
  return new RequestTracker(beacons, std::move(done));
}

void RequestTracker::Answer(const Outcome& outcome) {
  if (answered_.exchange(true)) return;
  // Moved out and destroyed once called: what `done` holds (the HTTP session, its buffers) is not
  // kept until the last delivery report of a request answered early.
  Done done = std::move(done_);
  done(outcome);
}

void RequestTracker::Fail(ShedReason reason, std::string_view error) {
  if (answered_.load()) return;
  Answer(Outcome{false, reason, std::string(error)});
}

void RequestTracker::Delivered(bool ok, ShedReason reason, std::string_view error) {
  if (!ok) Fail(reason, error);
  Release(1);
}

void RequestTracker::Release(int64_t n) {
  const int64_t before = pending_.fetch_sub(n);
  assert(before >= n);
  if (before == n) {
    Answer(Outcome{true, ShedReason::kKafkaError, {}});
    delete this;
  }
}

}  // namespace duet::collect
