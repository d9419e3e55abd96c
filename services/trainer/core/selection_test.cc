#include "services/trainer/core/selection.h"

#include <gtest/gtest.h>

#include <vector>

namespace greenloop::trainer {
namespace {

// Three samples, three classes: sure and right, sure and wrong (class 2), unsure.
const std::vector<float> kProbs = {0.90f, 0.05f, 0.05f,  //
                                   0.05f, 0.05f, 0.90f,  //
                                   0.40f, 0.35f, 0.25f};
const std::vector<std::int64_t> kGiven = {0, 0, 0};

TEST(RankCandidates, LossPutsTheSureButContradictedSampleFirst) {
  const std::vector<ScoredCandidate> r =
      RankCandidates(kProbs, kGiven, 3, v1::SELECTION_SCORE_LOSS, 3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].index, 1u);
  EXPECT_EQ(r[0].other, 2);
  EXPECT_NEAR(r[0].other_p, 0.90, 1e-6);
  EXPECT_EQ(r[0].top, 2);
  EXPECT_EQ(r[1].index, 2u);
  EXPECT_EQ(r[2].index, 0u);
}

TEST(RankCandidates, MarginAndEntropyPutTheUnsureSampleFirstAndWantedCuts) {
  for (v1::SelectionScore score : {v1::SELECTION_SCORE_MARGIN, v1::SELECTION_SCORE_ENTROPY}) {
    const std::vector<ScoredCandidate> r = RankCandidates(kProbs, kGiven, 3, score, 1);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].index, 2u) << score;
    EXPECT_EQ(r[0].top, 0);
    EXPECT_EQ(r[0].other, 1);
  }
}

TEST(RankCandidates, ALabelOutsideTheRowScoresAsCertainlyWrong) {
  const std::vector<float> probs = {0.5f, 0.5f};
  const std::vector<std::int64_t> given = {7};
  const std::vector<ScoredCandidate> r =
      RankCandidates(probs, given, 2, v1::SELECTION_SCORE_LOSS, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_GT(r[0].score, 20.0);
  EXPECT_TRUE(RankCandidates(probs, given, 0, v1::SELECTION_SCORE_LOSS, 1).empty());
}

TEST(RouteCandidate, EachModeRoutesAsDocumented) {
  EXPECT_TRUE(RouteCandidate(v1::MODE_AUTO, 0.9, 0.8, 0.1).automatic);
  EXPECT_FALSE(RouteCandidate(v1::MODE_AUTO, 0.7, 0.8, 0.1).automatic);
  EXPECT_FALSE(RouteCandidate(v1::MODE_AUTO, 0.7, 0.8, 0.1).human);
  EXPECT_TRUE(RouteCandidate(v1::MODE_HITL, 0.0, 0.8, 0.1).human);
  EXPECT_FALSE(RouteCandidate(v1::MODE_HITL, 0.99, 0.8, 0.1).automatic);
  const CandidateRoute above = RouteCandidate(v1::MODE_HYBRID, 0.95, 0.8, 0.1);
  EXPECT_TRUE(above.automatic);
  EXPECT_FALSE(above.human);
  const CandidateRoute in_band = RouteCandidate(v1::MODE_HYBRID, 0.75, 0.8, 0.1);
  EXPECT_FALSE(in_band.automatic);
  EXPECT_TRUE(in_band.human);
  const CandidateRoute below = RouteCandidate(v1::MODE_HYBRID, 0.5, 0.8, 0.1);
  EXPECT_FALSE(below.automatic || below.human);
  const CandidateRoute baseline = RouteCandidate(v1::MODE_BASELINE, 0.99, 0.8, 0.1);
  EXPECT_FALSE(baseline.automatic || baseline.human);
}

v1::Verdict LabelVerdict(std::uint64_t ref, bool correct) {
  v1::Verdict v;
  v.mutable_sample()->set_index(ref);
  v.set_label_correct(correct);
  return v;
}

TEST(ThresholdCalibrator, MovesToTheValueThatSeparatesTheHumansAnswers) {
  ThresholdCalibrator c(0.8);
  c.Offer(1, 0.60);
  c.Offer(2, 0.65);
  c.Offer(3, 0.70);
  c.Offer(4, 0.55);
  c.Observe(LabelVerdict(99, false));  // never offered: ignored
  EXPECT_DOUBLE_EQ(c.threshold(), 0.8);
  EXPECT_TRUE(c.points().empty());
  c.Observe(LabelVerdict(1, true));
  c.Observe(LabelVerdict(2, false));
  c.Observe(LabelVerdict(3, false));
  c.Observe(LabelVerdict(4, true));
  EXPECT_DOUBLE_EQ(c.threshold(), 0.65);  // wrong from 0.65 up, right below
  EXPECT_EQ(c.points().size(), 4u);
  EXPECT_TRUE(c.in_band().empty());
  c.Observe(LabelVerdict(2, true));  // answered already: ignored
  EXPECT_EQ(c.points().size(), 4u);
}

TEST(ThresholdCalibrator, ConsensusLabelsCountAndTheThresholdStaysInItsRange) {
  ThresholdCalibrator c(0.8);
  c.Offer(5, 0.2);
  v1::Verdict v;
  v.mutable_sample()->set_index(5);
  v.set_given_label(1);
  v.set_consensus_label(3);
  c.Observe(v);
  EXPECT_DOUBLE_EQ(c.threshold(), 0.5);  // 0.2 clamped up
  c.Forget(6);
  c.Offer(6, 0.9);
  c.Forget(6);
  EXPECT_TRUE(c.in_band().empty());
  c.Restore(0.7, {{0.6, true}}, {{8, 0.75}});
  EXPECT_DOUBLE_EQ(c.threshold(), 0.7);
  EXPECT_EQ(c.points().size(), 1u);
  EXPECT_EQ(c.in_band().at(8), 0.75);
}

}  // namespace
}  // namespace greenloop::trainer
