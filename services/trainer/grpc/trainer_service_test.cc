// TrainerService end to end in one process: the real server and adapter, the run manager and the
// training loop on real Fashion-MNIST, talking gRPC to fakes of the energy collector and of the
// feedback queue (whose crowd answers with the clean labels), followed through StreamProgress.
#include "services/trainer/grpc/trainer_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "fmt/format.h"
#include "services/trainer/grpc/clients.h"
#include "services/trainer/testing/fake_services.h"

namespace greenloop::trainer {
namespace {

using testing::FakeEnergyService;
using testing::FakeFeedbackService;

DatasetCache& Cache() {
  static auto* cache = new DatasetCache(DatasetLocations{});
  return *cache;
}

class TrainerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fakes_.Add(&energy_);
    fakes_.Add(&feedback_);
    ASSERT_TRUE(fakes_.Start().ok());
    const std::string fakes_at = "127.0.0.1:" + std::to_string(fakes_.port());
    fakes_endpoint_ = fakes_at;
    RunDependencies deps;
    deps.energy = [](const std::string& endpoint) {
      return EnergyGrpcClient::Connect(endpoint, {.node = "fake-node"});
    };
    deps.feedback = [](const std::string& endpoint) {
      return FeedbackGrpcClient::Connect(endpoint, {});
    };
    deps.collective =
        [](const v1::StartRunRequest&) -> absl::StatusOr<std::unique_ptr<Collective>> {
      return absl::UnimplementedError("no ranks in this test");
    };
    runs_ = std::make_unique<RunManager>(
        WorkerSettings{.node = "fake-node",
                       .pid = getpid(),
                       .threads = 2,
                       // 127.0.0.1:1: an allowed collector that is down.
                       .policy = {.checkpoint_root = CheckpointRoot(),
                                  .endpoints = {fakes_endpoint_, "127.0.0.1:1"}}},
        &Cache(), deps);
    service_ = std::make_unique<TrainerGrpcService>(runs_.get(), nullptr);
    server_ = std::make_unique<rpc::Server>(
        rpc::ServerOptions{.address = "127.0.0.1:0", .service_name = "trainer"});
    server_->Add(service_.get());
    ASSERT_TRUE(server_->Start().ok());
    auto channel = rpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()));
    ASSERT_TRUE(channel.ok());
    stub_ = v1::TrainerService::NewStub(*channel);
  }
  void TearDown() override {
    server_->Shutdown();
    runs_->Shutdown();
    std::filesystem::remove_all(CheckpointRoot());
  }

  static std::string CheckpointRoot() {
    return (std::filesystem::temp_directory_path() /
            ("greenloop-ckpt-root-" + std::to_string(getpid())))
        .string();
  }

  static std::optional<v1::Verdict> Crowd(const v1::ItemInput& item) {
    auto raw = Cache().FashionMnist();
    v1::Verdict v;
    v.set_consensus_label(static_cast<std::uint32_t>((*raw)->train_labels[item.sample().index()]));
    v.set_confidence(0.95);
    return v;
  }

  v1::StartRunRequest Request(const std::string& run_id, v1::Mode mode) {
    v1::StartRunRequest r;
    r.set_run_id(run_id);
    v1::RunConfig* c = r.mutable_config();
    c->set_dataset(v1::DATASET_FASHION_MNIST);
    c->set_max_train_samples(1500);
    c->set_mode(mode);
    c->set_seed(3);
    c->mutable_budget()->set_max_epochs(2);
    c->mutable_label_noise()->set_rate(0.4);
    c->mutable_label_noise()->set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
    c->set_energy_endpoint(fakes_endpoint_);
    c->set_experiment_id("exp-1");
    if (mode != v1::MODE_BASELINE) c->set_select_every_steps(4);
    if (mode == v1::MODE_HITL) {
      c->mutable_feedback()->set_endpoint(fakes_endpoint_);
      c->mutable_feedback()->set_campaign_id("camp-" + run_id);
    }
    return r;
  }

  ::grpc::Status Start(const v1::StartRunRequest& request, v1::StartRunResponse* response) {
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10));
    return stub_->StartRun(ctx.get(), request, response);
  }

  FakeEnergyService energy_;
  FakeFeedbackService feedback_{&TrainerServiceTest::Crowd};
  rpc::Server fakes_{{.address = "127.0.0.1:0", .service_name = "fakes"}};
  std::string fakes_endpoint_;
  std::unique_ptr<RunManager> runs_;
  std::unique_ptr<TrainerGrpcService> service_;
  std::unique_ptr<rpc::Server> server_;
  std::unique_ptr<v1::TrainerService::Stub> stub_;
};

TEST_F(TrainerServiceTest, HitlRunFollowedThroughStreamProgress) {
  v1::StartRunResponse started;
  const v1::StartRunRequest request = Request("hitl-1", v1::MODE_HITL);
  ASSERT_TRUE(Start(request, &started).ok());
  EXPECT_EQ(started.run().state(), v1::RUN_STATE_PENDING);
  EXPECT_EQ(started.run().config().batch_size(), 64u);  // defaults filled in

  // A retry with the same config returns the run as it is; another run is refused while busy.
  v1::StartRunResponse again;
  ASSERT_TRUE(Start(request, &again).ok());
  EXPECT_EQ(again.run().run_id(), "hitl-1");
  v1::StartRunResponse other;
  ::grpc::Status busy = Start(Request("other-1", v1::MODE_BASELINE), &other);
  EXPECT_EQ(busy.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(busy.error_message(), ::testing::HasSubstr("hitl-1"));

  ::grpc::ClientContext ctx;
  v1::StreamProgressRequest follow;
  follow.set_run_id("hitl-1");
  follow.set_min_interval_ms(10);
  auto reader = stub_->StreamProgress(&ctx, follow);
  v1::StreamProgressResponse event;
  std::vector<v1::StreamProgressResponse> events;
  while (reader->Read(&event)) events.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().kind(), v1::PROGRESS_EVENT_KIND_SNAPSHOT);
  EXPECT_EQ(events.back().kind(), v1::PROGRESS_EVENT_KIND_STATE_CHANGE);
  EXPECT_EQ(events.back().progress().state(), v1::RUN_STATE_SUCCEEDED);
  int evaluations = 0;
  int applied = 0;
  for (std::size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].sequence(), events[i - 1].sequence());
    evaluations += events[i].kind() == v1::PROGRESS_EVENT_KIND_EVALUATION ? 1 : 0;
    applied += events[i].kind() == v1::PROGRESS_EVENT_KIND_VERDICTS_APPLIED ? 1 : 0;
  }
  EXPECT_EQ(evaluations, 2);
  EXPECT_GT(applied, 0);

  v1::GetRunRequest get;
  get.set_run_id("hitl-1");
  v1::GetRunResponse run;
  auto get_ctx = rpc::NewClientContext(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->GetRun(get_ctx.get(), get, &run).ok());
  const v1::Run& r = run.run();
  EXPECT_EQ(r.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(r.finish_reason(), v1::FINISH_REASON_EPOCH_BUDGET);
  EXPECT_GT(r.progress().items_enqueued(), 100u);
  EXPECT_GT(r.progress().samples_relabelled(), 50u);
  EXPECT_GT(r.progress().energy_joules(), 0);
  EXPECT_GT(r.model().parameter_count(), 0u);
  EXPECT_TRUE(r.has_best_eval_accuracy());
  EXPECT_TRUE(r.has_end_time());
  EXPECT_TRUE(feedback_.has_campaign("camp-hitl-1"));
  EXPECT_EQ(energy_.registers(), 1);
  EXPECT_EQ(energy_.unregisters(), 1);
  EXPECT_FALSE(energy_.active("hitl-1"));

  v1::ListRunsRequest list;
  list.set_experiment_id("exp-1");
  v1::ListRunsResponse listed;
  auto list_ctx = rpc::NewClientContext(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->ListRuns(list_ctx.get(), list, &listed).ok());
  ASSERT_EQ(listed.runs_size(), 1);

  // Ended runs: a stream ends right after its snapshot; starting again needs resume.
  ::grpc::ClientContext ctx2;
  auto reader2 = stub_->StreamProgress(&ctx2, follow);
  int n = 0;
  while (reader2->Read(&event)) ++n;
  EXPECT_TRUE(reader2->Finish().ok());
  EXPECT_EQ(n, 1);
  EXPECT_EQ(Start(request, &again).error_code(), ::grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(TrainerServiceTest, StopRunStopsAtAStepBoundary) {
  v1::StartRunRequest request = Request("stop-1", v1::MODE_BASELINE);
  request.mutable_config()->mutable_budget()->set_max_epochs(50);
  v1::StartRunResponse started;
  ASSERT_TRUE(Start(request, &started).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  v1::StopRunRequest stop;
  stop.set_run_id("stop-1");
  stop.set_reason("operator: test");
  v1::StopRunResponse stopped;
  auto ctx = rpc::NewClientContext(std::chrono::seconds(5));
  ASSERT_TRUE(stub_->StopRun(ctx.get(), stop, &stopped).ok());
  absl::StatusOr<v1::Run> run = runs_->WaitForEnd("stop-1", std::chrono::seconds(60));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_STATE_STOPPED);
  EXPECT_EQ(run->finish_reason(), v1::FINISH_REASON_STOPPED);
  EXPECT_EQ(run->error_message(), "operator: test");
  EXPECT_FALSE(energy_.active("stop-1"));
}

TEST_F(TrainerServiceTest, BadInputIsInvalidArgumentAndUnknownRunsNotFound) {
  v1::StartRunResponse response;
  v1::StartRunRequest bad = Request("bad-1", v1::MODE_BASELINE);
  bad.mutable_config()->set_learning_rate(-1);
  ::grpc::Status s = Start(bad, &response);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("learning_rate"));
  bad = Request("bad-1", v1::MODE_BASELINE);
  bad.mutable_config()->set_target_accuracy(1.5);
  EXPECT_EQ(Start(bad, &response).error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  bad = Request("bad-1", v1::MODE_BASELINE);
  bad.mutable_config()->set_dataset(static_cast<v1::Dataset>(9));
  EXPECT_EQ(Start(bad, &response).error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  bad = Request("bad-1", v1::MODE_BASELINE);
  bad.set_world_size(2);
  bad.set_rank(1);
  EXPECT_EQ(Start(bad, &response).error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);

  v1::GetRunRequest get;
  get.set_run_id("nope");
  v1::GetRunResponse run;
  auto ctx = rpc::NewClientContext(std::chrono::seconds(5));
  EXPECT_EQ(stub_->GetRun(ctx.get(), get, &run).error_code(), ::grpc::StatusCode::NOT_FOUND);
  v1::ListRunsRequest list;
  list.add_states(v1::RUN_STATE_UNSPECIFIED);
  v1::ListRunsResponse listed;
  auto ctx2 = rpc::NewClientContext(std::chrono::seconds(5));
  EXPECT_EQ(stub_->ListRuns(ctx2.get(), list, &listed).error_code(),
            ::grpc::StatusCode::INVALID_ARGUMENT);
}

// Issue 17, hole 3: every TrainerService RPC takes a worker or admin token. A second service over
// the same runs, with tokens checked.
TEST_F(TrainerServiceTest, EveryRpcTakesAWorkerOrAdminToken) {
  rpc::StaticAuthenticator auth({{"rater-t", {"r1", "rita", rpc::Role::kRater}},
                                 {"worker-t", {"w1", "trainer", rpc::Role::kWorker}},
                                 {"admin-t", {"a1", "ops", rpc::Role::kAdmin}}});
  TrainerGrpcService checked(runs_.get(), &auth);
  rpc::Server server({.address = "127.0.0.1:0", .service_name = "trainer-auth"});
  server.Add(&checked);
  ASSERT_TRUE(server.Start().ok());
  auto stub = v1::TrainerService::NewStub(
      *rpc::CreateChannel("127.0.0.1:" + std::to_string(server.port())));
  int started = 0;
  auto call = [&](const std::string& rpc, const std::string& token) {
    auto ctx = rpc::NewClientContext(std::chrono::seconds(10), token);
    if (rpc == "StartRun") {
      v1::StartRunResponse r;
      v1::StartRunRequest req = Request(fmt::format("auth-{}", ++started), v1::MODE_BASELINE);
      req.mutable_config()->mutable_budget()->set_max_epochs(1);
      return stub->StartRun(ctx.get(), req, &r).error_code();
    }
    if (rpc == "StopRun") {
      v1::StopRunRequest req;
      req.set_run_id("auth-1");
      v1::StopRunResponse r;
      return stub->StopRun(ctx.get(), req, &r).error_code();
    }
    if (rpc == "GetRun") {
      v1::GetRunRequest req;
      req.set_run_id("auth-1");
      v1::GetRunResponse r;
      return stub->GetRun(ctx.get(), req, &r).error_code();
    }
    if (rpc == "ListRuns") {
      v1::ListRunsResponse r;
      return stub->ListRuns(ctx.get(), v1::ListRunsRequest(), &r).error_code();
    }
    v1::StreamProgressRequest req;  // StreamProgress: an ended run's stream ends at once
    req.set_run_id("auth-1");
    auto reader = stub->StreamProgress(ctx.get(), req);
    v1::StreamProgressResponse r;
    while (reader->Read(&r)) {
    }
    return reader->Finish().error_code();
  };
  const std::vector<std::string> rpcs = {"StartRun", "GetRun", "ListRuns", "StreamProgress",
                                         "StopRun"};
  for (const std::string token : {"admin-t", "worker-t"}) {
    for (const std::string& rpc : rpcs) {
      const ::grpc::StatusCode code = call(rpc, token);
      // Admitted: StopRun of a run that already ended may say so, nothing else refuses.
      EXPECT_TRUE(code == ::grpc::StatusCode::OK ||
                  (rpc == "StopRun" && code == ::grpc::StatusCode::FAILED_PRECONDITION))
          << rpc << " with " << token << ": " << code;
    }
  }
  for (const std::string& rpc : rpcs) {
    EXPECT_EQ(call(rpc, ""), ::grpc::StatusCode::UNAUTHENTICATED) << rpc << ": no token";
    EXPECT_EQ(call(rpc, "bogus"), ::grpc::StatusCode::UNAUTHENTICATED) << rpc << ": unknown";
    EXPECT_EQ(call(rpc, "rater-t"), ::grpc::StatusCode::PERMISSION_DENIED) << rpc << ": a rater";
  }
  for (int i = 1; i <= started; ++i) {
    v1::StopRunRequest stop;
    stop.set_run_id(fmt::format("auth-{}", i));
    v1::StopRunResponse r;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(5), "admin-t");
    stub->StopRun(ctx.get(), stop, &r);
  }
  server.Shutdown();
}

// Issue 17, hole 4: the worker's config decides where a run writes and where its token goes.
TEST_F(TrainerServiceTest, ARunOnlyPicksCheckpointFoldersAndEndpointsTheWorkerAllows) {
  v1::StartRunResponse response;
  v1::StartRunRequest req = Request("policy-1", v1::MODE_BASELINE);
  req.mutable_config()->set_energy_endpoint("127.0.0.1:2");  // not the worker's collector
  ::grpc::Status s = Start(req, &response);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("config.energy_endpoint '127.0.0.1:2'"));
  req = Request("policy-1", v1::MODE_HITL);
  req.mutable_config()->mutable_feedback()->set_endpoint("evil.example:7102");
  EXPECT_EQ(Start(req, &response).error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  req = Request("policy-1", v1::MODE_BASELINE);
  req.mutable_config()->set_checkpoint_dir("../../etc");
  s = Start(req, &response);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("config.checkpoint_dir"));
  EXPECT_FALSE(
      std::filesystem::exists(std::filesystem::path(CheckpointRoot()) / "../../etc" / "policy-1"));
  // A name inside the root: the run checkpoints there, and reports the path it used.
  req = Request("policy-2", v1::MODE_BASELINE);
  req.mutable_config()->mutable_budget()->set_max_epochs(1);
  req.mutable_config()->set_checkpoint_dir("team-a");
  ASSERT_TRUE(Start(req, &response).ok());
  absl::StatusOr<v1::Run> run = runs_->WaitForEnd("policy-2", std::chrono::seconds(60));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), v1::RUN_STATE_SUCCEEDED) << run->error_message();
  EXPECT_THAT(run->checkpoint_path(),
              ::testing::StartsWith(CheckpointRoot() + "/team-a/policy-2/"));
  EXPECT_EQ(run->config().checkpoint_dir(), "team-a");  // the run as asked
}

TEST_F(TrainerServiceTest, UnreachableCollectorFailsTheRunNotTheCall) {
  v1::StartRunRequest request = Request("noenergy-1", v1::MODE_BASELINE);
  request.mutable_config()->set_energy_endpoint("127.0.0.1:1");
  v1::StartRunResponse started;
  ASSERT_TRUE(Start(request, &started).ok());
  absl::StatusOr<v1::Run> run = runs_->WaitForEnd("noenergy-1", std::chrono::seconds(60));
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state(), v1::RUN_STATE_FAILED);
  EXPECT_THAT(run->error_message(), ::testing::HasSubstr("does not train unmeasured"));
}

}  // namespace
}  // namespace greenloop::trainer
