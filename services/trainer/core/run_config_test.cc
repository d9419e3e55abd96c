#include "services/trainer/core/run_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace greenloop::trainer {
namespace {

using ::testing::HasSubstr;

v1::StartRunRequest Valid() {
  v1::StartRunRequest r;
  r.set_run_id("run-1");
  v1::RunConfig* c = r.mutable_config();
  c->set_dataset(v1::DATASET_FASHION_MNIST);
  c->set_mode(v1::MODE_BASELINE);
  c->mutable_budget()->set_max_epochs(1);
  return r;
}

void ExpectInvalid(const v1::StartRunRequest& r, std::string_view needle) {
  absl::StatusOr<v1::StartRunRequest> v = ValidateStartRun(r);
  ASSERT_FALSE(v.ok()) << "accepted: " << r.ShortDebugString();
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr(std::string(needle)));
}

TEST(ValidateStartRun, FillsDefaults) {
  absl::StatusOr<v1::StartRunRequest> v = ValidateStartRun(Valid());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->world_size(), 1u);
  EXPECT_EQ(v->config().batch_size(), 64u);
  EXPECT_DOUBLE_EQ(v->config().learning_rate(), 0.001);
  EXPECT_EQ(v->config().model_kind(), v1::MODEL_KIND_CNN);
  EXPECT_EQ(v->config().candidates_per_selection(), 32u);
  EXPECT_EQ(v->config().energy_endpoint(), "127.0.0.1:7101");
  EXPECT_DOUBLE_EQ(v->config().verdict_policy().min_confidence(), 0.6);
  EXPECT_DOUBLE_EQ(v->config().auto_review().flag_threshold(), 0.9);
  EXPECT_EQ(v->config().projection_warmup_steps(), 50u);
}

TEST(ValidateStartRun, RejectsBadInputWithTheFieldNamed) {
  v1::StartRunRequest r = Valid();
  r.set_run_id("Bad_Run");
  ExpectInvalid(r, "run_id");
  r = Valid();
  r.mutable_config()->set_dataset(static_cast<v1::Dataset>(42));
  ExpectInvalid(r, "config.dataset");
  r = Valid();
  r.mutable_config()->set_learning_rate(-0.1);
  ExpectInvalid(r, "config.learning_rate");
  r = Valid();
  r.mutable_config()->set_target_accuracy(1.5);
  ExpectInvalid(r, "config.target_accuracy");
  r = Valid();
  r.mutable_config()->clear_budget();
  ExpectInvalid(r, "config.budget");
  r = Valid();
  r.mutable_config()->set_mode(v1::MODE_UNSPECIFIED);
  ExpectInvalid(r, "config.mode");
  r = Valid();
  r.mutable_config()->set_mode(v1::MODE_HITL);
  r.mutable_config()->set_select_every_steps(10);
  ExpectInvalid(r, "config.feedback.endpoint");
  r = Valid();
  r.mutable_config()->set_mode(v1::MODE_AUTO);
  ExpectInvalid(r, "select_every_steps");
  r = Valid();
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_BAG_OF_WORDS);
  ExpectInvalid(r, "config.model_kind");
  r = Valid();  // the zoo: an image model of a shape that fits
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_RESNET);
  r.mutable_config()->mutable_model_shape()->set_width(32);
  r.mutable_config()->mutable_model_shape()->set_depth(2);
  EXPECT_TRUE(ValidateStartRun(r).ok()) << ValidateStartRun(r).status();
  r.mutable_config()->mutable_model_shape()->set_depth(9);
  ExpectInvalid(r, "config.model_shape.depth must be at most 8");
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_LENET5);
  ExpectInvalid(r, "config.model_shape: MODEL_KIND_LENET5 has a fixed shape");
  r = Valid();
  r.mutable_config()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_MOBILENET);
  ExpectInvalid(r, "MODEL_KIND_MOBILENET does not fit DATASET_SPAM_ASSASSIN");
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_TRANSFORMER);  // text models
  r.mutable_config()->mutable_model_shape()->set_width(32);
  EXPECT_TRUE(ValidateStartRun(r).ok()) << ValidateStartRun(r).status();
  r.mutable_config()->set_mode(v1::MODE_HITL_FEATURES);
  r.mutable_config()->mutable_feedback()->set_endpoint("127.0.0.1:7102");
  r.mutable_config()->mutable_feedback()->set_campaign_id("c1");
  ExpectInvalid(r, "feature feedback on text needs MODEL_KIND_BAG_OF_WORDS");
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_BAG_OF_WORDS);
  EXPECT_TRUE(ValidateStartRun(r).ok()) << ValidateStartRun(r).status();
  r = Valid();
  r.mutable_config()->set_model_kind(v1::MODEL_KIND_TRANSFORMER);
  ExpectInvalid(r, "MODEL_KIND_TRANSFORMER does not fit DATASET_FASHION_MNIST");
  r = Valid();
  r.mutable_config()->set_threads(257);
  ExpectInvalid(r, "config.threads must be at most 256");
  r = Valid();
  r.mutable_config()->mutable_inference()->add_batch_sizes(0);
  ExpectInvalid(r, "config.inference.batch_sizes must each be 1 to 4096, got 0");
  r = Valid();
  r.mutable_config()->mutable_inference()->set_seconds_per_batch(61);
  ExpectInvalid(r, "config.inference.seconds_per_batch");
  r = Valid();
  r.set_world_size(2);
  r.set_rank(2);
  ExpectInvalid(r, "rank 2 is not below world_size 2");
  r = Valid();
  r.set_world_size(2);
  ExpectInvalid(r, "rendezvous");
  r = Valid();
  r.mutable_config()->mutable_label_noise()->set_rate(0.3);
  ExpectInvalid(r, "label_noise.kind");
}

// MODE_HITL_COMBINED asks two kinds of question, each in a campaign of its own.
TEST(ValidateStartRun, CombinedFeedbackNeedsASecondCampaignForTheFeatureQuestions) {
  v1::StartRunRequest r = Valid();
  r.mutable_config()->set_mode(v1::MODE_HITL_COMBINED);
  r.mutable_config()->set_select_every_steps(10);
  r.mutable_config()->mutable_feedback()->set_endpoint("127.0.0.1:7102");
  r.mutable_config()->mutable_feedback()->set_campaign_id("run-1");
  ExpectInvalid(r, "config.feedback.feature_campaign_id is required in MODE_HITL_COMBINED");
  r.mutable_config()->mutable_feedback()->set_feature_campaign_id("run-1");
  ExpectInvalid(r, "feature_campaign_id must differ from config.feedback.campaign_id");
  r.mutable_config()->mutable_feedback()->set_feature_campaign_id("Run_1");
  ExpectInvalid(r, "config.feedback.feature_campaign_id 'Run_1' is malformed");
  r.mutable_config()->mutable_feedback()->set_feature_campaign_id("run-1-f");
  absl::StatusOr<v1::StartRunRequest> valid = ValidateStartRun(r);
  ASSERT_TRUE(valid.ok()) << valid.status();
  EXPECT_EQ(valid->config().feature_feedback().ask_after_steps(), 50u);  // features asked too
  EXPECT_EQ(FeatureCampaignId(valid->config()), "run-1-f");
  r.mutable_config()->set_select_every_steps(0);  // and samples judged
  ExpectInvalid(r, "config.select_every_steps must be > 0");
  r.mutable_config()->set_mode(v1::MODE_HITL_FEATURES);  // one campaign for one kind
  EXPECT_EQ(FeatureCampaignId(r.config()), "run-1");
  EXPECT_TRUE(UsesHumans(v1::MODE_HITL_COMBINED) && JudgesSamples(v1::MODE_HITL_COMBINED) &&
              AsksForFeatures(v1::MODE_HITL_COMBINED) && MayPrune(v1::MODE_HITL_COMBINED));
  EXPECT_EQ(SampleReviewMode(v1::MODE_HITL_COMBINED), v1::MODE_HITL);
  EXPECT_EQ(SampleReviewMode(v1::MODE_HYBRID), v1::MODE_HYBRID);
}

TEST(ValidateStartRun, ChecksTheDecoyAndTheFeatureRules) {
  v1::StartRunRequest r = Valid();
  r.mutable_config()->mutable_decoy()->set_enabled(true);
  v1::FeatureRule* rule = r.mutable_config()->mutable_feature_feedback()->add_rules();
  rule->add_irrelevant_cells(0);
  rule->add_irrelevant_cells(48);
  rule->set_label(9);
  ASSERT_TRUE(ValidateStartRun(r).ok()) << ValidateStartRun(r).status();

  // A text run's rules name words, an image run's cells; REMOVE drops words (text only).
  v1::StartRunRequest bad = r;
  bad.mutable_config()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
  bad.mutable_config()->set_model_kind(v1::MODEL_KIND_BAG_OF_WORDS);
  ExpectInvalid(bad, "rules[0]: a text rule names words");
  v1::StartRunRequest text = bad;
  v1::FeatureRule* words = text.mutable_config()->mutable_feature_feedback()->mutable_rules(0);
  words->clear_irrelevant_cells();
  words->add_irrelevant_tokens("qzxspam");
  words->set_label(1);
  text.mutable_config()->mutable_feature_feedback()->set_method(v1::FEATURE_METHOD_REMOVE);
  text.mutable_config()->mutable_decoy()->set_tokens_per_sample(3);
  EXPECT_TRUE(ValidateStartRun(text).ok()) << ValidateStartRun(text).status();
  v1::StartRunRequest asks = text;  // raters asked about words
  asks.mutable_config()->set_mode(v1::MODE_HITL_FEATURES);
  asks.mutable_config()->mutable_feedback()->set_endpoint("127.0.0.1:7102");
  asks.mutable_config()->mutable_feedback()->set_campaign_id("rules-1");
  absl::StatusOr<v1::StartRunRequest> asked = ValidateStartRun(asks);
  ASSERT_TRUE(asked.ok()) << asked.status();
  EXPECT_EQ(asked->config().feature_feedback().ask_after_steps(), 50u);
  bad = text;
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->set_label(2);
  ExpectInvalid(bad, "rules[0].label 2 is not one of the 2 classes");
  bad = text;
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->add_irrelevant_tokens("");
  ExpectInvalid(bad, "rules[0].irrelevant_tokens[1] is empty");
  bad = text;
  bad.mutable_config()->mutable_decoy()->set_tokens_per_sample(51);
  ExpectInvalid(bad, "config.decoy.tokens_per_sample");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->set_method(v1::FEATURE_METHOD_REMOVE);
  ExpectInvalid(bad, "FEATURE_METHOD_REMOVE drops words");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->add_irrelevant_tokens("x");
  ExpectInvalid(bad, "rules[0]: an image rule names cells");
  bad = r;
  bad.mutable_config()->mutable_decoy()->set_patch_pixels(5);
  ExpectInvalid(bad, "config.decoy.patch_pixels");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->add_irrelevant_cells(49);
  ExpectInvalid(bad, "rules[0].irrelevant_cells[2] = 49");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->set_label(10);
  ExpectInvalid(bad, "rules[0].label 10");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->clear_irrelevant_cells();
  ExpectInvalid(bad, "rules[0]: an image rule names cells");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->set_penalty_weight(-1);
  ExpectInvalid(bad, "config.feature_feedback.penalty_weight");
  bad = r;  // a per-item mask covers its sample, not a class
  bad.mutable_config()->mutable_feature_feedback()->mutable_rules(0)->set_sample(3);
  ExpectInvalid(bad, "rules[0]: a per-item mask (sample) covers one sample: no label");
  bad = r;
  bad.mutable_config()->mutable_feature_feedback()->set_item_questions(501);
  ExpectInvalid(bad, "config.feature_feedback.item_questions must be at most 500");
}

TEST(ValidateIdentifier, FollowsCommonProto) {
  EXPECT_TRUE(ValidateIdentifier("run_id", "a").ok());
  EXPECT_TRUE(ValidateIdentifier("run_id", "0-run-9").ok());
  EXPECT_FALSE(ValidateIdentifier("run_id", "").ok());
  EXPECT_FALSE(ValidateIdentifier("run_id", "-a").ok());
  EXPECT_FALSE(ValidateIdentifier("run_id", std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateIdentifier("run_id", "a/b").ok());
}

}  // namespace
}  // namespace greenloop::trainer
