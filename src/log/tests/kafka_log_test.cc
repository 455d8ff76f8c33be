// The Kafka log against a real broker. CTest starts one for these tests (the kafka_broker fixture
// in tests/integration/CMakeLists.txt, which writes its address to
// DUET_TEST_FIXTURE_DIR/bootstrap); by hand, set DUET_TEST_KAFKA=HOST:PORT. Without a broker the
// tests fail: a missing broker is an infrastructure failure, not a pass.
#include "log/kafka_log.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "log/kafka_group.h"

namespace duet::log {
namespace {

// DUET_TEST_KAFKA=HOST:PORT, or the address CTest's fixture wrote (DUET_TEST_FIXTURE_DIR).
std::string Broker() {
  if (const char* b = std::getenv("DUET_TEST_KAFKA"); b != nullptr && *b != '\0') return b;
  std::ifstream in(std::string(DUET_TEST_FIXTURE_DIR) + "/bootstrap");
  std::string address;
  std::getline(in, address);
  return address;
}

std::string FreshTopic() {
  static int n = 0;
  return "log-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// Produces `values` to `topic` keyed by key_of(i); waits until all are acknowledged.
void Produce(const std::string& topic, const std::vector<std::string>& values, int keys) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", Broker().c_str(), err, sizeof(err)),
            RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)),
            RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string key = "k" + std::to_string(i % keys);
    while (rd_kafka_producev(
               rk, RD_KAFKA_V_TOPIC(topic.c_str()),
               RD_KAFKA_V_VALUE(const_cast<char*>(values[i].data()), values[i].size()),
               RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
               RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk, 10);
    }
  }
  EXPECT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

std::unique_ptr<Log> Open(const std::string& topic, KafkaLogOptions o = {}) {
  auto log = OpenKafkaLog(KafkaSource{Broker(), topic}, o);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  return log.ok() ? std::move(*log) : nullptr;
}

class KafkaLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Broker().empty())
        << "DUET_TEST_KAFKA is not set: run this test through CTest, whose kafka_broker fixture "
           "starts a real broker (scripts/kafka.sh)";
  }
};

// Random poll sizes and restarts from Positions() (a new log each time): every message comes
// exactly once, in offset order within its partition, with its offset and timestamp.
TEST_F(KafkaLogTest, RandomPollsAndRestartsReadEveryMessageOnceInPartitionOrder) {
  const std::string topic = FreshTopic();
  std::vector<std::string> values;
  for (int i = 0; i < 3000; ++i) values.push_back("{\"n\":" + std::to_string(i) + "}");
  values.push_back("");  // an empty message is a line too
  Produce(topic, values, 50);
  std::mt19937_64 rng(5);
  std::map<std::string, int64_t> last;  // per partition: the last offset seen
  std::multiset<std::string> seen;
  std::string positions;
  for (int round = 0; round < 40 && seen.size() < values.size(); ++round) {
    std::unique_ptr<Log> log = Open(topic);
    if (!positions.empty()) {
      ASSERT_TRUE(log->Seek(positions).ok());
    }
    std::vector<LogRecord> records;
    for (int polls = 0; polls < 3; ++polls) {
      ASSERT_TRUE(log->Poll(1 + rng() % 400, /*final=*/true, &records).ok());
      for (const LogRecord& r : records) {
        seen.insert(std::string(r.bytes));
        const std::string source(r.source);
        if (last.count(source) > 0) {
          EXPECT_EQ(static_cast<int64_t>(r.offset), last[source] + 1);
        }
        last[source] = static_cast<int64_t>(r.offset);
        EXPECT_EQ(r.line, r.offset + 1);
        EXPECT_GT(r.timestamp_ms, 0);
        EXPECT_EQ(KafkaPartitionOf(r.source) >= 0, true);
      }
    }
    positions = log->Positions();
  }
  EXPECT_EQ(seen, std::multiset<std::string>(values.begin(), values.end()));
  EXPECT_GT(last.size(), 1u) << "keys should spread over several partitions";
}

// With `final`, the log stops at the end offsets of its first final Poll, even if more arrives.
TEST_F(KafkaLogTest, DrainStopsAtTheEndSeenFirst) {
  const std::string topic = FreshTopic();
  Produce(topic, std::vector<std::string>(100, "a"), 7);
  std::unique_ptr<Log> log = Open(topic);
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(10, true, &records).ok());
  EXPECT_EQ(records.size(), 10u);
  Produce(topic, std::vector<std::string>(50, "b"), 7);
  size_t total = records.size();
  while (true) {
    ASSERT_TRUE(log->Poll(1000, true, &records).ok());
    if (records.empty()) break;
    for (const LogRecord& r : records) EXPECT_EQ(r.bytes, "a");
    total += records.size();
  }
  EXPECT_EQ(total, 100u);
  // A new log from these positions finds exactly the 50 that came later.
  std::unique_ptr<Log> next = Open(topic);
  ASSERT_TRUE(next->Seek(log->Positions()).ok());
  size_t later = 0;
  while (true) {
    ASSERT_TRUE(next->Poll(1000, true, &records).ok());
    if (records.empty()) break;
    later += records.size();
  }
  EXPECT_EQ(later, 50u);
}

TEST_F(KafkaLogTest, LongMessagesAreTruncatedWithTheirFullLength) {
  const std::string topic = FreshTopic();
  Produce(topic, {std::string(100, 'x'), "short"}, 1);
  KafkaLogOptions o;
  o.max_line = 64;
  std::unique_ptr<Log> log = Open(topic, o);
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(10, true, &records).ok());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_TRUE(records[0].truncated);
  EXPECT_EQ(records[0].bytes.size(), 64u);
  EXPECT_EQ(records[0].full_length, 100u);
  EXPECT_FALSE(records[1].truncated);
}

TEST_F(KafkaLogTest, SeekRejectsPositionsOfAnotherTopicOrGarbage) {
  const std::string topic = FreshTopic();
  Produce(topic, {"a"}, 1);
  std::unique_ptr<Log> log = Open(topic);
  const Status other = log->Seek(KafkaPositions("other-topic", {{0, 1}}));
  EXPECT_EQ(other.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other.message().find("other-topic"), std::string::npos);
  EXPECT_EQ(log->Seek("not positions").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(log->Seek(KafkaPositions(topic, {{99, 0}})).code(), StatusCode::kInvalidArgument);
  // After the failed Seeks the log still reads from its position.
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(10, true, &records).ok());
  EXPECT_EQ(records.size(), 1u);
}

TEST_F(KafkaLogTest, MissingTopicIsNotFoundAndABadUriIsRefused) {
  auto log = OpenKafkaLog(KafkaSource{Broker(), "no-such-topic-" + std::to_string(::getpid())});
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kNotFound);
  for (const char* bad : {"kafka://", "kafka://host/", "kafka://host:port/t",
                          "kafka://h:1/bad topic", "http://h:1/t"}) {
    EXPECT_FALSE(ParseKafkaUri(bad).ok()) << bad;
  }
  auto ok = ParseKafkaUri("kafka://a:1,b:2/beacons");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->brokers, "a:1,b:2");
  EXPECT_EQ(ok->topic, "beacons");
}

// ---- KafkaGroupConsumer

// A listener that keeps positions as a store would: per partition, the next offset to read,
// "committed" by the test after each Poll; and the partitions its member owns.
class Positions final : public PartitionListener {
 public:
  explicit Positions(std::map<int, int64_t>* store) : store_(store) {}
  Result<int64_t> OnAssigned(int partition) override {
    if (fail_next_) {
      fail_next_ = false;
      return Status::Unavailable("store down (test)");
    }
    owned.insert(partition);
    ++assignments;
    auto it = store_->find(partition);
    return it == store_->end() ? kFromOldest : it->second;
  }
  void OnRevoked(int partition) override {
    owned.erase(partition);
    ++revocations;
  }
  std::set<int> owned;
  int assignments = 0;
  int revocations = 0;
  bool fail_next_ = false;

 private:
  std::map<int, int64_t>* store_;
};

std::unique_ptr<KafkaGroupConsumer> Member(const std::string& topic, const std::string& group,
                                           PartitionListener* listener) {
  KafkaGroupOptions o;
  o.group = group;
  o.session_timeout_ms = 2000;
  o.poll_wait_ms = 50;
  auto c = OpenKafkaGroupConsumer(KafkaSource{Broker(), topic}, o, listener);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(*c) : nullptr;
}

// Polls `c` once and "commits" what it returned: every record once, in offset order per
// partition, counted into *seen.
void PollAndCommit(KafkaGroupConsumer* c, std::map<int, int64_t>* store,
                   std::multiset<std::string>* seen) {
  std::vector<LogRecord> records;
  ASSERT_TRUE(c->Poll(500, &records).ok());
  for (const LogRecord& r : records) {
    const int p = KafkaPartitionOf(r.source);
    auto it = store->find(p);
    if (it != store->end()) {
      EXPECT_EQ(static_cast<int64_t>(r.offset), it->second) << r.source;
    }
    (*store)[p] = static_cast<int64_t>(r.offset) + 1;
    seen->insert(std::string(r.bytes));
  }
}

using Clock = std::chrono::steady_clock;

// Each assigned partition starts where the listener says; Hold stops a partition and Start reads
// it again from an offset.
TEST_F(KafkaLogTest, GroupMemberStartsEachPartitionWhereTheListenerSays) {
  const std::string topic = FreshTopic();
  std::vector<std::string> values;
  for (int i = 0; i < 400; ++i) values.push_back("m" + std::to_string(i));
  Produce(topic, values, 40);
  std::map<int, int64_t> store = {{1, 7}, {2, 3}};  // partitions 1 and 2 were partly read
  Positions listener(&store);
  auto member = Member(topic, "g-" + topic, &listener);
  ASSERT_NE(member, nullptr);
  std::multiset<std::string> seen;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (seen.size() < values.size() - 10 && Clock::now() < deadline) {
    PollAndCommit(member.get(), &store, &seen);
  }
  EXPECT_EQ(seen.size(), values.size() - 10);  // everything but the 7 + 3 already "processed"
  EXPECT_EQ(listener.owned.size(), 4u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  for (const KafkaGroupConsumer::Owned& o : member->Assignment()) {
    EXPECT_EQ(o.next, o.end) << "partition " << o.partition;
    EXPECT_EQ(o.next, store[o.partition]);
  }
  // Held, partition 0 returns nothing; started at 0, it is read again from its beginning.
  member->Hold(0);
  store.erase(0);
  ASSERT_TRUE(member->Start(0, kFromOldest).ok());
  const size_t again = seen.size();
  int64_t end0 = 0;
  for (const auto& o : member->Assignment()) end0 = o.partition == 0 ? o.end : end0;
  while (store[0] < end0 && Clock::now() < deadline) PollAndCommit(member.get(), &store, &seen);
  EXPECT_EQ(seen.size() - again, static_cast<size_t>(end0));
  member->Close();
  EXPECT_TRUE(listener.owned.empty());
}

// Two members in one group split the partitions; when one leaves, the other continues its
// partitions from the stored offsets: every message is read exactly once overall. A partition
// whose start offset cannot be given (the store is down) is held until started.
TEST_F(KafkaLogTest, GroupMembersShareThePartitionsAndHandThemOver) {
  const std::string topic = FreshTopic();
  std::vector<std::string> values;
  for (int i = 0; i < 600; ++i) values.push_back("a" + std::to_string(i));
  Produce(topic, values, 60);
  const std::string group = "g-" + topic;
  std::map<int, int64_t> store;
  Positions la(&store), lb(&store);
  auto a = Member(topic, group, &la);
  auto b = Member(topic, group, &lb);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::multiset<std::string> seen;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  // Until both own partitions (the second join triggers a cooperative rebalance).
  while ((la.owned.empty() || lb.owned.empty()) && Clock::now() < deadline) {
    PollAndCommit(a.get(), &store, &seen);
    PollAndCommit(b.get(), &store, &seen);
  }
  ASSERT_FALSE(la.owned.empty());
  ASSERT_FALSE(lb.owned.empty());
  EXPECT_EQ(la.owned.size() + lb.owned.size(), 4u);
  for (const int p : la.owned) EXPECT_EQ(lb.owned.count(p), 0u) << "partition " << p;
  while (seen.size() < values.size() && Clock::now() < deadline) {
    PollAndCommit(a.get(), &store, &seen);
    PollAndCommit(b.get(), &store, &seen);
  }
  EXPECT_EQ(seen.size(), values.size());
  // a leaves; b is given a's partitions, the first of them while "the store is down".
  std::vector<std::string> more;
  for (int i = 0; i < 300; ++i) more.push_back("b" + std::to_string(i));
  Produce(topic, more, 60);
  lb.fail_next_ = true;
  a->Close();
  deadline = Clock::now() + std::chrono::seconds(60);
  bool started = false;
  while (seen.size() < values.size() + more.size() && Clock::now() < deadline) {
    PollAndCommit(b.get(), &store, &seen);
    for (const auto& o : b->Assignment()) {
      if (!o.held) continue;
      ASSERT_FALSE(started);
      auto it = store.find(o.partition);
      ASSERT_TRUE(b->Start(o.partition, it == store.end() ? kFromOldest : it->second).ok());
      started = true;
    }
  }
  EXPECT_TRUE(started);
  EXPECT_EQ(lb.owned.size() + 1, 4u);  // the held one was never reported owned by the listener
  EXPECT_EQ(seen.size(), values.size() + more.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  b->Close();
}

// A held partition that moves to another member and comes back is read again (an application
// pause may outlive a revocation and re-assignment, librdkafka#1849: the consumer resumes it).
TEST_F(KafkaLogTest, GroupPartitionHeldThenMovedAndReturnedIsReadAgain) {
  const std::string topic = FreshTopic();
  std::vector<std::string> values;
  for (int i = 0; i < 400; ++i) values.push_back("h" + std::to_string(i));
  Produce(topic, values, 40);
  const std::string group = "g-" + topic;
  std::map<int, int64_t> store;
  Positions la(&store), lb(&store);
  auto a = Member(topic, group, &la);
  ASSERT_NE(a, nullptr);
  std::multiset<std::string> seen;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (la.owned.size() < 4 && Clock::now() < deadline) PollAndCommit(a.get(), &store, &seen);
  ASSERT_EQ(la.owned.size(), 4u);
  for (int p = 0; p < 4; ++p) a->Hold(p);  // e.g. the store went away
  auto b = Member(topic, group, &lb);
  ASSERT_NE(b, nullptr);
  while ((lb.owned.empty() || la.owned.size() == 4) && Clock::now() < deadline) {
    PollAndCommit(a.get(), &store, &seen);
    PollAndCommit(b.get(), &store, &seen);
  }
  ASSERT_FALSE(lb.owned.empty());
  b->Close();  // its partitions, held by a when they left it, come back to a
  while (la.owned.size() < 4 && Clock::now() < deadline) PollAndCommit(a.get(), &store, &seen);
  ASSERT_EQ(la.owned.size(), 4u);
  for (const auto& o : a->Assignment()) {
    if (!o.held) continue;
    auto it = store.find(o.partition);
    ASSERT_TRUE(a->Start(o.partition, it == store.end() ? kFromOldest : it->second).ok());
  }
  while (seen.size() < values.size() && Clock::now() < deadline) {
    PollAndCommit(a.get(), &store, &seen);
  }
  EXPECT_EQ(seen.size(), values.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  a->Close();
}

}  // namespace
}  // namespace duet::log
