#include "tools/greenloop/experiment/run_figures.h"

#include <gtest/gtest.h>

namespace greenloop::experiment {
namespace {

v1::StreamProgressResponse Event(v1::ProgressEventKind kind, std::uint64_t step, double accuracy,
                                 double projected) {
  v1::StreamProgressResponse e;
  e.set_kind(kind);
  v1::Progress* p = e.mutable_progress();
  p->set_step(step);
  p->set_planned_steps(100);
  p->set_eval_accuracy(accuracy);
  p->set_energy_joules(static_cast<double>(step));
  p->set_macs(1e6 * static_cast<double>(step));
  if (projected > 0) p->set_projected_total_energy_joules(projected);
  return e;
}

TEST(RecordProgress, OneCurvePointPerEvaluatedStepAndTheEarlyProjections) {
  cli::ModeResult m;
  RecordProgress(Event(v1::PROGRESS_EVENT_KIND_STEP, 5, 0.1, 0), m);
  EXPECT_TRUE(m.curve().empty());
  RecordProgress(Event(v1::PROGRESS_EVENT_KIND_EVALUATION, 10, 0.5, 90), m);
  RecordProgress(Event(v1::PROGRESS_EVENT_KIND_EVALUATION, 10, 0.5, 90), m);  // repeated event
  RecordProgress(Event(v1::PROGRESS_EVENT_KIND_EVALUATION, 30, 0.7, 110), m);
  ASSERT_EQ(m.curve_size(), 2);
  EXPECT_EQ(m.curve(1).step(), 30u);
  EXPECT_DOUBLE_EQ(m.curve(1).accuracy(), 0.7);
  EXPECT_DOUBLE_EQ(m.curve(1).macs(), 3e7);
  EXPECT_EQ(m.projections_size(), 2);
  EXPECT_DOUBLE_EQ(m.projection_at_10(), 90);   // first at ≥ 10 % of the plan
  EXPECT_DOUBLE_EQ(m.projection_at_25(), 110);  // first at ≥ 25 %
}

TEST(FillFromRun, CopiesTheFinalRunAndJudgesProjectionsOnlyOnAFullBudget) {
  v1::Run run;
  run.set_state(v1::RUN_STATE_SUCCEEDED);
  run.set_finish_reason(v1::FINISH_REASON_STEP_BUDGET);
  run.set_best_eval_accuracy(0.8);
  run.set_test_accuracy(0.79);
  run.mutable_model()->set_parameter_count(52138);
  v1::Progress* p = run.mutable_progress();
  p->set_step(100);
  p->set_planned_steps(100);
  p->set_energy_joules(200);
  p->set_elapsed_seconds(50);
  p->set_verdicts_applied(7);
  p->set_feedback_errors(1);
  cli::ModeResult m;
  m.mutable_crowd()->set_raters(3);
  m.mutable_crowd()->set_modelled_seconds(500);
  m.set_projection_at_10(220);
  FillFromRun(run, false, m);
  EXPECT_EQ(m.state(), "succeeded");
  EXPECT_EQ(m.finish_reason(), "step budget");
  EXPECT_DOUBLE_EQ(m.best_accuracy(), 0.8);
  EXPECT_DOUBLE_EQ(m.test_accuracy(), 0.79);
  EXPECT_EQ(m.verdicts_applied(), 7u);
  EXPECT_EQ(m.feedback_errors(), 1u);
  EXPECT_EQ(m.parameter_count(), 52138u);
  EXPECT_DOUBLE_EQ(m.real_raters_equivalent(), 10.0);  // 500 rater-s over 50 s
  EXPECT_NEAR(m.projection_error_10(), 0.1, 1e-12);
  EXPECT_FALSE(m.has_projection_error_25());

  run.set_state(v1::RUN_STATE_STOPPED);
  p->set_step(40);
  cli::ModeResult stopped;
  stopped.set_projection_at_10(220);
  FillFromRun(run, true, stopped);
  EXPECT_EQ(stopped.state(), "interrupted");
  EXPECT_FALSE(stopped.has_projection_error_10());  // not a full budget
  FillFromRun(run, false, stopped);
  EXPECT_EQ(stopped.state(), "stopped");
}

TEST(FillEnergy, SumsNodesAndDomainsAndSaysWhatWasEstimated) {
  v1::GetRunEnergyResponse r;
  for (int n = 0; n < 2; ++n) {
    v1::NodeRunEnergy* node = r.add_nodes();
    node->set_active_energy_joules(10);
    node->set_idle_energy_joules(4);
    node->set_carbon_grams(0.5);
    v1::DomainEnergy* d = node->add_domains();
    d->set_domain(v1::ENERGY_DOMAIN_PACKAGE);
    d->set_source(v1::ENERGY_SOURCE_ESTIMATED);
    d->set_active_energy_joules(10);
    if (n == 1) node->add_estimated_domains(v1::ENERGY_DOMAIN_PACKAGE);
  }
  cli::ModeResult m;
  FillEnergy(r, m);
  EXPECT_DOUBLE_EQ(m.collector_active_joules(), 20);
  EXPECT_DOUBLE_EQ(m.idle_energy_joules(), 8);
  EXPECT_DOUBLE_EQ(m.carbon_grams(), 1.0);
  EXPECT_EQ(m.energy_source(), "estimated");
  ASSERT_EQ(m.domains_size(), 1);
  EXPECT_EQ(m.domains(0).domain(), "package");
  EXPECT_EQ(m.domains(0).source(), "estimated");
  EXPECT_DOUBLE_EQ(m.domains(0).active_energy_joules(), 20);
}

TEST(InfraFrom, KeepsTheProcesssOwnFigures) {
  v1::NodeRunEnergy e;
  e.set_active_energy_joules(12.5);
  e.set_duration_seconds(30);
  e.set_carbon_grams(0.2);
  const cli::InfraEnergy i = InfraFrom("postgres", 77, e);
  EXPECT_EQ(i.name(), "postgres");
  EXPECT_EQ(i.pid(), 77);
  EXPECT_DOUBLE_EQ(i.active_energy_joules(), 12.5);
  EXPECT_DOUBLE_EQ(i.duration_seconds(), 30);
  EXPECT_EQ(i.source(), "measured");
  e.add_estimated_domains(v1::ENERGY_DOMAIN_PACKAGE);
  EXPECT_EQ(InfraFrom("postgres", 77, e).source(), "estimated");
}

}  // namespace
}  // namespace greenloop::experiment
