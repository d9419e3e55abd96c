// An in-process feedback service for tests: a scratch PostgreSQL database, the real store, queue,
// gRPC and HTTP adapters bound to 127.0.0.1:0, and tokens of each role.
#pragma once

#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "services/feedback/adapters/api.h"
#include "services/feedback/adapters/grpc_service.h"
#include "services/feedback/adapters/http_server.h"
#include "services/feedback/adapters/metrics.h"
#include "services/feedback/adapters/verdict_streams.h"
#include "services/feedback/storage/pg_store.h"
#include "tests/support/test_pg.h"

namespace greenloop::feedback::testing {

using namespace std::chrono_literals;

class FeedbackEnv {
 public:
  explicit FeedbackEnv(QueueOptions options = {.rater_requests_per_second = 0},
                       HttpOptions http = {}) {
    pool_ = *pg::Pool::Create({.url = db_.url(), .max_size = 32});
    absl::Status migrated = pg::ApplyMigrations(*pool_, "feedback", FeedbackMigrations());
    if (!migrated.ok()) throw std::runtime_error(migrated.ToString());
    store_ = std::make_unique<PgFeedbackStore>(pool_.get());
    metrics_ = std::make_unique<FeedbackMetrics>(registry_);
    queue_ = std::make_unique<FeedbackQueue>(store_.get(), std::move(options), metrics_.get());
    auth_ = std::make_unique<TokenAuthenticator>(store_.get());
    api_ = std::make_unique<FeedbackApi>(queue_.get(), auth_.get(), metrics_.get());
    streams_ = std::make_unique<VerdictStreams>(queue_.get(), absl::Milliseconds(200));
    queue_->SetVerdictListener([this](const std::string& c) { streams_->Notify(c); });
    service_ = std::make_unique<FeedbackGrpcService>(api_.get(), streams_.get());
    server_ = std::make_unique<rpc::Server>(
        rpc::ServerOptions{.address = "127.0.0.1:0", .service_name = "feedback"});
    server_->Add(service_.get());
    streams_->Start();
    if (absl::Status s = server_->Start(); !s.ok()) throw std::runtime_error(s.ToString());
    http.address = "127.0.0.1:0";
    http_ = std::make_unique<FeedbackHttpServer>(api_.get(), std::move(http));
    if (absl::Status s = http_->Start(); !s.ok()) throw std::runtime_error(s.ToString());
    channel_ = *rpc::CreateChannel(fmt::format("127.0.0.1:{}", server_->port()));
    stub_ = v1::FeedbackService::NewStub(channel_);
    admin_ = Token(v1::ROLE_ADMIN, "admin");
    worker_ = Token(v1::ROLE_WORKER, "trainer");
  }

  ~FeedbackEnv() {
    streams_->CloseAll();
    http_->Stop();
    server_->Shutdown();
    streams_->Stop();
  }

  /// A new token of `role`, made directly through the queue.
  std::string Token(v1::Role role, const std::string& name) {
    v1::CreateTokenRequest req;
    req.set_role(role);
    req.set_name(name);
    return queue_->CreateToken(Caller::Anonymous(), req)->token();
  }

  /// Creates campaign `id` asking `kind` over 3 labels.
  v1::Campaign Campaign(const std::string& id, std::uint32_t k = 3,
                        v1::QuestionKind kind = v1::QUESTION_KIND_LABEL_CHOICE,
                        double gold_share = 0, std::uint32_t agreeing_ratings = 0) {
    v1::CreateCampaignRequest req;
    req.set_campaign_id(id);
    v1::CampaignSpec* spec = req.mutable_spec();
    spec->set_question_kind(kind);
    for (const char* l : {"cat", "dog", "bird"}) spec->add_labels()->set_name(l);
    spec->set_ratings_per_item(k);
    spec->set_gold_share(gold_share);
    spec->set_agreeing_ratings(agreeing_ratings);
    v1::CreateCampaignResponse resp;
    auto ctx = rpc::NewClientContext(5s, worker_);
    grpc::Status s = stub_->CreateCampaign(ctx.get(), req, &resp);
    if (!s.ok()) throw std::runtime_error(s.error_message());
    return resp.campaign();
  }

  /// Enqueues text items with sample indexes [first, first + n), priority = index.
  v1::EnqueueItemsResponse Enqueue(const std::string& campaign, int first, int n) {
    v1::EnqueueItemsRequest req;
    req.set_campaign_id(campaign);
    for (int i = first; i < first + n; ++i) {
      v1::ItemInput* item = req.add_items();
      item->mutable_sample()->set_dataset(v1::DATASET_SPAM_ASSASSIN);
      item->mutable_sample()->set_index(static_cast<std::uint64_t>(i));
      item->mutable_payload()->set_text("mail " + std::to_string(i));
      item->set_given_label(static_cast<std::uint32_t>(i % 3));
      item->set_priority(i);
    }
    v1::EnqueueItemsResponse resp;
    auto ctx = rpc::NewClientContext(10s, worker_);
    grpc::Status s = stub_->EnqueueItems(ctx.get(), req, &resp);
    if (!s.ok()) throw std::runtime_error(s.error_message());
    return resp;
  }

  grpc::Status Lease(const std::string& token, const std::string& campaign, int max,
                     v1::LeaseResponse* out) {
    v1::LeaseRequest req;
    req.set_campaign_id(campaign);
    req.set_max_items(static_cast<std::uint32_t>(max));
    auto ctx = rpc::NewClientContext(10s, token);
    return stub_->Lease(ctx.get(), req, out);
  }

  grpc::Status Submit(const std::string& token, const std::string& lease, std::uint32_t label,
                      v1::SubmitResponse* out = nullptr) {
    v1::SubmitRequest req;
    req.set_lease_id(lease);
    req.mutable_answer()->set_label(label);
    req.set_seconds_spent(1.5);
    v1::SubmitResponse ignored;
    auto ctx = rpc::NewClientContext(10s, token);
    return stub_->Submit(ctx.get(), req, out != nullptr ? out : &ignored);
  }

  /// Runs one SQL query and returns the first column of the first row as an integer.
  std::int64_t Count(const std::string& sql) {
    return *pool_->Run([&](pqxx::work& tx) { return tx.exec1(sql)[0].as<std::int64_t>(); });
  }
  void Exec(const std::string& sql) {
    (void)pool_->Run([&](pqxx::work& tx) { tx.exec0(sql); });
  }

  greenloop::testing::ScratchDatabase& db() { return db_; }
  pg::Pool& pool() { return *pool_; }
  FeedbackQueue& queue() { return *queue_; }
  VerdictStreams& streams() { return *streams_; }
  v1::FeedbackService::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  prometheus::Registry& registry() { return registry_; }
  int http_port() const { return http_->port(); }
  std::string grpc_target() const { return fmt::format("127.0.0.1:{}", server_->port()); }
  const std::string& admin() const { return admin_; }
  const std::string& worker() const { return worker_; }

 private:
  greenloop::testing::ScratchDatabase db_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<PgFeedbackStore> store_;
  prometheus::Registry registry_;
  std::unique_ptr<FeedbackMetrics> metrics_;
  std::unique_ptr<FeedbackQueue> queue_;
  std::unique_ptr<TokenAuthenticator> auth_;
  std::unique_ptr<FeedbackApi> api_;
  std::unique_ptr<VerdictStreams> streams_;
  std::unique_ptr<FeedbackGrpcService> service_;
  std::unique_ptr<rpc::Server> server_;
  std::unique_ptr<FeedbackHttpServer> http_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FeedbackService::Stub> stub_;
  std::string admin_, worker_;
};

}  // namespace greenloop::feedback::testing
