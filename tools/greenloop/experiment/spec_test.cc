#include "tools/greenloop/experiment/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace greenloop::experiment {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Source(const std::string& rel) {
  const char* root = std::getenv("GREENLOOP_SOURCE_DIR");
  return std::string(root != nullptr ? root : ".") + "/" + rel;
}

std::string Write(const std::string& text) {
  static int n = 0;
  const std::string path =
      (std::filesystem::temp_directory_path() /
       ("spec-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".yaml"))
          .string();
  std::ofstream(path) << text;
  return path;
}

constexpr const char* kMinimal = "name: t\ndataset: fashion_mnist\nbudget: {max_epochs: 1}\n";

TEST(SpecTest, ShippedExamplesLoad) {
  for (const char* f :
       {"examples/fashion-mnist-noise30.yaml", "examples/spam-assassin-noise.yaml",
        "examples/tiny.yaml", "examples/fashion-mnist-cd40.yaml", "examples/quick.yaml"}) {
    absl::StatusOr<Spec> s = LoadSpec(Source(f));
    ASSERT_TRUE(s.ok()) << f << ": " << s.status();
    EXPECT_EQ(s->modes.front(), v1::MODE_BASELINE) << f;
    EXPECT_TRUE(s->target_is_baseline_best) << f;
  }
  absl::StatusOr<Spec> fm = LoadSpec(Source("examples/fashion-mnist-noise30.yaml"));
  EXPECT_DOUBLE_EQ(fm->noise_rate, 0.30);
  EXPECT_EQ(fm->noise_kind, v1::LABEL_NOISE_KIND_SYMMETRIC);
}

// The decoy examples: the crowd knows the planted feature (corners, words), and the run configs
// carry the decoy and the feature method.
TEST(SpecTest, DecoyExamplesTellTheCrowdWhatWasPlanted) {
  absl::StatusOr<Spec> images = LoadSpec(Source("examples/fashion-mnist-decoy.yaml"));
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->crowd.irrelevant_cells, (std::vector<std::uint32_t>{0, 6, 42, 48}));
  EXPECT_TRUE(images->crowd.irrelevant_words.empty());
  absl::StatusOr<Spec> text = LoadSpec(Source("examples/spam-assassin-decoy.yaml"));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->crowd.irrelevant_words, (std::vector<std::string>{"qzxham", "qzxspam"}));
  EXPECT_TRUE(text->crowd.irrelevant_cells.empty());
  const v1::RunConfig c = RunConfigFor(*text, v1::MODE_HITL_FEATURES, "exp-1", "rules-1", 0);
  EXPECT_TRUE(c.decoy().enabled());
  EXPECT_EQ(c.decoy().tokens_per_sample(), 20u);
  EXPECT_EQ(c.feature_feedback().method(), v1::FEATURE_METHOD_REMOVE);
  EXPECT_EQ(c.feature_feedback().item_questions(), 0u);  // the class rules
  absl::StatusOr<Spec> items = LoadSpec(Source("examples/fashion-mnist-decoy-items.yaml"));
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(RunConfigFor(*items, v1::MODE_HITL_FEATURES, "exp-1", "masks-1", 0)
                .feature_feedback()
                .item_questions(),
            100u);
  absl::StatusOr<Spec> bad = LoadSpec(
      Write(std::string(kMinimal) + "decoy: {enabled: true}\nfeatures: {method: remove}\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("remove drops words"), std::string_view::npos)
      << bad.status();
}

// A model of the zoo and its shape reach every mode's run config.
TEST(SpecTest, AModelOfTheZooAndItsShapeReachTheRunConfig) {
  absl::StatusOr<Spec> s = LoadSpec(
      Write(std::string(kMinimal) + "model: resnet\nmodel_shape: {width: 32, depth: 2}\n"));
  ASSERT_TRUE(s.ok()) << s.status();
  const v1::RunConfig c = RunConfigFor(*s, v1::MODE_BASELINE, "exp-1", "", 0);
  EXPECT_EQ(c.model_kind(), v1::MODEL_KIND_RESNET);
  EXPECT_EQ(c.model_shape().width(), 32u);
  EXPECT_EQ(c.model_shape().depth(), 2u);
  absl::StatusOr<Spec> text = LoadSpec(
      Write("name: t\ndataset: spam_assassin\nbudget: {max_epochs: 1}\nmodel: mobilenet\n"));
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("does not fit dataset"));
  absl::StatusOr<Spec> transformer =
      LoadSpec(Write("name: t\ndataset: spam_assassin\nbudget: {max_epochs: 1}\n"
                     "model: transformer\nmodel_shape: {width: 32, depth: 1}\n"));
  ASSERT_TRUE(transformer.ok()) << transformer.status();
  EXPECT_EQ(RunConfigFor(*transformer, v1::MODE_BASELINE, "exp-1", "", 0).model_kind(),
            v1::MODEL_KIND_TRANSFORMER);
  absl::StatusOr<Spec> bench =
      LoadSpec(Write(std::string(kMinimal) +
                     "threads: 1\ninference: {batch_sizes: [1, 64], seconds_per_batch: 2}\n"));
  ASSERT_TRUE(bench.ok()) << bench.status();
  const v1::RunConfig b = RunConfigFor(*bench, v1::MODE_BASELINE, "exp-1", "", 0);
  EXPECT_EQ(b.threads(), 1u);
  EXPECT_THAT(b.inference().batch_sizes(), ::testing::ElementsAre(1u, 64u));
  EXPECT_EQ(b.inference().seconds_per_batch(), 2.0);
}

TEST(SpecTest, DefaultsFollowCifar10N) {
  absl::StatusOr<Spec> s = LoadSpec(Write(kMinimal));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NEAR(1 - s->crowd.accuracy_mean, 0.175, 0.01);
  EXPECT_DOUBLE_EQ(s->crowd.seconds_median, 4.2);
  EXPECT_EQ(s->crowd.ratings_per_item, 3);
  ASSERT_EQ(s->modes.size(), 4u);
}

TEST(SpecTest, UnknownKeyIsOneLineWithFileLineAndSuggestion) {
  const std::string path = Write(std::string(kMinimal) + "crowd:\n  ratrs: 3\n");
  absl::StatusOr<Spec> s = LoadSpec(path);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(s.status().message());
  EXPECT_THAT(msg, HasSubstr(path + ":5"));
  EXPECT_THAT(msg, HasSubstr("unknown key 'crowd.ratrs'"));
  EXPECT_THAT(msg, HasSubstr("crowd.raters"));
  EXPECT_THAT(msg, Not(HasSubstr("\n")));
}

TEST(SpecTest, ImpossibleValuesAreRejected) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"noise: {rate: 1.5}\n", "noise.rate"},
      {"target_accuracy: 1.2\n", "target_accuracy"},
      {"modes: [baseline, manual]\n", "unknown mode 'manual'"},
      {"modes: [hitl, hitl]\n", "twice"},
      {"modes: [hitl]\n", "baseline_best needs the baseline"},
      {"crowd: {raters: 0}\n", "crowd.raters is 0"},
      {"crowd: {raters: 2, ratings_per_item: 3}\n", "below crowd.ratings_per_item"},
      {"model: bag_of_words\n", "does not fit"},
      {"model: cnn\nmodel_shape: {depth: 5}\n", "model_shape.depth must be at most 4"},
      {"model: lenet5\nmodel_shape: {width: 8}\n", "MODEL_KIND_LENET5 has a fixed shape"},
      {"inference: {batch_sizes: [0]}\n", "inference.batch_sizes: '0' is not a batch size"},
      {"ranks: 2\n", "services.trainers has 1 addresses but ranks is 2"},
      {"crowd: {seconds_median: -1}\n", "crowd.seconds_median"},
      {"dataset: cifar\n", "dataset"},
      {"selection: {pool: everything}\n", "selection.pool"},
      {"seeds: 0\n", "seeds"},
      {"pruning: {ratio: 1.0}\n", "pruning.ratio"},
      {"modes: [baseline, prune]\n", "pruning.ratio"},
      {"max_train_samples: 59000\nvalidation_samples: 2000\n", "validation_samples"},
      {"noise_review: {auto_threshold: 0.6, human_threshold: 0.7}\n",
       "noise_review.human_threshold"},
      {"crowd: {agreeing_ratings: 3}\n", "crowd.agreeing_ratings"},
      {"crowd: {agreeing_ratings: 1}\n", "crowd.agreeing_ratings"},
      {"crowd: {lease_batch: 0}\n", "crowd.lease_batch"},
      {"crowd: {lease_batch: 21}\n", "crowd.lease_batch"},
  };
  for (const auto& [extra, expected] : cases) {
    absl::StatusOr<Spec> s = LoadSpec(Write(std::string(kMinimal) + extra));
    ASSERT_FALSE(s.ok()) << extra;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(expected)) << extra;
    EXPECT_THAT(std::string(s.status().message()), Not(HasSubstr("\n"))) << extra;
  }
  absl::StatusOr<Spec> no_budget = LoadSpec(Write("name: t\ndataset: fashion_mnist\n"));
  EXPECT_THAT(std::string(no_budget.status().message()), HasSubstr("budget"));
  EXPECT_EQ(LoadSpec("/nonexistent/spec.yaml").status().code(), absl::StatusCode::kNotFound);
}

TEST(SpecTest, BaselineRunsFirstWhenItSetsTheTarget) {
  absl::StatusOr<Spec> s =
      LoadSpec(Write(std::string(kMinimal) + "modes: [hitl, auto, baseline]\n"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->modes, (std::vector<v1::Mode>{v1::MODE_BASELINE, v1::MODE_HITL, v1::MODE_AUTO}));
}

TEST(SpecTest, RunConfigCarriesTheSpec) {
  absl::StatusOr<Spec> s = LoadSpec(Source("examples/fashion-mnist-noise30.yaml"));
  ASSERT_TRUE(s.ok());
  const v1::RunConfig hitl = RunConfigFor(*s, v1::MODE_HITL, "exp-1", "exp-1-hitl", 0.8);
  EXPECT_EQ(hitl.dataset(), v1::DATASET_FASHION_MNIST);
  EXPECT_EQ(hitl.max_train_samples(), 10000u);
  EXPECT_DOUBLE_EQ(hitl.label_noise().rate(), 0.30);
  EXPECT_EQ(hitl.feedback().campaign_id(), "exp-1-hitl");
  EXPECT_EQ(hitl.feedback().endpoint(), "127.0.0.1:7102");
  // The trainer creates the campaign from these (the crowd's k, gold share and display).
  EXPECT_EQ(hitl.feedback().ratings_per_item(),
            static_cast<std::uint32_t>(s->crowd.ratings_per_item));
  EXPECT_DOUBLE_EQ(hitl.feedback().gold_share(), s->crowd.gold_share);
  EXPECT_EQ(hitl.feedback().show_model_prediction(), s->crowd.show_model_prediction);
  EXPECT_EQ(hitl.feedback().agreeing_ratings(),
            static_cast<std::uint32_t>(s->crowd.agreeing_ratings));
  EXPECT_DOUBLE_EQ(hitl.target_accuracy(), 0.8);
  EXPECT_EQ(hitl.experiment_id(), "exp-1");
  EXPECT_GT(hitl.select_every_steps(), 0u);
  const v1::RunConfig base = RunConfigFor(*s, v1::MODE_BASELINE, "exp-1", "", 0);
  EXPECT_FALSE(base.has_feedback());
  EXPECT_EQ(base.seed(), hitl.seed());
  // Candidates come from the training batches unless the spec asks for a random pool.
  EXPECT_EQ(hitl.selection_pool(), v1::SELECTION_POOL_TRAINING_BATCHES);
  absl::StatusOr<Spec> random =
      LoadSpec(Write(std::string(kMinimal) + "selection: {pool: random}\n"));
  ASSERT_TRUE(random.ok()) << random.status();
  EXPECT_EQ(RunConfigFor(*random, v1::MODE_AUTO, "exp-2", "", 0).selection_pool(),
            v1::SELECTION_POOL_RANDOM);
}

TEST(SpecTest, PairedSeedsVaryTogetherAndTheProtocolReachesTheTrainer) {
  absl::StatusOr<Spec> s = LoadSpec(Source("examples/fashion-mnist-cd40.yaml"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->seeds, 5);
  const v1::RunConfig hybrid = RunConfigFor(*s, v1::MODE_HYBRID, "exp-1", "c", 0.7, 3);
  EXPECT_EQ(hybrid.seed(), static_cast<std::uint64_t>(s->seed + 3));
  EXPECT_EQ(hybrid.label_noise().seed(), static_cast<std::uint64_t>(s->noise_seed + 3));
  EXPECT_EQ(hybrid.validation_samples(), 1000u);
  EXPECT_EQ(hybrid.eval_smoothing(), 3u);
  EXPECT_TRUE(hybrid.noise_review().enabled());
  EXPECT_EQ(hybrid.noise_review().review_every_steps(), 40u);
  EXPECT_FALSE(hybrid.has_pruning());
  const v1::RunConfig base = RunConfigFor(*s, v1::MODE_BASELINE, "exp-1", "", 0, 3);
  EXPECT_EQ(base.seed(), hybrid.seed());
  EXPECT_FALSE(base.has_noise_review());
  // noise30 prunes: every judging mode and prune do, the baseline and the clean reference don't.
  absl::StatusOr<Spec> n30 = LoadSpec(Source("examples/fashion-mnist-noise30.yaml"));
  ASSERT_TRUE(n30.ok()) << n30.status();
  EXPECT_DOUBLE_EQ(RunConfigFor(*n30, v1::MODE_HITL, "e", "c", 0).pruning().ratio(), 0.5);
  EXPECT_FALSE(RunConfigFor(*n30, v1::MODE_BASELINE, "e", "", 0).has_pruning());
  EXPECT_FALSE(RunConfigFor(*n30, v1::MODE_CLEAN, "e", "", 0).has_pruning());
  const v1::RunConfig prune = RunConfigFor(*n30, v1::MODE_PRUNE, "exp-1", "", 0);
  EXPECT_TRUE(prune.has_pruning());
  EXPECT_FALSE(prune.has_noise_review());
}

}  // namespace
}  // namespace greenloop::experiment
