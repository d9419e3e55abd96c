#include "common/metrics/metrics_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <prometheus/counter.h>

#include <string>

#include "absl/status/status.h"

namespace greenloop::metrics {
namespace {

using ::testing::HasSubstr;

// Scrapes /metrics over real HTTP; fails the test on any transport error or non-200.
std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  httplib::Result result = client.Get("/metrics");
  if (!result) {
    ADD_FAILURE() << "GET /metrics failed: " << httplib::to_string(result.error());
    return "";
  }
  EXPECT_EQ(result->status, 200);
  return result->body;
}

TEST(MetricsServerTest, ServesCounterOverHttp) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);

  auto& requests = prometheus::BuildCounter()
                       .Name("greenloop_test_requests_total")
                       .Help("Requests seen by the test")
                       .Register(*(*server)->registry())
                       .Add({{"method", "Get"}});
  requests.Increment();
  requests.Increment(2);

  EXPECT_THAT(Scrape((*server)->port()),
              HasSubstr("\ngreenloop_test_requests_total{method=\"Get\"} 3\n"));
}

TEST(MetricsServerTest, ServesBuildInfo) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  RegisterBuildInfo(*(*server)->registry(), "energy", "0.1.0");
  RegisterBuildInfo(*(*server)->registry(), "energy", "0.1.0");  // harmless twice

  EXPECT_THAT(Scrape((*server)->port()),
              HasSubstr("\ngreenloop_build_info{service=\"energy\",version=\"0.1.0\"} 1\n"));
}

TEST(MetricsServerTest, SharesAGivenRegistry) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("greenloop_test_shared_total")
      .Help("h")
      .Register(*registry)
      .Add({});
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->registry(), registry);
  EXPECT_THAT(Scrape((*server)->port()), HasSubstr("\ngreenloop_test_shared_total 0\n"));
}

TEST(MetricsServerTest, NullRegistryIsInvalidArgument) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start("127.0.0.1:0", nullptr);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MetricsServerTest, TakenPortIsUnavailable) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> first = MetricsServer::Start("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = "127.0.0.1:" + std::to_string((*first)->port());

  absl::StatusOr<std::unique_ptr<MetricsServer>> second = MetricsServer::Start(taken);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr(taken));
  // civetweb's own reason, not CivetServer's "null context".
  EXPECT_THAT(second.status().message(), HasSubstr("bind")) << second.status();
  // The first server is unaffected.
  prometheus::BuildCounter()
      .Name("greenloop_test_first_total")
      .Help("h")
      .Register(*(*first)->registry())
      .Add({});
  EXPECT_THAT(Scrape((*first)->port()), HasSubstr("\ngreenloop_test_first_total 0\n"));
}

TEST(MetricsServerTest, StopClosesThePort) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  (*server)->Stop();
  (*server)->Stop();  // idempotent
  EXPECT_EQ((*server)->port(), port);

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  EXPECT_FALSE(client.Get("/metrics"));
}

}  // namespace
}  // namespace greenloop::metrics
