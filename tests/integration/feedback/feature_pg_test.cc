// Feature questions through the real service: rule campaigns with a grid, mask answers checked
// and stored with their cells, the weighted consensus mask in the verdict stream, early agreement
// on identical masks, idempotent resubmits, and a rater's history.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/integration/feedback/feedback_env.h"

namespace greenloop::feedback::testing {
namespace {

using ::testing::ElementsAre;

void RuleCampaign(FeedbackEnv& env, const std::string& id, std::uint32_t agreeing = 0) {
  v1::CreateCampaignRequest req;
  req.set_campaign_id(id);
  v1::CampaignSpec* spec = req.mutable_spec();
  spec->set_question_kind(v1::QUESTION_KIND_FEATURE_RULE);
  for (const char* l : {"cat", "dog", "bird"}) spec->add_labels()->set_name(l);
  spec->mutable_feature_grid()->set_rows(7);
  spec->mutable_feature_grid()->set_cols(7);
  spec->set_ratings_per_item(3);
  spec->set_agreeing_ratings(agreeing);
  v1::CreateCampaignResponse resp;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().CreateCampaign(ctx.get(), req, &resp).ok());
}

// One rule item per class, its payload a (tiny) PNG.
void EnqueueRules(FeedbackEnv& env, const std::string& campaign, int classes) {
  v1::EnqueueItemsRequest req;
  req.set_campaign_id(campaign);
  for (int c = 0; c < classes; ++c) {
    v1::ItemInput* item = req.add_items();
    item->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
    item->mutable_sample()->set_index(static_cast<std::uint64_t>(c));
    item->mutable_payload()->set_png(std::string("\x89PNG\r\n\x1a\n", 8) + "saliency");
    item->set_given_label(static_cast<std::uint32_t>(c));
  }
  v1::EnqueueItemsResponse resp;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().EnqueueItems(ctx.get(), req, &resp).ok());
}

grpc::Status SubmitMask(FeedbackEnv& env, const std::string& token, const std::string& lease,
                        std::vector<std::uint32_t> cells, v1::SubmitResponse* out = nullptr) {
  v1::SubmitRequest req;
  req.set_lease_id(lease);
  for (std::uint32_t c : cells)
    req.mutable_answer()->mutable_feature_mask()->add_irrelevant_cells(c);
  req.mutable_answer()->mutable_feature_mask();
  req.set_seconds_spent(4);
  v1::SubmitResponse ignored;
  auto ctx = rpc::NewClientContext(5s, token);
  return env.stub().Submit(ctx.get(), req, out != nullptr ? out : &ignored);
}

std::vector<v1::Verdict> Verdicts(FeedbackEnv& env, const std::string& campaign, int n) {
  v1::WatchVerdictsRequest req;
  req.set_campaign_id(campaign);
  auto ctx = rpc::NewClientContext(20s, env.worker());
  auto reader = env.stub().WatchVerdicts(ctx.get(), req);
  std::vector<v1::Verdict> out;
  v1::WatchVerdictsResponse r;
  while (static_cast<int>(out.size()) < n && reader->Read(&r)) out.push_back(r.verdict());
  ctx->TryCancel();
  reader->Finish();
  return out;
}

TEST(FeaturePg, ARuleIsDecidedAsTheCellsMostRatersMarked) {
  FeedbackEnv env;
  RuleCampaign(env, "rules");
  EnqueueRules(env, "rules", 1);
  const std::vector<std::vector<std::uint32_t>> marks = {{0, 48}, {0}, {0, 6}};
  std::vector<std::string> raters;
  for (int r = 0; r < 3; ++r) {
    raters.push_back(env.Token(v1::ROLE_RATER, "r" + std::to_string(r)));
    v1::LeaseResponse leased;
    ASSERT_TRUE(env.Lease(raters[r], "rules", 1, &leased).ok());
    ASSERT_EQ(leased.items_size(), 1);
    const v1::Question& q = leased.items(0).question();
    EXPECT_EQ(q.kind(), v1::QUESTION_KIND_FEATURE_RULE);
    EXPECT_EQ(q.prompt(), "Which parts should the model ignore in every cat?");
    EXPECT_EQ(q.feature_grid().cols(), 7u);
    const std::string lease = leased.items(0).lease_id();
    // Out of the grid, or empty: refused, nothing stored.
    EXPECT_EQ(SubmitMask(env, raters[r], lease, {49}).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(SubmitMask(env, raters[r], lease, {}).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    ASSERT_TRUE(SubmitMask(env, raters[r], lease, marks[r]).ok());
    // The same cells again are a duplicate; other cells a different answer.
    v1::SubmitResponse again;
    ASSERT_TRUE(SubmitMask(env, raters[r], lease, marks[r], &again).ok());
    EXPECT_TRUE(again.duplicate());
    EXPECT_EQ(SubmitMask(env, raters[r], lease, {1}).error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
  }
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings"), 3);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_rating_masks"), 3);
  const std::vector<v1::Verdict> v = Verdicts(env, "rules", 1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].decision_case(), v1::Verdict::kFeatureMask);
  EXPECT_THAT(v[0].feature_mask().irrelevant_cells(), ElementsAre(0));
  EXPECT_EQ(v[0].given_label(), 0u);
  EXPECT_NEAR(v[0].confidence(), (1.0 + 2.0 / 3 + 2.0 / 3) / 3, 1e-9);
  // The rater's history shows the cells; the re-estimator has nothing to do.
  v1::ListMyRatingsRequest mine;
  v1::ListMyRatingsResponse history;
  auto ctx = rpc::NewClientContext(5s, raters[0]);
  ASSERT_TRUE(env.stub().ListMyRatings(ctx.get(), mine, &history).ok());
  ASSERT_EQ(history.ratings_size(), 1);
  EXPECT_THAT(history.ratings(0).answer().feature_mask().irrelevant_cells(), ElementsAre(0, 48));
  EXPECT_FALSE(history.ratings(0).agrees_with_verdict());
  absl::StatusOr<int> revisions = env.queue().Reestimate("rules");
  ASSERT_TRUE(revisions.ok()) << revisions.status();
  EXPECT_EQ(*revisions, 0);
}

TEST(FeaturePg, TwoIdenticalMasksDecideEarly) {
  FeedbackEnv env;
  RuleCampaign(env, "agree", /*agreeing=*/2);
  EnqueueRules(env, "agree", 2);
  for (int r = 0; r < 2; ++r) {
    const std::string token = env.Token(v1::ROLE_RATER, "a" + std::to_string(r));
    v1::LeaseResponse leased;
    ASSERT_TRUE(env.Lease(token, "agree", 2, &leased).ok());
    ASSERT_EQ(leased.items_size(), 2);
    for (const auto& item : leased.items()) {
      // Item of class 0: both mark {6, 42}; class 1: they differ.
      std::vector<std::uint32_t> cells = {6, 42};
      if (item.question().given_label() == 1) cells = {static_cast<std::uint32_t>(10 + r)};
      ASSERT_TRUE(SubmitMask(env, token, item.lease_id(), cells).ok());
    }
  }
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), 1);
  const std::vector<v1::Verdict> v = Verdicts(env, "agree", 1);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].given_label(), 0u);
  EXPECT_THAT(v[0].feature_mask().irrelevant_cells(), ElementsAre(6, 42));
  EXPECT_EQ(v[0].ratings_count(), 2u);
}

}  // namespace
}  // namespace greenloop::feedback::testing
