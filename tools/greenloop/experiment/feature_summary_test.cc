// The `features:` lines: means over seeds, energy to target only of runs that reached it, and the
// step-cost share against the same seed's baseline.
#include "tools/greenloop/experiment/feature_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace greenloop::experiment {
namespace {

using ::testing::HasSubstr;

cli::ModeResult MakeRun(const std::string& mode, std::uint32_t seed, double test, double saliency,
                        std::uint64_t steps, double joules) {
  cli::ModeResult m;
  m.set_mode(mode);
  m.set_seed_index(seed);
  m.set_state("succeeded");
  m.set_test_accuracy(test);
  m.set_decoy_saliency(saliency);
  m.set_steps(steps);
  m.set_energy_joules(joules);
  return m;
}

TEST(FeatureLines, AverageSeedsAndPriceAStepAgainstTheBaselines) {
  cli::ExperimentResult r;
  r.set_dataset("fashion_mnist");
  for (std::uint32_t seed : {0u, 1u}) {
    *r.add_modes() = MakeRun("baseline", seed, 0.50 + 0.02 * seed, 0.6, 100, 100);  // 1 J per step
    cli::ModeResult f = MakeRun("hitl_features", seed, 0.86, 0.04 + 0.02 * seed, 80, 200);
    f.set_energy_to_target_joules(90 + 10 * seed);  // 60 steps at 1.5 and 1.67 J a step
    f.set_steps_to_target(60);
    f.mutable_crowd()->set_modelled_seconds(600);
    *r.add_modes() = f;
  }
  const std::string lines = FeatureLines(r);
  EXPECT_THAT(lines, HasSubstr("features: fashion_mnist baseline test=0.5100 decoy_saliency=0.60 "
                               "energy_to_target=nan J share=nan rater_min=0 seeds=2\n"));
  EXPECT_THAT(lines,
              HasSubstr("features: fashion_mnist hitl_features test=0.8600 decoy_saliency=0.05 "
                        "energy_to_target=95.0 J share=1.58 rater_min=10 seeds=2\n"));
  EXPECT_TRUE(HasDecoy(r));
  const std::string md = FeatureMarkdown(r);
  EXPECT_THAT(md, HasSubstr("## Feature feedback (planted decoy)\n\n```\nfeatures: "));
  EXPECT_THAT(md, HasSubstr("hitl_features test=0.8600"));
}

// What the first seed's models look at: its pictures, named by mode, and its words.
TEST(FeatureMarkdown, ShowsWhatTheFirstSeedsModelsLookAt) {
  cli::ExperimentResult r;
  r.set_dataset("fashion_mnist");
  cli::ModeResult first = MakeRun("baseline", 0, 0.5, 0.2, 10, 10);
  first.set_explanation_png("\x89PNG-baseline");
  cli::ModeResult second = MakeRun("baseline", 1, 0.5, 0.2, 10, 10);
  second.set_explanation_png("\x89PNG-seed1");
  cli::ModeResult text = MakeRun("hitl_features", 0, 0.9, 0.01, 10, 10);
  text.add_explanation_words()->add_words("hello");
  *text.add_explanation_words()->mutable_words()->Add() = "free";
  text.mutable_explanation_words(1)->add_words("money");
  for (const auto& m : {first, second, text}) *r.add_modes() = m;
  const auto pictures = ExplanationPictures(r);
  ASSERT_EQ(pictures.size(), 1u);
  EXPECT_EQ(pictures[0].first, "explanation-baseline.png");
  EXPECT_EQ(pictures[0].second, "\x89PNG-baseline");
  const std::string md = FeatureMarkdown(r);
  EXPECT_THAT(md, HasSubstr("### What the final models look at (first seed)"));
  EXPECT_THAT(md, HasSubstr("![baseline](explanation-baseline.png)"));
  EXPECT_THAT(md, HasSubstr("| hitl_features | 1 | free money |"));
}

TEST(FeatureLines, ASaliencyNoRunMeasuredIsNan) {
  cli::ExperimentResult r;
  r.set_dataset("fashion_mnist");
  *r.add_modes() = MakeRun("baseline", 0, 0.5, 0.2, 10, 10);
  cli::ModeResult unscored = MakeRun("clean", 0, 0.8, 0, 10, 10);
  unscored.clear_decoy_saliency();
  *r.add_modes() = unscored;
  EXPECT_THAT(FeatureLines(r), HasSubstr("clean test=0.8000 decoy_saliency=nan "));
}

TEST(FeatureLines, NothingWithoutADecoy) {
  cli::ExperimentResult r;
  cli::ModeResult m;
  m.set_mode("baseline");
  m.set_state("succeeded");
  *r.add_modes() = m;
  EXPECT_EQ(FeatureLines(r), "");
  EXPECT_EQ(FeatureMarkdown(r), "");
}

}  // namespace
}  // namespace greenloop::experiment
