#include "tools/greenloop/experiment/run_figures.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>

namespace greenloop::experiment {
namespace {

std::string DomainName(v1::EnergyDomain d) {
  std::string name = v1::EnergyDomain_Name(d);
  if (name.rfind("ENERGY_DOMAIN_", 0) == 0) name = name.substr(14);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

std::string StateName(v1::RunState state, bool stopped_by_user) {
  switch (state) {
    case v1::RUN_STATE_SUCCEEDED:
      return "succeeded";
    case v1::RUN_STATE_STOPPED:
      return stopped_by_user ? "interrupted" : "stopped";
    case v1::RUN_STATE_FAILED:
      return "failed";
    default:
      return stopped_by_user ? "interrupted" : "failed";
  }
}

void FillCounters(const v1::Progress& p, cli::ModeResult& m) {
  m.set_final_accuracy(p.has_eval_accuracy() ? p.eval_accuracy() : 0.0);
  m.set_duration_seconds(p.elapsed_seconds());
  m.set_steps(p.step());
  m.set_planned_steps(p.planned_steps());
  m.set_samples_processed(p.samples_processed());
  m.set_energy_joules(p.energy_joules());
  m.set_items_enqueued(p.items_enqueued());
  m.set_verdicts_received(p.verdicts_received());
  m.set_verdicts_applied(p.verdicts_applied());
  m.set_samples_dropped(p.samples_dropped());
  m.set_samples_relabelled(p.samples_relabelled());
  m.set_samples_reweighted(p.samples_reweighted());
  m.set_verdicts_correct(p.verdicts_correct());
  m.set_macs(p.macs());
  m.set_eval_macs(p.eval_macs());
  m.set_samples_pruned(p.samples_pruned());
  m.set_samples_reviewed(p.samples_reviewed());
  m.set_feedback_errors(p.feedback_errors());
  m.set_energy_incomplete(p.energy_incomplete());
}

// Projection errors only mean something for a run that used its whole planned budget.
void FillProjectionErrors(const v1::Run& run, cli::ModeResult& m) {
  const v1::Progress& p = run.progress();
  if (run.has_projection_relative_error()) {
    m.set_trainer_projection_error(run.projection_relative_error());
  }
  const bool full_budget = m.state() == "succeeded" && p.planned_steps() > 0 &&
                           p.step() >= p.planned_steps() && p.energy_joules() > 0;
  if (full_budget && m.has_projection_at_10()) {
    m.set_projection_error_10(m.projection_at_10() / p.energy_joules() - 1.0);
  }
  if (full_budget && m.has_projection_at_25()) {
    m.set_projection_error_25(m.projection_at_25() / p.energy_joules() - 1.0);
  }
}

}  // namespace

std::string FinishReasonName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_TARGET_REACHED:
      return "target reached";
    case v1::FINISH_REASON_EPOCH_BUDGET:
      return "epoch budget";
    case v1::FINISH_REASON_STEP_BUDGET:
      return "step budget";
    case v1::FINISH_REASON_ENERGY_BUDGET:
      return "energy budget";
    case v1::FINISH_REASON_STOPPED:
      return "stopped";
    case v1::FINISH_REASON_ERROR:
      return "error";
    default:
      return "";
  }
}

void RecordProgress(const v1::StreamProgressResponse& event, cli::ModeResult& m) {
  const v1::Progress& p = event.progress();
  if (event.kind() == v1::PROGRESS_EVENT_KIND_EVALUATION && p.has_eval_accuracy() &&
      (m.curve().empty() || m.curve().rbegin()->step() != p.step())) {
    cli::CurvePoint* cp = m.add_curve();
    cp->set_step(p.step());
    cp->set_elapsed_seconds(p.elapsed_seconds());
    cp->set_accuracy(p.eval_accuracy());
    cp->set_energy_joules(p.energy_joules());
    cp->set_macs(p.macs());
  }
  if (!p.has_projected_total_energy_joules() || p.planned_steps() == 0) return;
  const double fraction = static_cast<double>(p.step()) / static_cast<double>(p.planned_steps());
  if (m.projections().empty() || m.projections().rbegin()->step() != p.step()) {
    cli::ProjectionPoint* pp = m.add_projections();
    pp->set_fraction(fraction);
    pp->set_step(p.step());
    pp->set_projected_joules(p.projected_total_energy_joules());
  }
  if (!m.has_projection_at_10() && fraction >= 0.10) {
    m.set_projection_at_10(p.projected_total_energy_joules());
  }
  if (!m.has_projection_at_25() && fraction >= 0.25) {
    m.set_projection_at_25(p.projected_total_energy_joules());
  }
}

void FillFromRun(const v1::Run& run, bool stopped_by_user, cli::ModeResult& m) {
  const v1::Progress& p = run.progress();
  m.set_state(StateName(run.state(), stopped_by_user));
  if (!run.error_message().empty()) m.set_error(run.error_message());
  m.set_finish_reason(FinishReasonName(run.finish_reason()));
  m.set_best_accuracy(run.has_best_eval_accuracy() ? run.best_eval_accuracy() : 0.0);
  FillCounters(p, m);
  if (run.has_test_accuracy()) m.set_test_accuracy(run.test_accuracy());
  if (run.has_best_test_accuracy()) m.set_best_test_accuracy(run.best_test_accuracy());
  if (run.has_decoy_saliency()) m.set_decoy_saliency(run.decoy_saliency());
  m.set_explanation_png(run.explanation().png());
  m.clear_explanation_words();
  for (const v1::WordList& words : run.explanation().class_words()) {
    *m.add_explanation_words()->mutable_words() = words.words();
  }
  m.set_feature_rules(p.feature_rules());
  if (run.has_best_smoothed_eval_accuracy()) {
    m.set_best_smoothed_accuracy(run.best_smoothed_eval_accuracy());
  }
  if (m.crowd().raters() > 0 && p.elapsed_seconds() > 0) {
    m.set_real_raters_equivalent(m.crowd().modelled_seconds() / p.elapsed_seconds());
  }
  m.set_parameter_count(run.model().parameter_count());
  m.set_macs_per_sample(run.model().macs_per_sample());
  m.set_node(run.node());
  m.set_architecture(run.model().architecture());
  m.clear_inference();
  for (const v1::InferenceFigures& f : run.inference()) {
    cli::InferencePoint& i = *m.add_inference();
    i.set_batch_size(f.batch_size());
    i.set_samples(f.samples());
    i.set_seconds(f.seconds());
    i.set_energy_joules(f.energy_joules());
    i.set_joules_per_sample(f.joules_per_sample());
    i.set_latency_ms(f.latency_ms());
    i.set_samples_per_second(f.samples_per_second());
    i.set_error(f.error());
  }
  FillProjectionErrors(run, m);
}

void FillEnergy(const v1::GetRunEnergyResponse& response, cli::ModeResult& m) {
  double active = 0, idle = 0, carbon = 0;
  bool estimated = false;
  std::map<std::string, std::pair<double, double>> domains;
  std::map<std::string, std::string> sources;
  for (const v1::NodeRunEnergy& n : response.nodes()) {
    active += n.active_energy_joules();
    idle += n.idle_energy_joules();
    carbon += n.carbon_grams();
    if (!n.estimated_domains().empty()) estimated = true;
    m.set_carbon_factors_source(n.carbon_factors_source());
    for (const v1::DomainEnergy& d : n.domains()) {
      auto& acc = domains[DomainName(d.domain())];
      acc.first += d.active_energy_joules();
      acc.second += d.idle_energy_joules();
      sources[DomainName(d.domain())] =
          d.source() == v1::ENERGY_SOURCE_ESTIMATED ? "estimated" : "measured";
    }
  }
  m.set_collector_active_joules(active);
  m.set_idle_energy_joules(idle);
  m.set_carbon_grams(carbon);
  m.set_energy_source(estimated ? "estimated" : "measured");
  m.clear_domains();
  for (const auto& [name, j] : domains) {
    cli::DomainJoules* dj = m.add_domains();
    dj->set_domain(name);
    dj->set_source(sources[name]);
    dj->set_active_energy_joules(j.first);
    dj->set_idle_energy_joules(j.second);
  }
}

cli::InfraEnergy InfraFrom(const std::string& name, int pid, const v1::NodeRunEnergy& energy) {
  cli::InfraEnergy out;
  out.set_name(name);
  out.set_pid(pid);
  out.set_active_energy_joules(energy.active_energy_joules());
  out.set_duration_seconds(energy.duration_seconds());
  out.set_carbon_grams(energy.carbon_grams());
  out.set_source(energy.estimated_domains().empty() ? "measured" : "estimated");
  return out;
}

}  // namespace greenloop::experiment
