#include "services/trainer/core/rater_items.h"

#include <gtest/gtest.h>

#include "services/trainer/core/png.h"

namespace greenloop::trainer {
namespace {

TEST(ItemFor, AnImageSampleCarriesItsPngRefAndCurrentLabel) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = 2;
  ds.image_cols = 2;
  ds.train.pixels = {0, 1, 2, 3, 250, 251, 252, 253};
  ds.train.labels = {4, 5};
  ds.train.refs = {100, 101};
  const v1::ItemInput item = ItemFor(ds, 1, 7);
  EXPECT_EQ(item.sample().dataset(), v1::DATASET_FASHION_MNIST);
  EXPECT_EQ(item.sample().index(), 101u);
  EXPECT_EQ(item.given_label(), 7u);
  ASSERT_TRUE(item.payload().has_png());
  // The second image, not the first.
  const std::vector<std::uint8_t> second = {250, 251, 252, 253};
  EXPECT_EQ(item.payload().png(), EncodeGreyscalePng(second, 2, 2));
}

TEST(ItemFor, ATextSampleCarriesItsDisplayText) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.train.labels = {0, 1};
  ds.train.refs = {5, 6};
  ds.train_display_text = {"hello", "buy now"};
  const v1::ItemInput item = ItemFor(ds, 1, 1);
  EXPECT_EQ(item.payload().text(), "buy now");
  EXPECT_EQ(item.sample().index(), 6u);
  EXPECT_EQ(item.given_label(), 1u);
}

TEST(LabelCampaignFor, NamesTheRunAndOffersEveryClass) {
  LoadedDataset ds;
  ds.label_names = {"ham", "spam"};
  ds.label_display_names = {"Ham", "Spam"};
  v1::FeedbackTarget target;
  target.set_ratings_per_item(5);
  target.set_gold_share(0.1);
  target.set_show_model_prediction(true);
  target.set_agreeing_ratings(2);
  const v1::CampaignSpec spec = LabelCampaignFor(ds, "exp-1-hitl", target);
  EXPECT_EQ(spec.ratings_per_item(), 5u);
  EXPECT_EQ(spec.agreeing_ratings(), 2u);
  EXPECT_DOUBLE_EQ(spec.gold_share(), 0.1);
  EXPECT_TRUE(spec.show_model_prediction());
  EXPECT_EQ(spec.run_id(), "exp-1-hitl");
  EXPECT_EQ(spec.display_name(), "exp-1-hitl: check labels");
  EXPECT_EQ(spec.question_kind(), v1::QUESTION_KIND_LABEL_CHOICE);
  ASSERT_EQ(spec.labels_size(), 2);
  EXPECT_EQ(spec.labels(1).name(), "spam");
  EXPECT_EQ(spec.labels(1).display_name(), "Spam");
}

// A text run's rule questions: a 1 × kRuleWords grid, each item's payload its words, one per line.
TEST(RuleCampaignFor, ATextRunAsksAboutWords) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_SPAM_ASSASSIN;
  ds.label_names = {"ham", "spam"};
  ds.label_display_names = {"Ham", "Spam"};
  ds.vocabulary = {"<unk>", "free"};
  ds.vocabulary_size = 2;
  const v1::CampaignSpec spec = RuleCampaignFor(ds, "exp-1-hitl-features", {});
  EXPECT_EQ(spec.question_kind(), v1::QUESTION_KIND_FEATURE_RULE);
  EXPECT_EQ(spec.feature_grid().rows(), 1u);
  EXPECT_EQ(spec.feature_grid().cols(), static_cast<std::uint32_t>(kRuleWords));
  EXPECT_NE(spec.instructions().find("words"), std::string::npos);
  const v1::ItemInput item = RuleItemForWords(ds, 1, {"qzxspam", "free"});
  EXPECT_EQ(item.payload().text(), "qzxspam\nfree\n");
  EXPECT_EQ(item.given_label(), 1u);
  EXPECT_EQ(item.sample().index(), 1u);
  EXPECT_EQ(item.sample().dataset(), v1::DATASET_SPAM_ASSASSIN);
}

// Per-item mask questions: the rule campaign's grid, asked about one sample each; an image item's
// picture is the sample next to its saliency (evidence_panel), a text item's the mail's words.
TEST(MaskCampaignFor, AsksAboutOneSampleAndShowsTheModelsEvidenceOnIt) {
  LoadedDataset ds;
  ds.dataset = v1::DATASET_FASHION_MNIST;
  ds.image_rows = ds.image_cols = 28;
  ds.label_names = {"a", "b"};
  ds.label_display_names = {"A", "B"};
  ds.train.refs = {40, 41};
  ds.train.pixels.assign(2 * 784, 7);
  const v1::CampaignSpec spec = MaskCampaignFor(ds, "exp-1-hitl-features", {});
  EXPECT_EQ(spec.question_kind(), v1::QUESTION_KIND_FEATURE_MASK);
  EXPECT_EQ(spec.feature_grid().rows(), 7u);
  EXPECT_EQ(spec.feature_grid().cols(), 7u);
  EXPECT_TRUE(spec.feature_grid().evidence_panel());
  EXPECT_NE(spec.instructions().find("Left: the item"), std::string::npos);
  const std::vector<std::uint8_t> evidence(28 * 56, 200);
  const v1::ItemInput item = MaskItemFor(ds, 1, 0, evidence);
  EXPECT_EQ(item.sample().index(), 41u);
  EXPECT_EQ(item.given_label(), 0u);
  EXPECT_EQ(item.payload().png(), EncodeGreyscalePng(evidence, 28, 56, 6));
  LoadedDataset text;
  text.dataset = v1::DATASET_SPAM_ASSASSIN;
  text.label_names = {"ham", "spam"};
  text.label_display_names = {"Ham", "Spam"};
  text.vocabulary = {"<unk>", "free"};
  text.train.refs = {5};
  text.train_display_text = {"free money"};
  const v1::ItemInput mail = MaskItemForWords(text, 0, 1, {"free", "qzxspam"});
  EXPECT_EQ(mail.payload().text(), "free\nqzxspam\n");
  EXPECT_EQ(mail.sample().index(), 5u);
  EXPECT_EQ(MaskCampaignFor(text, "r", {}).feature_grid().cols(),
            static_cast<std::uint32_t>(kRuleWords));
}

}  // namespace
}  // namespace greenloop::trainer
