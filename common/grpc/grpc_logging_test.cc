#include "common/grpc/grpc_logging.h"

#include <gmock/gmock.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "common/grpc/server.h"
#include "common/logging/logging.h"

namespace greenloop::rpc {
namespace {

using ::testing::HasSubstr;

class GrpcLoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logging::Init({.service = "test",
                   .format = logging::Format::kJson,
                   .sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)});
  }
  // The sink refers to out_; put the default logger back before out_ goes.
  void TearDown() override { logging::Init({}); }

  std::ostringstream out_;
};

TEST_F(GrpcLoggingTest, GrpcErrorBecomesAGreenloopErrorLine) {
  RouteGrpcLogsToGreenloopLogging();
  grpc_init();  // gRPC reads GRPC_VERBOSITY here; before it, gpr_log prints nothing at all
  gpr_log(GPR_ERROR, "listener failed on port %d", 7101);
  grpc_shutdown();
  const std::string line = out_.str();
  EXPECT_THAT(line, HasSubstr(R"("msg":"listener failed on port 7101")"));
  EXPECT_THAT(line, HasSubstr(R"("source":"grpc")"));
  EXPECT_THAT(line, HasSubstr(R"("file":")"));
  EXPECT_THAT(line, HasSubstr(R"("level":"error")"));
}

TEST_F(GrpcLoggingTest, GrpcsOwnBindFailureArrivesAsJson) {
  RouteGrpcLogsToGreenloopLogging();
  Server first({.address = "127.0.0.1:0"});
  ASSERT_TRUE(first.Start().ok());
  Server second({.address = "127.0.0.1:" + std::to_string(first.port())});
  ASSERT_FALSE(second.Start().ok());
  // gRPC core explains the failed bind in its own words, now as one of our JSON lines.
  EXPECT_THAT(out_.str(), HasSubstr(R"("level":"error","service":"test","msg":)"));
  EXPECT_THAT(out_.str(), HasSubstr(R"("source":"grpc")"));
}

}  // namespace
}  // namespace greenloop::rpc
