// OffsetCursor: keeps what a Kafka consumer returns of one partition contiguous from the position
// it was started at, whatever librdkafka fetches.
//
// Why: librdkafka 2.0 (Debian 12) can start fetching a partition from a stale position after a
// cooperative rebalance — the position of an earlier assignment of the same partition to this
// member (librdkafka#4686, #2190). A stale position behind the start only re-delivers records
// (skipped here); one ahead of it would silently skip records: measured in
// tests/integration/kafka_group.sh under CPU load, where events went missing after a partition
// came back to a member that had fetched it far ahead before. So a record past the expected offset
// is never taken at once: the consumer seeks the partition back to the expected offset, drops
// what it had already fetched of it, and takes the first record that arrives after the seek —
// if that one is still past the expected offset, the log itself has nothing in between
// (transaction markers, compaction), and the gap is real.
//
// Pure logic (no librdkafka): the consumer asks Check for each fetched record of the partition,
// calls Took for a record it returns and Sought after seeking to seek_target().
#pragma once

#include <cstdint>

namespace duet::log {

class OffsetCursor {
 public:
  // Where the partition must be read from: `offset`, or its oldest record (from_oldest).
  void Start(int64_t offset, bool from_oldest) {
    next_ = offset;
    from_oldest_ = from_oldest;
    sought_ = false;
    stale_batch_ = kNoBatch;
  }

  enum class Verdict {
    kTake,  // the next record: return it (then Took)
    kSkip,  // a re-delivery, or fetched before the seek: drop it
    kSeek,  // past the expected offset: seek to seek_target() (then Sought) and drop it
  };
  // `batch` numbers the consumer's reads from librdkafka: records read in the same batch as a
  // seek were fetched before it.
  Verdict Check(int64_t offset, uint64_t batch) const {
    if (batch == stale_batch_ || offset < next_) return Verdict::kSkip;
    if (offset == next_ || sought_) return Verdict::kTake;
    return Verdict::kSeek;
  }
  // True when a record Check accepted leaves offsets out (the log has nothing between). Not
  // after a start from the oldest record: retention may have moved it since.
  bool IsGap(int64_t offset) const { return !from_oldest_ && offset > next_; }
  void Took(int64_t offset) {
    next_ = offset + 1;
    from_oldest_ = false;
    sought_ = false;
  }
  // The partition was sought to seek_target() while reading `batch`.
  void Sought(uint64_t batch) {
    sought_ = true;
    stale_batch_ = batch;
  }

  // The offset of the next record to return (after a start from the oldest record and before
  // the first one is taken: the oldest offset the topic had at start).
  int64_t next() const { return next_; }
  // Where to seek when Check says kSeek: next(), or kOldest while nothing was taken since a start
  // from the oldest record.
  static constexpr int64_t kOldest = -1;
  int64_t seek_target() const { return from_oldest_ ? kOldest : next_; }

 private:
  static constexpr uint64_t kNoBatch = UINT64_MAX;
  int64_t next_ = 0;
  bool from_oldest_ = false;  // nothing taken yet since a start from the oldest record
  bool sought_ = false;       // sought back; the first record after the seek is taken
  uint64_t stale_batch_ = kNoBatch;
};

}  // namespace duet::log
