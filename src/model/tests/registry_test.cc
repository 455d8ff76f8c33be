// Training from the batch layer's sessions into a real SQLite store: examples from generated
// traffic, the time split, registration, the promotion rule and loading for serving.
#include "model/registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "batch/batch.h"
#include "gen/generator.h"
#include "model/cache.h"
#include "model/forest.h"
#include "model/training.h"

namespace duet::model {
namespace {

namespace fs = std::filesystem;

class RegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::path(::testing::TempDir()) /
                        ("duet_registry_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    gen::GenerateOptions g;
    g.out_dir = (*dir_ / "master").string();
    g.beacons = 300000;
    g.hours = 24;
    gen::GenerateStats stats;
    ASSERT_TRUE(gen::WriteDataset(g, &stats).ok());
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    auto s = store::OpenStore(
        "sqlite:" +
        (*dir_ /
         (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".sqlite"))
            .string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  // Examples of the generated master dataset, read by the batch layer with `threads` threads.
  static std::vector<ExampleCollector::Row> Rows(ExampleCollector* c, int threads) {
    batch::BatchOptions o;
    o.input = (*dir_ / "master").string();
    o.threads = threads;
    o.on_visitor = [c](int t, const core::Catalog& cat, std::span<const core::Event> ev) {
      c->Visitor(t, cat, ev);
    };
    batch::BatchStats stats;
    auto views = batch::RunBatch(o, nullptr, &stats);
    EXPECT_TRUE(views.ok()) << views.status().ToString();
    return c->Rows();
  }

  static fs::path* dir_;
  std::unique_ptr<store::Store> store_;
};
fs::path* RegistryTest::dir_ = nullptr;

TEST_F(RegistryTest, ExamplesDoNotDependOnThreads) {
  ExampleCollector one(1, core::kDefaultSessionGapMs), two(2, core::kDefaultSessionGapMs);
  const auto a = Rows(&one, 1);
  const auto b = Rows(&two, 2);
  ASSERT_GT(a.size(), 1000U);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].example.session_start_ts, b[i].example.session_start_ts) << i;
    ASSERT_EQ(std::memcmp(a[i].example.features.data(), b[i].example.features.data(),
                          sizeof(a[i].example.features)),
              0)
        << i;
    ASSERT_EQ(*a[i].variants, *b[i].variants) << i;
  }
  // The generator tags devices and referrers: the features see them.
  size_t mobile = 0, search = 0, converted = 0;
  for (const auto& r : a) {
    mobile += r.example.features[13] > 0;
    search += r.example.features[15] > 0;
    converted += r.example.converted;
  }
  EXPECT_GT(mobile, a.size() / 10);
  EXPECT_GT(search, a.size() / 10);
  EXPECT_GT(converted, 0U);
}

TEST_F(RegistryTest, TrainRegisterPromoteAndLoad) {
  ExampleCollector c(2, core::kDefaultSessionGapMs);
  auto set = BuildTrainingSet(Rows(&c, 2), 0.2);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_LT(set->train_window.to_ms, set->holdout_window.from_ms);
  EXPECT_GT(set->holdout.rows(), set->train.rows() / 10);
  ASSERT_EQ(set->encoder.size(), core::kBaseFeatures + 7);  // 2 + 3 + 2 variants

  TrainOptions o;
  o.rounds = 40;
  RegisterOptions r;
  r.input = "master";
  r.now_ms = 1'795'514'400'000;
  auto first = TrainAndRegister(*set, o, r, store_.get());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->info.version, 1);
  EXPECT_TRUE(first->promoted) << first->decision;
  EXPECT_GT(first->holdout.auc, 0.6);  // the checkout funnel and the devices carry signal
  EXPECT_EQ(*store_->CurrentModel(), 1);

  // A worse model (trained on inverted labels) is registered but not promoted...
  TrainingSet inverted = *set;
  for (float& y : inverted.train.y) y = 1 - y;
  auto second = TrainAndRegister(inverted, o, r, store_.get());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->info.version, 2);
  EXPECT_FALSE(second->promoted);
  ASSERT_TRUE(second->previous_on_holdout.has_value());
  EXPECT_EQ(second->previous_on_holdout->auc, first->holdout.auc);  // same holdout, same model
  EXPECT_NE(second->decision.find("not promoted"), std::string::npos) << second->decision;
  EXPECT_EQ(*store_->CurrentModel(), 1);
  // ... unless forced.
  RegisterOptions forced = r;
  forced.force = true;
  auto third = TrainAndRegister(inverted, o, forced, store_.get());
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->promoted);
  EXPECT_EQ(*store_->CurrentModel(), 3);

  // Loading gives the same predictions as the trained booster did on the holdout.
  auto loaded = LoadModel(store_.get(), 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->info.version, 1);
  EXPECT_EQ((*loaded)->encoder.columns(), set->encoder.columns());
  std::vector<float> p;
  ASSERT_TRUE((*loaded)->booster->Predict(set->holdout.x, &p).ok());
  EXPECT_EQ(Evaluate(p, set->holdout.y).auc, first->holdout.auc);

  auto listed = store_->ListModels();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3U);
  auto cols = MetadataColumns((*listed)[0].metadata);
  ASSERT_TRUE(cols.ok());
  EXPECT_EQ(*cols, set->encoder.columns());
  EXPECT_EQ(LoadModel(store_.get(), 9).status().code(), StatusCode::kNotFound);
}

// Without a current version the bar is chance: a model that ranks worse than a coin is
// registered, not promoted.
TEST_F(RegistryTest, FirstModelNoBetterThanChanceIsNotPromoted) {
  ExampleCollector c(2, core::kDefaultSessionGapMs);
  auto set = BuildTrainingSet(Rows(&c, 2), 0.2);
  ASSERT_TRUE(set.ok());
  TrainingSet inverted = *set;
  for (float& y : inverted.train.y) y = 1 - y;
  TrainOptions o;
  o.rounds = 20;
  auto out = TrainAndRegister(inverted, o, RegisterOptions{}, store_.get());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_LT(out->holdout.auc, 0.5);
  EXPECT_FALSE(out->promoted);
  EXPECT_NE(out->decision.find("no better than chance"), std::string::npos) << out->decision;
  EXPECT_EQ(*store_->CurrentModel(), 0);
}

// The native evaluation gives XGBoost's probabilities bit for bit on every real example.
TEST_F(RegistryTest, ForestEqualsXgboostOnEveryExample) {
  ExampleCollector c(2, core::kDefaultSessionGapMs);
  auto set = BuildTrainingSet(Rows(&c, 2), 0.2);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  for (const int depth : {2, 4, 6}) {
    TrainOptions o;
    o.rounds = 60;
    o.max_depth = depth;
    auto trained = Booster::Train(set->train, o);
    ASSERT_TRUE(trained.ok());
    auto bytes = (*trained)->Save();
    auto loaded = Booster::Load(*bytes, set->encoder.size());
    ASSERT_TRUE(loaded.ok());
    auto forest = Forest::FromBooster(**loaded);
    ASSERT_TRUE(forest.ok()) << forest.status().ToString();
    EXPECT_EQ(forest->trees(), 60U);
    EXPECT_GT(forest->checked_rows(), 0U);
    for (const Dataset* d : {&set->train, &set->holdout}) {
      std::vector<float> want, got;
      ASSERT_TRUE((*loaded)->Predict(d->x, &want).ok());
      forest->Predict(d->x, &got);
      ASSERT_EQ(got.size(), want.size());
      size_t differ = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0 ? 1 : 0;
      }
      EXPECT_EQ(differ, 0U) << "depth " << depth << ": " << differ << " of " << got.size();
    }
  }
}

TEST(TrainingSetTest, RefusesWhatCannotBeSplitOrLearned) {
  EXPECT_EQ(BuildTrainingSet({}, 0.2).status().code(), StatusCode::kFailedPrecondition);
  std::vector<VariantPair> none;
  std::vector<ExampleCollector::Row> rows(10);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].example.session_start_ts = static_cast<int64_t>(i) * 1000;
    rows[i].variants = &none;
  }
  const auto s = BuildTrainingSet(rows, 0.2);
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("no converting session"), std::string::npos);
  EXPECT_EQ(BuildTrainingSet(rows, 1.5).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace duet::model

namespace duet::model {
namespace {

// ModelCache follows promotions, and keeps serving the version it has when a promoted one
// cannot be loaded.
TEST(ModelCacheTest, FollowsPromotionsAndRefusesBrokenModels) {
  const auto path = std::filesystem::path(::testing::TempDir()) /
                    ("duet_model_cache_" + std::to_string(::getpid()) + ".sqlite");
  std::filesystem::remove(path);
  auto store = store::OpenStore("sqlite:" + path.string());
  ASSERT_TRUE(store.ok());
  // A small model over the base columns.
  Dataset d;
  d.features = core::kBaseFeatures;
  for (int i = 0; i < 400; ++i) {
    for (size_t c = 0; c < d.features; ++c) d.x.push_back(static_cast<float>((i * 7 + c) % 13));
    d.y.push_back(i % 13 < 5 ? 1.0F : 0.0F);
  }
  TrainOptions o;
  o.rounds = 5;
  auto booster = Booster::Train(d, o);
  ASSERT_TRUE(booster.ok());
  auto bytes = (*booster)->Save();
  ASSERT_TRUE(bytes.ok());
  std::string meta = R"({"schema":"duet.model.v1","columns":[)";
  for (size_t c = 0; c < core::kBaseFeatures; ++c) {
    meta += (c > 0 ? ",\"" : "\"") + std::string(core::kBaseFeatureNames[c]) + "\"";
  }
  meta += "]}";

  std::vector<std::pair<bool, int64_t>> loads;
  ModelCache cache(
      store->get(), [&](bool ok, int64_t v) { loads.emplace_back(ok, v); }, [] { return 5; });
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Current(), nullptr);  // nothing promoted yet

  ASSERT_TRUE((*store)->RegisterModel(meta, *bytes, 1).ok());
  ASSERT_TRUE((*store)->PromoteModel(1, 0).ok());
  ASSERT_TRUE(cache.Refresh().ok());
  ASSERT_NE(cache.Current(), nullptr);
  const std::shared_ptr<const LoadedModel> v1 = cache.Current();
  EXPECT_EQ(v1->info.version, 1);

  // Version 2's bytes are not a model: refused, version 1 stays served.
  ASSERT_TRUE((*store)->RegisterModel(meta, "not a model", 2).ok());
  ASSERT_TRUE((*store)->PromoteModel(2, 1).ok());
  const Status s = cache.Refresh();
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_EQ(cache.Current(), v1);
  EXPECT_EQ(cache.health().served_version, 1);
  EXPECT_NE(cache.health().last_error.find("model version 2"), std::string::npos);

  ASSERT_TRUE((*store)->RegisterModel(meta, *bytes, 3).ok());
  ASSERT_TRUE((*store)->PromoteModel(3, 2).ok());
  ASSERT_TRUE(cache.Refresh().ok());
  EXPECT_EQ(cache.Current()->info.version, 3);
  EXPECT_EQ(cache.Versions().size(), 3U);
  // The old version stays usable by whoever still holds it.
  std::vector<float> row(core::kBaseFeatures, 1.0F), p;
  EXPECT_TRUE(v1->booster->Predict(row, &p).ok());
  const std::vector<std::pair<bool, int64_t>> want = {{true, 1}, {false, 1}, {true, 3}};
  EXPECT_EQ(loads, want);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace duet::model
