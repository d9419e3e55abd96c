// FeedbackQueue's own rules (roles, validation before storage, rate limit, gold draws) over a
// store that records what reached it. The SQL behind the store is tested against PostgreSQL in
// tests/integration/feedback.
#include "services/feedback/core/queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/feedback/core/tokens.h"
#include "services/feedback/testing/recording_store.h"

namespace greenloop::feedback {
namespace {

using ::testing::HasSubstr;
using testing::RecordingStore;

Caller Rater() { return {"11", "alice", v1::ROLE_RATER}; }
Caller Worker() { return {"12", "trainer", v1::ROLE_WORKER}; }
Caller Admin() { return {"13", "ops", v1::ROLE_ADMIN}; }

v1::Campaign OpenCampaign(double gold_share = 0) {
  v1::Campaign c;
  c.set_campaign_id("c1");
  c.set_state(v1::CAMPAIGN_STATE_OPEN);
  c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_RELEVANCE);
  c.mutable_spec()->set_ratings_per_item(3);
  c.mutable_spec()->set_lease_ttl_seconds(60);
  c.mutable_spec()->set_gold_share(gold_share);
  return c;
}

TEST(FeedbackQueue, RolesAreCheckedBeforeAnythingIsStored) {
  RecordingStore store;
  FeedbackQueue queue(&store, {});
  v1::EnqueueItemsRequest enqueue;
  enqueue.set_campaign_id("c1");
  auto denied = queue.EnqueueItems(Rater(), enqueue);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status().message(), HasSubstr("ROLE_WORKER or ROLE_ADMIN"));
  EXPECT_EQ(queue.Lease(Worker(), {}).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(queue.Lease(Admin(), {}).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(queue.CreateToken(Worker(), {}).status().code(), absl::StatusCode::kPermissionDenied);
  v1::WatchVerdictsRequest watch;
  watch.set_campaign_id("c1");
  EXPECT_EQ(queue.StartWatch(Rater(), watch).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store.calls, 0);
  // Authentication disabled: the anonymous identity may do anything.
  EXPECT_TRUE(queue.Lease(Caller::Anonymous(), {}).ok());
}

TEST(FeedbackQueue, BadInputNeverReachesTheStore) {
  RecordingStore store;
  store.campaign = OpenCampaign();
  FeedbackQueue queue(&store, {.limits = {.max_payload_bytes = 100}});
  v1::EnqueueItemsRequest enqueue;
  enqueue.set_campaign_id("c1");
  EXPECT_THAT(queue.EnqueueItems(Worker(), enqueue).status().message(), HasSubstr("empty"));
  v1::ItemInput* item = enqueue.add_items();
  item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
  item->mutable_payload()->set_text(std::string(200, 'x'));
  EXPECT_THAT(queue.EnqueueItems(Worker(), enqueue).status().message(), HasSubstr("limit is 100"));
  item->mutable_payload()->set_text("fine");
  *enqueue.add_items() = *item;
  EXPECT_THAT(queue.EnqueueItems(Worker(), enqueue).status().message(),
              HasSubstr("once per batch"));
  const int before = store.calls;
  v1::SubmitRequest submit;
  EXPECT_THAT(queue.Submit(Rater(), submit).status().message(), HasSubstr("lease_id"));
  submit.set_lease_id("5");
  EXPECT_THAT(queue.Submit(Rater(), submit).status().message(), HasSubstr("answer"));
  submit.mutable_answer()->set_relevant(true);
  submit.set_seconds_spent(-1);
  EXPECT_THAT(queue.Submit(Rater(), submit).status().message(), HasSubstr("seconds_spent"));
  submit.set_lease_id("not-a-lease");
  submit.set_seconds_spent(1);
  EXPECT_EQ(queue.Submit(Rater(), submit).status().code(), absl::StatusCode::kNotFound);
  v1::LeaseRequest lease;
  lease.set_max_items(21);
  EXPECT_EQ(queue.Lease(Rater(), lease).status().code(), absl::StatusCode::kInvalidArgument);
  lease.set_max_items(1);
  lease.set_campaign_id("Bad_Id");
  EXPECT_EQ(queue.Lease(Rater(), lease).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.calls, before);
}

TEST(FeedbackQueue, RatersAreRateLimitedPerToken) {
  RecordingStore store;
  store.campaign = OpenCampaign();
  absl::Time now = absl::FromUnixSeconds(1000);
  FeedbackQueue queue(
      &store, {.rater_requests_per_second = 2, .rater_burst = 3, .clock = [&now] { return now; }});
  v1::LeaseRequest lease;
  lease.set_campaign_id("c1");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(queue.Lease(Rater(), lease).ok()) << i;
  absl::StatusOr<v1::LeaseResponse> limited = queue.Lease(Rater(), lease);
  EXPECT_EQ(limited.status().code(), absl::StatusCode::kResourceExhausted);
  Caller bob = Rater();
  bob.id = "99";
  EXPECT_TRUE(queue.Lease(bob, lease).ok());  // another rater has its own bucket
  now += absl::Milliseconds(500);             // one token back
  EXPECT_TRUE(queue.Lease(Rater(), lease).ok());
  EXPECT_FALSE(queue.Lease(Rater(), lease).ok());
}

TEST(FeedbackQueue, EmptyLeaseSaysWhenToRetryAndGoldFollowsTheShare) {
  RecordingStore store;
  store.campaign = OpenCampaign(0.5);
  FeedbackQueue queue(&store, {.rater_requests_per_second = 0, .seed = 1});
  v1::LeaseRequest lease;
  lease.set_campaign_id("c1");
  lease.set_max_items(10);
  int gold = 0;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<v1::LeaseResponse> r = queue.Lease(Rater(), lease);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->retry_after_ms(), 1000u);
    gold += store.leases.back().second;
  }
  EXPECT_NEAR(gold / 1000.0, 0.5, 0.06);
  store.campaign = OpenCampaign(0);
  store.campaign->set_campaign_id("c2");
  lease.set_campaign_id("c2");
  ASSERT_TRUE(queue.Lease(Rater(), lease).ok());
  EXPECT_EQ(store.leases.back().second, 0);
  // A campaign's spec is read once: it never changes.
  const int calls = store.calls;
  ASSERT_TRUE(queue.Lease(Rater(), lease).ok());
  EXPECT_EQ(store.calls, calls + 1) << "only the lease itself reached the store";
}

TEST(FeedbackQueue, CreateTokenReturnsTheSecretOnceAndStoresOnlyItsHash) {
  RecordingStore store;
  FeedbackQueue queue(&store, {});
  v1::CreateTokenRequest req;
  req.set_role(v1::ROLE_RATER);
  EXPECT_THAT(queue.CreateToken(Admin(), req).status().message(), HasSubstr("name"));
  req.set_name("alice");
  absl::StatusOr<v1::CreateTokenResponse> r = queue.CreateToken(Admin(), req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->token(), ::testing::StartsWith("glt_"));
  EXPECT_EQ(r->token().size(), 44u);
  EXPECT_EQ(r->info().token_prefix(), r->token().substr(0, 8));
  ASSERT_EQ(store.tokens.size(), 1u);
  EXPECT_EQ(store.tokens.begin()->first, HashTokenSecret(r->token()));
  EXPECT_NE(store.tokens.begin()->first.find(r->token()), 0u);
}

TEST(FeedbackQueue, BootstrapAdminTokenIsCreatedOnce) {
  RecordingStore store;
  FeedbackQueue queue(&store, {});
  EXPECT_TRUE(*queue.EnsureAdminToken("glt_bootstrap-secret", "bootstrap admin"));
  EXPECT_FALSE(*queue.EnsureAdminToken("glt_bootstrap-secret", "bootstrap admin"));
  EXPECT_EQ(store.tokens.size(), 1u);
  EXPECT_EQ(store.tokens.begin()->second.info.role(), v1::ROLE_ADMIN);
}

TEST(Tokens, SecretsAreRandomAndComparedInConstantTime) {
  absl::StatusOr<std::string> a = GenerateTokenSecret(), b = GenerateTokenSecret();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(HashTokenSecret(*a).size(), 32u);
  EXPECT_TRUE(ConstantTimeEqual(HashTokenSecret(*a), HashTokenSecret(*a)));
  EXPECT_FALSE(ConstantTimeEqual(HashTokenSecret(*a), HashTokenSecret(*b)));
  EXPECT_FALSE(ConstantTimeEqual("abc", "ab"));
}

// Issue 17, hole 1: a manifest's placeholder (deploy/k8s/secrets.yaml ships "CHANGE-ME") must
// never become a working admin token.
TEST(Tokens, BootstrapSecretsMustBeGeneratedOrLongAndRandom) {
  absl::StatusOr<std::string> generated = GenerateTokenSecret();
  ASSERT_TRUE(generated.ok());
  EXPECT_TRUE(CheckBootstrapSecret("auth.bootstrap_admin_token", *generated).ok());
  EXPECT_TRUE(
      CheckBootstrapSecret("s", "q8Zr2mWf9Lx0Pt4Vn7Yc1Bk6Hd3Gs5Ja+/=").ok());  // 32+, random
  for (const char* bad :
       {"CHANGE-ME", "change_me_change_me_change_me_change_me",
        "my-password-0123456789-abcdefghijklmnop", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "glt_short",
        "glt_CHANGEMEchangemeCHANGEMEchangemeCHANGEME",  // the generated form
        "glt_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "Placeholder-q8Zr2mWf9Lx0Pt4Vn7Yc1Bk6Hd"}) {
    const absl::Status s = CheckBootstrapSecret("auth.bootstrap_admin_token", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(std::string(s.message()).find("auth.bootstrap_admin_token"), std::string::npos);
    EXPECT_EQ(std::string(s.message()).find(bad), std::string::npos) << "the value was echoed";
  }
}

}  // namespace
}  // namespace greenloop::feedback
