// greenloop-trainer as a worker runs it, with TLS (issue 17, hole 8): given tls.cert_path and
// tls.key_path the binary serves TrainerService over TLS only.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>

#include "common/grpc/channel.h"
#include "greenloop/v1/trainer.grpc.pb.h"
#include "tests/support/child_process.h"

namespace greenloop::trainer {
namespace {

using namespace std::chrono_literals;

TEST(TrainerTls, ServesOverTlsOnlyWhenGivenACertificate) {
  const std::string certs = GREENLOOP_TLS_TESTDATA;
  const std::filesystem::path dir = GREENLOOP_TRAINER_TLS_DIR;
  std::filesystem::create_directories(dir);
  greenloop::testing::ChildProcess trainer;
  trainer.Start(
      {GREENLOOP_TRAINER_BIN, "--auth.mode=none", "--grpc.bind=127.0.0.1", "--grpc.port=0",
       "--metrics.bind=127.0.0.1", "--metrics.port=0", "--node.name=tls-node",
       "--tls.cert_path=" + certs + "/server.pem", "--tls.key_path=" + certs + "/server.key"},
      dir / "trainer.log");
  static const std::regex kServing(R"(grpc_port=(\d+).*tls=true)");
  std::optional<std::smatch> m = trainer.WaitForLog(kServing, 60s);
  ASSERT_TRUE(m.has_value()) << "greenloop-trainer did not start over TLS:\n" << trainer.log();
  const std::string target = "127.0.0.1:" + (*m)[1].str();

  auto secure = v1::TrainerService::NewStub(*rpc::CreateChannel(
      target, {.tls = rpc::ClientTlsOptions{.root_ca_path = certs + "/server.pem"}}));
  v1::ListRunsResponse runs;
  auto ctx = rpc::NewClientContext(10s);
  const ::grpc::Status over_tls = secure->ListRuns(ctx.get(), v1::ListRunsRequest(), &runs);
  EXPECT_TRUE(over_tls.ok()) << over_tls.error_message();

  auto plain =
      v1::TrainerService::NewStub(*rpc::CreateChannel(target, {.retry = {.max_attempts = 1}}));
  auto plain_ctx = rpc::NewClientContext(3s);
  const ::grpc::Status cleartext = plain->ListRuns(plain_ctx.get(), v1::ListRunsRequest(), &runs);
  EXPECT_EQ(cleartext.error_code(), ::grpc::StatusCode::UNAVAILABLE) << cleartext.error_message();
}

}  // namespace
}  // namespace greenloop::trainer
