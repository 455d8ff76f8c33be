// Booster (model/booster.h) with the real XGBoost library: training learns a signal, saving and
// loading gives identical predictions, concurrent prediction equals serial, errors are values.
#include "model/booster.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "model/evaluate.h"

namespace duet::model {
namespace {

// y = 1 with probability sigmoid(2·x0 − x1); x2 is noise; some x1 missing (NaN).
Dataset Synthetic(size_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  std::uniform_real_distribution<float> u(0, 1);
  Dataset d;
  d.features = 3;
  for (size_t i = 0; i < rows; ++i) {
    const float x0 = n(rng), x1 = n(rng), x2 = n(rng);
    const float p = 1.0f / (1.0f + std::exp(-(2 * x0 - x1)));
    d.x.insert(d.x.end(), {x0, i % 10 == 0 ? NAN : x1, x2});
    d.y.push_back(u(rng) < p ? 1.0f : 0.0f);
  }
  return d;
}

TrainOptions Small() {
  TrainOptions o;
  o.rounds = 30;
  o.max_depth = 3;
  o.threads = 2;
  return o;
}

TEST(BoosterTest, LearnsTheSignalOnAHoldout) {
  auto model = Booster::Train(Synthetic(4000, 1), Small());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Dataset holdout = Synthetic(2000, 2);
  std::vector<float> p;
  ASSERT_TRUE((*model)->Predict(holdout.x, &p).ok());
  ASSERT_EQ(p.size(), holdout.rows());
  const Evaluation e = Evaluate(p, holdout.y);
  // The Bayes-optimal AUC of this signal is about 0.86; chance is 0.5.
  EXPECT_GT(e.auc, 0.8);
  EXPECT_LT(e.log_loss, 0.55);
}

TEST(BoosterTest, SavedModelLoadsAndPredictsIdentically) {
  auto model = Booster::Train(Synthetic(1000, 3), Small());
  ASSERT_TRUE(model.ok());
  auto bytes = (*model)->Save();
  ASSERT_TRUE(bytes.ok());
  auto loaded = Booster::Load(*bytes, 3);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Dataset probe = Synthetic(500, 4);
  std::vector<float> a, b;
  ASSERT_TRUE((*model)->Predict(probe.x, &a).ok());
  ASSERT_TRUE((*loaded)->Predict(probe.x, &b).ok());
  EXPECT_EQ(a, b);
  // Training again on the same data gives the same model (deterministic).
  auto again = Booster::Train(Synthetic(1000, 3), Small());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*(*again)->Save(), *bytes);
}

TEST(BoosterTest, ConcurrentPredictionsEqualSerialOnes) {
  auto model = Booster::Train(Synthetic(1000, 5), Small());
  ASSERT_TRUE(model.ok());
  const Dataset probe = Synthetic(300, 6);
  std::vector<float> serial;
  ASSERT_TRUE((*model)->Predict(probe.x, &serial).ok());
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out;
      for (int k = 0; k < 20; ++k) {
        // One row at a time, as the predict API does for single requests.
        got[t].clear();
        for (size_t r = 0; r < probe.rows(); ++r) {
          if (!(*model)->Predict(std::span(probe.x).subspan(r * 3, 3), &out).ok()) return;
          got[t].push_back(out[0]);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g, serial);
}

TEST(BoosterTest, BadInputIsAStatus) {
  Dataset bad = Synthetic(10, 7);
  bad.y[3] = 2;
  EXPECT_EQ(Booster::Train(bad, Small()).status().code(), StatusCode::kInvalidArgument);
  Dataset ragged = Synthetic(10, 7);
  ragged.x.pop_back();
  EXPECT_EQ(Booster::Train(ragged, Small()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Booster::Load("not a model", 3).status().code(), StatusCode::kCorruption);
  auto model = Booster::Train(Synthetic(100, 8), Small());
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(Booster::Load(*(*model)->Save(), 4).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> out;
  EXPECT_EQ((*model)->Predict(std::vector<float>(4, 0.0f), &out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(XgboostVersion().empty());
}

}  // namespace
}  // namespace duet::model
