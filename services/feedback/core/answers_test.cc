#include "services/feedback/core/answers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace greenloop::feedback {
namespace {

using ::testing::HasSubstr;

v1::CampaignSpec ChoiceSpec(int labels) {
  v1::CampaignSpec spec;
  spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  for (int i = 0; i < labels; ++i) spec.add_labels()->set_name("l" + std::to_string(i));
  return spec;
}

TEST(ValidateClientId, FollowsTheContract) {
  EXPECT_TRUE(ValidateClientId("run-42").ok());
  EXPECT_TRUE(ValidateClientId("0abc").ok());
  for (const char* bad : {"", "-a", "Upper", "a_b", "a b"}) {
    EXPECT_EQ(ValidateClientId(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateClientId(std::string(64, 'a')).ok());
}

TEST(NormalizeSpec, FillsDefaults) {
  absl::StatusOr<v1::CampaignSpec> spec = NormalizeSpec(ChoiceSpec(3));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->ratings_per_item(), 3u);
  EXPECT_EQ(spec->lease_ttl_seconds(), 120u);
  EXPECT_EQ(spec->labels(0).shortcut(), "1");
  EXPECT_EQ(spec->labels(2).display_name(), "l2");
}

TEST(NormalizeSpec, RejectsWhatTheContractRejects) {
  v1::CampaignSpec spec = ChoiceSpec(3);
  spec.set_question_kind(v1::QUESTION_KIND_UNSPECIFIED);
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("question_kind"));
  EXPECT_THAT(NormalizeSpec(ChoiceSpec(1)).status().message(), HasSubstr("labels"));
  spec = ChoiceSpec(2);
  spec.mutable_labels(1)->set_name("l0");
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("twice"));
  spec = ChoiceSpec(2);
  spec.set_ratings_per_item(16);
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("ratings_per_item"));
  for (std::uint32_t agreeing : {1u, 3u, 4u}) {
    spec = ChoiceSpec(2);
    spec.set_agreeing_ratings(agreeing);  // k is 3
    EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("agreeing_ratings")) << agreeing;
  }
  spec = ChoiceSpec(2);
  spec.set_agreeing_ratings(2);
  EXPECT_TRUE(NormalizeSpec(spec).ok());
  spec = ChoiceSpec(2);
  spec.set_lease_ttl_seconds(5);
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("lease_ttl_seconds"));
  spec = ChoiceSpec(2);
  spec.set_gold_share(0.6);
  EXPECT_THAT(NormalizeSpec(spec).status().message(), HasSubstr("gold_share"));
  v1::CampaignSpec relevance;
  relevance.set_question_kind(v1::QUESTION_KIND_RELEVANCE);
  EXPECT_TRUE(NormalizeSpec(relevance).ok());
}

TEST(AnswerCategory, MapsAnswersAndRejectsTheWrongKind) {
  v1::CampaignSpec choice = ChoiceSpec(3);
  v1::Answer a;
  a.set_label(2);
  EXPECT_EQ(*AnswerCategory(choice, a), 2);
  a.set_label(3);
  EXPECT_EQ(AnswerCategory(choice, a).status().code(), absl::StatusCode::kInvalidArgument);
  a.set_label_correct(true);
  EXPECT_EQ(AnswerCategory(choice, a).status().code(), absl::StatusCode::kInvalidArgument);
  v1::CampaignSpec check = ChoiceSpec(3);
  check.set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
  EXPECT_EQ(*AnswerCategory(check, a), 1);
  EXPECT_TRUE(CategoryAnswer(check, 1).label_correct());
  EXPECT_EQ(AnswerCategory(check, v1::Answer()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateItem, NamesThePositionAndTheProblem) {
  v1::CampaignSpec spec = *NormalizeSpec(ChoiceSpec(3));
  v1::ItemInput item;
  item.mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
  item.mutable_payload()->set_text("hello");
  EXPECT_TRUE(ValidateItem(spec, item, 0, {}).ok());
  item.set_given_label(7);
  EXPECT_THAT(ValidateItem(spec, item, 4, {}).message(), HasSubstr("items[4]"));
  item.set_given_label(1);
  item.mutable_payload()->set_text(std::string(2000, 'x'));
  EXPECT_THAT(ValidateItem(spec, item, 0, {.max_payload_bytes = 1000}).message(),
              HasSubstr("limit is 1000"));
  item.mutable_payload()->set_png("not a png");
  EXPECT_THAT(ValidateItem(spec, item, 0, {}).message(), HasSubstr("PNG"));
  item.mutable_payload()->set_text("ok");
  item.mutable_model_prediction()->set_confidence(1.5);
  EXPECT_THAT(ValidateItem(spec, item, 0, {}).message(), HasSubstr("confidence"));
  item.clear_model_prediction();
  item.mutable_gold_answer()->set_relevant(true);
  EXPECT_THAT(ValidateItem(spec, item, 0, {}).message(), HasSubstr("gold_answer"));
  item.clear_payload();
  EXPECT_THAT(ValidateItem(spec, item, 0, {}).message(), HasSubstr("payload"));
}

TEST(MakeQuestion, AsksAboutTheGivenLabelAndShowsThePredictionOnlyWhenAsked) {
  v1::CampaignSpec spec = *NormalizeSpec(ChoiceSpec(3));
  spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
  spec.mutable_labels(1)->set_display_name("Sneaker");
  v1::ModelPrediction p;
  p.set_label(2);
  v1::Question q = MakeQuestion(spec, 1, &p);
  EXPECT_EQ(q.prompt(), "Is this a Sneaker?");
  EXPECT_FALSE(q.has_model_prediction());
  spec.set_show_model_prediction(true);
  EXPECT_EQ(MakeQuestion(spec, 1, &p).model_prediction().label(), 2u);
}

TEST(SetDecision, SuggestsActions) {
  v1::CampaignSpec spec = *NormalizeSpec(ChoiceSpec(3));
  v1::Verdict v;
  v.set_given_label(1);
  SetDecision(spec, 1, &v);
  EXPECT_EQ(v.suggested_action(), v1::VERDICT_ACTION_KEEP);
  SetDecision(spec, 2, &v);
  EXPECT_EQ(v.consensus_label(), 2u);
  EXPECT_EQ(v.suggested_action(), v1::VERDICT_ACTION_RELABEL);
  SetDecision(spec, std::nullopt, &v);
  EXPECT_TRUE(v.undecidable());
  EXPECT_EQ(v.suggested_action(), v1::VERDICT_ACTION_DROP);
}

TEST(Cursor, RoundTripsAndRejectsOtherCampaigns) {
  const std::string cursor = EncodeCursor("camp-a", 42);
  EXPECT_EQ(*DecodeCursor("camp-a", cursor), 42);
  EXPECT_EQ(*DecodeCursor("camp-a", ""), 0);
  EXPECT_EQ(DecodeCursor("camp-b", cursor).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeCursor("camp-a", "garbage").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PageToken, IsBoundToItsScope) {
  const std::string token = EncodePageToken("campaigns/x", 17);
  EXPECT_EQ(**DecodePageToken("campaigns/x", token), 17);
  EXPECT_FALSE(DecodePageToken("campaigns/x", "").value().has_value());
  EXPECT_EQ(DecodePageToken("campaigns/y", token).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Page page;
  EXPECT_EQ(PageSize(page), 50);
  page.set_page_size(9999);
  EXPECT_EQ(PageSize(page), 500);
}

TEST(ParseId, OnlyPlainDecimalDigitsUpTo18) {
  EXPECT_EQ(ParseId("42"), 42);
  EXPECT_EQ(ParseId("999999999999999999"), 999999999999999999);
  EXPECT_FALSE(ParseId("").has_value());
  EXPECT_FALSE(ParseId("-1").has_value());
  EXPECT_FALSE(ParseId("1e3").has_value());
  EXPECT_FALSE(ParseId("1000000000000000000").has_value()) << "19 digits";
}

}  // namespace
}  // namespace greenloop::feedback
