// Feature feedback on text: word masks, removal that really shortens the bag, the contribution
// penalty, the evidence words, and whole runs on Decoy SpamAssassin where a word rule must undo
// the planted shortcut.
#include "services/trainer/core/text_features.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

#include "services/trainer/core/decoy.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/trainer.h"
#include "services/trainer/testing/fakes.h"

namespace greenloop::trainer {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A two-class text dataset over the words <unk>, free, money, hello, qzxspam.
LoadedDataset Words() {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.label_names = {"ham", "spam"};
  ds.vocabulary = {"<unk>", "free", "money", "hello", "qzxspam"};
  ds.vocabulary_size = 5;
  return ds;
}

v1::FeatureRule WordRule(std::initializer_list<const char*> words,
                         std::optional<std::uint32_t> label = std::nullopt) {
  v1::FeatureRule r;
  for (const char* w : words) r.add_irrelevant_tokens(w);
  if (label) r.set_label(*label);
  return r;
}

torch::Tensor Ids(std::vector<std::int64_t> v) { return torch::tensor(v, torch::kInt64); }

std::vector<std::int64_t> Values(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

TEST(TokenMasks, AClassRuleMasksItsWordInItsClassOnly) {
  LoadedDataset ds = Words();
  TokenMasks masks(ds);
  ASSERT_TRUE(masks.AddRule(WordRule({"qzxspam"}, 1), "r").ok());
  // Mail 0 (ham): free qzxspam; mail 1 (spam): qzxspam money qzxspam.
  const ModelInput input{Ids({1, 4, 4, 2, 4}), Ids({0, 2})};
  const TokenMasks::Batch batch = masks.ForInput(input, Ids({0, 1}));
  ASSERT_TRUE(batch.masked.defined());
  EXPECT_EQ(batch.covered, 1);
  EXPECT_THAT(Values(batch.masked.to(torch::kInt64)), ElementsAre(0, 0, 1, 0, 1));
  ASSERT_TRUE(masks.AddRule(WordRule({"free"}), "r").ok());  // every class
  EXPECT_THAT(Values(masks.ForInput(input, Ids({0, 1})).masked.to(torch::kInt64)),
              ElementsAre(1, 0, 1, 0, 1));
  EXPECT_EQ(masks.rules(), 2);
}

TEST(TokenMasks, APerItemMaskMasksItsWordsInItsMailOnly) {
  LoadedDataset ds = Words();
  TokenMasks masks(ds);
  v1::FeatureRule item = WordRule({"qzxspam", "money"});
  item.set_sample(31);
  ASSERT_TRUE(masks.AddRule(item, "r", /*position=*/9).ok());
  // Mail 0 (position 8): free qzxspam; mail 1 (position 9): qzxspam money qzxspam.
  const ModelInput input{Ids({1, 4, 4, 2, 4}), Ids({0, 2})};
  const std::vector<std::int64_t> positions = {8, 9};
  const TokenMasks::Batch batch = masks.ForInput(input, Ids({1, 1}), positions);
  ASSERT_TRUE(batch.masked.defined());
  EXPECT_EQ(batch.covered, 1);
  EXPECT_THAT(Values(batch.masked.to(torch::kInt64)), ElementsAre(0, 0, 1, 1, 1));
  // The same mail at another place in the batch, and no positions at all.
  const std::vector<std::int64_t> swapped = {9, 8};
  EXPECT_THAT(Values(masks.ForInput(input, Ids({1, 1}), swapped).masked.to(torch::kInt64)),
              ElementsAre(0, 1, 0, 0, 0));
  EXPECT_FALSE(masks.ForInput(input, Ids({1, 1})).masked.defined());
}

// A model whose words' contributions are fixed: word t pulls class 1 by t (class 0 by −t).
struct FixedWords : ClassifierImpl {
  torch::Tensor forward(const ModelInput& /*input*/) override { return torch::zeros({1, 2}); }
  torch::Tensor TokenContributions(const torch::Tensor& ids, bool) override {
    const torch::Tensor t = ids.to(torch::kFloat32).unsqueeze(1);
    return torch::cat({-t, t}, 1);
  }
};

TEST(MailTopTokens, RanksAMailsOwnDistinctWordsByTheirPullTowardsItsLabel) {
  LoadedDataset ds = Words();
  // Mail 0: <unk> free qzxspam hello qzxspam; mail 1: money.
  ds.train.tokens = {0, 1, 4, 3, 4, 2};
  ds.train.offsets = {0, 5, 6};
  FixedWords model;
  EXPECT_THAT(MailTopTokens(model, ds, 0, /*label=*/1, 12),
              ElementsAre("qzxspam", "hello", "free"));  // no <unk>, each word once
  EXPECT_THAT(MailTopTokens(model, ds, 0, /*label=*/0, 2), ElementsAre("free", "hello"));
  EXPECT_THAT(MailTopTokens(model, ds, 1, 1, 12), ElementsAre("money"));
}

TEST(TokenMasks, RefusesBadRulesNamingTheField) {
  LoadedDataset ds = Words();
  TokenMasks masks(ds);
  absl::Status s = masks.AddRule(WordRule({"free", "viagra"}), "verdict");
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("verdict.irrelevant_tokens[1] = 'viagra' is not in the run's vocabulary"));
  s = masks.AddRule(WordRule({}), "verdict");
  EXPECT_THAT(std::string(s.message()), HasSubstr("verdict.irrelevant_tokens is empty"));
  s = masks.AddRule(WordRule({"free"}, 2), "verdict");
  EXPECT_THAT(std::string(s.message()), HasSubstr("verdict.label 2 is not one of the 2 classes"));
  LoadedDataset images;
  images.label_names = {"a", "b"};
  images.image_rows = images.image_cols = 28;
  TokenMasks none(images);
  EXPECT_THAT(std::string(none.AddRule(WordRule({"free"}), "r").message()),
              HasSubstr("only text datasets have words"));
  EXPECT_TRUE(masks.empty());
}

// Removal drops the word from the bag: the mean is over the words left, not diluted by a zero.
TEST(DropTokens, ShortensTheBagSoTheMeanIsOverTheWordsLeft) {
  const ModelInput input{Ids({1, 4, 4, 2, 4, 3}), Ids({0, 2, 5})};
  const torch::Tensor masked = Ids({0, 1, 1, 0, 1, 0}).to(torch::kBool);
  const ModelInput dropped = DropTokens(input, masked);
  EXPECT_THAT(Values(dropped.values), ElementsAre(1, 2, 3));
  EXPECT_THAT(Values(dropped.offsets), ElementsAre(0, 1, 2));
  torch::nn::EmbeddingBag bag(torch::nn::EmbeddingBagOptions(5, 3).mode(torch::kMean));
  const torch::Tensor pooled = bag->forward(dropped.values, dropped.offsets);
  EXPECT_TRUE(torch::allclose(pooled[0], bag->weight[1]));  // "free" alone, not (free + 0) / 2
  EXPECT_TRUE(torch::allclose(pooled[1], bag->weight[2]));
  // A mail of masked words only pools to zeros.
  const ModelInput all =
      DropTokens(ModelInput{Ids({4, 4, 1}), Ids({0, 2})}, Ids({1, 1, 0}).to(torch::kBool));
  EXPECT_THAT(Values(all.offsets), ElementsAre(0, 0));
  EXPECT_TRUE(torch::allclose(bag->forward(all.values, all.offsets)[0], torch::zeros({3})));
}

TEST(ReplaceTokens, ReplacesOnlyTheMaskedWordsWithWordsOfTheBatch) {
  torch::manual_seed(3);
  const torch::Tensor values = Ids({1, 4, 2, 4, 3, 1});
  const torch::Tensor masked = Ids({0, 1, 0, 1, 0, 0}).to(torch::kBool);
  const std::vector<std::int64_t> out = Values(ReplaceTokens(values, masked));
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[2], 2);
  EXPECT_EQ(out[4], 3);
  // From the unmasked words only: never the masked word itself.
  for (std::size_t i : {1u, 3u})
    EXPECT_THAT(std::vector<std::int64_t>({1, 2, 3}), Contains(out[i]));
  // Every word masked: the unknown token.
  EXPECT_THAT(Values(ReplaceTokens(Ids({4, 4}), Ids({1, 1}).to(torch::kBool))), ElementsAre(0, 0));
}

// The penalty is the masked occurrences' squared centred contribution over the mail's length,
// and its gradient reaches only the masked word's embedding row.
TEST(ContributionPenalty, IsTheMaskedWordsSquaredContributionOverTheMailsLength) {
  LoadedDataset ds = Words();
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> model =
      MakeModel(v1::MODEL_KIND_BAG_OF_WORDS, ds);
  ASSERT_TRUE(model.ok());
  const ModelInput input{Ids({1, 4, 2, 4}), Ids({0, 2})};  // two mails of two words
  const torch::Tensor masked = Ids({0, 1, 0, 0}).to(torch::kBool);
  const torch::Tensor penalty = ContributionPenalty(**model, input, masked);
  const torch::Tensor c = (*model)->TokenContributions(Ids({4}))[0];
  const double expected = ((c - c.mean()) / 2).pow(2).sum().item<double>();
  EXPECT_NEAR(penalty.item<double>(), expected, 1e-7);
  EXPECT_GT(expected, 0);
  penalty.backward();
  torch::Tensor grad;
  for (const auto& p : (*model)->named_parameters()) {
    if (p.key().find("bag") != std::string::npos) grad = p.value().grad();
  }
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad[4].abs().sum().item<double>(), 0);
  EXPECT_EQ(grad[1].abs().sum().item<double>(), 0);
  EXPECT_EQ(ContributionPenalty(**model, input, torch::zeros({4}, torch::kBool)).item<double>(), 0);
}

// The evidence words are the ones that push the model towards the class, among words the class's
// mails use.
TEST(TopTokens, NamesTheWordsThatPushTheModelTowardsEachClass) {
  LoadedDataset ds = Words();
  // Four ham mails "hello free", four spam mails "money qzxspam".
  for (int i = 0; i < 8; ++i) {
    if (ds.train.offsets.empty()) ds.train.offsets.push_back(0);
    const bool spam = i % 2 == 1;
    for (std::int64_t t : spam ? std::vector<std::int64_t>{2, 4} : std::vector<std::int64_t>{3, 1})
      ds.train.tokens.push_back(t);
    ds.train.offsets.push_back(static_cast<std::int64_t>(ds.train.tokens.size()));
    ds.train.labels.push_back(spam ? 1 : 0);
    ds.train.clean_labels.push_back(spam ? 1 : 0);
    ds.train.refs.push_back(static_cast<std::uint64_t>(i));
  }
  absl::StatusOr<std::shared_ptr<ClassifierImpl>> model =
      MakeModel(v1::MODEL_KIND_BAG_OF_WORDS, ds);
  ASSERT_TRUE(model.ok());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : (*model)->parameters()) p.zero_();
    for (auto& p : (*model)->named_parameters()) {
      if (p.key() == "bag.weight") {
        p.value()[4][0] = 3.0;   // qzxspam: strongly spam
        p.value()[2][0] = 1.0;   // money: spam
        p.value()[3][0] = -2.0;  // hello: ham
      }
      if (p.key() == "fc.weight") p.value()[1][0] = 1.0;
    }
  }
  const auto top = TopTokens(**model, ds, ds.train.labels, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_THAT(top[1], ElementsAre("qzxspam", "money"));
  EXPECT_EQ(top[0].front(), "hello");  // "free" and the spam words score 0 or less for ham
}

// Whole runs on Decoy SpamAssassin: the planted word, and the rule that undoes it.
class DecoySpamRuns : public ::testing::Test {
 protected:
  static std::shared_ptr<const LoadedDataset> Load(bool decoy = true) {
    v1::Decoy d;
    d.set_enabled(decoy);
    d.set_seed(5);
    DatasetLocations where;
    if (const char* dir = std::getenv("GREENLOOP_TEST_SPAM_ASSASSIN_DIR")) {
      where.spam_assassin_dir = dir;
    }
    static DatasetCache cache(where);
    absl::StatusOr<std::shared_ptr<const LoadedDataset>> ds =
        LoadDataset(cache, v1::DATASET_SPAM_ASSASSIN, 0, v1::LabelNoise(), 500, d);
    EXPECT_TRUE(ds.ok()) << ds.status();
    return *ds;
  }

  static v1::RunConfig Config(std::optional<v1::FeatureMethod> method) {
    v1::RunConfig c;
    c.set_dataset(v1::DATASET_SPAM_ASSASSIN);
    c.set_mode(v1::MODE_BASELINE);
    c.set_seed(7);
    c.set_validation_samples(500);
    c.mutable_budget()->set_max_epochs(6);
    c.mutable_decoy()->set_enabled(true);
    if (method) {
      c.mutable_feature_feedback()->set_method(*method);
      *c.mutable_feature_feedback()->add_rules() = WordRule({"qzxham"}, 0);
      *c.mutable_feature_feedback()->add_rules() = WordRule({"qzxspam"}, 1);
    }
    absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(c);
    EXPECT_TRUE(valid.ok()) << valid.status();
    return *valid;
  }

  // MODE_HITL_FEATURES with removal on the fake crowd's campaign, the rules asked at step
  // `ask_after` (not validated).
  static v1::RunConfig AsksRaters(std::uint32_t ask_after) {
    v1::RunConfig config = Config(std::nullopt);
    config.set_mode(v1::MODE_HITL_FEATURES);
    config.mutable_feedback()->set_endpoint("fake:7102");
    config.mutable_feedback()->set_campaign_id("rules-1");
    config.mutable_feature_feedback()->set_method(v1::FEATURE_METHOD_REMOVE);
    config.mutable_feature_feedback()->set_ask_after_steps(ask_after);
    return config;
  }

  static TrainingOutcome RunOnce(const v1::RunConfig& config, const LoadedDataset& ds,
                                 testing::FakeFeedbackQueue* feedback = nullptr) {
    testing::FakeEnergyMeter energy;
    TrainingPorts ports;
    ports.energy = &energy;
    ports.feedback = feedback;
    RankOptions options;
    options.run_id = "run-decoy-spam";
    options.node = "node-a";
    options.pid = getpid();
    options.threads = 2;
    return Train(config, ds, options, ports);
  }
};

TEST_F(DecoySpamRuns, TheDecoyWordsArePlantedInTheVocabularyAndEveryMail) {
  auto ds = Load();
  ASSERT_EQ(ds->vocabulary.size(), static_cast<std::size_t>(ds->vocabulary_size));
  EXPECT_EQ(ds->vocabulary[ds->vocabulary.size() - 2], "qzxham");
  EXPECT_EQ(ds->vocabulary.back(), "qzxspam");
  const auto ham = static_cast<std::int64_t>(ds->vocabulary.size() - 2);
  std::size_t tied = 0;
  for (std::size_t i = 0; i < ds->train.size(); ++i) {
    EXPECT_EQ(ds->train.decoy_cells[i], ham + ds->train.clean_labels[i]);
    int copies = 0;
    for (std::int64_t p = ds->train.offsets[i]; p < ds->train.offsets[i + 1]; ++p) {
      copies += ds->train.tokens[static_cast<std::size_t>(p)] == ds->train.decoy_cells[i];
    }
    ASSERT_EQ(copies, kDecoyWordsPerSample) << i;
  }
  for (std::size_t i = 0; i < ds->test.size(); ++i) {
    tied += ds->test.decoy_cells[i] == ham + ds->test.clean_labels[i];
  }
  // At test the word is a random class's: tied about half the time.
  EXPECT_NEAR(static_cast<double>(tied) / static_cast<double>(ds->test.size()), 0.5, 0.06);
}

// The zoo's Transformer trains on the real mails through the whole loop; its decoy share is not
// measured (its token contributions are not exact), and it reports its layers.
TEST_F(DecoySpamRuns, TheTransformerLearnsTheMailsAndReportsItsLayers) {
  auto ds = Load(/*decoy=*/false);
  v1::RunConfig config = Config(std::nullopt);
  config.clear_decoy();
  config.set_model_kind(v1::MODEL_KIND_TRANSFORMER);
  config.mutable_model_shape()->set_width(32);
  config.mutable_model_shape()->set_depth(1);
  config.mutable_budget()->set_max_epochs(0);
  config.mutable_budget()->set_max_steps(40);
  const TrainingOutcome o = RunOnce(config, *ds);
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  ASSERT_TRUE(o.test_accuracy);
  std::printf("transformer 32x1, 40 steps: test %.4f, %lu parameters, %lu MACs per sample\n",
              *o.test_accuracy, o.model.parameter_count(), o.model.macs_per_sample());
  // Above always answering the test split's majority class (ham).
  double ham = 0;
  for (std::int64_t label : ds->test.clean_labels) ham += label == 0;
  const double majority = ham / static_cast<double>(ds->test.size());
  std::printf("majority class share of the test split: %.4f\n", majority);
  EXPECT_GT(*o.test_accuracy, majority + 0.03);
  EXPECT_FALSE(o.decoy_saliency);
  EXPECT_EQ(o.model.architecture(), "MODEL_KIND_TRANSFORMER width=32 depth=1");
  EXPECT_EQ(o.model.layers(1).name(), "layer0.attention");
}

TEST_F(DecoySpamRuns, TheBaselineLearnsThePlantedWordAndAWordRuleUndoesIt) {
  auto ds = Load();
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *ds);
  const TrainingOutcome removed = RunOnce(Config(v1::FEATURE_METHOD_REMOVE), *ds);
  const TrainingOutcome rrr = RunOnce(Config(v1::FEATURE_METHOD_RRR), *ds);
  for (const TrainingOutcome* o : {&baseline, &removed, &rrr}) {
    ASSERT_EQ(o->state, v1::RUN_STATE_SUCCEEDED) << o->error_message;
    ASSERT_TRUE(o->test_accuracy && o->decoy_saliency);
  }
  std::printf(
      "decoy spam runs: baseline test %.4f share %.3f | remove %.4f %.3f | rrr %.4f %.3f "
      "(lambda %.3g)\n",
      *baseline.test_accuracy, *baseline.decoy_saliency, *removed.test_accuracy,
      *removed.decoy_saliency, *rrr.test_accuracy, *rrr.decoy_saliency,
      rrr.progress.feature_penalty_weight());
  // Measured (all 2 747 training mails, 6 epochs): baseline 0.73 test with 36 % of its words'
  // contribution on the planted word, removal 0.96 (3 %), RRR 0.95 (12 %).
  EXPECT_GT(*baseline.decoy_saliency, 0.25);
  EXPECT_LT(*removed.decoy_saliency, *baseline.decoy_saliency / 4);
  EXPECT_LT(*rrr.decoy_saliency, *baseline.decoy_saliency / 2);
  EXPECT_GT(*removed.test_accuracy, *baseline.test_accuracy + 0.15);
  EXPECT_GT(*rrr.test_accuracy, *baseline.test_accuracy + 0.10);
  EXPECT_GT(rrr.progress.feature_penalty_weight(), 0);
}

// MODE_HITL_FEATURES on text: one question per class, its payload the words the model weighs
// most; the crowd marks the planted words and the run ignores them.
TEST_F(DecoySpamRuns, RatersMarkThePlantedWordsAmongTheModelsTopWords) {
  auto ds = Load();
  v1::RunConfig config = AsksRaters(50);
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue crowd(*ds, /*delay_polls=*/3);
  const TrainingOutcome o = RunOnce(*valid, *ds, &crowd);
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  const v1::CampaignSpec spec = crowd.campaign("rules-1");
  EXPECT_EQ(spec.feature_grid().rows(), 1u);
  EXPECT_EQ(spec.feature_grid().cols(), 12u);
  const std::vector<v1::ItemInput> items = crowd.enqueued();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_THAT(items[0].payload().text(), HasSubstr("qzxham\n"));
  EXPECT_THAT(items[1].payload().text(), HasSubstr("qzxspam\n"));
  EXPECT_EQ(o.progress.feature_rules(), 2u);
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *ds);
  ASSERT_TRUE(o.test_accuracy && baseline.test_accuracy && o.decoy_saliency);
  std::printf("hitl_features spam: test %.4f share %.3f (baseline %.4f share %.3f)\n",
              *o.test_accuracy, *o.decoy_saliency, *baseline.test_accuracy,
              *baseline.decoy_saliency);
  EXPECT_GT(*o.test_accuracy, *baseline.test_accuracy + 0.15);
  EXPECT_LT(*o.decoy_saliency, *baseline.decoy_saliency / 4);
  // What the final models weigh most for spam: the planted word before the rule, not after.
  ASSERT_TRUE(baseline.explanation && o.explanation);
  ASSERT_EQ(baseline.explanation->class_words_size(), 2);
  ASSERT_EQ(o.explanation->class_words_size(), 2);
  EXPECT_THAT(baseline.explanation->class_words(1).words(), Contains("qzxspam"));
  EXPECT_THAT(o.explanation->class_words(1).words(), ::testing::Not(Contains("qzxspam")));
}

// Per-item masks on text: each question's payload is its mail's words the model weighs most; the
// crowd marks the planted word. The penalty on its contribution in those mails reaches the word's
// embedding row, which every mail shares, so it unlearns the word in the others too, though less
// than a class rule, which covers every mail (measured: 0.85 test with 26 % of the contribution on
// the planted word, against the baseline's 0.73 and 36 %, and 0.95 for the class rules).
TEST_F(DecoySpamRuns, PerItemMasksNameAMailsOwnWordsAndThePenaltyUnlearnsThem) {
  auto ds = Load();
  v1::RunConfig config = AsksRaters(50);
  config.mutable_feature_feedback()->set_method(v1::FEATURE_METHOD_RRR);
  config.mutable_feature_feedback()->set_item_questions(40);
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  testing::FakeFeedbackQueue crowd(*ds, /*delay_polls=*/3);
  const TrainingOutcome o = RunOnce(*valid, *ds, &crowd);
  ASSERT_EQ(o.state, v1::RUN_STATE_SUCCEEDED) << o.error_message;
  EXPECT_EQ(crowd.campaign("rules-1").question_kind(), v1::QUESTION_KIND_FEATURE_MASK);
  const std::vector<v1::ItemInput> items = crowd.enqueued();
  ASSERT_EQ(items.size(), 40u);
  std::uint32_t with_planted = 0;
  for (const v1::ItemInput& item : items) {
    std::size_t position = ds->train.refs.size();
    for (std::size_t i = 0; i < ds->train.refs.size(); ++i) {
      if (ds->train.refs[i] == item.sample().index()) position = i;
    }
    ASSERT_LT(position, ds->train.refs.size());
    // Every word shown is one of the mail's own, at most 12 of them.
    std::set<std::string> own;
    for (std::int64_t p = ds->train.offsets[position]; p < ds->train.offsets[position + 1]; ++p) {
      own.insert(
          ds->vocabulary[static_cast<std::size_t>(ds->train.tokens[static_cast<std::size_t>(p)])]);
    }
    std::istringstream words(item.payload().text());
    int shown = 0;
    for (std::string w; std::getline(words, w); ++shown) EXPECT_TRUE(own.contains(w)) << w;
    EXPECT_LE(shown, 12);
    with_planted += item.payload().text().find("qzx") != std::string::npos;
  }
  EXPECT_GT(with_planted, 30u);  // the model weighs its shortcut heavily by step 50
  EXPECT_EQ(o.progress.feature_rules(), with_planted);
  const TrainingOutcome baseline = RunOnce(Config(std::nullopt), *ds);
  ASSERT_TRUE(o.test_accuracy && baseline.test_accuracy && o.decoy_saliency);
  std::printf("per-item word masks (rrr): test %.4f share %.3f (baseline %.4f share %.3f)\n",
              *o.test_accuracy, *o.decoy_saliency, *baseline.test_accuracy,
              *baseline.decoy_saliency);
  EXPECT_GT(*o.test_accuracy, *baseline.test_accuracy + 0.06);
  EXPECT_LT(*o.decoy_saliency, *baseline.decoy_saliency * 0.85);
}

// The words a rule question showed are checkpointed as soon as it goes out (a crash before the
// epoch's end must not lose them), and a resumed run decodes the raters' answers with them.
TEST_F(DecoySpamRuns, AResumedRunDecodesAnswersWithTheWordsItAskedBefore) {
  auto ds = Load();
  v1::RunConfig config = AsksRaters(20);
  config.mutable_budget()->set_max_epochs(1);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("greenloop-words-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  config.set_checkpoint_dir(dir.string());
  absl::StatusOr<v1::RunConfig> valid = ValidateRunConfig(config);
  ASSERT_TRUE(valid.ok()) << valid.status();
  // The answers come 30 polls after the questions: after the first run stops at step 40.
  testing::FakeFeedbackQueue crowd(*ds, /*delay_polls=*/30);
  testing::RecordingListener events;
  int steps = 0;
  auto run = [&](bool resume, std::function<bool()> stop) {
    testing::FakeEnergyMeter energy;
    TrainingPorts ports;
    ports.energy = &energy;
    ports.feedback = &crowd;
    ports.listener = &events;
    ports.stop_requested = std::move(stop);
    RankOptions options;
    options.run_id = "run-words";
    options.node = "node-a";
    options.pid = getpid();
    options.threads = 2;
    options.resume = resume;
    return Train(*valid, *ds, options, ports);
  };
  const TrainingOutcome first = run(false, [&] { return ++steps > 40; });
  ASSERT_EQ(first.state, v1::RUN_STATE_STOPPED) << first.error_message;
  EXPECT_EQ(first.progress.feature_rules(), 0u);
  bool checkpointed_after_asking = false;
  for (const auto& e : events.events()) {
    checkpointed_after_asking |=
        e.kind == v1::PROGRESS_EVENT_KIND_CHECKPOINT && e.progress.step() == 21;
  }
  EXPECT_TRUE(checkpointed_after_asking) << "no checkpoint right after the questions went out";
  const TrainingOutcome second = run(true, nullptr);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(second.state, v1::RUN_STATE_SUCCEEDED) << second.error_message;
  EXPECT_EQ(crowd.enqueued().size(), 2u) << "asked again after resuming";
  EXPECT_EQ(second.progress.feature_rules(), 2u) << "the answers were not decoded after resuming";
}

}  // namespace
}  // namespace greenloop::trainer
