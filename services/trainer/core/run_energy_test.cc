#include "services/trainer/core/run_energy.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace greenloop::trainer {
namespace {

// Answers readings from a script; records registrations.
class ScriptedMeter final : public EnergyMeter {
 public:
  absl::Status Register(const std::string& run_id, int pid, std::uint32_t) override {
    if (!register_error.ok()) return register_error;
    registered.push_back(run_id + "/" + std::to_string(pid));
    return absl::OkStatus();
  }
  absl::Status Unregister(const std::string& run_id, int pid) override {
    unregistered.push_back(run_id + "/" + std::to_string(pid));
    return absl::OkStatus();
  }
  absl::StatusOr<double> RunEnergyJoules(const std::string&) override {
    if (readings.empty()) return absl::UnavailableError("collector down");
    const double r = readings.front();
    readings.pop_front();
    return r;
  }
  absl::Status register_error;
  std::deque<double> readings;
  std::vector<std::string> registered;
  std::vector<std::string> unregistered;
};

// Two ranks: this one and a twin on `other_node` that contributes the same share.
class TwinCollective final : public Collective {
 public:
  explicit TwinCollective(std::string other_node) : other_node_(std::move(other_node)) {}
  std::uint32_t rank() const override { return 0; }
  std::uint32_t world_size() const override { return 2; }
  absl::Status AllReduceSum(std::span<float> values) override {
    for (float& v : values) v *= 2;
    return absl::OkStatus();
  }
  absl::Status Broadcast(std::string&) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    return std::vector<std::string>{mine, other_node_};
  }

 private:
  std::string other_node_;
};

TEST(RunEnergy, RefusesToTrainUnmeasuredAndNamesTheCollector) {
  ScriptedMeter meter;
  meter.register_error = absl::UnavailableError("connection refused");
  LocalCollective local;
  RunEnergy energy(meter, local, "run-1", 42, 0, 0);
  const absl::Status s = energy.Register("127.0.0.1:7101");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("127.0.0.1:7101"), std::string::npos);
  EXPECT_NE(s.message().find("unmeasured"), std::string::npos);
  v1::Progress p;
  energy.Finish(p);  // never registered: nothing to unregister
  EXPECT_TRUE(meter.unregistered.empty());
}

TEST(RunEnergy, OneRankReadsItsNodeKeepsTheLastFigureAndStopsAtTheBudget) {
  ScriptedMeter meter;
  meter.readings = {10.0, 60.0, 70.0};
  LocalCollective local;
  RunEnergy energy(meter, local, "run-1", 42, 0, 50.0);
  ASSERT_TRUE(energy.Register("e").ok());
  EXPECT_EQ(meter.registered, std::vector<std::string>{"run-1/42"});
  v1::Progress p;
  ASSERT_TRUE(energy.Refresh(p).ok());
  EXPECT_DOUBLE_EQ(p.energy_joules(), 10.0);
  EXPECT_FALSE(energy.exceeded());
  ASSERT_TRUE(energy.Refresh(p).ok());
  EXPECT_DOUBLE_EQ(p.node_energy_joules(), 60.0);
  EXPECT_TRUE(energy.exceeded());
  energy.Finish(p);
  EXPECT_DOUBLE_EQ(p.energy_joules(), 70.0);  // the tail of the run
  EXPECT_EQ(meter.unregistered, std::vector<std::string>{"run-1/42"});
  EXPECT_FALSE(p.energy_incomplete());
  ASSERT_TRUE(energy.Refresh(p).ok());  // the collector gone: the last figure stays, marked
  EXPECT_DOUBLE_EQ(p.energy_joules(), 70.0);
  EXPECT_TRUE(p.energy_incomplete());
}

// Issue 17, hole 5: a collector outage does not keep a budgeted run going on a stale figure.
TEST(RunEnergy, ABudgetedRunWhoseEnergyGoesUnreadTooLongIsStale) {
  const absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  ScriptedMeter meter;
  meter.readings = {5.0};
  LocalCollective local;
  RunEnergy budgeted(meter, local, "run-1", 42, 0, 100.0, absl::Seconds(30));
  v1::Progress p;
  ASSERT_TRUE(budgeted.Refresh(p, t0).ok());
  EXPECT_FALSE(p.energy_incomplete());
  ASSERT_TRUE(budgeted.Refresh(p, t0 + absl::Seconds(10)).ok());  // down from here on
  EXPECT_TRUE(p.energy_incomplete());
  EXPECT_DOUBLE_EQ(p.energy_joules(), 5.0);
  ASSERT_TRUE(budgeted.Refresh(p, t0 + absl::Seconds(39)).ok());
  EXPECT_FALSE(budgeted.stale()) << "29 s unread is within the limit";
  ASSERT_TRUE(budgeted.Refresh(p, t0 + absl::Seconds(40)).ok());
  EXPECT_TRUE(budgeted.stale());
  EXPECT_FALSE(budgeted.exceeded()) << "stale is not over budget";
  // A good reading in between starts the count again; a run without a budget is never stale.
  ScriptedMeter flaky;
  RunEnergy again(flaky, local, "run-2", 42, 0, 100.0, absl::Seconds(30));
  ASSERT_TRUE(again.Refresh(p, t0).ok());  // unread from t0
  flaky.readings = {2.0};
  ASSERT_TRUE(again.Refresh(p, t0 + absl::Seconds(25)).ok());  // read: the count restarts
  ASSERT_TRUE(again.Refresh(p, t0 + absl::Seconds(50)).ok());  // unread from 50 s
  ASSERT_TRUE(again.Refresh(p, t0 + absl::Seconds(70)).ok());
  EXPECT_FALSE(again.stale()) << "20 s unread since the last good reading";
  ScriptedMeter none;
  RunEnergy unbudgeted(none, local, "run-3", 42, 0, 0, absl::Seconds(30));
  ASSERT_TRUE(unbudgeted.Refresh(p, t0).ok());
  ASSERT_TRUE(unbudgeted.Refresh(p, t0 + absl::Hours(1)).ok());
  EXPECT_FALSE(unbudgeted.stale());
}

TEST(RunEnergy, ANodeSharedByTwoRanksIsCountedOnce) {
  for (const std::string& other : {std::string("node-a"), std::string("node-b")}) {
    ScriptedMeter meter;
    meter.readings = {30.0};
    TwinCollective twins(other);
    RunEnergy energy(meter, twins, "run-1", 42, 0, 0);
    ASSERT_TRUE(energy.CountRanksOnNode("node-a").ok());
    v1::Progress p;
    ASSERT_TRUE(energy.Refresh(p).ok());
    EXPECT_DOUBLE_EQ(p.node_energy_joules(), 30.0);
    // Same node: two halves of one node's 30 J; two nodes: 30 J each.
    EXPECT_DOUBLE_EQ(p.energy_joules(), other == "node-a" ? 30.0 : 60.0) << other;
  }
}

TEST(Projection, ExtrapolatesEnergyAndTimeAfterTheWarmUp) {
  v1::Progress p;
  p.set_step(5);
  p.set_planned_steps(100);
  p.set_energy_joules(10.0);
  ProjectTotalEnergy(p, 10);
  EXPECT_FALSE(p.has_projected_total_energy_joules());
  UpdateEta(p, 2.0, 10);
  EXPECT_DOUBLE_EQ(p.elapsed_seconds(), 2.0);
  EXPECT_EQ(p.eta_seconds(), 0.0);
  p.set_step(20);
  p.set_energy_joules(40.0);
  ProjectTotalEnergy(p, 10);
  EXPECT_DOUBLE_EQ(p.projected_total_energy_joules(), 200.0);
  UpdateEta(p, 10.0, 10);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), 40.0);  // 0.5 s per step, 80 steps left
  p.set_step(120);
  UpdateEta(p, 60.0, 10);
  EXPECT_DOUBLE_EQ(p.eta_seconds(), 0.0);  // past the plan
}

}  // namespace
}  // namespace greenloop::trainer
