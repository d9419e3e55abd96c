#include "common/grpc/whoami_authenticator.h"

#include <atomic>

#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "gtest/gtest.h"

namespace greenloop::rpc {
namespace {

// The WhoAmI half of a feedback service: knows two tokens, counts calls.
class FakeFeedback final : public v1::FeedbackService::Service {
 public:
  ::grpc::Status WhoAmI(::grpc::ServerContext* context, const v1::WhoAmIRequest*,
                        v1::WhoAmIResponse* response) override {
    ++calls;
    auto it = context->client_metadata().find("authorization");
    if (it == context->client_metadata().end()) {
      return {::grpc::StatusCode::UNAUTHENTICATED, "no token"};
    }
    std::string header(it->second.data(), it->second.size());
    if (header == "Bearer worker-token") {
      response->mutable_info()->set_token_id("t1");
      response->mutable_info()->set_name("trainer-7");
      response->mutable_info()->set_role(v1::ROLE_WORKER);
      return ::grpc::Status::OK;
    }
    if (header == "Bearer rater-token") {
      response->mutable_info()->set_token_id("t2");
      response->mutable_info()->set_name("alice");
      response->mutable_info()->set_role(v1::ROLE_RATER);
      return ::grpc::Status::OK;
    }
    return {::grpc::StatusCode::UNAUTHENTICATED, "unknown token"};
  }
  std::atomic<int> calls{0};
};

TEST(WhoAmIAuthenticator, AsksTheFeedbackServiceAndCaches) {
  FakeFeedback feedback;
  Server server({.address = "127.0.0.1:0", .service_name = "fake-feedback"});
  server.Add(&feedback);
  ASSERT_TRUE(server.Start().ok());
  auto channel = CreateChannel("127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(channel.ok());
  WhoAmIAuthenticator auth(*channel, absl::Seconds(30));

  absl::StatusOr<Principal> worker = auth.Authenticate("worker-token");
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_EQ(worker->role, Role::kWorker);
  EXPECT_EQ(worker->name, "trainer-7");
  ASSERT_TRUE(auth.Authenticate("worker-token").ok());
  EXPECT_EQ(feedback.calls.load(), 1) << "the second check is served from the cache";

  EXPECT_EQ(auth.Authenticate("rater-token")->role, Role::kRater);
  EXPECT_EQ(auth.Authenticate("forged").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.Authenticate("forged").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(feedback.calls.load(), 4) << "unknown tokens are not cached";
  server.Shutdown();
  // Cached tokens keep working while the feedback service is down; new ones cannot be checked.
  EXPECT_TRUE(auth.Authenticate("worker-token").ok());
  EXPECT_EQ(auth.Authenticate("new-token").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace greenloop::rpc
