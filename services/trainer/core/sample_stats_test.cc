#include "services/trainer/core/sample_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace greenloop::trainer {
namespace {

TEST(SampleStatsTest, RecordsLossRelativeToTheBatchAndThePrediction) {
  SampleStats stats(4);
  const std::vector<std::int64_t> positions = {1, 3};
  const std::vector<float> losses = {1.0f, 3.0f};  // batch mean 2
  const std::vector<float> probs = {0.7f, 0.3f, 0.2f, 0.8f};
  stats.Record(positions, losses, probs, 2);
  EXPECT_FALSE(stats.seen(0));
  EXPECT_TRUE(stats.seen(1));
  EXPECT_EQ(stats.seen_count(), 2u);
  EXPECT_FLOAT_EQ(stats.loss(3), 3.0f);
  EXPECT_FLOAT_EQ(stats.relative_loss(1), 0.5f);
  EXPECT_FLOAT_EQ(stats.relative_loss(3), 1.5f);
  EXPECT_EQ(stats.predicted(1), 0);
  EXPECT_EQ(stats.predicted(3), 1);
  EXPECT_FLOAT_EQ(stats.predicted_probability(3), 0.8f);
}

TEST(SampleStatsTest, EpochBuffersSummedAcrossRanksGiveEveryRankTheUnion) {
  SampleStats rank0(4);
  SampleStats rank1(4);
  const std::vector<float> probs = {0.1f, 0.9f, 0.6f, 0.4f};
  rank0.Record(std::vector<std::int64_t>{0, 2}, std::vector<float>{1.0f, 2.0f}, probs, 2);
  rank1.Record(std::vector<std::int64_t>{1, 3}, std::vector<float>{4.0f, 4.0f}, probs, 2, 7);
  std::vector<float> sum = rank0.EpochBuffer();
  const std::vector<float> other = rank1.EpochBuffer();
  for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += other[i];
  rank0.Absorb(sum);
  rank1.Absorb(sum);
  for (SampleStats* s : {&rank0, &rank1}) {
    for (std::size_t p = 0; p < 4; ++p) EXPECT_TRUE(s->seen(p)) << p;
    EXPECT_FLOAT_EQ(s->loss(2), 2.0f);
    EXPECT_FLOAT_EQ(s->loss(3), 4.0f);
    EXPECT_EQ(s->predicted(0), 1);
    EXPECT_EQ(s->predicted(2), 0);
    EXPECT_NEAR(s->predicted_probability(2), 0.6f, 1e-6);
    EXPECT_EQ(s->recorded_step(3), 7u);
    EXPECT_EQ(s->recorded_step(0), 0u);
  }
  rank0.NewEpoch();
  const std::vector<float> empty = rank0.EpochBuffer();
  for (float v : empty) EXPECT_EQ(v, 0.0f);
}

TEST(FitTwoGaussiansTest, SeparatesALowAndAHighComponent) {
  std::mt19937 rng(3);
  std::normal_distribution<double> low(0.3, 0.1);
  std::normal_distribution<double> high(2.5, 0.4);
  std::vector<double> values;
  for (int i = 0; i < 700; ++i) values.push_back(low(rng));
  for (int i = 0; i < 300; ++i) values.push_back(high(rng));
  const MixtureFit fit = FitTwoGaussians(values);
  ASSERT_TRUE(fit.separated);
  EXPECT_NEAR(fit.mean_low, 0.3, 0.05);
  EXPECT_NEAR(fit.mean_high, 2.5, 0.1);
  EXPECT_NEAR(fit.weight_high, 0.3, 0.03);
  int errors = 0;
  for (int i = 0; i < 1000; ++i) errors += (fit.posterior_high[i] > 0.5) != (i >= 700) ? 1 : 0;
  EXPECT_LT(errors, 5);
}

TEST(FitTwoGaussiansTest, OneComponentIsNotSplit) {
  std::mt19937 rng(5);
  std::normal_distribution<double> only(1.0, 0.2);
  std::vector<double> values;
  for (int i = 0; i < 500; ++i) values.push_back(only(rng));
  const MixtureFit fit = FitTwoGaussians(values);
  EXPECT_FALSE(fit.separated);
  for (double p : fit.posterior_high) EXPECT_EQ(p, 0.0);
  EXPECT_FALSE(FitTwoGaussians(std::vector<double>{1, 1, 1, 1, 1}).separated);
  EXPECT_FALSE(FitTwoGaussians(std::vector<double>{1, 2}).separated);
}

}  // namespace
}  // namespace greenloop::trainer
