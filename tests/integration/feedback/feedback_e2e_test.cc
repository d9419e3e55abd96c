// greenloop-feedback as a real process: SIGKILL under load and restart, two replicas on one
// PostgreSQL with one killed, and the rater web page in headless chromium. PostgreSQL is the `pg`
// fixture's; gRPC and HTTP go over loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "common/grpc/channel.h"
#include "common/pg/pool.h"
#include "fmt/format.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "tests/support/child_process.h"
#include "tests/support/test_pg.h"

namespace greenloop::feedback {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdminToken[] = "glt_e2eAdminForTestsOnly0123456789abcdefghij";
constexpr char kPngBase64[] =
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAdUlEQVR4nH3JEQKAAAAAscMwDMMwDMMwDMMwDMMwDMMwDM"
    "MwDMMwDPvBTQdBGMVJmuVFWdVN2/"
    "XDOM3Luu3HedndyD3Ivch92CEXIBciFyEXI5cglyKXIZcjVyBXIlchVyPXINci1yHXIzcgNyI3ITcjtyC3/"
    "qXtgZC5RpzTAAAAAElFTkSuQmCC";

// One greenloop-feedback process on ports it picks itself.
class Service {
 public:
  Service(fs::path dir, std::string pg_url) : dir_(std::move(dir)), pg_url_(std::move(pg_url)) {}

  void Start() {
    process_.Start(
        {GREENLOOP_FEEDBACK_BIN, "--config", GREENLOOP_FEEDBACK_YAML, "--pg.url=" + pg_url_,
         std::string("--auth.bootstrap_admin_token=") + kAdminToken, "--grpc.address=127.0.0.1:0",
         "--http.address=127.0.0.1:0", "--metrics.address=127.0.0.1:0",
         "--rate_limit.requests_per_second=0", "--consensus.reestimate_interval=1h",
         "--leases.reap_interval=200ms"},
        dir_ / fmt::format("feedback-{}.log", starts_++));
    static const std::regex kPorts(R"(grpc_port=(\d+) http_port=(\d+) metrics_port=(\d+))");
    std::optional<std::smatch> m = process_.WaitForLog(kPorts, 15s);
    ASSERT_TRUE(m.has_value()) << "greenloop-feedback did not start:\n" << process_.log();
    grpc_port_ = std::stoi((*m)[1]);
    http_port_ = std::stoi((*m)[2]);
    stub_ =
        v1::FeedbackService::NewStub(*rpc::CreateChannel(fmt::format("127.0.0.1:{}", grpc_port_)));
  }

  int Kill(int signal) { return process_.Kill(signal); }
  v1::FeedbackService::Stub& stub() { return *stub_; }
  int http_port() const { return http_port_; }
  std::string log() const { return process_.log(); }

 private:
  fs::path dir_;
  std::string pg_url_;
  int starts_ = 0;
  greenloop::testing::ChildProcess process_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::unique_ptr<v1::FeedbackService::Stub> stub_;
};

std::string CreateToken(Service& s, v1::Role role, const std::string& name) {
  v1::CreateTokenRequest req;
  req.set_role(role);
  req.set_name(name);
  v1::CreateTokenResponse resp;
  auto ctx = rpc::NewClientContext(5s, kAdminToken);
  grpc::Status st = s.stub().CreateToken(ctx.get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.token();
}

void CreateCampaign(Service& s, const std::string& token, const std::string& id, int k, int items,
                    bool png_first) {
  v1::CreateCampaignRequest c;
  c.set_campaign_id(id);
  c.mutable_spec()->set_display_name("e2e " + id);
  c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  for (const char* l : {"t_shirt", "trouser", "pullover"})
    c.mutable_spec()->add_labels()->set_name(l);
  c.mutable_spec()->set_ratings_per_item(static_cast<std::uint32_t>(k));
  v1::CreateCampaignResponse cr;
  auto ctx = rpc::NewClientContext(5s, token);
  ASSERT_TRUE(s.stub().CreateCampaign(ctx.get(), c, &cr).ok());
  v1::EnqueueItemsRequest e;
  e.set_campaign_id(id);
  std::string png;
  ASSERT_TRUE(absl::Base64Unescape(kPngBase64, &png));
  for (int i = 0; i < items; ++i) {
    v1::ItemInput* item = e.add_items();
    item->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
    item->mutable_sample()->set_index(static_cast<std::uint64_t>(i));
    if (png_first && i == 0) {
      item->mutable_payload()->set_png(png);
    } else {
      item->mutable_payload()->set_text(fmt::format("item {}", i));
    }
    item->set_given_label(static_cast<std::uint32_t>(i % 3));
    item->set_priority(items - i);
  }
  v1::EnqueueItemsResponse er;
  auto ctx2 = rpc::NewClientContext(10s, token);
  grpc::Status st = s.stub().EnqueueItems(ctx2.get(), e, &er);
  ASSERT_TRUE(st.ok()) << st.error_message();
}

// A feature-rule campaign (7 × 7 grid, k = 1) with one item: the rule for class 0.
void CreateRuleCampaign(Service& s, const std::string& token, const std::string& id) {
  v1::CreateCampaignRequest c;
  c.set_campaign_id(id);
  c.mutable_spec()->set_display_name("e2e " + id);
  c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_FEATURE_RULE);
  for (const char* l : {"t_shirt", "trouser"}) c.mutable_spec()->add_labels()->set_name(l);
  c.mutable_spec()->mutable_feature_grid()->set_rows(7);
  c.mutable_spec()->mutable_feature_grid()->set_cols(7);
  c.mutable_spec()->set_ratings_per_item(1);
  v1::CreateCampaignResponse cr;
  auto ctx = rpc::NewClientContext(5s, token);
  ASSERT_TRUE(s.stub().CreateCampaign(ctx.get(), c, &cr).ok());
  v1::EnqueueItemsRequest e;
  e.set_campaign_id(id);
  std::string png;
  ASSERT_TRUE(absl::Base64Unescape(kPngBase64, &png));
  v1::ItemInput* item = e.add_items();
  item->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
  item->mutable_sample()->set_index(0);
  item->mutable_payload()->set_png(png);
  item->set_given_label(0);
  // A text rule question: its payload the words, one per line; cell i is the i-th word.
  v1::ItemInput* words = e.add_items();
  words->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
  words->mutable_sample()->set_index(1);
  words->mutable_payload()->set_text("qzxtrouser\nlegs\nfree\nwaist\n");
  words->set_given_label(1);
  v1::EnqueueItemsResponse er;
  auto ctx2 = rpc::NewClientContext(10s, token);
  ASSERT_TRUE(s.stub().EnqueueItems(ctx2.get(), e, &er).ok());
}

// A per-item mask campaign whose items' pictures are two panels (the item, the model's evidence),
// with one image item.
void CreateMaskCampaign(Service& s, const std::string& token, const std::string& id) {
  v1::CreateCampaignRequest c;
  c.set_campaign_id(id);
  c.mutable_spec()->set_display_name("e2e " + id);
  c.mutable_spec()->set_question_kind(v1::QUESTION_KIND_FEATURE_MASK);
  c.mutable_spec()->mutable_feature_grid()->set_rows(7);
  c.mutable_spec()->mutable_feature_grid()->set_cols(7);
  c.mutable_spec()->mutable_feature_grid()->set_evidence_panel(true);
  c.mutable_spec()->set_ratings_per_item(1);
  v1::CreateCampaignResponse cr;
  auto ctx = rpc::NewClientContext(5s, token);
  ASSERT_TRUE(s.stub().CreateCampaign(ctx.get(), c, &cr).ok());
  v1::EnqueueItemsRequest e;
  e.set_campaign_id(id);
  std::string png;
  ASSERT_TRUE(absl::Base64Unescape(kPngBase64, &png));
  v1::ItemInput* item = e.add_items();
  item->mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
  item->mutable_sample()->set_index(7);
  item->mutable_payload()->set_png(png);
  v1::EnqueueItemsResponse er;
  auto ctx2 = rpc::NewClientContext(10s, token);
  ASSERT_TRUE(s.stub().EnqueueItems(ctx2.get(), e, &er).ok());
}

// Runs a node script against the service's page (`mode`: its optional third argument); returns
// its output and exit status.
std::pair<std::string, int> RunNode(const char* script, int port, const std::string& token,
                                    const std::string& mode = "") {
  const std::string command =
      fmt::format("node {} http://127.0.0.1:{}/ {} {} 2>&1", script, port, token, mode);
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {"popen failed", -1};
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  return {output, WEXITSTATUS(::pclose(pipe))};
}

// Follows a campaign's verdicts from `cursor` until `until` are in `seen` or the stream ends,
// keeping the cursor, as a trainer does.
void FollowVerdicts(v1::FeedbackService::Stub& stub, const std::string& token,
                    const std::string& campaign, int until, std::string& cursor,
                    std::vector<std::string>& seen) {
  v1::WatchVerdictsRequest req;
  req.set_campaign_id(campaign);
  req.set_cursor(cursor);
  auto ctx = rpc::NewClientContext(60s, token);
  auto reader = stub.WatchVerdicts(ctx.get(), req);
  v1::WatchVerdictsResponse r;
  while (static_cast<int>(seen.size()) < until && reader->Read(&r)) {
    seen.push_back(r.verdict().item_id());
    cursor = r.cursor();
  }
  ctx->TryCancel();
  reader->Finish();
}

class FeedbackE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::create_directories(dir_); }
  std::int64_t Count(const std::string& sql) {
    auto pool = pg::Pool::Create({.url = db_.url(), .max_size = 1});
    return *(*pool)->Run([&](pqxx::work& tx) { return tx.exec1(sql)[0].as<std::int64_t>(); });
  }

  greenloop::testing::ScratchDatabase db_;
  fs::path dir_ =
      fs::path(GREENLOOP_E2E_DIR) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
};

// Issue 17, hole 1: deploy/k8s/secrets.yaml ships "CHANGE-ME"; the service refuses it as its
// bootstrap admin token at start, with one line naming the setting, before it connects to
// anything (the PostgreSQL named here does not exist, and the error is not about it).
TEST(FeedbackBinary, RefusesAPlaceholderBootstrapTokenBeforeConnectingToAnything) {
  const fs::path dir = fs::path(GREENLOOP_E2E_DIR);
  fs::create_directories(dir);
  for (const std::string token : {"CHANGE-ME", "glt_CHANGEMEchangemeCHANGEMEchangemeCHANGEME"}) {
    greenloop::testing::ChildProcess p;
    p.Start({GREENLOOP_FEEDBACK_BIN, "--pg.url=postgresql://nobody@127.0.0.1:1/none",
             "--auth.bootstrap_admin_token=" + token, "--grpc.address=127.0.0.1:0",
             "--http.address=127.0.0.1:0", "--metrics.address=127.0.0.1:0"},
            dir / "placeholder.log");
    ASSERT_TRUE(p.WaitForLog(std::regex("auth.bootstrap_admin_token"), 10s)) << p.log();
    EXPECT_EQ(p.Kill(0), 2) << p.log();  // signal 0: only waits for the exit
    const std::string log = p.log();
    EXPECT_THAT(log, Not(HasSubstr(token))) << "the secret was echoed";
    EXPECT_THAT(log, Not(HasSubstr("127.0.0.1:1"))) << "it tried PostgreSQL first";
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  }
}

TEST_F(FeedbackE2eTest, SigkillUnderLoadLosesNoAcknowledgedRatingAndNoVerdictRepeats) {
  Service service(dir_, db_.url());
  ASSERT_NO_FATAL_FAILURE(service.Start());
  const std::string worker = CreateToken(service, v1::ROLE_WORKER, "trainer");
  constexpr int kItems = 120, k = 2, kRaters = 8;
  ASSERT_NO_FATAL_FAILURE(CreateCampaign(service, worker, "kill", k, kItems, false));
  std::vector<std::string> raters;
  for (int r = 0; r < kRaters; ++r)
    raters.push_back(CreateToken(service, v1::ROLE_RATER, fmt::format("r{}", r)));

  std::mutex mu;
  std::set<std::string> acknowledged;  // rating ids the service confirmed
  std::atomic<bool> stop{false};
  auto rate = [&](int r, v1::FeedbackService::Stub& stub) {
    while (!stop) {
      v1::LeaseRequest lr;
      lr.set_campaign_id("kill");
      lr.set_max_items(2);
      v1::LeaseResponse leased;
      auto ctx = rpc::NewClientContext(2s, raters[r]);
      if (!stub.Lease(ctx.get(), lr, &leased).ok()) return;
      if (leased.items_size() == 0) return;
      for (const auto& item : leased.items()) {
        v1::SubmitRequest sr;
        sr.set_lease_id(item.lease_id());
        sr.mutable_answer()->set_label(static_cast<std::uint32_t>(r % 3));
        v1::SubmitResponse resp;
        auto c2 = rpc::NewClientContext(2s, raters[r]);
        if (!stub.Submit(c2.get(), sr, &resp).ok()) return;
        std::lock_guard lock(mu);
        acknowledged.insert(resp.rating_id());
      }
    }
  };
  // A trainer follows verdicts and keeps its cursor.
  std::string cursor;
  std::vector<std::string> seen;
  auto watch = [&](v1::FeedbackService::Stub& stub, int until) {
    FollowVerdicts(stub, worker, "kill", until, cursor, seen);
  };
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < kRaters; ++r) threads.emplace_back(rate, r, std::ref(service.stub()));
    std::thread watcher(watch, std::ref(service.stub()), kItems);
    // Kill once a quarter of the ratings are in, whatever the machine's speed (a fixed sleep let
    // an idle machine finish everything first).
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(mu);
        if (acknowledged.size() >= static_cast<std::size_t>(kItems * k / 4)) break;
      }
      std::this_thread::sleep_for(5ms);
    }
    service.Kill(SIGKILL);  // mid-load: leases live, submits in flight
    for (auto& t : threads) t.join();
    watcher.join();
  }
  const std::size_t before_restart = acknowledged.size();
  ASSERT_GT(before_restart, 0u);
  ASSERT_LT(before_restart, static_cast<std::size_t>(kItems * k)) << "killed too late to matter";

  ASSERT_NO_FATAL_FAILURE(service.Start());
  // Every acknowledged rating survived.
  for (const std::string& id : acknowledged) {
    EXPECT_EQ(Count("SELECT count(*) FROM feedback_ratings WHERE rating_id = " + id), 1) << id;
  }
  // The dead process's leases expire (their TTL passes: moved forward here) and are served again.
  const std::int64_t orphaned = Count("SELECT count(*) FROM feedback_leases WHERE state = 0");
  RecordProperty("orphaned_leases", static_cast<int>(orphaned));
  Count(
      "WITH x AS (UPDATE feedback_leases SET expire_time = now() - interval '1 second' "
      "WHERE state = 0 RETURNING 1) SELECT count(*) FROM x");
  for (int i = 0; i < 100 && Count("SELECT count(*) FROM feedback_leases WHERE state = 0") > 0;
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_leases WHERE state = 0"), 0);
  stop = false;
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < kRaters; ++r) threads.emplace_back(rate, r, std::ref(service.stub()));
    for (auto& t : threads) t.join();
  }
  watch(service.stub(), kItems);  // resumes from the cursor kept before the kill
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_ratings"), kItems * k);
  EXPECT_EQ(Count("SELECT count(*) FROM (SELECT item_id FROM feedback_ratings GROUP BY item_id "
                  "HAVING count(*) <> 2) x"),
            0);
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_verdicts"), kItems) << "one verdict per item";
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kItems));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size())
      << "the trainer saw no verdict twice across the kill";
  EXPECT_EQ(service.Kill(SIGTERM), 0) << service.log();
}

// The Kubernetes manifests run two replicas on one PostgreSQL. Raters lease on one and submit on
// the other, a trainer follows verdicts on the second and resumes on the first with its cursor
// when the second is killed mid-load; the queue's promises hold across both.
TEST_F(FeedbackE2eTest, TwoReplicasOnOnePostgresKeepEveryPromiseThroughAKill) {
  Service a(dir_ / "a", db_.url()), b(dir_ / "b", db_.url());
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  ASSERT_NO_FATAL_FAILURE(a.Start());
  ASSERT_NO_FATAL_FAILURE(b.Start());
  const std::string worker = CreateToken(a, v1::ROLE_WORKER, "trainer");
  constexpr int kItems = 150, k = 3, kRaters = 9;
  ASSERT_NO_FATAL_FAILURE(CreateCampaign(b, worker, "two", k, kItems, false));
  std::vector<std::string> raters;
  for (int r = 0; r < kRaters; ++r)
    raters.push_back(CreateToken(r % 2 == 0 ? a : b, v1::ROLE_RATER, fmt::format("r{}", r)));

  std::mutex mu;
  std::set<std::string> acknowledged;
  std::atomic<bool> b_alive{true}, stop{false};
  // Lease on one replica, submit on the other (while both live): the submitting replica never
  // saw the lease. `stop` ends the first phase at the kill: raters that kept going on the
  // surviving replica could finish every item before the test looks, with nothing left to resume.
  auto rate = [&](int r) {
    for (int turn = r; !stop; ++turn) {
      const bool lease_on_b = b_alive && turn % 2 == 0;
      v1::FeedbackService::Stub& leaser = lease_on_b ? b.stub() : a.stub();
      v1::LeaseRequest lr;
      lr.set_campaign_id("two");
      lr.set_max_items(2);
      v1::LeaseResponse leased;
      auto ctx = rpc::NewClientContext(2s, raters[r]);
      if (!leaser.Lease(ctx.get(), lr, &leased).ok()) continue;  // b died under this call
      if (leased.items_size() == 0) return;
      for (const auto& item : leased.items()) {
        v1::FeedbackService::Stub& submitter = (lease_on_b || !b_alive) ? a.stub() : b.stub();
        v1::SubmitRequest sr;
        sr.set_lease_id(item.lease_id());
        sr.mutable_answer()->set_label(static_cast<std::uint32_t>((r + item.item_id().size()) % 3));
        v1::SubmitResponse resp;
        auto c2 = rpc::NewClientContext(2s, raters[r]);
        if (!submitter.Submit(c2.get(), sr, &resp).ok()) continue;
        std::lock_guard lock(mu);
        acknowledged.insert(resp.rating_id());
      }
    }
  };
  std::string cursor;
  std::vector<std::string> seen;
  auto watch = [&](Service& s) { FollowVerdicts(s.stub(), worker, "two", kItems, cursor, seen); };
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < kRaters; ++r) threads.emplace_back(rate, r);
    std::thread watcher(watch, std::ref(b));
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(mu);
        if (acknowledged.size() >= static_cast<std::size_t>(kItems * k / 3)) break;
      }
      std::this_thread::sleep_for(5ms);
    }
    stop = true;
    b_alive = false;
    b.Kill(SIGKILL);
    watcher.join();  // b's stream broke
    for (auto& t : threads) t.join();
  }
  stop = false;
  ASSERT_LT(acknowledged.size(), static_cast<std::size_t>(kItems * k)) << "killed too late";
  // The dead replica's leases come back once their TTL passes (moved forward here).
  Count(
      "WITH x AS (UPDATE feedback_leases SET expire_time = now() - interval '1 second' "
      "WHERE state = 0 RETURNING 1) SELECT count(*) FROM x");
  for (int i = 0; i < 100 && Count("SELECT count(*) FROM feedback_leases WHERE state = 0") > 0;
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < kRaters; ++r) threads.emplace_back(rate, r);
    for (auto& t : threads) t.join();
  }
  watch(a);  // the trainer resumes on the surviving replica from the cursor b gave it

  for (const std::string& id : acknowledged) {
    EXPECT_EQ(Count("SELECT count(*) FROM feedback_ratings WHERE rating_id = " + id), 1) << id;
  }
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_ratings"), kItems * k);
  EXPECT_EQ(Count("SELECT count(*) FROM (SELECT item_id FROM feedback_ratings GROUP BY item_id "
                  "HAVING count(*) > 3) x"),
            0)
      << "no item rated beyond k";
  EXPECT_EQ(Count("SELECT count(*) FROM (SELECT item_id, rater_id FROM feedback_ratings "
                  "GROUP BY 1, 2 HAVING count(*) > 1) x"),
            0)
      << "no rater rated an item twice";
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_verdicts"), kItems) << "one verdict per item";
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_verdicts WHERE seq IS NULL"), 0);
  EXPECT_EQ(Count("SELECT max(seq) FROM feedback_verdicts"), kItems) << "seqs dense from 1";
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kItems));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size())
      << "the trainer saw no verdict twice across replicas and the kill";
  EXPECT_EQ(a.Kill(SIGTERM), 0) << a.log();
}

TEST_F(FeedbackE2eTest, WebPageInHeadlessChromiumRatesWithTheKeyboard) {
  Service service(dir_, db_.url());
  ASSERT_NO_FATAL_FAILURE(service.Start());
  const std::string worker = CreateToken(service, v1::ROLE_WORKER, "trainer");
  const std::string rater = CreateToken(service, v1::ROLE_RATER, "browser-rater");
  ASSERT_NO_FATAL_FAILURE(CreateCampaign(service, worker, "web", 1, 5, true));
  const auto [output, status] = RunNode(GREENLOOP_WEB_TEST_JS, service.http_port(), rater);
  EXPECT_EQ(status, 0) << output;
  EXPECT_THAT(output, HasSubstr(R"("images":1)"));
  EXPECT_THAT(output, HasSubstr(R"("count":"2")"));
  EXPECT_THAT(output, HasSubstr(R"("fits_phone":true)"));
  EXPECT_THAT(output, HasSubstr("Which label is right?"));
  // One Lease brought the first three items (the page prefetches), a second the last two.
  EXPECT_THAT(output, HasSubstr(R"("lease_calls":1)"));
  EXPECT_THAT(output, HasSubstr(R"("lease_calls_at_logout":2)"));
  // What the keyboard did landed in PostgreSQL: "2" on the image, "s" on item 1, "3" on item 2.
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_ratings r JOIN feedback_items i USING (item_id) "
                  "WHERE (i.sample_index = 0 AND r.answer = 1) OR (i.sample_index = 2 AND "
                  "r.answer = 2)"),
            2);
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_leases l JOIN feedback_items i USING (item_id) "
                  "WHERE l.state = 2 AND i.sample_index = 1"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_ratings"), 2);
  // Signing out released the item on screen and the one prefetched with it.
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_leases l JOIN feedback_items i USING (item_id) "
                  "WHERE l.state = 3 AND i.sample_index IN (3, 4)"),
            2);
}

TEST_F(FeedbackE2eTest, WebPageMarksFeatureCellsByTouchAndKeyboard) {
  Service service(dir_, db_.url());
  ASSERT_NO_FATAL_FAILURE(service.Start());
  const std::string worker = CreateToken(service, v1::ROLE_WORKER, "trainer");
  const std::string rater = CreateToken(service, v1::ROLE_RATER, "browser-rater");
  ASSERT_NO_FATAL_FAILURE(CreateRuleCampaign(service, worker, "rules"));
  const auto [output, status] = RunNode(GREENLOOP_WEB_FEATURES_TEST_JS, service.http_port(), rater);
  EXPECT_EQ(status, 0) << output;
  EXPECT_THAT(output, HasSubstr(R"("cells":49)"));
  EXPECT_THAT(output, HasSubstr(R"("empty_refused":true)"));
  EXPECT_THAT(output, HasSubstr(R"("pressed":[0,48])"));
  EXPECT_THAT(output, HasSubstr(R"("count":"1")"));
  EXPECT_THAT(output, HasSubstr(R"("fits_phone":true)"));
  EXPECT_THAT(output, HasSubstr("Which parts should the model ignore in every t_shirt?"));
  // The tapped and the keyboard-marked cells landed in PostgreSQL, and decided the rule (k = 1).
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_rating_masks WHERE cells = '{0,48}'"), 1);
  // The words: one button each, tall enough to tap; the tapped and the keyboard-marked ones
  // (positions 0 and 2) decided the second rule.
  EXPECT_THAT(output, HasSubstr(R"("words":["qzxtrouser","legs","free","waist"])"));
  EXPECT_THAT(output, HasSubstr(R"("pressed_words":[0,2])"));
  EXPECT_THAT(output, HasSubstr(R"("words_fit_phone":true)"));
  EXPECT_THAT(output, HasSubstr(R"("count_after_words":"2")"));
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_rating_masks WHERE cells = '{0,2}'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_verdicts"), 2);
  EXPECT_THAT(output, HasSubstr(R"("grid_share":0.5)"));  // a rule's picture is two panels
}

// A per-item mask whose grid has evidence_panel: the cells cover the item, the left panel.
TEST_F(FeedbackE2eTest, WebPageCoversTheItemNotTheModelsEvidence) {
  Service service(dir_, db_.url());
  ASSERT_NO_FATAL_FAILURE(service.Start());
  const std::string worker = CreateToken(service, v1::ROLE_WORKER, "trainer");
  const std::string rater = CreateToken(service, v1::ROLE_RATER, "browser-rater");
  ASSERT_NO_FATAL_FAILURE(CreateMaskCampaign(service, worker, "masks"));
  const auto [output, status] =
      RunNode(GREENLOOP_WEB_FEATURES_TEST_JS, service.http_port(), rater, "mask");
  EXPECT_EQ(status, 0) << output;
  EXPECT_THAT(output, HasSubstr(R"("cells":49)"));
  EXPECT_THAT(output, HasSubstr(R"("grid_share":0.5)"));
  EXPECT_THAT(output, HasSubstr(R"("count":"1")"));
  EXPECT_EQ(Count("SELECT count(*) FROM feedback_rating_masks WHERE cells = '{3}'"), 1);
}

}  // namespace
}  // namespace greenloop::feedback
