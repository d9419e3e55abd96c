// Issue 17, hole 4: a run asks, the worker's config decides where it writes and whom the worker
// sends its token to.
#include "services/trainer/core/worker_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace greenloop::trainer {
namespace {

using ::testing::HasSubstr;

const WorkerPolicy kPolicy{.checkpoint_root = "/var/lib/greenloop/checkpoints",
                           .endpoints = {"10.0.0.5:7101", "feedback.greenloop:7102"}};

v1::RunConfig Hitl() {
  v1::RunConfig c;
  c.set_mode(v1::MODE_HITL);
  c.set_energy_endpoint("10.0.0.5:7101");
  c.mutable_feedback()->set_endpoint("feedback.greenloop:7102");
  return c;
}

TEST(WorkerPolicy, TheRunPicksAmongTheWorkersEndpoints) {
  EXPECT_TRUE(ApplyWorkerPolicy(Hitl(), kPolicy).ok());
  v1::RunConfig c = Hitl();
  c.set_energy_endpoint("attacker.example:7101");
  absl::Status s = ApplyWorkerPolicy(c, kPolicy).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("config.energy_endpoint 'attacker.example:7101'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("10.0.0.5:7101, feedback.greenloop:7102"));
  c = Hitl();
  c.mutable_feedback()->set_endpoint("127.0.0.1:9999");
  EXPECT_EQ(ApplyWorkerPolicy(c, kPolicy).status().code(), absl::StatusCode::kPermissionDenied);
  c.set_mode(v1::MODE_BASELINE);  // no humans: the feedback endpoint is not used
  EXPECT_TRUE(ApplyWorkerPolicy(c, kPolicy).ok());
  EXPECT_EQ(ApplyWorkerPolicy(Hitl(), WorkerPolicy{}).status().code(),
            absl::StatusCode::kPermissionDenied);  // a worker that allows none
}

TEST(WorkerPolicy, CheckpointsGoInsideTheWorkersRoot) {
  v1::RunConfig c = Hitl();
  absl::StatusOr<v1::RunConfig> none = ApplyWorkerPolicy(c, kPolicy);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->checkpoint_dir(), "");  // no checkpoints asked for
  c.set_checkpoint_dir("team-a/exp_1.v2");
  absl::StatusOr<v1::RunConfig> named = ApplyWorkerPolicy(c, kPolicy);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->checkpoint_dir(), "/var/lib/greenloop/checkpoints/team-a/exp_1.v2");
  for (const char* bad : {"/etc", "../escape", "a/../../b", "a//b", "./a", "a/", "x y", "a\\b"}) {
    c.set_checkpoint_dir(bad);
    absl::Status s = ApplyWorkerPolicy(c, kPolicy).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("config.checkpoint_dir")) << bad;
  }
  c.set_checkpoint_dir("ok");
  WorkerPolicy no_root = kPolicy;
  no_root.checkpoint_root.clear();
  EXPECT_EQ(ApplyWorkerPolicy(c, no_root).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CheckCheckpointName, ALatestFileNeverPointsOutsideItsDirectory) {
  EXPECT_TRUE(CheckCheckpointName("epoch-3-step-468", "LATEST").ok());
  for (const char* bad : {"../../../etc", "epoch-1-step-2/..", "/tmp/x", "", "epoch-1-step-2\n"}) {
    EXPECT_EQ(CheckCheckpointName(bad, "LATEST").code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace greenloop::trainer
