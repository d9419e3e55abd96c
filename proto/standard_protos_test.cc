// Checks greenloop::grpc_health_proto and greenloop::grpc_reflection_proto the way a greenloop
// service and its tests use them: one binary linking our generated health code, libgrpc++ (whose
// default health service answers) and libgrpc++_reflection (whose reflection service answers, and
// whose compiled reflection code our headers use). A clash of generated descriptors would abort
// this binary before main; the tests then call both services on a real in-process server bound to
// 127.0.0.1:0, as grpc_cli or a Kubernetes probe would.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "greenloop/v1/energy.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "src/proto/grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace greenloop::v1 {
namespace {

namespace pb = google::protobuf;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using grpc::reflection::v1alpha::ServerReflection;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

constexpr auto kDeadline = std::chrono::seconds(10);

// A server with the default health service, reflection and an EnergyService whose methods are all
// UNIMPLEMENTED (only its descriptor matters here).
class StandardServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&energy_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + kDeadline);
  }

  // Calls Health.Check for `service` and returns the status, or the RPC's error code as text.
  std::string Check(const std::string& service) {
    std::unique_ptr<Health::Stub> stub = Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kDeadline);
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    const grpc::Status status = stub->Check(&context, request, &response);
    if (!status.ok()) return "error " + std::to_string(status.error_code());
    return HealthCheckResponse::ServingStatus_Name(response.status());
  }

  EnergyService::Service energy_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(StandardServicesTest, HealthAnswersThroughOurGeneratedStub) {
  EXPECT_EQ(Check(""), "SERVING");
  server_->GetHealthCheckService()->SetServingStatus("greenloop.v1.EnergyService", false);
  EXPECT_EQ(Check("greenloop.v1.EnergyService"), "NOT_SERVING");
  EXPECT_EQ(Check("no.such.Service"), "error " + std::to_string(grpc::StatusCode::NOT_FOUND));
}

TEST_F(StandardServicesTest, ReflectionListsAndDescribesOurServices) {
  std::unique_ptr<ServerReflection::Stub> stub = ServerReflection::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kDeadline);
  auto stream = stub->ServerReflectionInfo(&context);

  ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  ServerReflectionResponse listed;
  ASSERT_TRUE(stream->Read(&listed));
  std::set<std::string> services;
  for (const auto& service : listed.list_services_response().service()) {
    services.insert(service.name());
  }
  EXPECT_EQ(services, (std::set<std::string>{"greenloop.v1.EnergyService", "grpc.health.v1.Health",
                                             "grpc.reflection.v1alpha.ServerReflection"}));

  ServerReflectionRequest describe;
  describe.set_file_containing_symbol("greenloop.v1.EnergyService");
  ASSERT_TRUE(stream->Write(describe));
  ServerReflectionResponse described;
  ASSERT_TRUE(stream->Read(&described));
  ASSERT_TRUE(described.has_file_descriptor_response())
      << described.error_response().error_message();
  std::set<std::string> files;
  bool register_found = false;
  for (const std::string& bytes : described.file_descriptor_response().file_descriptor_proto()) {
    pb::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    files.insert(file.name());
    for (const auto& service : file.service()) {
      for (const auto& method : service.method()) {
        if (service.name() == "EnergyService" && method.name() == "Register") {
          register_found = method.input_type() == ".greenloop.v1.RegisterRequest";
        }
      }
    }
  }
  EXPECT_TRUE(files.count("greenloop/v1/energy.proto")) << "reflection sent no energy.proto";
  EXPECT_TRUE(register_found) << "reflection's energy.proto lacks EnergyService.Register";

  ASSERT_TRUE(stream->WritesDone());
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Our reflection headers are generated from the grpc-proto package, but the code behind them is
// the one compiled into libgrpc++_reflection. They must describe the same messages field for field
// (an upgrade of one Debian package without the other would break this).
TEST(ReflectionHeadersTest, MatchTheCodeCompiledIntoLibgrpcReflection) {
  pb::FileDescriptorSet set;
  std::ifstream in(GREENLOOP_REFLECTION_PROTOSET, std::ios::binary);
  ASSERT_TRUE(set.ParseFromIstream(&in)) << GREENLOOP_REFLECTION_PROTOSET;
  ASSERT_EQ(set.file_size(), 1);
  const pb::FileDescriptorProto& ours = set.file(0);

  const pb::FileDescriptor* compiled = pb::DescriptorPool::generated_pool()->FindFileByName(
      "src/proto/grpc/reflection/v1alpha/reflection.proto");
  ASSERT_NE(compiled, nullptr) << "libgrpc++_reflection registers its file under another name";
  pb::FileDescriptorProto library;
  compiled->CopyTo(&library);

  pb::util::MessageDifferencer differencer;
  std::string differences;
  differencer.ReportDifferencesToString(&differences);
  // Options (deprecation, language packages) and json names do not change the C++ types.
  for (const pb::Descriptor* type :
       {pb::DescriptorProto::descriptor(), pb::FieldDescriptorProto::descriptor(),
        pb::ServiceDescriptorProto::descriptor(), pb::MethodDescriptorProto::descriptor()}) {
    differencer.IgnoreField(type->FindFieldByName("options"));
  }
  differencer.IgnoreField(pb::FieldDescriptorProto::descriptor()->FindFieldByName("json_name"));
  ASSERT_EQ(ours.message_type_size(), library.message_type_size());
  for (int i = 0; i < ours.message_type_size(); ++i) {
    EXPECT_TRUE(differencer.Compare(library.message_type(i), ours.message_type(i)))
        << ours.message_type(i).name() << ": " << differences;
  }
  EXPECT_TRUE(differencer.Compare(library.service(0), ours.service(0))) << differences;
}

// Our health code is the only grpc.health.v1 in protobuf's generated pool.
TEST(HealthProtoTest, IsRegisteredOnceUnderItsOwnName) {
  const pb::Descriptor* request = HealthCheckRequest::descriptor();
  EXPECT_EQ(request->file()->name(), "grpc/health/v1/health.proto");
  EXPECT_EQ(pb::DescriptorPool::generated_pool()->FindMessageTypeByName(
                "grpc.health.v1.HealthCheckRequest"),
            request);
}

}  // namespace
}  // namespace greenloop::v1
