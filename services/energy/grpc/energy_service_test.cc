// The energy collector's gRPC face with authentication on (issue 17, hole 3): the real service and
// a real client over loopback, tokens checked by a StaticAuthenticator. Every RPC takes a worker or
// admin token; a run belongs to whoever registered it; a pid to one run.
#include "services/energy/grpc/energy_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "services/energy/core/fake_tree.h"
#include "services/energy/core/rapl.h"

namespace greenloop::energy {
namespace {

using ::testing::HasSubstr;

class EnergyServiceAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.AddRaplZone("intel-rapl:0", "package-0", 262'143'328'850, 0);
    tree_.SetCpu(0, 0);
    tree_.SetProcess(100, 1, 0);
    tree_.SetProcess(200, 1, 0);
    collector_ = std::make_unique<Collector>(CollectorOptions{.node = "node-a"},
                                             *DiscoverRaplZones({.sysfs_root = tree_.powercap()}),
                                             std::vector<GpuDescription>{}, &procfs_);
    service_ = std::make_unique<EnergyGrpcService>(
        collector_.get(), nullptr, &hub_, &auth_,
        NodeDescription{.hostname = "h", .version = "test", .interval = absl::Seconds(1)});
    server_.Add(service_.get());
    ASSERT_TRUE(server_.Start().ok());
    stub_ = v1::EnergyService::NewStub(
        *rpc::CreateChannel("127.0.0.1:" + std::to_string(server_.port())));
  }
  void TearDown() override {
    service_->CloseStreams();
    server_.Shutdown();
  }

  ::grpc::Status Register(const std::string& token, const std::string& run, int pid) {
    v1::RegisterRequest req;
    req.set_run_id(run);
    req.add_pids(pid);
    v1::RegisterResponse resp;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(5), token);
    return stub_->Register(ctx.get(), req, &resp);
  }
  ::grpc::Status Unregister(const std::string& token, const std::string& run) {
    v1::UnregisterRequest req;
    req.set_run_id(run);
    v1::UnregisterResponse resp;
    auto ctx = rpc::NewClientContext(std::chrono::seconds(5), token);
    return stub_->Unregister(ctx.get(), req, &resp);
  }

  // Every RPC of the service, called with `token` (empty: no authorization header); Register and
  // Unregister (in that order: the map's) act on run `run` with pid 200.
  std::map<std::string, std::function<::grpc::StatusCode(const std::string&)>> Rpcs(
      const std::string& run) {
    auto unary = [this](auto method, auto request, auto response) {
      return [this, method, request, response](const std::string& token) mutable {
        auto ctx = rpc::NewClientContext(std::chrono::seconds(5), token);
        return (stub_.get()->*method)(ctx.get(), request, &response).error_code();
      };
    };
    v1::GetRunEnergyRequest get;
    get.set_run_id("run-w1");
    v1::RegisterRequest reg;
    reg.set_run_id(run);
    reg.add_pids(200);
    v1::UnregisterRequest unreg;
    unreg.set_run_id(run);
    return {
        {"Register", unary(&v1::EnergyService::Stub::Register, reg, v1::RegisterResponse())},
        {"Unregister",
         unary(&v1::EnergyService::Stub::Unregister, unreg, v1::UnregisterResponse())},
        {"GetRunEnergy",
         unary(&v1::EnergyService::Stub::GetRunEnergy, get, v1::GetRunEnergyResponse())},
        {"ListMeters", unary(&v1::EnergyService::Stub::ListMeters, v1::ListMetersRequest(),
                             v1::ListMetersResponse())},
        {"GetNodeInfo", unary(&v1::EnergyService::Stub::GetNodeInfo, v1::GetNodeInfoRequest(),
                              v1::GetNodeInfoResponse())},
        {"ListRegistrations",
         unary(&v1::EnergyService::Stub::ListRegistrations, v1::ListRegistrationsRequest(),
               v1::ListRegistrationsResponse())},
        {"WatchNodeSamples",
         [this](const std::string& token) {
           auto ctx = rpc::NewClientContext(std::chrono::milliseconds(300), token);
           auto reader = stub_->WatchNodeSamples(ctx.get(), v1::WatchNodeSamplesRequest());
           v1::WatchNodeSamplesResponse r;
           while (reader->Read(&r)) {
           }
           const ::grpc::StatusCode code = reader->Finish().error_code();
           // An admitted stream runs until the deadline.
           return code == ::grpc::StatusCode::DEADLINE_EXCEEDED ? ::grpc::StatusCode::OK : code;
         }},
    };
  }

  testing::FakeTree tree_;
  ProcFs procfs_{tree_.proc()};
  std::unique_ptr<Collector> collector_;
  SampleHub hub_;
  rpc::StaticAuthenticator auth_{{{"rater-t", {"r1", "rita", rpc::Role::kRater}},
                                  {"worker-t", {"w1", "trainer-1", rpc::Role::kWorker}},
                                  {"worker2-t", {"w2", "trainer-2", rpc::Role::kWorker}},
                                  {"admin-t", {"a1", "ops", rpc::Role::kAdmin}}}};
  std::unique_ptr<EnergyGrpcService> service_;
  rpc::Server server_{{.address = "127.0.0.1:0", .service_name = "energy-test"}};
  std::unique_ptr<v1::EnergyService::Stub> stub_;
};

TEST_F(EnergyServiceAuthTest, EveryRpcTakesAWorkerOrAdminToken) {
  ASSERT_TRUE(Register("worker-t", "run-w1", 100).ok());
  for (auto& [name, call] : Rpcs("run-admin")) {
    EXPECT_EQ(call(""), ::grpc::StatusCode::UNAUTHENTICATED) << name << ": no token";
    EXPECT_EQ(call("not-a-token"), ::grpc::StatusCode::UNAUTHENTICATED) << name << ": unknown";
    EXPECT_EQ(call("rater-t"), ::grpc::StatusCode::PERMISSION_DENIED) << name << ": a rater";
    EXPECT_EQ(call("admin-t"), ::grpc::StatusCode::OK) << name << ": an admin";
  }
  for (auto& [name, call] : Rpcs("run-worker")) {
    EXPECT_EQ(call("worker-t"), ::grpc::StatusCode::OK) << name << ": a worker";
  }
}

TEST_F(EnergyServiceAuthTest, ARunIsItsRegistrantsAndAPidGoesToOneRun) {
  ASSERT_TRUE(Register("worker-t", "run-w1", 100).ok());
  ::grpc::Status other = Register("worker2-t", "run-w1", 200);
  EXPECT_EQ(other.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Unregister("worker2-t", "run-w1").error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  ::grpc::Status stolen = Register("worker2-t", "run-w2", 100);
  EXPECT_EQ(stolen.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(stolen.error_message(), HasSubstr("pid 100"));
  EXPECT_TRUE(Register("worker2-t", "run-w2", 200).ok());
  EXPECT_TRUE(Unregister("admin-t", "run-w1").ok());  // an operator may end anyone's run
  EXPECT_TRUE(Unregister("worker2-t", "run-w2").ok());
}

// Issue 17 (structure): the open streams are the service instance's, not the process's, so one
// instance shutting down ends its own streams and leaves another's open.
TEST_F(EnergyServiceAuthTest, ClosingStreamsEndsOnlyThisInstancesStreams) {
  EnergyGrpcService other(collector_.get(), nullptr, &hub_, &auth_,
                          NodeDescription{.hostname = "h2", .version = "test"});
  rpc::Server other_server({.address = "127.0.0.1:0", .service_name = "energy-test-2"});
  other_server.Add(&other);
  ASSERT_TRUE(other_server.Start().ok());
  auto other_stub = v1::EnergyService::NewStub(
      *rpc::CreateChannel("127.0.0.1:" + std::to_string(other_server.port())));
  std::atomic<bool> stop{false};
  std::thread publisher([&] {  // samples until the test ends, so every open stream gets some
    for (std::uint64_t seq = 1; !stop; ++seq) {
      hub_.Publish({.sequence = seq, .time = absl::Now(), .interval = absl::Seconds(1)});
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  auto ctx = rpc::NewClientContext(std::chrono::seconds(10), "admin-t");
  auto other_ctx = rpc::NewClientContext(std::chrono::seconds(10), "admin-t");
  auto mine = stub_->WatchNodeSamples(ctx.get(), v1::WatchNodeSamplesRequest());
  auto theirs = other_stub->WatchNodeSamples(other_ctx.get(), v1::WatchNodeSamplesRequest());
  v1::WatchNodeSamplesResponse r;
  ASSERT_TRUE(mine->Read(&r));  // both streams are open on their servers
  ASSERT_TRUE(theirs->Read(&r));

  service_->CloseStreams();
  while (mine->Read(&r)) {
  }
  EXPECT_EQ(mine->Finish().error_code(), ::grpc::StatusCode::UNAVAILABLE);
  ASSERT_TRUE(theirs->Read(&r)) << "another instance's CloseStreams ended this stream";
  ASSERT_TRUE(theirs->Read(&r));

  other.CloseStreams();
  while (theirs->Read(&r)) {
  }
  EXPECT_EQ(theirs->Finish().error_code(), ::grpc::StatusCode::UNAVAILABLE);
  stop = true;
  publisher.join();
  other_server.Shutdown();
}

}  // namespace
}  // namespace greenloop::energy
