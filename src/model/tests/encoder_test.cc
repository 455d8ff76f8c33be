#include "model/encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace duet::model {
namespace {

class EncoderTest : public ::testing::Test {
 protected:
  FeatureEncoder enc_ = FeatureEncoder::ForVariants(
      {{"checkout", "treatment"}, {"checkout", "control"}, {"pricing", "v2"}});

  Status Encode(const std::string& json, std::vector<float>* row) {
    row->assign(enc_.size(), -7.0F);
    simdjson::dom::element el;
    EXPECT_EQ(parser_.parse(json).get(el), simdjson::SUCCESS) << json;
    return enc_.EncodeJson(el, row->data());
  }
  std::string Error(const std::string& json) {
    std::vector<float> row;
    const Status s = Encode(json, &row);
    EXPECT_FALSE(s.ok()) << json;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  }
  simdjson::dom::parser parser_;
};

TEST_F(EncoderTest, ColumnsAreTheBaseThenSortedVariants) {
  ASSERT_EQ(enc_.size(), core::kBaseFeatures + 3);
  EXPECT_EQ(enc_.columns()[0], "beacons");
  EXPECT_EQ(enc_.columns()[22], "experiment:checkout=control");
  EXPECT_EQ(enc_.columns()[23], "experiment:checkout=treatment");
  EXPECT_EQ(enc_.columns()[24], "experiment:pricing=v2");
  EXPECT_EQ(enc_.VariantColumn("pricing", "v2"), 24);
  EXPECT_EQ(enc_.VariantColumn("pricing", "v1"), -1);
}

TEST_F(EncoderTest, JsonEqualsTheExampleEncoding) {
  // The same session as a training example and as the predict API's feature object.
  std::array<float, core::kBaseFeatures> base{};
  const float values[] = {4, 2, 1, 0, 0, 1, 0, 0, 0, 60.5F, 10, 1};
  std::copy(std::begin(values), std::end(values), base.begin());
  base[13] = 1;  // mobile
  base[15] = 1;  // search
  base[19] = 2;
  base[20] = 1;
  base[21] = 3.25F;
  const std::vector<VariantPair> variants = {{"checkout", "treatment"}, {"pricing", "v2"}};
  std::vector<float> want(enc_.size());
  enc_.EncodeExample(base, variants, want.data());

  std::vector<float> got;
  ASSERT_TRUE(Encode(R"({"beacons":4,"pageviews":2,"clicks":1,"scrolls":0,"searches":0,
      "add_to_carts":1,"video_plays":0,"form_submits":0,"other_interactions":0,
      "seconds_since_start":60.5,"hour_of_day":10,"day_of_week":1,"device":"Mobile",
      "referrer":"https://www.google.com/search?q=x","previous_sessions":2,
      "previous_conversions":1,"hours_since_previous_session":3.25,
      "experiments":{"checkout":"treatment","pricing":"v2","unknown":"x"}})",
                     &got)
                  .ok());
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
}

TEST_F(EncoderTest, AbsentFieldsTakeTheirTrainingDefaults) {
  std::vector<float> row;
  ASSERT_TRUE(
      Encode(R"({"beacons":1,"pageviews":null,"hour_of_day":0,"day_of_week":6})", &row).ok());
  EXPECT_EQ(row[0], 1);
  for (size_t c = 1; c <= 9; ++c) EXPECT_EQ(row[c], 0) << c;
  EXPECT_EQ(row[10], 0);
  EXPECT_EQ(row[11], 6);
  for (size_t c = 12; c <= 20; ++c) EXPECT_EQ(row[c], 0) << c;
  EXPECT_TRUE(std::isnan(row[21]));  // no earlier session
  for (size_t c = 22; c < row.size(); ++c) EXPECT_EQ(row[c], 0) << c;
  EXPECT_EQ(Error(R"({"hour_of_day":1,"day_of_week":1})"),
            "beacons: missing; it is required (with beacons, hour_of_day and day_of_week; other "
            "fields default to 0 or unknown)");
  EXPECT_EQ(Error(R"({"beacons":1,"hour_of_day":null,"day_of_week":1})").substr(0, 21),
            "hour_of_day: missing;");
}

TEST_F(EncoderTest, ErrorsNameFieldValueAndExpectation) {
  EXPECT_EQ(Error(R"({"hour_of_day":24})"),
            "hour_of_day: 24 is out of range; expected an integer from 0 to 23");
  EXPECT_EQ(Error(R"({"beacons":0})"),
            "beacons: 0 is out of range; expected an integer from 1 to 1000000000");
  EXPECT_EQ(Error(R"({"clicks":1.5})"),
            "clicks: 1.5 is not accepted; expected an integer from 0 to 1000000000");
  EXPECT_EQ(Error(R"({"clicks":"3"})"),
            "clicks: the string '3' is not accepted; expected an integer from 0 to 1000000000");
  EXPECT_EQ(Error(R"({"seconds_since_start":-1})"),
            "seconds_since_start: -1 is out of range; expected a number from 0 to 1e12");
  EXPECT_EQ(Error(R"({"device":3})"), "device: 3 is not accepted; expected a string");
  EXPECT_EQ(Error(R"({"experiments":{"checkout":1}})"),
            "experiments.checkout: 1 is not accepted; expected a variant name");
  EXPECT_EQ(Error(R"({"experiments":["a"]})"),
            "experiments: an array is not accepted; expected an object of experiment name to "
            "variant name");
  EXPECT_NE(Error(R"({"beacon":1})").find("unknown field 'beacon'; expected one of: beacons,"),
            std::string::npos);
  EXPECT_EQ(Error(R"({"beacons":1,"beacons":2})"), "beacons: appears twice in one object");
  EXPECT_EQ(Error("[1]"), "the feature object is an array; expected a JSON object (docs/model.md)");
  EXPECT_EQ(Error(R"({"previous_sessions":18446744073709551615})"),
            "previous_sessions: 18446744073709551615 is out of range; expected an integer from 0 "
            "to 1000000000");
}

TEST(FeatureEncoderCreate, RejectsMalformedColumns) {
  std::vector<std::string> cols(core::kBaseFeatureNames.begin(), core::kBaseFeatureNames.end());
  EXPECT_TRUE(FeatureEncoder::Create(cols).ok());
  auto swapped = cols;
  std::swap(swapped[0], swapped[1]);
  EXPECT_EQ(FeatureEncoder::Create(swapped).status().message(),
            "feature column 0: 'pageviews'; expected 'beacons'");
  auto bad = cols;
  bad.push_back("experiment:x");
  EXPECT_EQ(FeatureEncoder::Create(bad).status().message(),
            "feature column 22: 'experiment:x'; expected 'experiment:NAME=VARIANT'");
  auto dup = cols;
  dup.push_back("experiment:x=a");
  dup.push_back("experiment:x=a");
  EXPECT_FALSE(FeatureEncoder::Create(dup).ok());
  EXPECT_FALSE(FeatureEncoder::Create({"beacons"}).ok());
}

}  // namespace
}  // namespace duet::model
