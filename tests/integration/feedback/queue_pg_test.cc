// The feedback queue end to end in one process: real PostgreSQL (the `pg` fixture), real gRPC and
// HTTP over loopback, the real store, queue and adapters.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/feedback/feedback_env.h"

namespace greenloop::feedback::testing {
namespace {

using ::testing::HasSubstr;

TEST(FeedbackQueuePg, ConcurrentRatersNeverOverLeaseAnItemBeyondK) {
  FeedbackEnv env;
  constexpr int kItems = 40, kRaters = 32, k = 3;
  env.Campaign("crowd", k);
  env.Enqueue("crowd", 0, kItems);
  std::vector<std::string> tokens;
  for (int r = 0; r < kRaters; ++r)
    tokens.push_back(env.Token(v1::ROLE_RATER, fmt::format("r{}", r)));

  std::mutex mu;
  std::map<std::string, int> holding;  // item → raters holding or having rated it
  int worst = 0;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < kRaters; ++r) {
    threads.emplace_back([&, r] {
      for (;;) {
        v1::LeaseResponse leased;
        if (!env.Lease(tokens[r], "crowd", 2, &leased).ok()) {
          ++errors;
          return;
        }
        if (leased.items_size() == 0) return;
        {
          std::lock_guard lock(mu);
          for (const auto& item : leased.items())
            worst = std::max(worst, ++holding[item.item_id()]);
        }
        for (const auto& item : leased.items()) {
          if (!env.Submit(tokens[r], item.lease_id(), r % 3).ok()) ++errors;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_LE(worst, k);
  EXPECT_EQ(holding.size(), static_cast<std::size_t>(kItems));
  // Every item got exactly k ratings, from k different raters, and a verdict.
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings"), kItems * k);
  EXPECT_EQ(env.Count("SELECT count(*) FROM (SELECT item_id FROM feedback_ratings GROUP BY item_id "
                      "HAVING count(*) <> 3 OR count(DISTINCT rater_id) <> 3) x"),
            0);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_leases"), kItems * k);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), kItems);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_items WHERE holds <> 0"), 0);
}

TEST(FeedbackQueuePg, EarlyAgreementDecidesOnTwoAgreeingRatingsAndOpensTheThirdOnlyOnDissent) {
  FeedbackEnv env;
  env.Campaign("agree", 3, v1::QUESTION_KIND_LABEL_CHOICE, 0, /*agreeing_ratings=*/2);
  env.Enqueue("agree", 0, 2);
  std::vector<std::string> raters;
  for (const char* name : {"ann", "ben", "cid"}) raters.push_back(env.Token(v1::ROLE_RATER, name));
  // Three raters, two items, at most two raters per item until two ratings are in: one item is
  // held twice, the other once.
  std::map<std::string, std::vector<std::pair<int, std::string>>> held;  // item → (rater, lease)
  for (int r = 0; r < 3; ++r) {
    v1::LeaseResponse leased;
    ASSERT_TRUE(env.Lease(raters[r], "agree", 1, &leased).ok());
    ASSERT_EQ(leased.items_size(), 1) << r;
    held[leased.items(0).item_id()].emplace_back(r, leased.items(0).lease_id());
  }
  ASSERT_EQ(held.size(), 2u);
  auto pair = held.begin(), single = std::next(pair);
  if (pair->second.size() != 2) std::swap(pair, single);
  ASSERT_EQ(pair->second.size(), 2u);
  const auto [p1, p1_lease] = pair->second[0];
  const auto [p2, p2_lease] = pair->second[1];
  const auto [s1, s1_lease] = single->second[0];
  // The pair agrees: decided on two ratings.
  ASSERT_TRUE(env.Submit(raters[p1], p1_lease, 1).ok());
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), 0);
  ASSERT_TRUE(env.Submit(raters[p2], p2_lease, 1).ok());
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), 1);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_items WHERE decided AND ratings_count = 2"),
            1);
  // The other item takes a second rater, not a third while neither has rated.
  v1::LeaseResponse second, none, third;
  ASSERT_TRUE(env.Lease(raters[p1], "agree", 1, &second).ok());
  ASSERT_EQ(second.items_size(), 1);
  EXPECT_EQ(second.items(0).item_id(), single->first);
  ASSERT_TRUE(env.Lease(raters[p2], "agree", 1, &none).ok());
  EXPECT_EQ(none.items_size(), 0) << "two raters hold it and none has rated";
  // They disagree: not decided, and it opens to the third rater, whose rating decides.
  ASSERT_TRUE(env.Submit(raters[s1], s1_lease, 0).ok());
  ASSERT_TRUE(env.Submit(raters[p1], second.items(0).lease_id(), 2).ok());
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), 1) << "dissent: not decided";
  ASSERT_TRUE(env.Lease(raters[p2], "agree", 1, &third).ok());
  ASSERT_EQ(third.items_size(), 1);
  EXPECT_EQ(third.items(0).item_id(), single->first);
  ASSERT_TRUE(env.Submit(raters[p2], third.items(0).lease_id(), 2).ok());
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), 2);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings"), 5);
  // agreeing_ratings outside [2, k) is refused.
  EXPECT_THROW(env.Campaign("bad", 3, v1::QUESTION_KIND_LABEL_CHOICE, 0, 3), std::runtime_error);
}

TEST(FeedbackQueuePg, ExpiredLeaseIsRedeliveredAndALateAnswerIsRefused) {
  FeedbackEnv env;
  env.Campaign("expiry", 1);
  env.Enqueue("expiry", 0, 1);
  const std::string alice = env.Token(v1::ROLE_RATER, "alice");
  const std::string bob = env.Token(v1::ROLE_RATER, "bob");
  v1::LeaseResponse first, none, again;
  ASSERT_TRUE(env.Lease(alice, "expiry", 1, &first).ok());
  ASSERT_EQ(first.items_size(), 1);
  ASSERT_TRUE(env.Lease(bob, "expiry", 1, &none).ok());
  EXPECT_EQ(none.items_size(), 0) << "k = 1 and alice holds it";
  EXPECT_GT(none.retry_after_ms(), 0u);

  // Time passes beyond the TTL (the database clock decides), then the reaper runs.
  env.Exec("UPDATE feedback_leases SET expire_time = now() - interval '1 second'");
  v1::SubmitResponse late;
  grpc::Status s = env.Submit(alice, first.items(0).lease_id(), 0, &late);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("expired"));
  ASSERT_EQ(*env.queue().ExpireLeases(), 1);

  ASSERT_TRUE(env.Lease(bob, "expiry", 1, &again).ok());
  ASSERT_EQ(again.items_size(), 1);
  EXPECT_EQ(again.items(0).item_id(), first.items(0).item_id());
  EXPECT_TRUE(env.Submit(bob, again.items(0).lease_id(), 2).ok());
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings"), 1);
}

TEST(FeedbackQueuePg, SubmitIsIdempotentPerLease) {
  FeedbackEnv env;
  env.Campaign("idem", 2);
  env.Enqueue("idem", 0, 1);
  const std::string alice = env.Token(v1::ROLE_RATER, "alice");
  const std::string bob = env.Token(v1::ROLE_RATER, "bob");
  v1::LeaseResponse leased;
  ASSERT_TRUE(env.Lease(alice, "idem", 1, &leased).ok());
  const std::string lease = leased.items(0).lease_id();
  v1::SubmitResponse a, b;
  ASSERT_TRUE(env.Submit(alice, lease, 1, &a).ok());
  EXPECT_FALSE(a.duplicate());
  ASSERT_TRUE(env.Submit(alice, lease, 1, &b).ok());
  EXPECT_TRUE(b.duplicate());
  EXPECT_EQ(a.rating_id(), b.rating_id());
  EXPECT_EQ(env.Submit(alice, lease, 2).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // Even after the lease's time ran out, a retry of the same answer is still a duplicate.
  env.Exec("UPDATE feedback_leases SET expire_time = now() - interval '1 second'");
  ASSERT_TRUE(env.Submit(alice, lease, 1, &b).ok());
  EXPECT_TRUE(b.duplicate());
  // Another rater cannot touch alice's lease.
  EXPECT_EQ(env.Submit(bob, lease, 1).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(env.Count("SELECT ratings_count FROM feedback_items"), 1);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings"), 1);
  // An answer outside the label set is refused and nothing changes.
  v1::LeaseResponse second;
  ASSERT_TRUE(env.Lease(bob, "idem", 1, &second).ok());
  ASSERT_EQ(second.items_size(), 1);
  EXPECT_EQ(env.Submit(bob, second.items(0).lease_id(), 7).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_ratings"), 1);
}

TEST(FeedbackQueuePg, SkipReleaseGoldAndReEnqueue) {
  FeedbackEnv env;
  env.Campaign("misc", 2);
  env.Enqueue("misc", 0, 2);  // priorities 0 and 1
  const std::string alice = env.Token(v1::ROLE_RATER, "alice");
  v1::LeaseResponse l;
  ASSERT_TRUE(env.Lease(alice, "misc", 1, &l).ok());
  EXPECT_EQ(l.items(0).payload().text(), "mail 1") << "highest priority first";
  // Re-enqueueing updates priority, never duplicates.
  v1::EnqueueItemsRequest req;
  req.set_campaign_id("misc");
  v1::ItemInput* item = req.add_items();
  item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
  item->mutable_sample()->set_index(0);
  item->mutable_payload()->set_text("mail 0 again");
  item->set_given_label(0);
  item->set_priority(100);
  v1::EnqueueItemsResponse resp;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().EnqueueItems(ctx.get(), req, &resp).ok());
  EXPECT_EQ(resp.results(0).outcome(), v1::ENQUEUE_OUTCOME_UPDATED);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_items"), 2);

  // Release: the item comes back at once, to the same rater too.
  v1::ReleaseRequest rel;
  rel.set_lease_id(l.items(0).lease_id());
  v1::ReleaseResponse rr;
  auto c2 = rpc::NewClientContext(5s, alice);
  ASSERT_TRUE(env.stub().Release(c2.get(), rel, &rr).ok());
  ASSERT_TRUE(env.Lease(alice, "misc", 2, &l).ok());
  ASSERT_EQ(l.items_size(), 2);
  EXPECT_EQ(l.items(0).payload().text(), "mail 0 again") << "priority 100 now comes first";
  // Skip: never offered to alice again; a submit after a skip is refused.
  v1::SkipRequest skip;
  skip.set_lease_id(l.items(0).lease_id());
  v1::SkipResponse sr;
  auto c3 = rpc::NewClientContext(5s, alice);
  ASSERT_TRUE(env.stub().Skip(c3.get(), skip, &sr).ok());
  EXPECT_EQ(env.Submit(alice, l.items(0).lease_id(), 0).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  auto c4 = rpc::NewClientContext(5s, alice);
  EXPECT_EQ(env.stub().Release(c4.get(), rel, &rr).error_code(), grpc::StatusCode::OK)
      << "releasing a released lease is OK";
  ASSERT_TRUE(env.Submit(alice, l.items(1).lease_id(), 1).ok());
  v1::LeaseResponse empty;
  ASSERT_TRUE(env.Lease(alice, "misc", 5, &empty).ok());
  EXPECT_EQ(empty.items_size(), 0);
}

TEST(FeedbackQueuePg, GoldItemsWeightRatersAndNeverBecomeVerdicts) {
  FeedbackEnv env;
  env.Campaign("gold", 1, v1::QUESTION_KIND_LABEL_CHOICE, 0.5);
  v1::EnqueueItemsRequest req;
  req.set_campaign_id("gold");
  for (int i = 0; i < 4; ++i) {
    v1::ItemInput* item = req.add_items();
    item->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
    item->mutable_sample()->set_index(static_cast<std::uint64_t>(i));
    item->mutable_payload()->set_text("g");
    item->mutable_gold_answer()->set_label(1);
  }
  v1::EnqueueItemsResponse resp;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().EnqueueItems(ctx.get(), req, &resp).ok());
  const std::string alice = env.Token(v1::ROLE_RATER, "alice");
  v1::LeaseResponse l;
  ASSERT_TRUE(env.Lease(alice, "gold", 4, &l).ok());
  ASSERT_EQ(l.items_size(), 4) << "with no ordinary items left, gold fills the lease";
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(env.Submit(alice, l.items(i).lease_id(), i < 3 ? 1 : 0).ok());
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts"), 0);
  v1::GetCampaignStatsRequest sreq;
  sreq.set_campaign_id("gold");
  v1::GetCampaignStatsResponse stats;
  auto c2 = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().GetCampaignStats(c2.get(), sreq, &stats).ok());
  ASSERT_EQ(stats.raters_size(), 1);
  EXPECT_DOUBLE_EQ(stats.raters(0).gold_accuracy(), 0.75);
  EXPECT_EQ(stats.gold_items(), 4u);
}

// Reads verdicts from a WatchVerdicts stream until `n` arrived, then cancels it.
std::vector<v1::WatchVerdictsResponse> Watch(FeedbackEnv& env, const std::string& campaign,
                                             const std::string& cursor, int n) {
  v1::WatchVerdictsRequest req;
  req.set_campaign_id(campaign);
  req.set_cursor(cursor);
  auto ctx = rpc::NewClientContext(20s, env.worker());
  auto reader = env.stub().WatchVerdicts(ctx.get(), req);
  std::vector<v1::WatchVerdictsResponse> out;
  v1::WatchVerdictsResponse r;
  while (static_cast<int>(out.size()) < n && reader->Read(&r)) out.push_back(r);
  ctx->TryCancel();  // the connection drops mid-stream
  reader->Finish();
  return out;
}

TEST(FeedbackQueuePg, VerdictStreamResumesFromACursorWithNothingMissedOrRepeated) {
  FeedbackEnv env;
  env.Campaign("stream", 1);
  env.Enqueue("stream", 0, 10);
  const std::string alice = env.Token(v1::ROLE_RATER, "alice");
  auto rate = [&](int n) {
    v1::LeaseResponse l;
    ASSERT_TRUE(env.Lease(alice, "stream", n, &l).ok());
    for (const auto& item : l.items()) ASSERT_TRUE(env.Submit(alice, item.lease_id(), 1).ok());
  };
  rate(5);
  std::vector<v1::WatchVerdictsResponse> first = Watch(env, "stream", "", 3);
  ASSERT_EQ(first.size(), 3u);
  // The rest arrive while no one watches, and one more while the next stream is open.
  std::thread later([&] {
    std::this_thread::sleep_for(300ms);
    rate(5);
  });
  std::vector<v1::WatchVerdictsResponse> rest = Watch(env, "stream", first.back().cursor(), 7);
  later.join();
  ASSERT_EQ(rest.size(), 7u);
  std::set<std::string> items;
  for (const auto& r : first) items.insert(r.verdict().item_id());
  for (const auto& r : rest) items.insert(r.verdict().item_id());
  EXPECT_EQ(items.size(), 10u) << "10 verdicts, none repeated";
  EXPECT_EQ(rest.front().verdict().revision(), 1u);
  EXPECT_EQ(rest.front().verdict().consensus_label(), 1u);

  // A closed campaign's stream ends with OK after its last verdict.
  v1::CloseCampaignRequest close;
  close.set_campaign_id("stream");
  v1::CloseCampaignResponse closed;
  auto cc = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().CloseCampaign(cc.get(), close, &closed).ok());
  v1::WatchVerdictsRequest req;
  req.set_campaign_id("stream");
  req.set_cursor(rest[2].cursor());
  auto ctx = rpc::NewClientContext(10s, env.worker());
  auto reader = env.stub().WatchVerdicts(ctx.get(), req);
  v1::WatchVerdictsResponse r;
  int n = 0;
  while (reader->Read(&r)) ++n;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(n, 4);

  // A cursor of another campaign is refused.
  env.Campaign("other", 1);
  req.set_campaign_id("other");
  auto c2 = rpc::NewClientContext(5s, env.worker());
  auto bad = env.stub().WatchVerdicts(c2.get(), req);
  while (bad->Read(&r)) {
  }
  EXPECT_EQ(bad->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Each RPC called with an otherwise empty request: what matters is whether auth lets it through.
using RpcCall = std::function<grpc::Status(v1::FeedbackService::Stub&, grpc::ClientContext*)>;

std::map<std::string, RpcCall> AllRpcs() {
  std::map<std::string, RpcCall> rpcs;
#define GREENLOOP_RPC(Name)                                                \
  rpcs[#Name] = [](v1::FeedbackService::Stub& s, grpc::ClientContext* c) { \
    v1::Name##Request req;                                                 \
    v1::Name##Response resp;                                               \
    return s.Name(c, req, &resp);                                          \
  };
  GREENLOOP_RPC(CreateCampaign)
  GREENLOOP_RPC(GetCampaign)
  GREENLOOP_RPC(ListCampaigns)
  GREENLOOP_RPC(CloseCampaign)
  GREENLOOP_RPC(EnqueueItems)
  GREENLOOP_RPC(Lease)
  GREENLOOP_RPC(Submit)
  GREENLOOP_RPC(Skip)
  GREENLOOP_RPC(Release)
  GREENLOOP_RPC(GetCampaignStats)
  GREENLOOP_RPC(ListMyRatings)
  GREENLOOP_RPC(CreateToken)
  GREENLOOP_RPC(RevokeToken)
  GREENLOOP_RPC(ListTokens)
  GREENLOOP_RPC(WhoAmI)
#undef GREENLOOP_RPC
  rpcs["WatchVerdicts"] = [](v1::FeedbackService::Stub& s, grpc::ClientContext* c) {
    v1::WatchVerdictsRequest req;
    auto reader = s.WatchVerdicts(c, req);
    v1::WatchVerdictsResponse r;
    while (reader->Read(&r)) {
    }
    return reader->Finish();
  };
  return rpcs;
}

TEST(FeedbackQueuePg, AuthMatrixEveryRoleTimesEveryRpc) {
  FeedbackEnv env;
  const std::string rater = env.Token(v1::ROLE_RATER, "alice");
  const std::string revoked = env.Token(v1::ROLE_RATER, "mallory");
  v1::ListTokensRequest list;
  v1::ListTokensResponse tokens;
  auto lc = rpc::NewClientContext(5s, env.admin());
  ASSERT_TRUE(env.stub().ListTokens(lc.get(), list, &tokens).ok());
  v1::RevokeTokenRequest revoke;
  for (const auto& t : tokens.tokens()) {
    if (t.name() == "mallory") revoke.set_token_id(t.token_id());
  }
  v1::RevokeTokenResponse rr;
  auto rc = rpc::NewClientContext(5s, env.admin());
  ASSERT_TRUE(env.stub().RevokeToken(rc.get(), revoke, &rr).ok());

  const std::set<std::string> any = {"GetCampaign", "ListCampaigns", "WhoAmI"};
  const std::set<std::string> rater_only = {"Lease", "Submit", "Skip", "Release", "ListMyRatings"};
  const std::set<std::string> admin_only = {"CreateToken", "RevokeToken", "ListTokens"};
  auto allowed = [&](const std::string& rpc, v1::Role role) {
    if (any.contains(rpc)) return true;
    if (rater_only.contains(rpc)) return role == v1::ROLE_RATER;
    if (admin_only.contains(rpc)) return role == v1::ROLE_ADMIN;
    return role == v1::ROLE_WORKER || role == v1::ROLE_ADMIN;
  };
  const std::vector<std::pair<v1::Role, std::string>> callers = {
      {v1::ROLE_RATER, rater}, {v1::ROLE_WORKER, env.worker()}, {v1::ROLE_ADMIN, env.admin()}};
  for (const auto& [name, call] : AllRpcs()) {
    for (const auto& [role, token] : callers) {
      auto ctx = rpc::NewClientContext(5s, token);
      const grpc::Status s = call(env.stub(), ctx.get());
      if (allowed(name, role)) {
        EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << name << " as " << v1::Role_Name(role) << ": " << s.error_message();
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << name;
      } else {
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << name << " as " << v1::Role_Name(role);
      }
    }
    for (const std::string& bad : {std::string(), std::string("glt_not-a-token"), revoked}) {
      auto ctx = rpc::NewClientContext(5s, bad);
      EXPECT_EQ(call(env.stub(), ctx.get()).error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << name << " with token '" << bad << "'";
    }
  }
  // Revoking the last admin would lock everyone out.
  v1::WhoAmIRequest who;
  v1::WhoAmIResponse me;
  auto wc = rpc::NewClientContext(5s, env.admin());
  ASSERT_TRUE(env.stub().WhoAmI(wc.get(), who, &me).ok());
  EXPECT_EQ(me.info().role(), v1::ROLE_ADMIN);
  revoke.set_token_id(me.info().token_id());
  auto last = rpc::NewClientContext(5s, env.admin());
  EXPECT_EQ(env.stub().RevokeToken(last.get(), revoke, &rr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(FeedbackQueuePg, ARevokeThroughAnotherReplicaEndsThisOnesCachedTokenWithinTheCheck) {
  FeedbackEnv env;
  const std::string secret = env.Token(v1::ROLE_RATER, "phone");
  // A second replica: its own store and token cache (5 min) on the same database.
  PgFeedbackStore replica_store(&env.pool());
  TokenAuthenticator replica(&replica_store, absl::Minutes(5), absl::Milliseconds(200));
  absl::StatusOr<rpc::Principal> principal = replica.Authenticate(secret);
  ASSERT_TRUE(principal.ok()) << principal.status();
  // Revoked through the first replica; nobody tells the second one's cache.
  v1::RevokeTokenRequest revoke;
  revoke.set_token_id(principal->id);
  ASSERT_TRUE(env.queue().RevokeToken(Caller::Anonymous(), revoke).ok());
  const absl::Time revoked = absl::Now();
  absl::Status status;
  while (absl::Now() - revoked < absl::Seconds(5)) {
    status = replica.Authenticate(secret).status();
    if (!status.ok()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("revoked"));
  EXPECT_LT(absl::Now() - revoked, absl::Seconds(2)) << "the revocation check, not the 5 min TTL";
}

TEST(FeedbackQueuePg, HttpJsonApiRejectsBadInputWithTheRightCodeAndStoresNothing) {
  FeedbackEnv env({.limits = {.max_payload_bytes = 2048}, .rater_requests_per_second = 0});
  env.Campaign("http", 1);
  httplib::Client http("127.0.0.1", env.http_port());
  const httplib::Headers worker = {{"Authorization", "Bearer " + env.worker()}};
  auto post = [&](const std::string& rpc, const std::string& body, const httplib::Headers& h) {
    return http.Post("/api/v1/" + rpc, h, body, "application/json");
  };
  auto item = [](int index, const std::string& text, int label) {
    return fmt::format(R"({{"sample":{{"dataset":"DATASET_FASHION_MNIST","index":{}}},)"
                       R"("payload":{{"text":"{}"}},"givenLabel":{}}})",
                       index, text, label);
  };
  struct Case {
    std::string name, rpc, body;
    int status;
    std::string code;
  } cases[] = {
      {"unknown campaign", "EnqueueItems",
       R"({"campaignId":"nope","items":[)" + item(1, "x", 0) + "]}", 404, "NOT_FOUND"},
      {"not JSON", "EnqueueItems", "{\"campaignId\":", 400, "INVALID_ARGUMENT"},
      {"unknown field", "EnqueueItems", R"({"campaignId":"http","bogus":1})", 400,
       "INVALID_ARGUMENT"},
      {"label outside the set", "EnqueueItems",
       R"({"campaignId":"http","items":[)" + item(1, "x", 0) + "," + item(2, "y", 9) + "]}", 400,
       "INVALID_ARGUMENT"},
      {"oversized item", "EnqueueItems",
       R"({"campaignId":"http","items":[)" + item(3, std::string(4096, 'z'), 0) + "]}", 400,
       "INVALID_ARGUMENT"},
      {"malformed payload", "EnqueueItems",
       R"({"campaignId":"http","items":[{"sample":{"dataset":"DATASET_FASHION_MNIST"},)"
       R"("payload":{"png":"bm90IGEgcG5n"}}]})",
       400, "INVALID_ARGUMENT"},
      {"no such rpc", "Frobnicate", "{}", 404, "NOT_FOUND"},
  };
  for (const Case& c : cases) {
    auto res = post(c.rpc, c.body, worker);
    ASSERT_TRUE(res) << c.name;
    EXPECT_EQ(res->status, c.status) << c.name << ": " << res->body;
    EXPECT_THAT(res->body, HasSubstr(c.code)) << c.name;
  }
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_items"), 0);
  auto unauth = post("WhoAmI", "{}", {});
  EXPECT_EQ(unauth->status, 401);
  auto ok =
      post("EnqueueItems", R"({"campaignId":"http","items":[)" + item(1, "x", 0) + "]}", worker);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_THAT(ok->body, HasSubstr("ENQUEUE_OUTCOME_CREATED"));
  auto page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_THAT(page->body, HasSubstr("<script src=\"app.js\">"));
  EXPECT_EQ(http.Get("/app.js")->status, 200);
}

// Sends `head` on a fresh loopback connection to `port`, then waits up to `wait` for the reply
// without sending anything more; returns what came back ("" when nothing did).
std::string RawExchange(int port, const std::string& head, std::chrono::milliseconds wait) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  timeval tv{.tv_sec = 0, .tv_usec = static_cast<suseconds_t>(wait.count() * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return reply;
}

// Issue 17, hole 2: the JSON API reads no body before the caller is known, refuses bodies over a
// few MiB, throttles clients that keep failing to authenticate, and sends the protective headers
// on every response.
TEST(FeedbackQueuePg, HttpChecksTheTokenBeforeTheBodyAndThrottlesFailedAuthentication) {
  FeedbackEnv env(
      {.rater_requests_per_second = 0},
      {.max_body_bytes = 256 << 10, .auth_failure_burst = 3, .auth_failures_per_second = 0.01});
  env.Campaign("hard", 1);
  // A 1 MiB body announced and not sent: without a token the answer comes at once, unread.
  const std::string announced =
      "POST /api/v1/EnqueueItems HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 1048576\r\n";
  std::string reply = RawExchange(env.http_port(), announced + "\r\n", 3000ms);
  EXPECT_THAT(reply, HasSubstr("401")) << reply;
  EXPECT_THAT(reply, HasSubstr("UNAUTHENTICATED"));
  // With a worker's token the server waits for the body (nothing comes back in 300 ms)...
  const std::string authorized = announced + "Authorization: Bearer " + env.worker() + "\r\n";
  EXPECT_EQ(RawExchange(env.http_port(), authorized + "\r\n", 300ms), "");
  // ... and a body over http.max_body_bytes is 413, whoever sends it.
  httplib::Client http("127.0.0.1", env.http_port());
  const httplib::Headers worker = {{"Authorization", "Bearer " + env.worker()}};
  auto big =
      http.Post("/api/v1/EnqueueItems", worker, std::string(300 << 10, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413) << big->body;
  // The protective headers, on the API, the page and a 404.
  auto who = http.Post("/api/v1/WhoAmI", worker, "{}", "application/json");
  ASSERT_TRUE(who);
  EXPECT_EQ(who->status, 200) << who->body;
  for (const httplib::Result* r : {&who, &big}) {
    EXPECT_EQ((*r)->get_header_value("X-Content-Type-Options"), "nosniff");
    EXPECT_THAT((*r)->get_header_value("Content-Security-Policy"),
                HasSubstr("frame-ancestors 'none'"));
  }
  for (const char* path : {"/", "/nothing-here.js"}) {
    auto page = http.Get(path);
    ASSERT_TRUE(page) << path;
    EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff") << path;
    EXPECT_EQ(page->get_header_value_count("Content-Security-Policy"), 1u) << path;
    EXPECT_THAT(page->get_header_value("Content-Security-Policy"),
                HasSubstr("frame-ancestors 'none'"))
        << path;
  }
  // Three failed authentications from this address (the tokenless request above, two unknown
  // tokens), then 429 with Retry-After before any lookup: even a good token from the same address
  // waits (the allowance refills at 0.01 per second here).
  const httplib::Headers stranger = {{"Authorization", "Bearer glt_not-a-real-token"}};
  for (int i = 0; i < 2; ++i) {
    auto r = http.Post("/api/v1/WhoAmI", stranger, "{}", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << i;
  }
  auto throttled = http.Post("/api/v1/WhoAmI", stranger, "{}", "application/json");
  ASSERT_TRUE(throttled);
  EXPECT_EQ(throttled->status, 429) << throttled->body;
  EXPECT_GE(std::stoi(throttled->get_header_value("Retry-After", 0)), 1);
  auto good_but_throttled = http.Post("/api/v1/WhoAmI", worker, "{}", "application/json");
  EXPECT_EQ(good_but_throttled->status, 429);
  double throttled_count = 0;
  for (const prometheus::MetricFamily& f : env.registry().Collect()) {
    if (f.name != "greenloop_feedback_auth_failures_total") continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name == "reason" && l.value == "throttled") throttled_count = m.counter.value;
      }
    }
  }
  EXPECT_EQ(throttled_count, 2);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_items"), 0);
}

// Issue 17, hole 8: given tls.cert_path and tls.key_path the HTTP port speaks HTTPS only, so a
// rater's token and answers never cross the network in the clear.
TEST(FeedbackQueuePg, HttpServesHttpsOnlyWhenGivenACertificate) {
  const std::string certs = GREENLOOP_TLS_TESTDATA;
  FeedbackEnv env({.rater_requests_per_second = 0},
                  {.tls_cert_path = certs + "/server.pem", .tls_key_path = certs + "/server.key"});
  httplib::SSLClient https("127.0.0.1", env.http_port());
  https.set_ca_cert_path((certs + "/server.pem").c_str());
  https.enable_server_certificate_verification(true);
  auto health = https.Get("/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->get_header_value("X-Content-Type-Options"), "nosniff");
  auto whoami = https.Post("/api/v1/WhoAmI", {{"Authorization", "Bearer " + env.admin()}}, "{}",
                           "application/json");
  ASSERT_TRUE(whoami);
  EXPECT_EQ(whoami->status, 200) << whoami->body;

  httplib::Client plain("127.0.0.1", env.http_port());
  plain.set_read_timeout(3, 0);
  auto cleartext = plain.Get("/healthz");
  EXPECT_TRUE(!cleartext || cleartext->status != 200) << "plain HTTP was served";

  FeedbackHttpServer broken(nullptr, {.address = "127.0.0.1:0",
                                      .tls_cert_path = certs + "/no-such.pem",
                                      .tls_key_path = certs + "/server.key"});
  const absl::Status refused = broken.Start();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("no-such.pem"));
}

TEST(FeedbackQueuePg, DawidSkeneReestimationWeightsRatersAndRevisesVerdicts) {
  FeedbackEnv env;
  env.Campaign("ds", 3, v1::QUESTION_KIND_LABEL_CHOICE, 0.5);
  const std::string expert = env.Token(v1::ROLE_RATER, "expert");
  const std::string s1 = env.Token(v1::ROLE_RATER, "spam1");
  const std::string s2 = env.Token(v1::ROLE_RATER, "spam2");
  // The expert is right: "dog" (1) on ordinary items, the known answer on gold items. The two
  // spammers always say "cat" (0).
  auto answer = [&](const std::string& token, const std::string& text) -> std::uint32_t {
    if (token != expert) return 0;
    return text.starts_with("gold ") ? static_cast<std::uint32_t>(text.back() - '0') : 1u;
  };
  auto rate_all = [&] {
    for (const std::string& token : {s1, s2, expert}) {
      for (;;) {
        v1::LeaseResponse l;
        ASSERT_TRUE(env.Lease(token, "ds", 20, &l).ok());
        if (l.items_size() == 0) break;
        for (const auto& item : l.items()) {
          ASSERT_TRUE(
              env.Submit(token, item.lease_id(), answer(token, item.payload().text())).ok());
        }
      }
    }
  };
  // 1. Before anything is known about the raters, the majority (the spammers) wins.
  env.Enqueue("ds", 0, 6);
  rate_all();
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts WHERE decision = 0"), 6);
  // 2. Gold items (answers cat, dog, bird in turn) unmask the spammers.
  v1::EnqueueItemsRequest gold;
  gold.set_campaign_id("ds");
  for (int i = 100; i < 112; ++i) {
    v1::ItemInput* item = gold.add_items();
    item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
    item->mutable_sample()->set_index(static_cast<std::uint64_t>(i));
    item->mutable_payload()->set_text(fmt::format("gold {}", i % 3));
    item->set_given_label(static_cast<std::uint32_t>(i % 3));
    item->mutable_gold_answer()->set_label(static_cast<std::uint32_t>(i % 3));
  }
  v1::EnqueueItemsResponse resp;
  auto ctx = rpc::NewClientContext(5s, env.worker());
  ASSERT_TRUE(env.stub().EnqueueItems(ctx.get(), gold, &resp).ok());
  rate_all();
  // 3. Re-estimation flips the six verdicts, as revision 2.
  absl::StatusOr<int> revised = env.queue().Reestimate("ds");
  ASSERT_TRUE(revised.ok()) << revised.status();
  EXPECT_EQ(*revised, 6);
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts WHERE revision = 2 AND "
                      "decision = 1"),
            6);
  EXPECT_LT(env.Count("SELECT round(100 * reliability) FROM feedback_rater_models m "
                      "JOIN auth_tokens t ON t.token_id::text = m.rater_id WHERE t.name = 'spam1'"),
            50);
  EXPECT_GT(
      env.Count("SELECT round(100 * reliability) FROM feedback_rater_models m "
                "JOIN auth_tokens t ON t.token_id::text = m.rater_id WHERE t.name = 'expert'"),
      70);
  // 4. New items are now decided right at once: one expert outweighs two spammers.
  env.Enqueue("ds", 50, 3);
  rate_all();
  EXPECT_EQ(env.Count("SELECT count(*) FROM feedback_verdicts v JOIN feedback_items i USING "
                      "(item_id) WHERE i.sample_index >= 50 AND v.revision = 1 AND v.decision = 1"),
            3);
}

}  // namespace
}  // namespace greenloop::feedback::testing
