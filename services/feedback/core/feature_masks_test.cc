// Feature questions: the spec's grid, mask answers and their categories, prompts, and the
// consensus mask of a verdict.
#include "services/feedback/core/feature_masks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/feedback/core/answers.h"
#include "services/feedback/core/verdicts.h"

namespace greenloop::feedback {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::CampaignSpec RuleSpec() {
  v1::CampaignSpec spec;
  spec.set_question_kind(v1::QUESTION_KIND_FEATURE_RULE);
  spec.add_labels()->set_name("t_shirt");
  spec.mutable_labels(0)->set_display_name("T-shirt/top");
  spec.add_labels()->set_name("trouser");
  spec.mutable_feature_grid()->set_rows(7);
  spec.mutable_feature_grid()->set_cols(7);
  return spec;
}

v1::Answer Mask(std::initializer_list<std::uint32_t> cells) {
  v1::Answer a;
  a.mutable_feature_mask();
  for (std::uint32_t c : cells) a.mutable_feature_mask()->add_irrelevant_cells(c);
  return a;
}

TEST(FeatureSpec, NeedsAGridAndOnlyFeatureQuestionsMayHaveOne) {
  EXPECT_TRUE(NormalizeSpec(RuleSpec()).ok()) << NormalizeSpec(RuleSpec()).status();
  v1::CampaignSpec spec = RuleSpec();
  spec.clear_feature_grid();
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("spec.feature_grid"));
  spec = RuleSpec();
  spec.mutable_feature_grid()->set_rows(100);
  spec.mutable_feature_grid()->set_cols(100);
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("at most 1024 cells"));
  spec = RuleSpec();
  spec.clear_labels();
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("spec.labels"));
  spec = RuleSpec();
  spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("only for"));
  spec = RuleSpec();
  spec.set_question_kind(v1::QUESTION_KIND_FEATURE_MASK);
  spec.clear_labels();
  EXPECT_TRUE(NormalizeSpec(spec).ok());
  EXPECT_EQ(Categories(RuleSpec()), 0);
}

TEST(FeatureAnswers, AreCheckedAndTheSameCellsAreTheSameCategory) {
  const v1::CampaignSpec spec = RuleSpec();
  absl::StatusOr<int> a = AnswerCategory(spec, Mask({48, 0, 6}));
  absl::StatusOr<int> b = AnswerCategory(spec, Mask({0, 6, 48}));
  absl::StatusOr<int> c = AnswerCategory(spec, Mask({0, 6}));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_GE(*a, 0);
  EXPECT_THAT(AnswerCategory(spec, Mask({49})).status().message(),
              HasSubstr("answer.feature_mask.irrelevant_cells[0] = 49 is outside the 7×7 grid"));
  EXPECT_THAT(AnswerCategory(spec, Mask({3, 3})).status().message(), HasSubstr("twice"));
  EXPECT_THAT(AnswerCategory(spec, Mask({})).status().message(), HasSubstr("rule must name"));
  v1::Answer wrong;
  wrong.set_label(1);
  EXPECT_THAT(AnswerCategory(spec, wrong).status().message(), HasSubstr("feature_mask"));
  v1::CampaignSpec per_item = spec;
  per_item.set_question_kind(v1::QUESTION_KIND_FEATURE_MASK);
  EXPECT_TRUE(AnswerCategory(per_item, Mask({})).ok());  // nothing to ignore is an answer
}

TEST(FeatureItems, ARuleNamesItsClass) {
  v1::ItemInput item;
  item.mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
  item.mutable_payload()->set_png(std::string("\x89PNG\r\n\x1a\n", 8) + "data");
  const Limits limits;
  EXPECT_THAT(ValidateItem(RuleSpec(), item, 0, limits).message(), HasSubstr("given_label"));
  item.set_given_label(1);
  EXPECT_TRUE(ValidateItem(RuleSpec(), item, 0, limits).ok());
  *item.mutable_gold_answer() = Mask({60});
  EXPECT_THAT(ValidateItem(RuleSpec(), item, 0, limits).message(), HasSubstr("gold_answer"));
}

TEST(FeatureQuestions, CarryTheGridAndAskAboutTheClass) {
  const v1::Question q = MakeQuestion(RuleSpec(), 0u, nullptr);
  EXPECT_EQ(q.prompt(), "Which parts should the model ignore in every T-shirt/top?");
  EXPECT_EQ(q.feature_grid().rows(), 7u);
  v1::CampaignSpec per_item = RuleSpec();
  per_item.set_question_kind(v1::QUESTION_KIND_FEATURE_MASK);
  EXPECT_EQ(MakeQuestion(per_item, std::nullopt, nullptr).prompt(),
            "Which parts of this image should the model ignore?");
}

TEST(DecideMask, KeepsTheCellsHalfTheWeightMarked) {
  MaskConsensus c = DecideMask({{{0, 6, 48}, 1.0}, {{0, 6}, 1.0}, {{0, 12}, 1.0}});
  EXPECT_THAT(c.mask.irrelevant_cells(), ElementsAre(0, 6));
  // Cells 0: all agree; 6: 2 of 3; 12 and 48: 2 of 3 left them out.
  EXPECT_NEAR(c.confidence, (1.0 + 2.0 / 3 + 2.0 / 3 + 2.0 / 3) / 4, 1e-12);
  // A reliable rater outweighs two unreliable ones.
  c = DecideMask({{{5}, 0.95}, {{}, 0.3}, {{}, 0.3}});
  EXPECT_THAT(c.mask.irrelevant_cells(), ElementsAre(5));
  c = DecideMask({{{}, 1.0}, {{}, 1.0}});
  EXPECT_TRUE(c.mask.irrelevant_cells().empty());
  EXPECT_EQ(c.confidence, 1.0);
}

TEST(FeatureVerdict, IsTheConsensusMaskWeightedByGoldRecords) {
  ItemRecord item{.item_id = 9,
                  .dataset = v1::DATASET_FASHION_MNIST,
                  .sample_index = 3,
                  .given_label = 1,
                  .ratings_count = 3,
                  .skips_count = 0,
                  .decide_time = absl::FromUnixSeconds(1'800'000'000)};
  ItemRatings r;
  r.ratings = {{9, "a", 0}, {9, "b", 0}, {9, "c", 0}};
  r.masks = {{"a", {0, 48}}, {"b", {0}}, {"c", {}}};
  absl::StatusOr<BuiltVerdict> v = FirstVerdict(RuleSpec(), item, r);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->verdict.decision_case(), v1::Verdict::kFeatureMask);
  EXPECT_THAT(v->verdict.feature_mask().irrelevant_cells(), ElementsAre(0));
  EXPECT_EQ(v->verdict.given_label(), 1u);
  EXPECT_EQ(v->verdict.question_kind(), v1::QUESTION_KIND_FEATURE_RULE);
  EXPECT_EQ(v->decision, MaskCategory(v->verdict.feature_mask()));
  // Rater a's gold record (19 of 20) carries cell 48 against two raters with none.
  r.gold = {{"a", {19, 20}}, {"b", {1, 20}}, {"c", {1, 20}}};
  v = FirstVerdict(RuleSpec(), item, r);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(v->verdict.feature_mask().irrelevant_cells(), ElementsAre(0, 48));
  EXPECT_FALSE(RevisedVerdict(RuleSpec(), v->verdict, v->decision, 1, 0.9, absl::Now()));
}

TEST(CellsText, RoundTripsThroughPostgresArrayText) {
  v1::FeatureMask m;
  m.add_irrelevant_cells(0);
  m.add_irrelevant_cells(48);
  EXPECT_EQ(CellsText(m), "{0,48}");
  EXPECT_THAT(ParseCells("{0,48}"), ElementsAre(0, 48));
  EXPECT_TRUE(ParseCells("{}").empty());
  EXPECT_EQ(CellsText(v1::FeatureMask()), "{}");
}

}  // namespace
}  // namespace greenloop::feedback
