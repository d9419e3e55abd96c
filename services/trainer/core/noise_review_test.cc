#include "services/trainer/core/noise_review.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace greenloop::trainer {
namespace {

// 1000 samples of 2 classes, label 0; samples 0..299 noisy (high loss, model predicts 1).
struct World {
  SampleStats stats{1000};
  std::vector<std::uint8_t> active = std::vector<std::uint8_t>(1000, 1);
  std::vector<std::int64_t> labels = std::vector<std::int64_t>(1000, 0);
  World() {
    std::mt19937 rng(9);
    std::normal_distribution<float> clean(0.2f, 0.08f);
    std::normal_distribution<float> noisy(2.0f, 0.5f);
    std::vector<std::int64_t> positions;
    std::vector<float> losses;
    std::vector<float> probs;
    for (std::int64_t p = 0; p < 1000; ++p) {
      positions.push_back(p);
      const bool is_noisy = p < 300;
      losses.push_back(std::max(0.01f, is_noisy ? noisy(rng) : clean(rng)));
      probs.insert(probs.end(), is_noisy ? std::initializer_list<float>{0.2f, 0.8f}
                                         : std::initializer_list<float>{0.9f, 0.1f});
    }
    stats.Record(positions, losses, probs, 2);
  }
};

v1::NoiseReview Defaults() { return WithDefaults(v1::NoiseReview(), 32); }

TEST(NoiseReviewTest, AutoFixesTheConfidentlyNoisy) {
  World w;
  const ReviewSplit split = SplitForReview(w.stats, w.active, w.labels, Defaults(), v1::MODE_AUTO,
                                           [](std::size_t) { return false; });
  EXPECT_EQ(split.classified, 1000u);
  EXPECT_TRUE(split.human.empty());
  EXPECT_GT(split.automatic.size(), 250u);
  for (std::int64_t p : split.automatic) EXPECT_LT(p, 300) << "a clean sample flagged";
}

TEST(NoiseReviewTest, HitlAsksHumansMostSuspiciousFirst) {
  World w;
  const ReviewSplit split = SplitForReview(w.stats, w.active, w.labels, Defaults(), v1::MODE_HITL,
                                           [](std::size_t) { return false; });
  EXPECT_TRUE(split.automatic.empty());
  EXPECT_GT(split.human.size(), 280u);
  for (std::size_t i = 1; i < split.human_posterior.size(); ++i) {
    EXPECT_GE(split.human_posterior[i - 1], split.human_posterior[i]);
  }
}

TEST(NoiseReviewTest, HybridSendsOnlyTheAmbiguousBandToHumansAndSkipsDecided) {
  World w;
  v1::NoiseReview review = Defaults();
  review.set_auto_threshold(0.999);
  review.set_human_threshold(0.5);
  const ReviewSplit split = SplitForReview(w.stats, w.active, w.labels, review, v1::MODE_HYBRID,
                                           [](std::size_t p) { return p == 0 || p == 1; });
  EXPECT_EQ(split.classified, 998u);
  std::set<std::int64_t> both(split.automatic.begin(), split.automatic.end());
  for (std::int64_t p : split.human) EXPECT_TRUE(both.insert(p).second) << "in both lists: " << p;
  EXPECT_FALSE(both.contains(0));
  for (double q : split.human_posterior) {
    EXPECT_GE(q, 0.5);
    EXPECT_LT(q, 0.999);
  }
}

TEST(OutstandingLimitTest, StartsAtTheMinimumAndFollowsTheVerdictRate) {
  OutstandingLimit limit(10, 5.0);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limit.Room(t0), 10u);
  limit.Enqueued(10, t0);
  EXPECT_EQ(limit.Room(t0), 0u);
  limit.Answered(10);  // 10 verdicts in 1 s: 10/s × 5 s = 50 outstanding allowed
  EXPECT_NEAR(limit.Rate(t0 + absl::Seconds(1)), 10.0, 1e-9);
  EXPECT_EQ(limit.Room(t0 + absl::Seconds(1)), 50u);
  limit.Enqueued(50, t0 + absl::Seconds(1));
  EXPECT_EQ(limit.outstanding(), 50u);
  EXPECT_EQ(limit.Room(t0 + absl::Seconds(1)), 0u);
}

}  // namespace
}  // namespace greenloop::trainer
