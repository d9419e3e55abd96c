// Feature rules and how training uses them: masks, the RRR penalty, counterexamples, the decoy
// saliency score, and whole runs on Decoy Fashion-MNIST where the rule must undo the shortcut.
#include "services/trainer/core/features.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>

#include "services/trainer/core/decoy.h"
#include "services/trainer/core/feature_review.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/trainer.h"
#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

using ::testing::HasSubstr;

LoadedDataset Images(int classes = 10) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = ds.image_cols = 28;
  for (int c = 0; c < classes; ++c) ds.label_names.push_back("c" + std::to_string(c));
  return ds;
}

v1::FeatureRule Rule(std::initializer_list<std::uint32_t> cells,
                     std::optional<std::uint32_t> label = std::nullopt) {
  v1::FeatureRule r;
  for (std::uint32_t c : cells) r.add_irrelevant_cells(c);
  if (label) r.set_label(*label);
  return r;
}

torch::Tensor Labels(std::vector<std::int64_t> v) { return torch::tensor(v, torch::kInt64); }

TEST(FeatureMasks, AClassRuleCoversItsClassAndAGlobalRuleEveryone) {
  FeatureMasks masks(Images());
  EXPECT_EQ(masks.cells(), 49);
  EXPECT_TRUE(masks.empty());
  EXPECT_EQ(masks.ForBatch(Labels({0, 1})).covered, 0);
  ASSERT_TRUE(masks.AddRule(Rule({48}, 3), "r").ok());
  FeatureMasks::Batch b = masks.ForBatch(Labels({0, 3, 3}));
  EXPECT_EQ(b.covered, 2);
  ASSERT_EQ(b.mask.sizes(), (std::vector<std::int64_t>{3, 1, 28, 28}));
  EXPECT_EQ(b.mask[0].sum().item<float>(), 0);
  // Cell 48 is the bottom-right 4 × 4 pixels.
  EXPECT_EQ(b.mask[1].sum().item<float>(), 16);
  EXPECT_EQ(b.mask[1][0].slice(0, 24, 28).slice(1, 24, 28).sum().item<float>(), 16);
  ASSERT_TRUE(masks.AddRule(Rule({0}), "r").ok());
  b = masks.ForBatch(Labels({0, 3}));
  EXPECT_EQ(b.covered, 2);
  EXPECT_EQ(b.mask[0].sum().item<float>(), 16);
  EXPECT_EQ(b.mask[1].sum().item<float>(), 32);
  EXPECT_EQ(masks.rules(), 2);
}

TEST(FeatureMasks, APerItemMaskCoversItsSampleOnly) {
  FeatureMasks masks(Images());
  v1::FeatureRule item = Rule({0});
  item.set_sample(17);
  ASSERT_TRUE(masks.AddRule(item, "r", /*position=*/5).ok());
  ASSERT_TRUE(masks.AddRule(Rule({48}, 2), "r").ok());
  const std::vector<std::int64_t> positions = {4, 5, 6};
  const FeatureMasks::Batch b = masks.ForBatch(Labels({1, 1, 2}), positions);
  EXPECT_EQ(b.covered, 2);
  EXPECT_EQ(b.mask[0].sum().item<float>(), 0);   // position 4: nothing
  EXPECT_EQ(b.mask[1].sum().item<float>(), 16);  // position 5: its own cell 0
  EXPECT_EQ(b.mask[1][0].slice(0, 0, 4).slice(1, 0, 4).sum().item<float>(), 16);
  EXPECT_EQ(b.mask[2].sum().item<float>(), 16);  // class 2's rule only
  // Without positions, a per-item mask covers no one.
  EXPECT_EQ(masks.ForBatch(Labels({1, 1})).covered, 0);
}

TEST(FeatureTraining, RefusesAPerItemMaskOutsideTheTrainingSplitOrWithALabel) {
  LoadedDataset ds = Images();
  ds.train.refs = {100, 101, 102};
  FeatureTraining training(v1::FeatureFeedback(), ds);
  v1::FeatureRule item = Rule({0});
  item.set_sample(101);
  EXPECT_TRUE(training.AddRule(item, "verdict").ok());
  item.set_sample(7);
  absl::Status s = training.AddRule(item, "verdict");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("verdict.sample 7 is not in the run's training"));
  item.set_sample(102);
  item.set_label(1);
  s = training.AddRule(item, "verdict");
  EXPECT_THAT(std::string(s.message()), HasSubstr("per-item mask (sample)"));
  EXPECT_EQ(training.rules(), 1);
  ASSERT_EQ(training.added_rules().size(), 1u);
  EXPECT_EQ(training.added_rules()[0].sample(), 101u);
}

TEST(ItemsToAsk, DrawsDistinctSamplesEvenlyOverTheClassesAsTheyAllow) {
  // Class 0: 10 samples, class 1: 3, class 2: 20.
  std::vector<std::int64_t> labels(33, 2);
  std::fill_n(labels.begin(), 10, 0);
  std::fill_n(labels.begin() + 10, 3, 1);
  const std::vector<std::int64_t> picked = ItemsToAsk(labels, 3, 15, 42);
  ASSERT_EQ(picked.size(), 15u);
  std::vector<int> per_class(3, 0);
  for (std::int64_t p : picked) ++per_class[static_cast<std::size_t>(labels[p])];
  EXPECT_EQ(per_class, (std::vector<int>{6, 3, 6}));  // class 1 runs out after 3
  EXPECT_EQ(std::set<std::int64_t>(picked.begin(), picked.end()).size(), 15u);
  EXPECT_EQ(ItemsToAsk(labels, 3, 15, 42), picked);  // seeded
  EXPECT_NE(ItemsToAsk(labels, 3, 15, 43), picked);
  EXPECT_EQ(ItemsToAsk(labels, 3, 100, 1).size(), 33u);  // no more than the split holds
}

TEST(FeatureMasks, RefusesBadRulesNamingTheField) {
  FeatureMasks masks(Images());
  absl::Status s = masks.AddRule(Rule({49}), "rules[1]");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("rules[1].irrelevant_cells[0] = 49"));
  s = masks.AddRule(Rule({}), "rules[2]");
  EXPECT_THAT(std::string(s.message()), HasSubstr("rules[2].irrelevant_cells is empty"));
  s = masks.AddRule(Rule({1}, 10), "rules[3]");
  EXPECT_THAT(std::string(s.message()), HasSubstr("rules[3].label 10"));
  LoadedDataset text;
  text.label_names = {"ham", "spam"};
  FeatureMasks none(text);
  EXPECT_EQ(none.AddRule(Rule({1}), "r").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(masks.empty());
}

// A model whose logits read only the top-left pixel: its input gradient lives there.
struct CornerReader : ClassifierImpl {
  torch::Tensor forward(const ModelInput& input) override {
    const torch::Tensor x = input.values.select(1, 0).select(1, 0).select(1, 0).unsqueeze(1);
    return torch::cat({x, -x, x * x}, 1);
  }
};

TEST(RrrPenalty, CountsOnlyTheGradientUnderTheMaskAndIsDifferentiable) {
  CornerReader model;
  torch::Tensor x = torch::randn({4, 1, 28, 28}).requires_grad_(true);
  torch::Tensor logits = model.forward({x, {}});
  FeatureMasks masks(Images());
  ASSERT_TRUE(masks.AddRule(Rule({0}), "r").ok());
  ASSERT_TRUE(masks.AddRule(Rule({48}, 1), "r").ok());
  torch::Tensor on_corner = masks.ForBatch(Labels({0, 0, 0, 0})).mask;
  torch::Tensor penalty = RrrPenalty(logits, x, on_corner);
  EXPECT_GT(penalty.item<double>(), 0);
  EXPECT_TRUE(penalty.requires_grad());
  FeatureMasks elsewhere(Images());
  ASSERT_TRUE(elsewhere.AddRule(Rule({48}), "r").ok());
  logits = model.forward({x, {}});
  EXPECT_EQ(RrrPenalty(logits, x, elsewhere.ForBatch(Labels({0, 0, 0, 0})).mask).item<double>(), 0);
}

// A few covered images get a forward pass of their own, so the double backpropagation skips the
// rest of the batch; the penalty is the same as through the whole batch's graph.
TEST(FeatureTraining, RrrOnAFewCoveredImagesPenalisesThemAloneAndCountsTheirPasses) {
  LoadedDataset ds = Images();
  ds.train.refs = {10, 11, 12, 13};
  v1::FeatureFeedback config;
  config.set_method(v1::FEATURE_METHOD_RRR);
  config.set_penalty_weight(1.0);
  FeatureTraining training(config, ds);
  v1::FeatureRule item = Rule({0});
  item.set_sample(11);
  ASSERT_TRUE(training.AddRule(item, "verdict").ok());
  CornerReader model;
  const torch::Tensor x = torch::randn({4, 1, 28, 28});
  const std::vector<std::int64_t> positions = {0, 1, 2, 3};
  ModelInput input{x.clone(), {}};
  ASSERT_EQ(training.Prepare(input, Labels({0, 0, 0, 0}), 100, positions), 1);
  EXPECT_FALSE(input.values.requires_grad()) << "the batch's own graph stays plain";
  const torch::Tensor logits = model.forward(input);
  absl::StatusOr<torch::Tensor> total =
      training.AddPenalty(model, torch::zeros({}), logits, input, 4.0);
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_TRUE(total->requires_grad());
  FeatureMasks masks(ds);
  ASSERT_TRUE(masks.AddRule(item, "r", 1).ok());
  torch::Tensor whole = x.clone().requires_grad_(true);
  const double expected = RrrPenalty(model.forward({whole, {}}), whole,
                                     masks.ForBatch(Labels({0, 0, 0, 0}), positions).mask)
                              .item<double>() /
                          4.0;
  EXPECT_GT(expected, 0);
  EXPECT_NEAR(total->item<double>(), expected, 1e-6 * expected);
  EXPECT_DOUBLE_EQ(training.TakeExtraPasses(), FeatureTraining::kRrrPasses + 1);  // one sample
  EXPECT_DOUBLE_EQ(training.TakeExtraPasses(), 0);                                // reset
  // A rule over every sample: through the batch's graph, all four samples' passes.
  ASSERT_TRUE(training.AddRule(Rule({48}), "verdict").ok());
  ModelInput all{x.clone(), {}};
  ASSERT_EQ(training.Prepare(all, Labels({0, 0, 0, 0}), 100, positions), 4);
  EXPECT_TRUE(all.values.requires_grad());
  EXPECT_DOUBLE_EQ(training.TakeExtraPasses(), 4 * FeatureTraining::kRrrPasses);
}

// FeatureFeedback.penalty_samples: a drawn few of the covered samples take the penalty, scaled so
// that its mean over draws is the whole batch's, and only their passes are paid.
TEST(FeatureTraining, RrrOnADrawnFewIsAnUnbiasedEstimateOfTheWholeBatchsPenalty) {
  LoadedDataset ds = Images();
  ds.train.refs = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  v1::FeatureFeedback config;
  config.set_method(v1::FEATURE_METHOD_RRR);
  config.set_penalty_weight(1.0);
  config.set_penalty_samples(4);
  FeatureTraining training(config, ds);
  ASSERT_TRUE(training.AddRule(Rule({0, 6, 42, 48}), "verdict").ok());  // every sample
  CornerReader model;
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({16, 1, 28, 28});
  const torch::Tensor labels = torch::zeros({16}, torch::kInt64);
  FeatureMasks masks(ds);
  ASSERT_TRUE(masks.AddRule(Rule({0, 6, 42, 48}), "r").ok());
  torch::Tensor whole = x.clone().requires_grad_(true);
  const double full =
      RrrPenalty(model.forward({whole, {}}), whole, masks.ForBatch(labels).mask).item<double>() /
      16.0;
  ASSERT_GT(full, 0);
  double sum = 0;
  std::set<double> seen;
  constexpr int kDraws = 400;
  for (int i = 0; i < kDraws; ++i) {
    ModelInput input{x.clone(), {}};
    ASSERT_EQ(training.Prepare(input, labels, 100), 16);  // all covered, 4 penalised
    EXPECT_FALSE(input.values.requires_grad()) << "the batch's own graph stays plain";
    absl::StatusOr<torch::Tensor> penalty =
        training.AddPenalty(model, torch::zeros({}), model.forward(input), input, 16.0);
    ASSERT_TRUE(penalty.ok()) << penalty.status();
    sum += penalty->item<double>();
    seen.insert(penalty->item<double>());
    EXPECT_DOUBLE_EQ(training.TakeExtraPasses(), 4 * (FeatureTraining::kRrrPasses + 1));
  }
  EXPECT_GT(seen.size(), 10u) << "the same samples every time";
  EXPECT_NEAR(sum / kDraws, full, 0.05 * full);
}

TEST(Counterexamples, TakeTheMaskedPixelsFromAnotherSampleOfTheBatch) {
  torch::manual_seed(1);
  // Sample i is all i + 1.
  const torch::Tensor x =
      torch::arange(1, 5, torch::kFloat32).view({4, 1, 1, 1}).expand({4, 1, 28, 28}).contiguous();
  FeatureMasks masks(Images());
  ASSERT_TRUE(masks.AddRule(Rule({6}, 1), "r").ok());
  const torch::Tensor mask = masks.ForBatch(Labels({1, 1, 1, 0})).mask;
  const torch::Tensor y = Counterexamples(x, mask);
  std::set<float> donors;
  for (int i = 0; i < 4; ++i) {
    // Outside the mask nothing changes.
    EXPECT_EQ((y[i] - x[i]).mul(1 - mask[i]).abs().sum().item<float>(), 0) << i;
    if (i == 3) {
      EXPECT_TRUE(y[3].equal(x[3]));  // not covered
      continue;
    }
    const torch::Tensor cell = y[i][0].slice(0, 0, 4).slice(1, 24, 28);
    const float v = cell[0][0].item<float>();
    EXPECT_TRUE(cell.eq(v).all().item<bool>()) << "one donor per sample";
    EXPECT_NE(v, static_cast<float>(i + 1)) << "another sample's pixels";
    donors.insert(v);
  }
  EXPECT_EQ(donors.size(), 3u);  // a cycle: each donor gives once (sample 4's too)
}

TEST(DecoySaliency, IsTheShareOfTheGradientOnEachImagesDecoyCell) {
  LoadedDataset ds = Images();
  ds.test.pixels.assign(8 * 784, 0);
  ds.test.decoy_cells = {0, 0, 0, 0, 48, 48, 48, 48};
  ds.test.labels.assign(8, 0);
  ds.test.clean_labels.assign(8, 0);
  CornerReader model;
  const torch::Tensor images = torch::randn({8, 1, 28, 28});
  const std::optional<double> share = DecoySaliency(model, ds, ds.test, images);
  ASSERT_TRUE(share.has_value());
  EXPECT_NEAR(*share, 0.5, 1e-6);  // all on cell 0: the first four images' decoy
  ds.test.decoy_cells.clear();
  EXPECT_FALSE(DecoySaliency(model, ds, ds.test, images).has_value());
}

TEST(CalibratePenaltyWeight, EqualisesTheTermsOrDeclines) {
  EXPECT_DOUBLE_EQ(*CalibratePenaltyWeight(2.0, 0.5), 4.0);
  EXPECT_FALSE(CalibratePenaltyWeight(2.0, 0.0).has_value());
  EXPECT_FALSE(CalibratePenaltyWeight(2.0, std::nan("")).has_value());
}

// Whole runs on Decoy Fashion-MNIST: the shortcut, and the rule that undoes it.
class DecoyRuns : public ::testing::Test {
 protected:
  // `noise_rate`: symmetric label noise (seed 3) on top of the decoy.
  static std::shared_ptr<const LoadedDataset> Load(bool decoy, double noise_rate = 0) {
    v1::Decoy d;
    d.set_enabled(decoy);
    d.set_seed(5);
    v1::LabelNoise noise;
    if (noise_rate > 0) {
      noise.set_rate(noise_rate);
      noise.set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
      noise.set_seed(3);
    }
    DatasetLocations where;
    static DatasetCache cache(where);
    absl::StatusOr<std::shared_ptr<const LoadedDataset>> ds =
        LoadDataset(cache, v1::DATASET_FASHION_MNIST, 4000, noise, 1000, d);
    EXPECT_TRUE(ds.ok()) << ds.status();
    return *ds;
  }

  static v1::RunConfig Config(std::optional<v1::FeatureMethod> method) {
    v1::RunConfig c;
    c.set_dataset(v1::DATASET_FASHION_MNIST);
    c.set_mode(v1::MODE_BASELINE);
    c.set_seed(7);
    c.set_validation_samples(1000);
    c.mutable_budget()->set_max_epochs(4);
    c.mutable_decoy()->set_enabled(true);
    if (method) {
      c.mutable_feature_feedback()->set_method(*method);
      *c.mutable_feature_feedback()->add_rules() = Rule({0, 6, 42, 48});
    }
    absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(c);
    EXPECT_TRUE(valid.ok()) << valid.status();
    return *valid;
  }

  // MODE_HITL_FEATURES on the fake crowd's campaign, the rules asked at step 20 (not validated).
  static v1::RunConfig AsksRaters() {
    v1::RunConfig config = Config(std::nullopt);
    config.set_mode(v1::MODE_HITL_FEATURES);
    config.mutable_feedback()->set_endpoint("fake:7102");
    config.mutable_feedback()->set_campaign_id("rules-1");
    config.mutable_feature_feedback()->set_ask_after_steps(20);
    return config;
  }

  // MODE_HITL_COMBINED: AsksRaters()'s rule questions in `campaign`-f, label questions in
  // `campaign` every 5 steps (not validated).
  static v1::RunConfig AsksRatersBoth(const std::string& campaign) {
    v1::RunConfig config = AsksRaters();
    config.set_mode(v1::MODE_HITL_COMBINED);
    config.mutable_feedback()->set_campaign_id(campaign);
    config.mutable_feedback()->set_feature_campaign_id(campaign + "-f");
    config.set_select_every_steps(5);
    return config;
  }

  static TrainingOutcome RunOnce(const v1::RunConfig& config, const LoadedDataset& ds,
                                 testing::FakeFeedbackQueue* feedback = nullptr,
                                 bool resume = false, std::function<bool()> stop = nullptr,
                                 testing::FakeFeedbackQueue* feature_feedback = nullptr) {
    testing::FakeEnergyMeter energy;
    TrainingPorts ports;
    ports.energy = &energy;
    ports.feedback = feedback;
    ports.feature_feedback = feature_feedback;
    ports.stop_requested = std::move(stop);
    RankOptions options;
    options.run_id = "run-decoy";
    options.node = "node-a";
    options.pid = getpid();
    options.threads = 2;
    options.resume = resume;
    return Train(config, ds, options, ports);
  }
};

TEST_F(DecoyRuns, TheBaselineLearnsTheShortcutAndTheRuleUndoesIt) {
  auto decoyed = Load(true);
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *decoyed);
  const TrainingOutcome rrr = RunOnce(Config(v1::FEATURE_METHOD_RRR), *decoyed);
  const TrainingOutcome counter = RunOnce(Config(v1::FEATURE_METHOD_COUNTEREXAMPLE), *decoyed);
  v1::RunConfig drawn_config = Config(v1::FEATURE_METHOD_RRR);
  drawn_config.mutable_feature_feedback()->set_penalty_samples(8);  // 8 of each batch of 64
  const TrainingOutcome drawn = RunOnce(drawn_config, *decoyed);
  for (const TrainingOutcome* o : {&baseline, &rrr, &counter, &drawn}) {
    ASSERT_EQ(o->state, v1::RUN_STATE_SUCCEEDED) << o->error_message;
    ASSERT_TRUE(o->test_accuracy && o->decoy_saliency);
  }
  std::printf(
      "decoy runs: baseline test %.4f saliency %.3f | rrr %.4f %.3f (lambda %.3g) | "
      "counterexamples %.4f %.3f\n",
      *baseline.test_accuracy, *baseline.decoy_saliency, *rrr.test_accuracy, *rrr.decoy_saliency,
      rrr.progress.feature_penalty_weight(), *counter.test_accuracy, *counter.decoy_saliency);
  // Measured (4 000 images, 4 epochs): baseline 0.67 test with 7 % of its saliency on the decoy's
  // cell (chance: 2 %), RRR 0.77 (0.1 %), counterexamples 0.78 (1 %).
  EXPECT_GT(*baseline.decoy_saliency, 0.04);
  EXPECT_LT(*rrr.decoy_saliency, *baseline.decoy_saliency / 4);
  EXPECT_GT(*rrr.test_accuracy, *baseline.test_accuracy + 0.05);
  EXPECT_GT(*counter.test_accuracy, *baseline.test_accuracy + 0.05);
  EXPECT_GT(rrr.progress.feature_penalty_weight(), 0);  // calibrated
  // The penalty on 8 drawn samples of each batch undoes the shortcut too, for a fraction of the
  // double backpropagation: 7 × 8 extra passes on a step of 3 × 64.
  std::printf("rrr on 8 drawn per batch: test %.4f saliency %.3f, MACs %.2fx the baseline's\n",
              *drawn.test_accuracy, *drawn.decoy_saliency,
              drawn.progress.macs() / baseline.progress.macs());
  EXPECT_GT(*drawn.test_accuracy, *baseline.test_accuracy + 0.05);
  EXPECT_LT(*drawn.decoy_saliency, *baseline.decoy_saliency / 4);
  EXPECT_LT(drawn.progress.macs(), 1.4 * baseline.progress.macs());
  // What the final model looks at: one PNG, a row per class of 28 × 56 pixels, scaled 3×.
  ASSERT_TRUE(baseline.explanation.has_value());
  const std::string& png = baseline.explanation->png();
  ASSERT_GT(png.size(), 24u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  auto be32 = [&](std::size_t at) {
    return (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
           (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 3]));
  };
  EXPECT_EQ(be32(16), 56u * 3);       // IHDR width
  EXPECT_EQ(be32(20), 10u * 28 * 3);  // IHDR height
  // RRR's double backpropagation is counted; counterexamples cost what a plain step costs.
  EXPECT_GT(rrr.progress.macs(), 2.5 * baseline.progress.macs());
  EXPECT_DOUBLE_EQ(counter.progress.macs(), baseline.progress.macs());
}

// MODE_HITL_FEATURES: at step ask_after_steps one rule question per class goes to the crowd with
// the model's evidence; the crowd's masks become rules and the decoy stops mattering.
TEST_F(DecoyRuns, RatersRulesFromTheQueueUndoTheShortcut) {
  auto decoyed = Load(true);
  v1::RunConfig config = AsksRaters();
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue crowd(*decoyed, /*delay_polls=*/5);
  const TrainingOutcome o = RunOnce(*valid, *decoyed, &crowd);
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  const v1::CampaignSpec spec = crowd.campaign("rules-1");
  EXPECT_EQ(spec.question_kind(), v1::QUESTION_KIND_FEATURE_RULE);
  EXPECT_EQ(spec.feature_grid().rows(), 7u);
  EXPECT_EQ(spec.labels_size(), 10);
  const std::vector<v1::ItemInput> items = crowd.enqueued();
  ASSERT_EQ(items.size(), 10u);  // one per class, once
  for (std::size_t c = 0; c < items.size(); ++c) {
    EXPECT_EQ(items[c].given_label(), c);
    EXPECT_EQ(items[c].sample().index(), c);
    EXPECT_EQ(items[c].payload().png().substr(1, 3), "PNG");
  }
  EXPECT_EQ(o.progress.feature_rules(), 10u);
  EXPECT_GT(o.progress.feature_penalty_weight(), 0);
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *decoyed);
  ASSERT_TRUE(o.test_accuracy && baseline.test_accuracy && o.decoy_saliency);
  std::printf("hitl_features: test %.4f saliency %.3f lambda %.3g (baseline %.4f)\n",
              *o.test_accuracy, *o.decoy_saliency, o.progress.feature_penalty_weight(),
              *baseline.test_accuracy);
  EXPECT_GT(*o.test_accuracy, *baseline.test_accuracy + 0.05);  // measured 0.78 vs 0.67
  EXPECT_LT(*o.decoy_saliency, *baseline.decoy_saliency / 4);
}

// MODE_HITL_COMBINED on decoyed images with noisy labels: the label questions go to one campaign
// and the rule questions to another, both streams are followed at once, and the run applies the
// raters' relabels and their rules.
TEST_F(DecoyRuns, CombinedFeedbackRelabelsSamplesAndPutsRulesInForce) {
  auto noisy = Load(true, /*noise_rate=*/0.3);
  v1::RunConfig config = AsksRatersBoth("labels-1");
  config.set_candidates_per_selection(64);
  config.mutable_verdict_policy()->set_on_wrong_label(v1::WRONG_LABEL_ACTION_RELABEL);
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue labels(*noisy, /*delay_polls=*/3);
  testing::FakeFeedbackQueue rules(*noisy, /*delay_polls=*/3);
  const TrainingOutcome o = RunOnce(*valid, *noisy, &labels, false, nullptr, &rules);
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  EXPECT_EQ(labels.campaign("labels-1").question_kind(), v1::QUESTION_KIND_LABEL_CHOICE);
  EXPECT_EQ(rules.campaign("labels-1-f").question_kind(), v1::QUESTION_KIND_FEATURE_RULE);
  EXPECT_EQ(labels.campaigns(), 1u);
  EXPECT_EQ(rules.campaigns(), 1u);
  EXPECT_EQ(rules.enqueued().size(), 10u);  // one rule question per class, on its own campaign
  EXPECT_GT(labels.enqueued().size(), 100u);
  for (const v1::ItemInput& item : labels.enqueued()) EXPECT_TRUE(item.payload().has_png());
  EXPECT_EQ(o.progress.feature_rules(), 10u);
  EXPECT_GT(o.progress.feature_penalty_weight(), 0);
  EXPECT_GT(o.progress.samples_relabelled(), 50u);  // the fake answers with the clean labels
  EXPECT_EQ(o.changes_correct, o.changes_total);
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *noisy);
  ASSERT_TRUE(o.test_accuracy && baseline.test_accuracy && o.decoy_saliency);
  std::printf("hitl_combined: test %.4f saliency %.3f relabelled %llu (baseline %.4f %.3f)\n",
              *o.test_accuracy, *o.decoy_saliency,
              static_cast<unsigned long long>(o.progress.samples_relabelled()),
              *baseline.test_accuracy, *baseline.decoy_saliency);
  EXPECT_GT(*o.test_accuracy, *baseline.test_accuracy + 0.05);
  EXPECT_LT(*o.decoy_saliency, *baseline.decoy_saliency / 4);
}

// A resumed MODE_HITL_COMBINED run follows each stream from its own cursor.
TEST_F(DecoyRuns, AResumedCombinedRunFollowsEachStreamFromItsOwnCursor) {
  auto noisy = Load(true, /*noise_rate=*/0.3);
  v1::RunConfig config = AsksRatersBoth("labels-2");
  config.mutable_budget()->set_max_epochs(2);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-combined-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  config.set_checkpoint_dir(dir.string());
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue labels(*noisy, /*delay_polls=*/2);
  testing::FakeFeedbackQueue rules(*noisy, /*delay_polls=*/2);
  int steps = 0;
  const TrainingOutcome first = RunOnce(
      *valid, *noisy, &labels, false, [&] { return ++steps > 40; }, &rules);
  ASSERT_EQ(first.state, v1::RUN_STATE_STOPPED) << first.error_message;
  ASSERT_EQ(first.progress.feature_rules(), 10u);
  // Each fake numbers its own stream's verdicts: 10 rule verdicts, many more label ones.
  const std::size_t label_verdicts = first.progress.verdicts_received() - 10;
  ASSERT_GT(label_verdicts, 10u);
  testing::FakeFeedbackQueue labels_again(*noisy, 2);
  testing::FakeFeedbackQueue rules_again(*noisy, 2);
  const TrainingOutcome second =
      RunOnce(*valid, *noisy, &labels_again, true, nullptr, &rules_again);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(second.state, v1::RUN_STATE_SUCCEEDED) << second.error_message;
  EXPECT_EQ(rules_again.start_cursor(), "10");
  EXPECT_EQ(labels_again.start_cursor(), std::to_string(label_verdicts));
  EXPECT_TRUE(rules_again.enqueued().empty()) << "asked the rule questions again";
  EXPECT_EQ(second.progress.feature_rules(), 10u);
}

// FeatureFeedback.item_questions: per-item mask questions instead of the rules, each sample shown
// next to the model's saliency on it; each verdict's mask acts on its own sample only.
TEST_F(DecoyRuns, PerItemMasksFromTheQueueActOnTheirSamples) {
  auto decoyed = Load(true);
  v1::RunConfig config = AsksRaters();
  config.mutable_feature_feedback()->set_item_questions(200);
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue crowd(*decoyed, /*delay_polls=*/5);
  const TrainingOutcome o = RunOnce(*valid, *decoyed, &crowd);
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  const v1::CampaignSpec spec = crowd.campaign("rules-1");
  EXPECT_EQ(spec.question_kind(), v1::QUESTION_KIND_FEATURE_MASK);
  EXPECT_TRUE(spec.feature_grid().evidence_panel());
  const std::vector<v1::ItemInput> items = crowd.enqueued();
  ASSERT_EQ(items.size(), 200u);
  std::set<std::uint64_t> samples;
  std::vector<int> per_class(10, 0);
  for (const v1::ItemInput& item : items) {
    samples.insert(item.sample().index());
    ++per_class[item.given_label()];
    const std::string& png = item.payload().png();
    ASSERT_EQ(png.substr(1, 3), "PNG");
    // IHDR width: the sample and its saliency side by side, scaled 6×.
    EXPECT_EQ(static_cast<unsigned char>(png[18]) * 256 + static_cast<unsigned char>(png[19]),
              56 * 6);
  }
  EXPECT_EQ(samples.size(), 200u);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[static_cast<std::size_t>(c)], 20) << c;
  EXPECT_EQ(o.progress.feature_rules(), 200u);
  // The masked samples came up in batches: λ was calibrated on them and RRR's extra passes paid.
  EXPECT_GT(o.progress.feature_penalty_weight(), 0);
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *decoyed);
  ASSERT_TRUE(o.test_accuracy && baseline.test_accuracy && o.decoy_saliency);
  EXPECT_GT(o.progress.macs(), 1.05 * baseline.progress.macs());
  std::printf("per-item masks: test %.4f saliency %.3f (baseline %.4f saliency %.3f)\n",
              *o.test_accuracy, *o.decoy_saliency, *baseline.test_accuracy,
              *baseline.decoy_saliency);
  // Measured: 0.77 test with 0.4 % of the saliency on the decoy, against the baseline's 0.67 and
  // 7 %: masks on 5 % of the images teach the whole net to look away from the corners.
  EXPECT_GT(*o.test_accuracy, *baseline.test_accuracy + 0.05);
  EXPECT_LT(*o.decoy_saliency, *baseline.decoy_saliency / 4);
}

// A run stopped after the raters' rules came resumes with them (and λ) in force, without asking
// again.
TEST_F(DecoyRuns, AResumedRunKeepsTheRatersRulesAndDoesNotAskAgain) {
  auto decoyed = Load(true);
  v1::RunConfig config = AsksRaters();
  config.mutable_budget()->set_max_epochs(2);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-rules-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  config.set_checkpoint_dir(dir.string());
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue first_crowd(*decoyed, /*delay_polls=*/2);
  int steps = 0;
  const TrainingOutcome first = RunOnce(*valid, *decoyed, &first_crowd, false, [&] {
    return ++steps > 60;  // after the rules (asked at 20, back 2 polls later)
  });
  ASSERT_EQ(first.state, v1::RUN_STATE_STOPPED) << first.error_message;
  ASSERT_EQ(first.progress.feature_rules(), 10u);
  ASSERT_GT(first.progress.feature_penalty_weight(), 0);  // calibrated before the stop
  testing::FakeFeedbackQueue second_crowd(*decoyed, 2);
  const TrainingOutcome second = RunOnce(*valid, *decoyed, &second_crowd, true);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(second.state, v1::RUN_STATE_SUCCEEDED) << second.error_message;
  EXPECT_GT(second.progress.step(), first.progress.step());
  EXPECT_EQ(second.progress.feature_rules(), 10u);
  EXPECT_DOUBLE_EQ(second.progress.feature_penalty_weight(),
                   first.progress.feature_penalty_weight());
  EXPECT_TRUE(second_crowd.enqueued().empty()) << "asked again after resuming";
}

TEST_F(DecoyRuns, APenaltyWeightThatOverflowsFailsTheRunNamingTheKey) {
  auto decoyed = Load(true);
  v1::RunConfig config = Config(v1::FEATURE_METHOD_RRR);
  config.mutable_feature_feedback()->set_penalty_weight(1e308);
  config.mutable_budget()->set_max_epochs(1);
  const TrainingOutcome o = RunOnce(config, *decoyed);
  EXPECT_EQ(o.state, v1::RUN_STATE_FAILED);
  EXPECT_THAT(o.error_message, HasSubstr("config.feature_feedback.penalty_weight"));
}

}  // namespace
}  // namespace greenloop::trainer
