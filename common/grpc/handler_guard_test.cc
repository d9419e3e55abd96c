#include "common/grpc/handler_guard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>

#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

#include "common/logging/logging.h"

namespace greenloop::rpc {
namespace {

using ::testing::HasSubstr;

class HandlerGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logging::Init(
        {.service = "test", .sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_)});
  }
  void TearDown() override { logging::Init({}); }

  std::ostringstream log_;
  std::map<std::string, int> counted_;
  HandlerGuard guard_{"energy", [this](std::string_view rpc) { ++counted_[std::string(rpc)]; }};
};

TEST_F(HandlerGuardTest, AnEscapedExceptionIsLoggedCountedAndAnsweredInternalWithoutDetails) {
  const ::grpc::Status got = guard_.Run("Register", []() -> absl::Status {
    throw std::runtime_error("pqxx: relation energy_runs does not exist");
  });
  EXPECT_EQ(got.error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_THAT(got.error_message(), ::testing::Not(HasSubstr("pqxx")));
  EXPECT_EQ(counted_["Register"], 1);
  EXPECT_THAT(log_.str(), HasSubstr("request failed"));
  EXPECT_THAT(log_.str(), HasSubstr("Register: pqxx: relation energy_runs does not exist"));
  EXPECT_THAT(log_.str(), HasSubstr("service=energy"));
}

TEST_F(HandlerGuardTest, AReturnedInternalIsCountedOnceAndAnswersPassThroughUncounted) {
  EXPECT_EQ(
      guard_.Run("GetRun", [] { return absl::InternalError("broken invariant"); }).error_code(),
      ::grpc::StatusCode::INTERNAL);
  const ::grpc::Status bad =
      guard_.Run("GetRun", [] { return absl::InvalidArgumentError("run_id is empty"); });
  EXPECT_EQ(bad.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad.error_message(), "run_id is empty");
  EXPECT_TRUE(guard_.Run("GetRun", [] { return absl::OkStatus(); }).ok());
  EXPECT_EQ(counted_["GetRun"], 1);
  EXPECT_THAT(log_.str(), ::testing::Not(HasSubstr("run_id is empty")));
}

TEST(HandlerGuardCountIn, CountsPerRpcInTheRegistry) {
  auto registry = std::make_shared<prometheus::Registry>();
  HandlerGuard guard("trainer",
                     HandlerGuard::CountIn(registry.get(), "greenloop_test_errors_total"));
  guard.Account("StartRun", absl::InternalError("x"));
  guard.Account("StartRun", absl::UnknownError("y"));
  guard.Account("StopRun", absl::NotFoundError("run 7"));
  double start_run = -1;
  bool stop_run_seen = false;
  for (const prometheus::MetricFamily& family : registry->Collect()) {
    if (family.name != "greenloop_test_errors_total") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      if (m.label.at(0).value == "StartRun") start_run = m.counter.value;
      if (m.label.at(0).value == "StopRun") stop_run_seen = true;
    }
  }
  EXPECT_EQ(start_run, 2);
  EXPECT_FALSE(stop_run_seen);
  EXPECT_EQ(HandlerGuard::CountIn(nullptr, "greenloop_test_errors_total"), nullptr);
}

}  // namespace
}  // namespace greenloop::rpc
