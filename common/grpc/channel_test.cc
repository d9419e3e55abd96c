#include "common/grpc/channel.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "common/grpc/server.h"
#include "common/grpc/testdata/test_service_impl.h"

namespace greenloop::rpc {
namespace {

using ::testing::HasSubstr;

TEST(RetryServiceConfigJsonTest, WithoutThrottlingOrRetries) {
  EXPECT_EQ(RetryServiceConfigJson({.max_attempts = 2, .throttle = false}),
            R"({"methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":2,)"
            R"("initialBackoff":"0.100s","maxBackoff":"2.000s","backoffMultiplier":2,)"
            R"("retryableStatusCodes":["UNAVAILABLE"]}}]})");
  EXPECT_EQ(RetryServiceConfigJson({.max_attempts = 1}), R"({"methodConfig":[{"name":[{}]}]})");
}

TEST(RetryServiceConfigJsonTest, DefaultPolicy) {
  EXPECT_EQ(RetryServiceConfigJson({}),
            R"({"methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":4,)"
            R"("initialBackoff":"0.100s","maxBackoff":"2.000s","backoffMultiplier":2,)"
            R"("retryableStatusCodes":["UNAVAILABLE"]}}],)"
            R"("retryThrottling":{"maxTokens":10,"tokenRatio":0.1}})");
}

TEST(CreateChannelTest, RejectsBadOptions) {
  EXPECT_EQ(CreateChannel("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateChannel("127.0.0.1:1", {.retry = {.max_attempts = 0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateChannel("127.0.0.1:1", {.retry = {.initial_backoff = std::chrono::seconds(5)}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const absl::Status missing_ca =
      CreateChannel("127.0.0.1:1", {.tls = ClientTlsOptions{.root_ca_path = "/nonexistent/ca.pem"}})
          .status();
  EXPECT_EQ(missing_ca.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing_ca.message(), HasSubstr("/nonexistent/ca.pem"));
  EXPECT_EQ(CreateChannel("127.0.0.1:1", {.tls = ClientTlsOptions{.cert_chain_path = "/a.pem"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NewClientContextTest, SetsDeadline) {
  const auto before = std::chrono::system_clock::now();
  auto context = NewClientContext(std::chrono::milliseconds(1500));
  const auto after = std::chrono::system_clock::now();
  EXPECT_GE(context->deadline(), before + std::chrono::milliseconds(1500));
  EXPECT_LE(context->deadline(), after + std::chrono::milliseconds(1500));
}

// Retries and deadlines against a real server on loopback.
class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Add(&service_);
    ASSERT_TRUE(server_.Start().ok());
  }

  std::unique_ptr<testdata::TestService::Stub> Stub(ClientOptions options = {}) {
    absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
        CreateChannel("127.0.0.1:" + std::to_string(server_.port()), options);
    EXPECT_TRUE(channel.ok()) << channel.status();
    return testdata::TestService::NewStub(*channel);
  }

  // Calls Flaky for `key`, failing the first `fail_first` attempts; returns status and attempt.
  std::pair<::grpc::Status, int> Flaky(testdata::TestService::Stub& stub, const std::string& key,
                                       int fail_first) {
    auto context = NewClientContext(std::chrono::seconds(10));
    testdata::EchoRequest request;
    request.set_key(key);
    request.set_fail_first(fail_first);
    testdata::EchoReply reply;
    ::grpc::Status status = stub.Flaky(context.get(), request, &reply);
    return {status, reply.attempt()};
  }

  StaticAuthenticator authenticator_{{}};
  testdata::TestServiceImpl service_{&authenticator_};
  Server server_{{.address = "127.0.0.1:0"}};
};

TEST_F(ChannelTest, RetriesUnavailableUntilItSucceeds) {
  // Throttling off: its bucket is per target for the whole process, so an earlier test's
  // failures against a reused port would otherwise change the count.
  auto stub = Stub({.retry = {.initial_backoff = std::chrono::milliseconds(10),
                              .max_backoff = std::chrono::milliseconds(50),
                              .throttle = false}});
  const auto [status, attempt] = Flaky(*stub, "twice", 2);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(attempt, 3);
}

TEST_F(ChannelTest, RetriesAreBounded) {
  auto stub = Stub({.retry = {.max_attempts = 3,
                              .initial_backoff = std::chrono::milliseconds(10),
                              .max_backoff = std::chrono::milliseconds(50),
                              .throttle = false}});
  EXPECT_EQ(Flaky(*stub, "always", 100).first.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  // The server saw exactly 3 attempts: the next call is its 4th.
  auto no_retry = Stub({.retry = {.max_attempts = 1}});
  EXPECT_EQ(Flaky(*no_retry, "always", 0).second, 4);
}

TEST_F(ChannelTest, ThrottlingStopsRetriesWhenMostCallsFail) {
  auto stub = Stub({.retry = {.max_attempts = 5,
                              .initial_backoff = std::chrono::milliseconds(1),
                              .max_backoff = std::chrono::milliseconds(5)}});
  // Each failed attempt costs a token; below half of 10 gRPC stops retrying, so 20 calls that
  // always fail reach the server far fewer than the 100 times retries alone would allow.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Flaky(*stub, "down", 1000).first.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  }
  auto no_retry = Stub({.retry = {.max_attempts = 1}});
  const int attempts = Flaky(*no_retry, "down", 0).second - 1;
  EXPECT_GE(attempts, 20);
  EXPECT_LE(attempts, 30);
}

TEST_F(ChannelTest, OneAttemptMeansNoRetry) {
  auto stub = Stub({.retry = {.max_attempts = 1}});
  EXPECT_EQ(Flaky(*stub, "once", 1).first.error_code(), ::grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ChannelTest, DeadlineExceeded) {
  auto stub = Stub();
  auto context = NewClientContext(std::chrono::milliseconds(200));
  testdata::EchoRequest request;
  request.set_sleep_ms(5000);
  testdata::EchoReply reply;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(stub->Sleep(context.get(), request, &reply).error_code(),
            ::grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(ChannelTest, ServerDownIsUnavailableAfterRetries) {
  const int port = server_.port();
  server_.Shutdown();
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
      CreateChannel("127.0.0.1:" + std::to_string(port),
                    {.retry = {.initial_backoff = std::chrono::milliseconds(10),
                               .max_backoff = std::chrono::milliseconds(50)}});
  ASSERT_TRUE(channel.ok());
  auto stub = testdata::TestService::NewStub(*channel);
  auto context = NewClientContext(std::chrono::seconds(5));
  testdata::EchoRequest request;
  testdata::EchoReply reply;
  EXPECT_EQ(stub->Sleep(context.get(), request, &reply).error_code(),
            ::grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace greenloop::rpc
