// Data parallelism for real: ranks as separate processes meeting over a TCPStore on loopback and
// all-reducing through Gloo (trainer_rank_runner, one process per rank).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace greenloop::trainer {
namespace {

using Result = std::map<std::string, std::string>;

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class Rank {
 public:
  Rank(std::vector<std::string> args, const std::string& out) : out_(out) {
    args.insert(args.begin(), TRAINER_RANK_RUNNER);
    args.push_back("--out=" + out);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, TRAINER_RANK_RUNNER, nullptr, nullptr, argv.data(), environ), 0);
  }
  // Waits up to `timeout`; returns the exit status, or -1 on timeout (the process is killed).
  int Wait(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) return status;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    return -1;
  }
  void Kill() { kill(pid_, SIGKILL); }
  Result Read() const {
    Result r;
    std::ifstream in(out_);
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) r[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return r;
  }

 private:
  pid_t pid_ = 0;
  std::string out_;
};

class DistributedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("greenloop-dist-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Out(const std::string& name) const { return (dir_ / name).string(); }
  // Runs ranks 0 and 1 of one run with `args` (world 2 and a free port added) to their end, their
  // output files named `name`0 and `name`1; each rank's result.
  std::pair<Result, Result> TwoRanks(std::vector<std::string> args, const std::string& name) {
    args.push_back("--world=2");
    args.push_back("--port=" + std::to_string(FreePort()));
    auto with = [&](const char* rank) {
      std::vector<std::string> a = args;
      a.push_back(std::string("--rank=") + rank);
      return a;
    };
    Rank r0(with("0"), Out(name + "0"));
    Rank r1(with("1"), Out(name + "1"));
    EXPECT_NE(r0.Wait(std::chrono::seconds(300)), -1) << "rank 0 hung";
    EXPECT_NE(r1.Wait(std::chrono::seconds(60)), -1) << "rank 1 hung";
    return {r0.Read(), r1.Read()};
  }
  std::filesystem::path dir_;
};

TEST_F(DistributedTest, TwoRanksMatchOneRankAndApplyTheSameVerdicts) {
  const std::string port = std::to_string(FreePort());
  // Same global batch (2 × 32 = 64), so the same samples are seen in the same order, and the
  // random selection pool, so that rank 0 picks the same candidates as the single rank (the
  // default training-batch pool holds only rank 0's half of each batch).
  Rank r0({"--rank=0", "--world=2", "--port=" + port, "--batch=32", "--pool=random"}, Out("r0"));
  Rank r1({"--rank=1", "--world=2", "--port=" + port, "--batch=32", "--pool=random"}, Out("r1"));
  Rank single({"--rank=0", "--world=1", "--batch=64", "--threads=1", "--pool=random"},
              Out("single"));
  ASSERT_EQ(r0.Wait(std::chrono::seconds(300)), 0) << r0.Read()["message"];
  ASSERT_EQ(r1.Wait(std::chrono::seconds(60)), 0) << r1.Read()["message"];
  ASSERT_EQ(single.Wait(std::chrono::seconds(300)), 0) << single.Read()["message"];
  Result a = r0.Read();
  Result b = r1.Read();
  Result s = single.Read();
  std::cout << "1 rank accuracy " << s["accuracy"] << ", 2 ranks " << a["accuracy"]
            << "; relabelled " << s["relabelled"] << " vs " << a["relabelled"] << "\n";
  EXPECT_EQ(a["state"], "RUN_STATE_SUCCEEDED");
  EXPECT_EQ(a["step"], b["step"]);
  EXPECT_EQ(a["samples"], s["samples"]);
  EXPECT_EQ(a["step"], s["step"]);
  // Verdicts (from rank 0's crowd) were applied identically on both ranks.
  EXPECT_GT(std::stoul(a["changes"]), 100u);
  EXPECT_EQ(a["changes"], b["changes"]);
  EXPECT_EQ(a["changes_hash"], b["changes_hash"]);
  EXPECT_EQ(a["accuracy"], b["accuracy"]);
  // Same final accuracy as one rank within one point for the same samples seen.
  EXPECT_NEAR(std::stod(a["accuracy"]), std::stod(s["accuracy"]), 0.01);
}

// The default pool: rank 0 selects from its own share of the batches, and every rank still applies
// the same verdicts at the same steps.
TEST_F(DistributedTest, TrainingBatchPoolAppliesTheSameVerdictsOnEveryRank) {
  const std::string port = std::to_string(FreePort());
  Rank r0({"--rank=0", "--world=2", "--port=" + port, "--batch=32"}, Out("t0"));
  Rank r1({"--rank=1", "--world=2", "--port=" + port, "--batch=32"}, Out("t1"));
  ASSERT_EQ(r0.Wait(std::chrono::seconds(300)), 0) << r0.Read()["message"];
  ASSERT_EQ(r1.Wait(std::chrono::seconds(60)), 0) << r1.Read()["message"];
  Result a = r0.Read();
  Result b = r1.Read();
  EXPECT_EQ(a["state"], "RUN_STATE_SUCCEEDED");
  EXPECT_GT(std::stoul(a["changes"]), 100u);
  EXPECT_EQ(a["changes"], b["changes"]);
  EXPECT_EQ(a["changes_hash"], b["changes_hash"]);
  EXPECT_EQ(a["accuracy"], b["accuracy"]);
}

// MODE_HITL_FEATURES on two ranks: rank 0 asks the rules, both ranks apply them at the same step,
// and both set the same RRR weight (the calibration sums every rank's batch in the step's
// all-reduce; a rank calibrating alone on its own half-batch would pick its own).
TEST_F(DistributedTest, FeatureRulesAndTheirWeightAreTheSameOnEveryRank) {
  auto [a, b] = TwoRanks({"--batch=32", "--mode=hitl_features", "--noise=0"}, "f");
  ASSERT_EQ(a["state"], "RUN_STATE_SUCCEEDED") << a["message"];
  ASSERT_EQ(b["state"], "RUN_STATE_SUCCEEDED") << b["message"];
  EXPECT_EQ(a["rules"], "10");
  EXPECT_EQ(b["rules"], "10");
  EXPECT_GT(std::stod(a["lambda"]), 0);
  EXPECT_EQ(a["lambda"], b["lambda"]);
  EXPECT_EQ(a["accuracy"], b["accuracy"]);
  EXPECT_EQ(a["step"], b["step"]);
}

// MODE_HITL_COMBINED on two ranks: rank 0 follows both campaigns, and both ranks relabel the
// same samples and put the same rules in force at the same steps.
TEST_F(DistributedTest, CombinedFeedbackRelabelsAndRulesTheSameOnEveryRank) {
  auto [a, b] = TwoRanks({"--batch=32", "--mode=hitl_combined", "--noise=0.3"}, "c");
  ASSERT_EQ(a["state"], "RUN_STATE_SUCCEEDED") << a["message"];
  ASSERT_EQ(b["state"], "RUN_STATE_SUCCEEDED") << b["message"];
  EXPECT_EQ(a["rules"], "10");
  EXPECT_EQ(b["rules"], "10");
  EXPECT_GT(std::stoul(a["relabelled"]), 100u);
  EXPECT_EQ(a["relabelled"], b["relabelled"]);
  EXPECT_EQ(a["changes_hash"], b["changes_hash"]);
  EXPECT_EQ(a["lambda"], b["lambda"]);
  EXPECT_EQ(a["accuracy"], b["accuracy"]);
}

// A λ that makes the loss overflow fails both ranks at the same step with the same line naming
// the key (the flag rides the step's all-reduce), instead of one failing and the other hanging.
TEST_F(DistributedTest, ANonFiniteLossFailsEveryRankNamingTheKey) {
  auto [a, b] =
      TwoRanks({"--batch=32", "--mode=hitl_features", "--noise=0", "--lambda=1e308"}, "n");
  EXPECT_EQ(a["state"], "RUN_STATE_FAILED");
  EXPECT_EQ(b["state"], "RUN_STATE_FAILED");
  EXPECT_THAT(a["message"], ::testing::HasSubstr("config.feature_feedback.penalty_weight"));
  EXPECT_THAT(b["message"], ::testing::HasSubstr("config.feature_feedback.penalty_weight"));
  EXPECT_EQ(a["step"], b["step"]);
}

TEST_F(DistributedTest, AKilledRankFailsTheRunWithAClearMessageNotAHang) {
  const std::string port = std::to_string(FreePort());
  const std::vector<std::string> common = {"--world=2", "--port=" + port, "--epochs=100",
                                           "--collective_timeout_ms=5000"};
  std::vector<std::string> a0 = common, a1 = common;
  a0.push_back("--rank=0");
  a1.push_back("--rank=1");
  Rank r0(a0, Out("k0"));
  Rank r1(a1, Out("k1"));
  std::this_thread::sleep_for(std::chrono::seconds(8));
  r1.Kill();
  const auto start = std::chrono::steady_clock::now();
  const int status = r0.Wait(std::chrono::seconds(60));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_NE(status, -1) << "rank 0 hung after rank 1 died";
  r1.Wait(std::chrono::seconds(5));
  Result r = r0.Read();
  std::cout << "rank 0 noticed in " << waited << " s: " << r["message"] << "\n";
  EXPECT_EQ(r["state"], "RUN_STATE_FAILED");
  EXPECT_EQ(r["reason"], "FINISH_REASON_ERROR");
  EXPECT_THAT(r["message"], ::testing::HasSubstr("rank 0 of 2"));
  EXPECT_LT(waited, 30);
}

// Issue 17, hole 7: a rank SIGKILLed mid-epoch fails the run; started again with resume, both
// ranks agree on the step to go on from and finish identically.
TEST_F(DistributedTest, ARankKilledMidEpochResumesWithTheOtherFromTheSameStep) {
  const std::string checkpoints = Out("checkpoints");
  const std::vector<std::string> common = {"--world=2", "--batch=32", "--epochs=12",
                                           "--checkpoint=" + checkpoints,
                                           "--collective_timeout_ms=5000"};
  auto with = [&](const std::string& port, const char* rank, bool resume) {
    std::vector<std::string> a = common;
    a.push_back("--port=" + port);
    a.push_back(std::string("--rank=") + rank);
    if (resume) a.push_back("--resume=1");
    return a;
  };
  const std::string first_port = std::to_string(FreePort());
  Rank r0(with(first_port, "0", false), Out("k0"));
  Rank r1(with(first_port, "1", false), Out("k1"));
  // Wait for both ranks' first epoch checkpoint, then kill rank 1 in the middle of the next.
  const auto has_checkpoint = [&](int rank) {  // a published epoch-N-step-M folder
    const std::filesystem::path dir =
        std::filesystem::path(checkpoints) / "dist-test" / ("rank-" + std::to_string(rank));
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with("epoch-") && !name.ends_with(".tmp") &&
          std::filesystem::exists(entry.path() / "state.pb", ec)) {
        return true;
      }
    }
    return false;
  };
  for (int i = 0; i < 600 && !(has_checkpoint(0) && has_checkpoint(1)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(has_checkpoint(0) && has_checkpoint(1)) << "no first-epoch checkpoints";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  r1.Kill();
  ASSERT_NE(r0.Wait(std::chrono::seconds(60)), -1) << "rank 0 hung after rank 1 died";
  r1.Wait(std::chrono::seconds(5));
  ASSERT_EQ(r0.Read()["state"], "RUN_STATE_FAILED");

  const std::string second_port = std::to_string(FreePort());
  Rank again0(with(second_port, "0", true), Out("a0"));
  Rank again1(with(second_port, "1", true), Out("a1"));
  ASSERT_EQ(again0.Wait(std::chrono::seconds(300)), 0) << again0.Read()["message"];
  ASSERT_EQ(again1.Wait(std::chrono::seconds(60)), 0) << again1.Read()["message"];
  Result a = again0.Read();
  Result b = again1.Read();
  EXPECT_EQ(a["state"], "RUN_STATE_SUCCEEDED");
  EXPECT_EQ(a["step"], b["step"]);
  EXPECT_EQ(a["step"], std::to_string(12 * (3000 / 64)));  // the whole budget, once
  EXPECT_EQ(a["accuracy"], b["accuracy"]);
  EXPECT_EQ(a["changes_hash"], b["changes_hash"]);
}

TEST_F(DistributedTest, AWorldSizeThatDoesNotMatchTheRanksTimesOutClearly) {
  const std::string port = std::to_string(FreePort());
  Rank alone({"--rank=0", "--world=2", "--port=" + port, "--rendezvous_timeout_ms=3000"},
             Out("alone"));
  ASSERT_NE(alone.Wait(std::chrono::seconds(60)), -1);
  Result r = alone.Read();
  EXPECT_THAT(r["message"], ::testing::HasSubstr("1 of 2 ranks showed up"));
}

}  // namespace
}  // namespace greenloop::trainer
