#include "collect/collector.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace duet::collect {
namespace {

std::vector<std::string> Values(const std::vector<Message>& m) {
  std::vector<std::string> out;
  for (const Message& x : m) out.push_back(x.value);
  return out;
}

TEST(SplitBodyTest, AnArrayGivesOneMessagePerElementKeyedByVisitor) {
  const auto m = SplitBody(R"([ {"id":"a", "visitor":"v1"},
                                 {"id":"b","visitor":"v2","ts":1} ,
                                 {"id":"c"} ])",
                           BodyType::kJson);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].value, R"({"id":"a","visitor":"v1"})");
  EXPECT_EQ(m[0].key, "v1");
  EXPECT_EQ(m[1].key, "v2");
  EXPECT_EQ(m[2].key, "");  // no visitor: produced anyway, a bad row downstream
}

TEST(SplitBodyTest, OnePrettyPrintedBeaconBecomesOneLine) {
  const auto m = SplitBody("{\n  \"id\": \"a\",\n  \"visitor\": \"v\"\n}\n", BodyType::kJson);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].value, R"({"id":"a","visitor":"v"})");
  EXPECT_EQ(m[0].value.find('\n'), std::string::npos);
}

TEST(SplitBodyTest, NdjsonKeepsEveryLineAsItIs) {
  const auto m =
      SplitBody("{\"visitor\":\"x\"}\r\nnot json\n\n  \n{\"visitor\":7}\n", BodyType::kNdjson);
  EXPECT_EQ(Values(m), (std::vector<std::string>{"{\"visitor\":\"x\"}\r", "not json", "", "  ",
                                                 "{\"visitor\":7}"}));
  EXPECT_EQ(m[0].key, "x");
  EXPECT_EQ(m[1].key, "");
  EXPECT_EQ(m[4].key, "");                                     // not a string
  EXPECT_EQ(SplitBody("a\nb", BodyType::kNdjson).size(), 2u);  // no final '\n' needed
}

TEST(SplitBodyTest, InvalidJsonBodyIsSplitIntoLinesNotRejected) {
  const auto m = SplitBody("{\"visitor\":\"a\"}\n{broken", BodyType::kJson);
  EXPECT_EQ(Values(m), (std::vector<std::string>{"{\"visitor\":\"a\"}", "{broken"}));
}

TEST(ContentTypeTest, AcceptsJsonAndNdjsonWithParameters) {
  EXPECT_EQ(*ParseContentType("application/json; charset=utf-8"), BodyType::kJson);
  EXPECT_EQ(*ParseContentType("Application/X-NDJSON"), BodyType::kNdjson);
  EXPECT_EQ(*ParseContentType("application/ndjson"), BodyType::kNdjson);
  const auto bad = ParseContentType("text/html");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("text/html"), std::string::npos);
  EXPECT_NE(bad.status().message().find("application/x-ndjson"), std::string::npos);
}

}  // namespace
}  // namespace duet::collect
