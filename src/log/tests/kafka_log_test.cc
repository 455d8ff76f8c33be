// The Kafka log against a real broker. CTest starts one for these tests (the kafka_broker fixture
// in tests/integration/CMakeLists.txt, which writes its address to
// DUET_TEST_FIXTURE_DIR/bootstrap); by hand, set DUET_TEST_KAFKA=HOST:PORT. Without a broker the
// tests fail: a missing broker is an infrastructure failure, not a pass.
#include "log/kafka_log.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

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
    if (!positions.empty()) ASSERT_TRUE(log->Seek(positions).ok());
    std::vector<LogRecord> records;
    for (int polls = 0; polls < 3; ++polls) {
      ASSERT_TRUE(log->Poll(1 + rng() % 400, /*final=*/true, &records).ok());
      for (const LogRecord& r : records) {
        seen.insert(std::string(r.bytes));
        const std::string source(r.source);
        if (last.count(source) > 0) EXPECT_EQ(static_cast<int64_t>(r.offset), last[source] + 1);
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

}  // namespace
}  // namespace duet::log
