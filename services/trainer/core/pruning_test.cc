#include "services/trainer/core/pruning.h"

#include <gtest/gtest.h>

namespace greenloop::trainer {
namespace {

// 1000 samples: the even ones learnt (loss 0.1), the odd ones not (loss 2).
SampleStats HalfLearnt() {
  SampleStats stats(1000);
  std::vector<std::int64_t> positions;
  std::vector<float> losses;
  std::vector<float> probs;
  for (std::int64_t p = 0; p < 1000; ++p) {
    positions.push_back(p);
    losses.push_back(p % 2 == 0 ? 0.1f : 2.0f);
    probs.insert(probs.end(), {0.5f, 0.5f});
  }
  stats.Record(positions, losses, probs, 2);
  return stats;
}

TEST(PruningTest, LeavesOutWellLearntSamplesAndRescalesTheKeptOnes) {
  const SampleStats stats = HalfLearnt();
  const std::vector<std::uint8_t> active(1000, 1);
  v1::Pruning pruning;
  pruning.set_ratio(0.5);
  const EpochPlan plan = PlanEpoch(active, stats, pruning, 1, 10, 42);
  // About half of the 500 learnt samples are pruned; no hard sample is.
  EXPECT_GT(plan.pruned, 200u);
  EXPECT_LT(plan.pruned, 300u);
  EXPECT_EQ(plan.positions.size() + plan.pruned, 1000u);
  double expected_weight = 0;  // sum of kept scales over the learnt samples ≈ 500
  for (std::int64_t p : plan.positions) {
    if (p % 2 == 1) {
      EXPECT_EQ(plan.scale[static_cast<std::size_t>(p)], 1.0f);
    } else {
      EXPECT_FLOAT_EQ(plan.scale[static_cast<std::size_t>(p)], 2.0f);
      expected_weight += 2.0;
    }
  }
  EXPECT_NEAR(expected_weight, 500, 60);  // unbiased: the learnt part keeps its total weight
  // Same inputs, same plan.
  EXPECT_EQ(PlanEpoch(active, stats, pruning, 1, 10, 42).positions, plan.positions);
}

TEST(PruningTest, AnnealingTailAndInactiveSamples) {
  const SampleStats stats = HalfLearnt();
  std::vector<std::uint8_t> active(1000, 1);
  active[1] = 0;
  v1::Pruning pruning;
  pruning.set_ratio(0.5);
  pruning.set_anneal_fraction(0.2);
  EXPECT_FALSE(InAnnealing(pruning, 8, 10));
  EXPECT_TRUE(InAnnealing(pruning, 9, 10));
  const EpochPlan last = PlanEpoch(active, stats, pruning, 10, 10, 1);
  EXPECT_EQ(last.pruned, 0u);
  EXPECT_EQ(last.positions.size(), 999u);
  for (float s : last.scale) EXPECT_EQ(s, 1.0f);
  v1::Pruning off;
  EXPECT_EQ(PlanEpoch(active, stats, off, 1, 10, 1).pruned, 0u);
  // Nothing seen yet: everything trains.
  EXPECT_EQ(PlanEpoch(active, SampleStats(1000), pruning, 1, 10, 1).positions.size(), 999u);
}

}  // namespace
}  // namespace greenloop::trainer
