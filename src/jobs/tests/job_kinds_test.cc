// What a job request may carry, and how a job is shown.
#include "jobs/job_kinds.h"

#include <gtest/gtest.h>

namespace duet::jobs {
namespace {

TEST(JobKindsTest, ParamsAreCheckedAndWrittenCanonically) {
  EXPECT_EQ(*CheckJobParams("train", R"({"rounds": 50, "force": true})"),
            R"({"force":true,"rounds":50})");
  EXPECT_EQ(*CheckJobParams("train", ""), "{}");
  EXPECT_EQ(*CheckJobParams("batch", "{}"), "{}");
  EXPECT_EQ(*CheckJobParams("batch", "null"), "{}");
}

TEST(JobKindsTest, BadRequestsNameTheField) {
  auto msg = [](std::string_view kind, std::string_view params) {
    auto r = CheckJobParams(kind, params);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_EQ(msg("deploy", "{}"), "kind: 'deploy' is not a job kind; expected train or batch");
  EXPECT_EQ(msg("train", R"({"rounds":0})"),
            "params.rounds: expected an integer from 1 to 100000, got 0");
  EXPECT_EQ(msg("train", R"({"rounds":100001})"),
            "params.rounds: expected an integer from 1 to 100000, got 100001");
  EXPECT_EQ(msg("train", R"({"rounds":"5"})"),
            "params.rounds: expected an integer from 1 to 100000, got \"5\"");
  EXPECT_EQ(msg("train", R"({"force":1})"), "params.force: expected true or false, got 1");
  EXPECT_EQ(msg("train", R"({"input":"/etc"})"),
            "params.input: not a parameter of train jobs; expected force, rounds");
  EXPECT_EQ(msg("batch", R"({"input":"/etc"})"),
            "params.input: batch jobs take no parameters (the input is the worker's "
            "configuration)");
  EXPECT_EQ(msg("train", "[1]"), "params: expected an object, got [1]");
}

TEST(JobKindsTest, TrainParamsReadBack) {
  auto p = ParseTrainParams(R"({"force":true,"rounds":7})");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->force);
  EXPECT_EQ(p->rounds, 7);
  EXPECT_EQ(ParseTrainParams("{}")->rounds, 0);
}

TEST(JobKindsTest, JobJsonShowsUnsetFieldsAsNull) {
  store::JobInfo j;
  j.id = 3;
  j.kind = "train";
  j.params = R"({"rounds":5})";
  j.created_ms = 1'793'491'200'000;
  EXPECT_EQ(JobJson(j, false),
            R"({"id":3,"kind":"train","params":{"rounds":5},"state":"queued",)"
            R"("created_at":"2026-11-01T00:00:00Z","started_at":null,"finished_at":null,)"
            R"("worker":null,"lease_until":null,"message":null})");
  j.state = store::JobState::kFailed;
  j.message = "worker lost";
  j.log = "a\n";
  EXPECT_NE(JobJson(j, true).find(R"("message":"worker lost","log":"a\n"})"), std::string::npos);
}

}  // namespace
}  // namespace duet::jobs
