#include "tools/greenloop/commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <sstream>

#include "common/grpc/server.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "greenloop/v1/trainer.grpc.pb.h"
#include "tools/greenloop/experiment_flags.h"

namespace greenloop::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunCli(std::vector<std::string_view> args) {
  std::ostringstream out, err;
  const int code = Main(args, {}, out, err);
  return {code, out.str(), err.str()};
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A real server on a loopback port serving the three greenloop contracts (unimplemented: the
// services land with their issues), health and reflection.
class CliRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Add(&energy_);
    server_.Add(&feedback_);
    server_.Add(&trainer_);
    ASSERT_TRUE(server_.Start().ok());
    target_ = "--target=127.0.0.1:" + std::to_string(server_.port());
  }

  greenloop::v1::EnergyService::Service energy_;
  greenloop::v1::FeedbackService::Service feedback_;
  greenloop::v1::TrainerService::Service trainer_;
  rpc::Server server_{{.address = "127.0.0.1:0", .service_name = "cli-test"}};
  std::string target_;
};

TEST_F(CliRpcTest, ListShowsEveryServiceThroughReflection) {
  const Result r = RunCli({"rpc", "list", target_});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_THAT(Lines(r.out),
              ElementsAre("greenloop.v1.EnergyService", "greenloop.v1.FeedbackService",
                          "greenloop.v1.TrainerService", "grpc.health.v1.Health",
                          "grpc.reflection.v1alpha.ServerReflection"));
}

TEST_F(CliRpcTest, HealthReportsServingAndNotServing) {
  Result r = RunCli({"rpc", "health", target_});
  EXPECT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");

  r = RunCli({"rpc", "health", target_, "--service=greenloop.v1.FeedbackService"});
  EXPECT_EQ(r.code, kExitOk) << r.err;

  server_.SetServing(false);
  r = RunCli({"rpc", "health", target_});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_EQ(r.out, "NOT_SERVING\n");
}

TEST_F(CliRpcTest, HealthOfAnUnknownServiceSaysSo) {
  const Result r = RunCli({"rpc", "health", target_, "--service=no.Such"});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_THAT(r.err, HasSubstr("does not serve 'no.Such'"));
}

TEST_F(CliRpcTest, UnreachableServerIsExitThreeWithOneLine) {
  const std::string closed = target_;
  server_.Shutdown();
  const Result r = RunCli({"rpc", "health", closed, "--timeout=2s"});
  EXPECT_EQ(r.code, kExitUnavailable);
  EXPECT_THAT(r.err, HasSubstr("cannot reach 127.0.0.1:"));
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
}

TEST(Cli, UsageErrorsAreExitTwo) {
  Result r = RunCli({});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("usage: greenloop"));

  r = RunCli({"rpc", "frobnicate"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'rpc frobnicate'"));

  r = RunCli({"rpc", "list"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--target is required"));

  r = RunCli({"rpc", "list", "--traget=x"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("did you mean 'target'?"));

  r = RunCli({"db", "status"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("pg.url is required"));
}

TEST(Cli, HelpAndVersion) {
  Result r = RunCli({"--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("rpc health"));
  r = RunCli({"db", "status", "--help"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("--pg.url"));
  r = RunCli({"version"});
  EXPECT_THAT(r.out, HasSubstr("greenloop 0."));
}

// Ctrl-C marks the guard that lives, not a process-wide flag a command must remember to reset:
// the next guard starts clean, and the outer guard is the target again once an inner one goes.
TEST(SigintGuard, MarksTheInnermostGuardAndEachGuardStartsClean) {
  {
    SigintGuard outer;
    {
      SigintGuard inner;
      ASSERT_EQ(std::raise(SIGINT), 0);
      EXPECT_TRUE(inner.interrupted());
      EXPECT_TRUE(SigintGuard::AnyInterrupted());
      EXPECT_FALSE(outer.interrupted());
    }
    EXPECT_FALSE(SigintGuard::AnyInterrupted());
    ASSERT_EQ(std::raise(SIGINT), 0);
    EXPECT_TRUE(outer.interrupted());
  }
  EXPECT_FALSE(SigintGuard::AnyInterrupted());
  SigintGuard next;
  EXPECT_FALSE(next.interrupted());
  EXPECT_FALSE(SigintGuard::AnyInterrupted());
}

}  // namespace
}  // namespace greenloop::cli
