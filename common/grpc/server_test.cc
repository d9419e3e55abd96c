#include "common/grpc/server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "common/grpc/channel.h"
#include "common/grpc/testdata/test_service_impl.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "src/proto/grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace greenloop::rpc {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::grpc::reflection::v1alpha::ServerReflection;
using ::grpc::reflection::v1alpha::ServerReflectionRequest;
using ::grpc::reflection::v1alpha::ServerReflectionResponse;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

constexpr char kTestService[] = "greenloop.rpc.testdata.TestService";
constexpr char kHealthService[] = "grpc.health.v1.Health";
constexpr char kReflectionService[] = "grpc.reflection.v1alpha.ServerReflection";

std::string Loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

// A channel that does not retry, so that failures show up at once.
std::shared_ptr<::grpc::Channel> Dial(int port) {
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
      CreateChannel(Loopback(port), {.retry = {.max_attempts = 1}});
  EXPECT_TRUE(channel.ok()) << channel.status();
  return *channel;
}

// grpc.health.v1.Health/Check through a real client: the RPC's code and the serving status.
struct CheckResult {
  ::grpc::StatusCode code;
  HealthCheckResponse::ServingStatus serving;
};
CheckResult Check(const std::shared_ptr<::grpc::Channel>& channel, const std::string& service) {
  auto stub = Health::NewStub(channel);
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  auto context = NewClientContext(std::chrono::seconds(5));
  const ::grpc::Status status = stub->Check(context.get(), request, &response);
  return {status.error_code(), response.status()};
}

class ServerTest : public ::testing::Test {
 protected:
  // Starts a server with TestService on a free loopback port.
  void StartServer(ServerOptions options = {}) {
    if (options.address == ServerOptions{}.address) options.address = "127.0.0.1:0";
    server_ = std::make_unique<Server>(std::move(options));
    server_->Add(&service_);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->port(), 0);
    channel_ = Dial(server_->port());
  }

  StaticAuthenticator authenticator_{{}};
  testdata::TestServiceImpl service_{&authenticator_};
  std::unique_ptr<Server> server_;
  std::shared_ptr<::grpc::Channel> channel_;
};

TEST_F(ServerTest, HealthCheckIsServingOverallAndPerService) {
  StartServer();
  for (const std::string service : {"", kTestService}) {
    const CheckResult result = Check(channel_, service);
    EXPECT_EQ(result.code, ::grpc::StatusCode::OK) << service;
    EXPECT_EQ(result.serving, HealthCheckResponse::SERVING) << service;
  }
  EXPECT_EQ(Check(channel_, "no.such.Service").code, ::grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, SetServingFalseIsNotServingThenBack) {
  StartServer();
  server_->SetServing(false);
  EXPECT_EQ(Check(channel_, "").serving, HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check(channel_, kTestService).serving, HealthCheckResponse::NOT_SERVING);

  server_->SetServing(true);
  EXPECT_EQ(Check(channel_, "").serving, HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(channel_, kTestService).serving, HealthCheckResponse::SERVING);
}

TEST_F(ServerTest, SetServingOneServiceLeavesTheRest) {
  StartServer();
  ASSERT_TRUE(server_->SetServing(kTestService, false).ok());
  EXPECT_EQ(Check(channel_, kTestService).serving, HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check(channel_, "").serving, HealthCheckResponse::SERVING);

  const absl::Status unknown = server_->SetServing("no.such.Service", false);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr(kTestService));
}

TEST_F(ServerTest, SetServingBeforeStartStartsNotServing) {
  Server server({.address = "127.0.0.1:0"});
  server.Add(&service_);
  server.SetServing(false);
  EXPECT_EQ(server.SetServing(kTestService, false).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(server.Start().ok());
  auto channel = Dial(server.port());
  EXPECT_EQ(Check(channel, "").serving, HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check(channel, kTestService).serving, HealthCheckResponse::NOT_SERVING);
}

TEST_F(ServerTest, ServiceNamesIncludeHealthAndReflection) {
  StartServer();
  EXPECT_THAT(server_->service_names(),
              IsSupersetOf({std::string(kTestService), std::string(kHealthService),
                            std::string(kReflectionService)}));
}

// What grpcurl / grpc_cli do first: list the services over the reflection stream.
TEST_F(ServerTest, ReflectionListsServices) {
  StartServer();
  auto stub = ServerReflection::NewStub(channel_);
  auto context = NewClientContext(std::chrono::seconds(5));
  auto stream = stub->ServerReflectionInfo(context.get());
  ServerReflectionRequest request;
  request.set_list_services("*");
  ASSERT_TRUE(stream->Write(request));
  ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_list_services_response()) << response.DebugString();
  std::set<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.insert(service.name());
  }
  EXPECT_THAT(names, Contains(kTestService));
  EXPECT_THAT(names, Contains(kHealthService));
  EXPECT_THAT(names, Contains(kReflectionService));

  // And describes our service, which is what lets grpcurl call it.
  request.Clear();
  request.set_file_containing_symbol(kTestService);
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response()) << response.DebugString();
  ASSERT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "common/grpc/testdata/test_service.proto");

  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, ShutdownReturnsWaitAndNewCallsAreUnavailable) {
  StartServer();
  ASSERT_EQ(Check(channel_, "").code, ::grpc::StatusCode::OK);
  std::future<void> waiting = std::async(std::launch::async, [&] { server_->Wait(); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "Wait() returned before Shutdown()";

  server_->Shutdown();
  EXPECT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  server_->Shutdown();  // idempotent

  EXPECT_EQ(Check(channel_, "").code, ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Check(Dial(server_->port()), "").code, ::grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerTest, ShutdownSendsNotServingToWatchersFirst) {
  StartServer({.shutdown_grace = std::chrono::milliseconds(500)});
  auto stub = Health::NewStub(channel_);
  auto context = NewClientContext(std::chrono::seconds(10));
  HealthCheckRequest request;
  auto watch = stub->Watch(context.get(), request);
  HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  std::thread shutdown([&] { server_->Shutdown(); });
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  shutdown.join();
}

TEST_F(ServerTest, InFlightCallFinishesWithinGrace) {
  StartServer({.shutdown_grace = std::chrono::seconds(10)});
  auto stub = testdata::TestService::NewStub(channel_);
  testdata::EchoRequest request;
  request.set_text("done");
  request.set_sleep_ms(500);
  std::future<::grpc::Status> call = std::async(std::launch::async, [&] {
    testdata::EchoReply reply;
    auto context = NewClientContext(std::chrono::seconds(10));
    ::grpc::Status status = stub->Sleep(context.get(), request, &reply);
    EXPECT_EQ(reply.text(), "done");
    return status;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // let the call reach the handler
  server_->Shutdown();
  EXPECT_TRUE(call.get().ok());
}

TEST_F(ServerTest, InFlightCallIsCancelledAtGraceDeadline) {
  StartServer({.shutdown_grace = std::chrono::milliseconds(300)});
  auto stub = testdata::TestService::NewStub(channel_);
  testdata::EchoRequest request;
  request.set_sleep_ms(20'000);
  std::future<::grpc::Status> call = std::async(std::launch::async, [&] {
    testdata::EchoReply reply;
    auto context = NewClientContext(std::chrono::seconds(30));
    return stub->Sleep(context.get(), request, &reply);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(call.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(call.get().ok());
}

TEST_F(ServerTest, PortInUseIsUnavailable) {
  StartServer();
  const std::string taken = Loopback(server_->port());
  Server second({.address = taken});
  second.Add(&service_);
  const absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(taken));
  EXPECT_EQ(second.port(), 0);
  EXPECT_EQ(Check(channel_, "").serving, HealthCheckResponse::SERVING) << "first one unharmed";
}

TEST_F(ServerTest, PortHeldByAnotherSocketIsUnavailable) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  Server server({.address = Loopback(ntohs(addr.sin_port))});
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kUnavailable);
  close(fd);
}

TEST_F(ServerTest, MissingTlsCertIsInvalidArgument) {
  Server server({.address = "127.0.0.1:0",
                 .tls = ServerTlsOptions{.cert_chain_path = "/nonexistent/server.pem",
                                         .private_key_path = "/nonexistent/server.key"}});
  const absl::Status status = server.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/server.pem"));
  EXPECT_EQ(server.port(), 0);
}

TEST_F(ServerTest, TlsServesHealthToATlsClientOnly) {
  const std::string dir = GREENLOOP_GRPC_TESTDATA_DIR;
  StartServer({.tls = ServerTlsOptions{.cert_chain_path = dir + "/server.pem",
                                       .private_key_path = dir + "/server.key"}});
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> tls_channel = CreateChannel(
      Loopback(server_->port()), {.tls = ClientTlsOptions{.root_ca_path = dir + "/server.pem",
                                                          .server_name_override = "localhost"},
                                  .retry = {.max_attempts = 1}});
  ASSERT_TRUE(tls_channel.ok()) << tls_channel.status();
  const CheckResult result = Check(*tls_channel, "");
  EXPECT_EQ(result.code, ::grpc::StatusCode::OK);
  EXPECT_EQ(result.serving, HealthCheckResponse::SERVING);

  EXPECT_EQ(Check(channel_, "").code, ::grpc::StatusCode::UNAVAILABLE) << "plaintext refused";
}

TEST_F(ServerTest, MalformedAddressIsInvalidArgument) {
  for (const char* address : {"localhost", "127.0.0.1:http", "127.0.0.1:70000", "[::1]"}) {
    Server server({.address = address});
    EXPECT_EQ(server.Start().code(), absl::StatusCode::kInvalidArgument) << address;
  }
}

TEST_F(ServerTest, StartTwiceIsFailedPrecondition) {
  StartServer();
  EXPECT_EQ(server_->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ServerTest, WaitAndShutdownBeforeStartReturnAtOnce) {
  Server server({});
  server.Shutdown();
  server.Wait();
  EXPECT_EQ(server.port(), 0);
  EXPECT_TRUE(server.service_names().empty());
}

}  // namespace
}  // namespace greenloop::rpc
