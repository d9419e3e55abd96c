#include "services/trainer/core/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "services/trainer/core/trainer.h"

namespace greenloop::trainer {
namespace {

namespace fs = std::filesystem;

struct Net : torch::nn::Module {
  Net() { fc = register_module("fc", torch::nn::Linear(4, 3)); }
  torch::nn::Linear fc{nullptr};
};

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("greenloop-ckpt-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    dir_ = RankCheckpointDir(root_.string(), "run-1", 0);
  }
  void TearDown() override { fs::remove_all(root_); }

  internal::CheckpointState State(std::uint64_t step) const {
    internal::CheckpointState st;
    st.set_run_id("run-1");
    st.set_world_size(1);
    st.set_step(step);
    return st;
  }

  fs::path root_;
  std::string dir_;
};

TEST_F(CheckpointFiles, RoundTripsTheModelOptimizerAndStateAndKeepsTheNewestTwo) {
  torch::manual_seed(1);
  Net a;
  torch::optim::Adam opt_a(a.parameters(), torch::optim::AdamOptions(0.01));
  EXPECT_FALSE(HasCheckpoint(root_.string(), "run-1", 0));
  ASSERT_TRUE(SaveCheckpoint(dir_, "epoch-1-step-2", a, opt_a, State(2)).ok());
  ASSERT_TRUE(SaveCheckpoint(dir_, "epoch-1-step-5", a, opt_a, State(5)).ok());
  absl::StatusOr<std::string> second = SaveCheckpoint(dir_, "epoch-1-step-9", a, opt_a, State(9));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(HasCheckpoint(root_.string(), "run-1", 0));
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "epoch-1-step-2"));
  EXPECT_EQ(CheckpointSteps(dir_), (std::vector<std::uint64_t>{5, 9}));  // the newest two
  EXPECT_EQ(SaveCheckpoint(dir_, "../escape", a, opt_a, State(10)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*second, (fs::path(dir_) / "epoch-1-step-9").string());

  torch::manual_seed(2);
  Net b;
  torch::optim::Adam opt_b(b.parameters(), torch::optim::AdamOptions(0.01));
  ASSERT_FALSE(torch::equal(a.fc->weight, b.fc->weight));
  absl::StatusOr<LoadedCheckpoint> loaded = LoadLatestCheckpoint(dir_, "run-1", 1, b, opt_b);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->state.step(), 9u);
  EXPECT_EQ(loaded->path, *second);
  EXPECT_TRUE(torch::equal(a.fc->weight, b.fc->weight));
  EXPECT_TRUE(torch::equal(a.fc->bias, b.fc->bias));
}

TEST_F(CheckpointFiles, RefusesWhatIsMissingBrokenAnotherRunsOrAnotherWorldsSize) {
  Net net;
  torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(0.01));
  EXPECT_EQ(LoadLatestCheckpoint(dir_, "run-1", 1, net, opt).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(SaveCheckpoint(dir_, "epoch-1-step-1", net, opt, State(1)).ok());
  EXPECT_EQ(LoadLatestCheckpoint(dir_, "run-2", 1, net, opt).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(LoadLatestCheckpoint(dir_, "run-1", 2, net, opt).status().code(),
            absl::StatusCode::kFailedPrecondition);
  fs::remove(fs::path(dir_) / "epoch-1-step-1" / "model.pt");
  EXPECT_EQ(LoadLatestCheckpoint(dir_, "run-1", 1, net, opt).status().code(),
            absl::StatusCode::kDataLoss);
  std::ofstream(fs::path(dir_) / "LATEST") << "gone";
  EXPECT_EQ(LoadLatestCheckpoint(dir_, "run-1", 1, net, opt).status().code(),
            absl::StatusCode::kDataLoss);
}

// A checkpoint of one architecture is not loaded into another (the run's config changed).
TEST_F(CheckpointFiles, RefusesACheckpointOfAnotherArchitectureNamingBoth) {
  Net net;
  torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(0.01));
  internal::CheckpointState st = State(3);
  st.set_architecture("MODEL_KIND_CNN width=8 depth=2");
  ASSERT_TRUE(SaveCheckpoint(dir_, "epoch-1-step-3", net, opt, st).ok());
  absl::StatusOr<LoadedCheckpoint> other =
      LoadLatestCheckpoint(dir_, "run-1", 1, net, opt, "MODEL_KIND_RESNET width=16 depth=1");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("is of a MODEL_KIND_CNN width=8 depth=2; this run's "
                                          "config asks for a MODEL_KIND_RESNET width=16 depth=1"),
            std::string_view::npos)
      << other.status();
  EXPECT_TRUE(
      LoadLatestCheckpoint(dir_, "run-1", 1, net, opt, "MODEL_KIND_CNN width=8 depth=2").ok());
}

// Issue 17, hole 7: ranks that crashed at different moments resume from the newest step they all
// hold, and a rank without checkpoints never starts from scratch while the others resume.
TEST(ResumeStep, TheNewestStepEveryRankHoldsOrAClearRefusal) {
  using Steps = std::vector<std::vector<std::uint64_t>>;
  EXPECT_EQ(*ResumeStep(Steps{{156, 312}, {156, 312}}, "r"), std::optional<std::uint64_t>(312));
  // Rank 1 died before writing step 312: both go back to 156.
  EXPECT_EQ(*ResumeStep(Steps{{156, 312}, {0, 156}}, "r"), std::optional<std::uint64_t>(156));
  EXPECT_EQ(*ResumeStep(Steps{{}, {}}, "r"), std::optional<std::uint64_t>());  // a fresh start
  absl::Status lonely = ResumeStep(Steps{{156}, {}}, "run-9").status();
  EXPECT_EQ(lonely.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(lonely.message().find("rank 1 has no checkpoint of run run-9"), std::string_view::npos);
  EXPECT_EQ(ResumeStep(Steps{{100}, {200}}, "r").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace greenloop::trainer
