#include "util/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

namespace duet {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    c_.Define("store", "sqlite:a", "store URI");
    c_.Define("session-gap", "30m", "gap");
    c_.Define("json", "false", "json", true);
    unsetenv("DUET_STORE");
    unsetenv("DUET_SESSION_GAP");
    unsetenv("DUET_CONFIG");
  }
  void TearDown() override {
    unsetenv("DUET_STORE");
    unsetenv("DUET_SESSION_GAP");
  }
  Config c_;
};

TEST_F(ConfigTest, DefaultsApplyWhenNothingIsSet) {
  ASSERT_TRUE(c_.Parse({}).ok());
  EXPECT_EQ(c_.String("store"), "sqlite:a");
  EXPECT_FALSE(c_.IsSet("store"));
  EXPECT_EQ(*c_.DurationMs("session-gap"), 1'800'000);
}

TEST_F(ConfigTest, FlagsBeatEnvironmentWhichBeatsConfigFile) {
  const std::string file = ::testing::TempDir() + "/duet_config_test.conf";
  std::ofstream(file) << "# comment\nstore = sqlite:file\nsession_gap = 10m\nunrelated = 1\n";
  setenv("DUET_STORE", "sqlite:env", 1);
  ASSERT_TRUE(c_.Parse({"--config", file}).ok());
  EXPECT_EQ(c_.String("store"), "sqlite:env");
  EXPECT_EQ(*c_.DurationMs("session-gap"), 600'000);
  Config c2 = c_;
  ASSERT_TRUE(c2.Parse({"--config=" + file, "--store", "sqlite:flag"}).ok());
  EXPECT_EQ(c2.String("store"), "sqlite:flag");
}

TEST_F(ConfigTest, BooleanFlagTakesNoValue) {
  ASSERT_TRUE(c_.Parse({"--json", "--store=x"}).ok());
  EXPECT_TRUE(c_.Bool("json"));
  EXPECT_EQ(c_.String("store"), "x");
}

TEST_F(ConfigTest, UnknownOptionIsRejectedByName) {
  const Status s = c_.Parse({"--stor", "x"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--stor"), std::string::npos);
}

TEST_F(ConfigTest, BadValuesNameOptionValueAndExpectation) {
  ASSERT_TRUE(c_.Parse({"--session-gap", "soon"}).ok());
  const auto d = c_.DurationMs("session-gap");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("--session-gap"), std::string::npos);
  EXPECT_NE(d.status().message().find("'soon'"), std::string::npos);
  EXPECT_NE(d.status().message().find("expected"), std::string::npos);
}

TEST_F(ConfigTest, DurationUnits) {
  EXPECT_EQ(*ParseDurationMs("x", "250ms"), 250);
  EXPECT_EQ(*ParseDurationMs("x", "60s"), 60'000);
  EXPECT_EQ(*ParseDurationMs("x", "12h"), 43'200'000);
  EXPECT_EQ(*ParseDurationMs("x", "1d"), 86'400'000);
  EXPECT_EQ(*ParseDurationMs("x", "15"), 15);
  EXPECT_FALSE(ParseDurationMs("x", "").ok());
  EXPECT_FALSE(ParseDurationMs("x", "5 m").ok());
  EXPECT_FALSE(ParseDurationMs("x", "-5s").ok());
}

}  // namespace
}  // namespace duet
