#include "util/exact_sum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace duet {
namespace {

TEST(ExactSumTest, EmptyIsZero) {
  ExactSum s;
  EXPECT_TRUE(s.IsZero());
  EXPECT_EQ(s.Value(), 0.0);
}

TEST(ExactSumTest, ClassicCancellationIsExact) {
  ExactSum s;
  s.Add(1e100);
  s.Add(1.0);
  s.Add(-1e100);
  EXPECT_EQ(s.Value(), 1.0);
}

TEST(ExactSumTest, TenthsSumToCorrectlyRoundedValue) {
  // math.fsum([0.1] * 10) == 1.0, while naive summation gives 0.9999999999999999.
  ExactSum s;
  for (int i = 0; i < 10; ++i) s.Add(0.1);
  EXPECT_EQ(s.Value(), 1.0);
}

TEST(ExactSumTest, OrderAndSplitDoNotChangeTheResult) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mag(-20, 20);
  std::vector<double> xs;
  for (int i = 0; i < 5000; ++i)
    xs.push_back(std::pow(10.0, mag(rng)) * (rng() % 7 == 0 ? 0.5 : 1.37));
  ExactSum a;
  for (const double x : xs) a.Add(x);
  std::shuffle(xs.begin(), xs.end(), rng);
  ExactSum b1, b2;
  for (size_t i = 0; i < xs.size(); ++i) (i % 3 == 0 ? b1 : b2).Add(xs[i]);
  b1.Merge(b2);
  EXPECT_EQ(a.Value(), b1.Value());
}

TEST(ExactSumTest, SubnormalsAndExtremesAreExact) {
  ExactSum s;
  const double tiny = std::numeric_limits<double>::denorm_min();
  s.Add(tiny);
  s.Add(tiny);
  EXPECT_EQ(s.Value(), 2 * tiny);
  ExactSum big;
  big.Add(std::numeric_limits<double>::max());
  EXPECT_EQ(big.Value(), std::numeric_limits<double>::max());
  big.Add(std::numeric_limits<double>::max());
  EXPECT_TRUE(std::isinf(big.Value()));
}

TEST(ExactSumTest, TiesRoundToEven) {
  // 2^53 + 1 is exactly halfway between 2^53 and 2^53 + 2: rounds to the even 2^53.
  ExactSum s;
  s.Add(9007199254740992.0);
  s.Add(1.0);
  EXPECT_EQ(s.Value(), 9007199254740992.0);
  // A tiny extra amount breaks the tie upwards.
  s.Add(1e-300);
  EXPECT_EQ(s.Value(), 9007199254740994.0);
}

TEST(ExactSumTest, SubtractionUndoesAddition) {
  ExactSum s;
  s.Add(12.75);
  s.Add(0.1);
  s.Add(-0.1);
  EXPECT_EQ(s.Value(), 12.75);
}

}  // namespace
}  // namespace duet
