// The trainer's gRPC clients against in-process fakes of the EnergyService and FeedbackService
// contracts, served by a real rpc::Server on 127.0.0.1:0.
#include "services/trainer/grpc/clients.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "common/grpc/server.h"
#include "services/trainer/testing/fake_services.h"

namespace greenloop::trainer {
namespace {

using testing::FakeEnergyService;
using testing::FakeFeedbackService;

class ClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Add(&energy_);
    server_.Add(&feedback_);
    ASSERT_TRUE(server_.Start().ok());
    endpoint_ = "127.0.0.1:" + std::to_string(server_.port());
  }
  static std::optional<v1::Verdict> Crowd(const v1::ItemInput& item) {
    v1::Verdict v;
    v.set_consensus_label(static_cast<std::uint32_t>(item.sample().index() % 10));
    v.set_confidence(0.9);
    return v;
  }
  v1::ItemInput Item(std::uint64_t index) {
    v1::ItemInput item;
    item.mutable_sample()->set_dataset(v1::DATASET_FASHION_MNIST);
    item.mutable_sample()->set_index(index);
    item.mutable_payload()->set_text("x");
    item.set_given_label(1);
    return item;
  }
  std::vector<ReceivedVerdict> WaitFor(FeedbackQueue& queue, std::size_t n) {
    std::vector<ReceivedVerdict> got;
    for (int i = 0; i < 200 && got.size() < n; ++i) {
      for (ReceivedVerdict& v : queue.TakeVerdicts()) got.push_back(std::move(v));
      if (got.size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return got;
  }

  FakeEnergyService energy_;
  FakeFeedbackService feedback_{&ClientsTest::Crowd};
  rpc::Server server_{{.address = "127.0.0.1:0", .service_name = "fakes"}};
  std::string endpoint_;
};

TEST_F(ClientsTest, EnergyRegistersReadsAndUnregisters) {
  auto client = EnergyGrpcClient::Connect(endpoint_, {.bearer_token = "tok", .node = "fake-node"});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Register("run-1", getpid(), 0).ok());
  EXPECT_TRUE(energy_.active("run-1"));
  EXPECT_EQ(energy_.last_authorization(), "Bearer tok");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  absl::StatusOr<double> joules = (*client)->RunEnergyJoules("run-1");
  ASSERT_TRUE(joules.ok()) << joules.status();
  EXPECT_GT(*joules, 0.5);  // 15 W × ≥ 50 ms
  ASSERT_TRUE((*client)->Unregister("run-1", getpid()).ok());
  EXPECT_FALSE(energy_.active("run-1"));
  EXPECT_TRUE((*client)->Unregister("never-registered", getpid()).ok());  // NOT_FOUND is fine
  EXPECT_EQ((*client)->RunEnergyJoules("unknown").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientsTest, UnreachableCollectorIsUnavailable) {
  auto client = EnergyGrpcClient::Connect("127.0.0.1:1", {.deadline = std::chrono::seconds(2)});
  ASSERT_TRUE(client.ok());
  absl::Status s = (*client)->Register("run-1", getpid(), 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("EnergyService.Register"), absl::string_view::npos);
}

// Issue 17, hole 8: with ClientSettings.tls (the worker's tls.ca_path) the clients reach a TLS
// collector and send the token over TLS; without it they do not get through.
TEST(ClientsTlsTest, TheClientsSpeakTlsToACollectorThatServesIt) {
  const std::string certs = GREENLOOP_TLS_TESTDATA;
  FakeEnergyService energy;
  rpc::Server server({.address = "127.0.0.1:0",
                      .service_name = "fakes-tls",
                      .tls = rpc::ServerTlsOptions{.cert_chain_path = certs + "/server.pem",
                                                   .private_key_path = certs + "/server.key"}});
  server.Add(&energy);
  ASSERT_TRUE(server.Start().ok());
  const std::string endpoint = "127.0.0.1:" + std::to_string(server.port());

  auto secure = EnergyGrpcClient::Connect(
      endpoint, {.bearer_token = "tok",
                 .node = "fake-node",
                 .tls = rpc::ClientTlsOptions{.root_ca_path = certs + "/server.pem"}});
  ASSERT_TRUE(secure.ok()) << secure.status();
  ASSERT_TRUE((*secure)->Register("run-tls", getpid(), 0).ok());
  EXPECT_EQ(energy.last_authorization(), "Bearer tok");

  auto plain = EnergyGrpcClient::Connect(
      endpoint, {.bearer_token = "tok", .node = "fake-node", .deadline = std::chrono::seconds(2)});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->Register("run-plain", getpid(), 0).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(energy.active("run-plain"));

  auto missing_ca = FeedbackGrpcClient::Connect(
      endpoint, {.tls = rpc::ClientTlsOptions{.root_ca_path = certs + "/no-such-ca.pem"}});
  EXPECT_FALSE(missing_ca.ok());
  server.Shutdown();
}

TEST_F(ClientsTest, FeedbackEnqueuesAndFollowsVerdictsAcrossBrokenStreams) {
  auto connected =
      FeedbackGrpcClient::Connect(endpoint_, {.reconnect_backoff = std::chrono::milliseconds(20)});
  ASSERT_TRUE(connected.ok());
  FeedbackQueue& queue = **connected;
  v1::CampaignSpec spec;
  spec.set_question_kind(v1::QUESTION_KIND_LABEL_CHOICE);
  ASSERT_TRUE(queue.EnsureCampaign("camp-1", spec).ok());
  EXPECT_TRUE(feedback_.has_campaign("camp-1"));
  ASSERT_TRUE(queue.EnsureCampaign("camp-1", spec).ok());  // idempotent
  ASSERT_TRUE(queue.StartWatching("camp-1", "").ok());
  EXPECT_TRUE(queue.TakeVerdicts().empty());  // never blocks

  ASSERT_TRUE(queue.Enqueue("camp-1", {Item(1), Item(2), Item(3)}).ok());
  std::vector<ReceivedVerdict> first = WaitFor(queue, 3);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].verdict.sample().index(), 1u);
  EXPECT_EQ(first[2].cursor, "3");
  EXPECT_EQ(first[1].verdict.consensus_label(), 2u);

  feedback_.BreakStreams();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(queue.Enqueue("camp-1", {Item(4), Item(5)}).ok());
  std::vector<ReceivedVerdict> second = WaitFor(queue, 2);
  ASSERT_EQ(second.size(), 2u);  // none lost, none twice
  EXPECT_EQ(second[0].verdict.sample().index(), 4u);
  EXPECT_EQ(second[1].cursor, "5");
  EXPECT_GE(static_cast<FeedbackGrpcClient&>(queue).stream_opens(), 2);
  queue.StopWatching();
  queue.StopWatching();  // idempotent
  EXPECT_EQ(queue.Enqueue("no-such-campaign", {Item(9)}).code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientsTest, WatchingResumesAfterAStoredCursor) {
  auto connected = FeedbackGrpcClient::Connect(endpoint_, {});
  ASSERT_TRUE(connected.ok());
  v1::CampaignSpec spec;
  ASSERT_TRUE((*connected)->EnsureCampaign("camp-2", spec).ok());
  ASSERT_TRUE((*connected)->Enqueue("camp-2", {Item(1), Item(2), Item(3), Item(4)}).ok());
  ASSERT_TRUE((*connected)->StartWatching("camp-2", "2").ok());
  std::vector<ReceivedVerdict> got = WaitFor(**connected, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].verdict.sample().index(), 3u);
}

}  // namespace
}  // namespace greenloop::trainer
