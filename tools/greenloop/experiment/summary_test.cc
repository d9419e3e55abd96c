#include "tools/greenloop/experiment/summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace greenloop::experiment {
namespace {

// A run whose accuracy climbs by `gain` per point (0.5, 0.5+gain, ...), 10 J and 100 MACs per
// point, with a final test accuracy.
cli::ModeResult MakeRun(const std::string& mode, std::uint32_t seed, double gain, int points,
                        double joules_per_point = 10) {
  cli::ModeResult m;
  m.set_mode(mode);
  m.set_seed_index(seed);
  m.set_state("succeeded");
  for (int i = 0; i < points; ++i) {
    cli::CurvePoint* p = m.add_curve();
    p->set_step(static_cast<std::uint64_t>(10 * (i + 1)));
    p->set_accuracy(std::min(0.9, 0.5 + gain * i));
    p->set_energy_joules(joules_per_point * (i + 1));
    p->set_macs(100.0 * (i + 1));
  }
  m.set_energy_joules(joules_per_point * points);
  m.set_macs(100.0 * points);
  m.set_eval_macs(10.0 * points);
  m.set_final_accuracy(m.curve(points - 1).accuracy());
  m.set_test_accuracy(0.8);
  m.set_best_test_accuracy(0.85);
  return m;
}

TEST(BootstrapMeanTest, MeanAndAnIntervalThatHoldsIt) {
  const std::vector<double> values = {0.30, 0.32, 0.35, 0.31, 0.33};
  const MeanInterval m = BootstrapMean(values);
  EXPECT_NEAR(m.mean, 0.322, 1e-9);
  EXPECT_LT(m.low, m.mean);
  EXPECT_GT(m.high, m.mean);
  EXPECT_GE(m.low, 0.30);
  EXPECT_LE(m.high, 0.35);
  const MeanInterval one = BootstrapMean(std::vector<double>{0.4});
  EXPECT_EQ(one.low, 0.4);
  EXPECT_EQ(one.high, 0.4);
  // Seeded: the same interval twice.
  EXPECT_EQ(BootstrapMean(values).low, m.low);
}

TEST(SummaryTest, SharesArePairedWithTheSameSeedsBaselinePlateau) {
  cli::ExperimentResult r;
  r.set_target_is_baseline_best(true);
  r.set_eval_smoothing(2);
  // Seed 0: the baseline climbs 0.05 per point to 0.9 (plateau of the 2-point average: 0.9 at
  // point 10); hitl climbs twice as fast.
  *r.add_modes() = MakeRun("baseline", 0, 0.05, 12);
  *r.add_modes() = MakeRun("hitl", 0, 0.10, 8);
  // Seed 1: a baseline with a lower plateau (0.5 + 0.04 × 9 = 0.86 at most in 10 points).
  *r.add_modes() = MakeRun("baseline", 1, 0.04, 10);
  *r.add_modes() = MakeRun("hitl", 1, 0.08, 10, /*joules_per_point=*/20);
  ApplyTargets(r);
  ApplyModelled(r);
  // Seed 0: the 2-point average first reaches 0.9 at point 10 for the baseline (100 J), at
  // point 6 for hitl (60 J).
  EXPECT_DOUBLE_EQ(r.modes(0).target_accuracy(), 0.9);
  EXPECT_DOUBLE_EQ(r.modes(0).energy_to_target_joules(), 100);
  EXPECT_DOUBLE_EQ(r.modes(1).energy_to_target_joules(), 60);
  EXPECT_DOUBLE_EQ(r.modes(1).macs_to_target(), 600);
  // Seed 1 has its own target.
  EXPECT_NEAR(r.modes(2).target_accuracy(), (0.5 + 0.04 * 8 + 0.5 + 0.04 * 9) / 2, 1e-12);
  // Modelled: J/MAC of the seed's baseline (0.1) × MACs to target.
  EXPECT_DOUBLE_EQ(r.modes(1).modelled_energy_to_target_joules(), 60);
  const std::vector<cli::ModeSummary> s = Summarise(r);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].mode(), "baseline");
  EXPECT_DOUBLE_EQ(s[0].share_mean(), 1.0);
  EXPECT_DOUBLE_EQ(s[0].test_accuracy(), 0.85);  // the baseline's test at its plateau
  EXPECT_EQ(s[1].seeds(), 2u);
  EXPECT_EQ(s[1].reached(), 2u);
  EXPECT_DOUBLE_EQ(s[1].test_accuracy(), 0.8);
  // hitl seed 1 reaches its target at point 6: 120 J, more than the baseline's 100 J; its MACs
  // 600 of 1000.
  const double share0 = 60.0 / 100.0;
  const double share1 = r.modes(3).energy_to_target_joules() / r.modes(2).energy_to_target_joules();
  EXPECT_NEAR(s[1].share_mean(), (share0 + share1) / 2, 1e-12);
  EXPECT_NEAR(s[1].modelled_share_mean(),
              (0.6 + r.modes(3).macs_to_target() / r.modes(2).macs_to_target()) / 2, 1e-12);
  EXPECT_NEAR(s[1].eval_share_modelled(), 0.1, 1e-12);
  *r.mutable_summaries() = {s.begin(), s.end()};
  const std::string lines = HeadlineLines(r);
  EXPECT_THAT(lines, ::testing::HasSubstr("headline: baseline share=1.00 [1.00-1.00] "
                                          "modelled=1.00 [1.00-1.00] seeds=2 "));
  EXPECT_THAT(lines, ::testing::ContainsRegex(
                         "headline: hitl share=0\\.[0-9]{2} \\[0\\.[0-9]{2}-[01]\\.[0-9]{2}\\] "
                         "modelled=0\\.[0-9]{2} \\[0\\.[0-9]{2}-0\\.[0-9]{2}\\] seeds=2 "
                         "val=0\\.[0-9]{4} test=0\\.8000 rater_min=0"));
}

TEST(SummaryTest, ARunThatMissesTheTargetSavedNothing) {
  cli::ExperimentResult r;
  r.set_target_is_baseline_best(true);
  r.set_eval_smoothing(1);
  *r.add_modes() = MakeRun("baseline", 0, 0.05, 10);  // plateau 0.9 at point 9: 90 J
  *r.add_modes() = MakeRun("auto", 0, 0.01, 5);       // gives up early: 50 J in all
  *r.add_modes() = MakeRun("hitl", 0, 0.01, 12);      // never gets there either: 120 J
  ApplyTargets(r);
  EXPECT_FALSE(r.modes(1).has_energy_to_target_joules());
  const std::vector<cli::ModeSummary> s = Summarise(r);
  EXPECT_EQ(s[1].reached(), 0u);
  // 50 J of the baseline's 90 J is no saving when the target was never reached.
  EXPECT_DOUBLE_EQ(s[1].share_mean(), 1.0);
  EXPECT_DOUBLE_EQ(s[1].modelled_share_mean(), 1.0);
  EXPECT_NEAR(s[2].share_mean(), 120.0 / 90.0, 1e-12);
}

TEST(SummaryTest, TheInfrastructureIsCountedToTheTargetOnBothSidesAndShownApart) {
  cli::ExperimentResult r;
  r.set_target_is_baseline_best(true);
  r.set_eval_smoothing(1);
  // 1 s per point; the baseline reaches its plateau 0.9 at point 9 (90 J), hitl at point 5 (50 J).
  cli::ModeResult base = MakeRun("baseline", 0, 0.05, 10);
  cli::ModeResult hitl = MakeRun("hitl", 0, 0.10, 6);
  for (cli::ModeResult* m : {&base, &hitl}) {
    for (int i = 0; i < m->curve_size(); ++i) m->mutable_curve(i)->set_elapsed_seconds(i + 1);
  }
  // The baseline's infrastructure idles at 1 W over its 10 s; hitl's works at 6 W
  // (feedback 4 W, PostgreSQL 2 W) over 6 s, and a third process was never counted.
  cli::InfraEnergy* idle = base.add_infra();
  idle->set_name("feedback");
  idle->set_active_energy_joules(10);
  idle->set_duration_seconds(10);
  for (const auto& [name, watts] : {std::pair<std::string, double>{"feedback", 4.0}, {"pg", 2.0}}) {
    cli::InfraEnergy* i = hitl.add_infra();
    i->set_name(name);
    i->set_active_energy_joules(watts * 6);
    i->set_duration_seconds(6);
  }
  hitl.add_infra()->set_error("cannot read pid file");
  *r.add_modes() = base;
  *r.add_modes() = hitl;
  ApplyTargets(r);
  EXPECT_DOUBLE_EQ(r.modes(0).infra_to_target_joules(), 9.0);   // 1 W × 9 s
  EXPECT_DOUBLE_EQ(r.modes(1).infra_to_target_joules(), 30.0);  // 6 W × 5 s
  const std::vector<cli::ModeSummary> s = Summarise(r);
  EXPECT_NEAR(s[1].share_mean(), (50.0 + 30.0) / (90.0 + 9.0), 1e-12);
  EXPECT_NEAR(s[1].modelled_share_mean(), 500.0 / 900.0, 1e-12);  // the trainer's MACs only
  EXPECT_DOUBLE_EQ(s[1].infra_joules_mean(), 30.0);
  EXPECT_NEAR(s[1].infra_part_mean(), 30.0 / 80.0, 1e-12);
  EXPECT_NEAR(s[0].infra_part_mean(), 9.0 / 99.0, 1e-12);
}

}  // namespace
}  // namespace greenloop::experiment
