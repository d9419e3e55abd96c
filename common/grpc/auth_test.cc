#include "common/grpc/auth.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "common/grpc/testdata/test_service_impl.h"

namespace greenloop::rpc {
namespace {

using ::testing::HasSubstr;

constexpr char kRaterToken[] = "rater-token-0123456789";
constexpr char kAdminToken[] = "admin-token-9876543210";

StaticAuthenticator MakeAuthenticator() {
  return StaticAuthenticator(
      {{kRaterToken, {"r1", "rita", Role::kRater}}, {kAdminToken, {"a1", "ada", Role::kAdmin}}});
}

TEST(RoleTest, Names) {
  EXPECT_EQ(RoleName(Role::kRater), "rater");
  EXPECT_EQ(RoleName(Role::kWorker), "worker");
  EXPECT_EQ(RoleName(Role::kAdmin), "admin");
}

TEST(StaticAuthenticatorTest, KnownTokenIsItsPrincipal) {
  const StaticAuthenticator auth = MakeAuthenticator();
  absl::StatusOr<Principal> principal = auth.Authenticate(kAdminToken);
  ASSERT_TRUE(principal.ok()) << principal.status();
  EXPECT_EQ(principal->id, "a1");
  EXPECT_EQ(principal->name, "ada");
  EXPECT_EQ(principal->role, Role::kAdmin);
}

TEST(StaticAuthenticatorTest, UnknownPrefixLongerAndEmptyTokensAreUnauthenticated) {
  const StaticAuthenticator auth = MakeAuthenticator();
  const std::string admin = kAdminToken;
  for (const std::string& token :
       {std::string("nope"), admin.substr(0, admin.size() - 1), admin + "x", std::string()}) {
    EXPECT_EQ(auth.Authenticate(token).status().code(), absl::StatusCode::kUnauthenticated)
        << "'" << token << "'";
  }
  // An empty stored token matches nothing, not even an empty presented one.
  const StaticAuthenticator with_empty({{"", {"x", "x", Role::kAdmin}}});
  EXPECT_EQ(with_empty.Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
}

// Authenticates everyone as UNAVAILABLE, like a token store whose database is down.
class DownAuthenticator final : public Authenticator {
 public:
  absl::StatusOr<Principal> Authenticate(std::string_view /*token*/) const override {
    return absl::UnavailableError("token store down");
  }
};

// Authorize() as handlers use it, through real calls to TestService over loopback.
class AuthorizeTest : public ::testing::Test {
 protected:
  void SetUp() override { StartWith(&authenticator_); }

  void StartWith(const Authenticator* authenticator) {
    service_ = std::make_unique<testdata::TestServiceImpl>(authenticator);
    server_ = std::make_unique<Server>(ServerOptions{.address = "127.0.0.1:0"});
    server_->Add(service_.get());
    ASSERT_TRUE(server_->Start().ok());
    absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
        CreateChannel("127.0.0.1:" + std::to_string(server_->port()));
    ASSERT_TRUE(channel.ok()) << channel.status();
    stub_ = testdata::TestService::NewStub(*channel);
  }

  // Calls Echo (any role) or AdminEcho (admin only) with `authorization` metadata `header`, none
  // when empty.
  ::grpc::Status Call(bool admin_only, const std::string& header,
                      std::string* principal = nullptr) {
    ::grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!header.empty()) context.AddMetadata("authorization", header);
    testdata::EchoRequest request;
    request.set_text("hi");
    testdata::EchoReply reply;
    ::grpc::Status status = admin_only ? stub_->AdminEcho(&context, request, &reply)
                                       : stub_->Echo(&context, request, &reply);
    if (principal != nullptr) *principal = reply.principal();
    return status;
  }

  StaticAuthenticator authenticator_ = MakeAuthenticator();
  std::unique_ptr<testdata::TestServiceImpl> service_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<testdata::TestService::Stub> stub_;
};

TEST_F(AuthorizeTest, MissingTokenIsUnauthenticated) {
  const ::grpc::Status status = Call(/*admin_only=*/false, "");
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("Bearer"));
}

TEST_F(AuthorizeTest, MalformedHeaderIsUnauthenticated) {
  for (const std::string& header : {std::string("Basic ") + kAdminToken, std::string(kAdminToken),
                                    std::string("Bearer"), std::string("Bearer    ")}) {
    EXPECT_EQ(Call(false, header).error_code(), ::grpc::StatusCode::UNAUTHENTICATED) << header;
  }
}

TEST_F(AuthorizeTest, WrongTokenIsUnauthenticated) {
  EXPECT_EQ(Call(false, "Bearer not-a-token").error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(true, "Bearer not-a-token").error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthorizeTest, RaterOnAdminMethodIsPermissionDeniedNamingTheRole) {
  const ::grpc::Status status = Call(/*admin_only=*/true, std::string("Bearer ") + kRaterToken);
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("admin"));
  EXPECT_THAT(status.error_message(), HasSubstr("rater"));
}

TEST_F(AuthorizeTest, AdminOnAdminMethodIsOk) {
  std::string principal;
  const ::grpc::Status status = Call(true, std::string("Bearer ") + kAdminToken, &principal);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(principal, "ada");
}

TEST_F(AuthorizeTest, AnyRoleMethodAdmitsRaterAndSchemeIsCaseInsensitive) {
  std::string principal;
  EXPECT_TRUE(Call(false, std::string("bearer ") + kRaterToken, &principal).ok());
  EXPECT_EQ(principal, "rita");
}

TEST_F(AuthorizeTest, NewClientContextSendsTheToken) {
  auto context = NewClientContext(std::chrono::seconds(5), kAdminToken);
  testdata::EchoRequest request;
  testdata::EchoReply reply;
  const ::grpc::Status status = stub_->AdminEcho(context.get(), request, &reply);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.principal(), "ada");
}

TEST_F(AuthorizeTest, AuthenticatorErrorsPassThrough) {
  DownAuthenticator down;
  server_->Shutdown();
  StartWith(&down);
  EXPECT_EQ(Call(false, std::string("Bearer ") + kAdminToken).error_code(),
            ::grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace greenloop::rpc
