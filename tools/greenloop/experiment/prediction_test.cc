#include "tools/greenloop/experiment/prediction.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace greenloop::experiment {
namespace {

TEST(ProjectionTest, LinearCurveIsProjectedExactly) {
  std::vector<EnergyPoint> points;
  for (std::uint64_t s = 10; s <= 250; s += 10) points.push_back({s, 2.5 * s});
  EXPECT_NEAR(*ProjectTotalEnergy(points, 0, 1000), 2500.0, 1e-9);
}

TEST(ProjectionTest, WarmupCostIsNotExtrapolated) {
  // 300 J of start-up (data loading, first steps) then 1.5 J per step.
  std::vector<EnergyPoint> points;
  for (std::uint64_t s = 10; s <= 250; s += 10) {
    points.push_back({s, s < 50 ? 300.0 * s / 50.0 : 300.0 + 1.5 * (s - 50)});
  }
  const double actual = 300.0 + 1.5 * (1000 - 50);
  EXPECT_NEAR(*ProjectTotalEnergy(points, 50, 1000), actual, 1e-6);
  // Without the warm-up cut the start-up slope biases it upwards.
  EXPECT_GT(*ProjectTotalEnergy(points, 0, 1000), actual * 1.02);
}

TEST(ProjectionTest, NoisyCurveAtQuarterRunIsWithinFivePercent) {
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 0.03);
  std::vector<EnergyPoint> points;
  double e = 0;
  for (std::uint64_t s = 1; s <= 250; ++s) {
    e += 2.0 * (1 + noise(rng));
    if (s % 10 == 0) points.push_back({s, e});
  }
  const double projected = *ProjectTotalEnergy(points, 50, 1000);
  EXPECT_LT(std::abs(RelativeError(projected, 2000.0)), 0.05);
}

TEST(ProjectionTest, NothingBeforeTwoPointsPastWarmup) {
  std::vector<EnergyPoint> points = {{10, 5}, {60, 30}};
  EXPECT_FALSE(ProjectTotalEnergy(points, 50, 1000).has_value());
  EXPECT_FALSE(ProjectTotalEnergy(points, 0, 0).has_value());
}

std::vector<RunObservation> PowerLawRuns(double noise_sd, int n) {
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, noise_sd);
  std::vector<RunObservation> runs;
  const double params[] = {5e4, 2e5, 1.3e6};
  for (int i = 0; i < n; ++i) {
    RunObservation r;
    r.features.parameters = params[i % 3];
    r.features.macs_per_sample = r.features.parameters * 6;
    r.features.samples_processed = 1000.0 * (1 << (i % 4));
    r.features.batch_size = 32.0 * (1 << (i % 3));
    r.features.node_kind = "cpu";
    // E = 2e-8 × MACs × samples × batch^-0.2
    r.energy_joules = 2e-8 * r.features.macs_per_sample * r.features.samples_processed *
                      std::pow(r.features.batch_size, -0.2) * std::exp(noise(rng));
    runs.push_back(r);
  }
  return runs;
}

TEST(RegressionTest, RecoversAPowerLaw) {
  const std::vector<RunObservation> runs = PowerLawRuns(0.0, 12);
  absl::StatusOr<EnergyModel> m = FitEnergyModel(runs);
  ASSERT_TRUE(m.ok()) << m.status();
  RunFeatures f{.parameters = 2e5,
                .macs_per_sample = 1.2e6,
                .samples_processed = 3000,
                .batch_size = 64,
                .node_kind = "cpu"};
  const double truth = 2e-8 * 1.2e6 * 3000 * std::pow(64.0, -0.2);
  const Estimate e = m->Predict(f);
  EXPECT_NEAR(e.energy_joules / truth, 1.0, 0.01);
  EXPECT_LE(e.low_joules, e.energy_joules);
  EXPECT_GE(e.high_joules, e.energy_joules);
  EXPECT_LT(*LeaveOneOutError(runs), 0.01);
}

TEST(RegressionTest, LeaveOneOutReflectsNoise) {
  const std::vector<RunObservation> runs = PowerLawRuns(0.10, 16);
  const double loo = *LeaveOneOutError(runs);
  EXPECT_GT(loo, 0.02);
  EXPECT_LT(loo, 0.25);
}

TEST(RegressionTest, TooFewRunsIsAClearError) {
  const std::vector<RunObservation> runs = PowerLawRuns(0.0, 2);
  EXPECT_EQ(FitEnergyModel(runs).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(LeaveOneOutError(PowerLawRuns(0.0, 3)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Four families of different MACs per parameter on one power law: each is predicted from the
// others alone. A family that costs twice what its MACs say is what leaving it out exposes (and
// leave-one-out, which trains on its other runs, hides).
TEST(RegressionTest, LeaveOneArchitectureOutPredictsAnUnseenFamilyFromItsSize) {
  std::vector<RunObservation> runs;
  const char* families[] = {"MODEL_KIND_CNN", "MODEL_KIND_MLP", "MODEL_KIND_RESNET",
                            "MODEL_KIND_LENET5"};
  const double macs_per_param[] = {6, 1, 120, 7};
  for (int f = 0; f < 4; ++f) {
    for (int i = 0; i < 6; ++i) {
      RunObservation r;
      r.features.architecture = fmt::format("{} width={}", families[f], 8 << (i % 3));
      r.features.parameters = 1e4 * std::pow(3.0, i % 3 + f);
      r.features.macs_per_sample = r.features.parameters * macs_per_param[f];
      r.features.samples_processed = 4000.0 * (1 + i / 3);
      r.features.batch_size = 32.0 * (1 << (i % 2));
      r.features.node_kind = "cpu";
      r.energy_joules = 3e-9 * r.features.macs_per_sample * r.features.samples_processed;
      runs.push_back(r);
    }
  }
  absl::StatusOr<double> clean = LeaveOneArchitectureOutError(runs);
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_LT(*clean, 0.01);
  for (RunObservation& r : runs) {
    if (ArchitectureFamily(r.features.architecture) == "MODEL_KIND_RESNET") r.energy_joules *= 2;
  }
  const double loao = *LeaveOneArchitectureOutError(runs);
  EXPECT_GT(loao, 0.1);
  EXPECT_GT(loao, *LeaveOneOutError(runs));
  std::vector<RunObservation> one(runs.begin(), runs.begin() + 6);
  EXPECT_EQ(LeaveOneArchitectureOutError(one).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace greenloop::experiment
