#include "tools/greenloop/experiment/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <random>

namespace greenloop::experiment {
double InfraJoules(const cli::ModeResult& m) {
  double j = 0;
  for (const cli::InfraEnergy& i : m.infra()) j += i.active_energy_joules();
  return j;
}

const cli::ModeResult* BaselineOf(const cli::ExperimentResult& r, std::uint32_t seed) {
  for (const cli::ModeResult& m : r.modes()) {
    if (m.mode() == "baseline" && m.seed_index() == seed && m.state() == "succeeded") return &m;
  }
  return nullptr;
}

namespace {

// The infrastructure's mean power (the processes counted).
double InfraWatts(const cli::ModeResult& m) {
  double w = 0;
  for (const cli::InfraEnergy& i : m.infra()) {
    if (i.duration_seconds() > 0) w += i.active_energy_joules() / i.duration_seconds();
  }
  return w;
}
// The infrastructure's energy to target, or over the whole run when it never got there.
double InfraCost(const cli::ModeResult& m) {
  return m.has_infra_to_target_joules() ? m.infra_to_target_joules() : InfraJoules(m);
}
// The trainer's energy to target, or its whole energy when it never got there.
double TrainerCost(const cli::ModeResult& m) {
  return m.has_energy_to_target_joules() ? m.energy_to_target_joules() : m.energy_joules();
}
// The run's collector cost: the trainer's and the infrastructure's.
double CollectorCost(const cli::ModeResult& m) { return TrainerCost(m) + InfraCost(m); }
double ModelledCost(const cli::ModeResult& m) {
  return m.has_macs_to_target() ? m.macs_to_target() : m.macs();
}

double Plateau(const cli::ModeResult& baseline) {
  double best = 0;
  for (const cli::CurvePoint& p : baseline.curve()) {
    if (p.has_smoothed_accuracy()) best = std::max(best, p.smoothed_accuracy());
  }
  return best;
}

}  // namespace

void ApplyTargetToSmoothed(cli::ModeResult& m, double target) {
  m.set_target_accuracy(target);
  m.clear_energy_to_target_joules();
  m.clear_steps_to_target();
  m.clear_seconds_to_target();
  m.clear_macs_to_target();
  m.clear_infra_to_target_joules();
  if (target <= 0) return;
  for (const cli::CurvePoint& p : m.curve()) {
    if (p.has_smoothed_accuracy() && p.smoothed_accuracy() + 1e-12 >= target) {
      m.set_energy_to_target_joules(p.energy_joules());
      m.set_steps_to_target(p.step());
      m.set_seconds_to_target(p.elapsed_seconds());
      m.set_macs_to_target(p.macs());
      if (!m.infra().empty()) m.set_infra_to_target_joules(InfraWatts(m) * p.elapsed_seconds());
      return;
    }
  }
}

MeanInterval BootstrapMean(std::span<const double> values, std::uint64_t seed, int resamples) {
  MeanInterval out;
  if (values.empty()) return out;
  const auto n = values.size();
  out.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(n);
  out.low = out.high = out.mean;
  if (n == 1) return out;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  std::vector<double> means(static_cast<std::size_t>(resamples));
  for (double& m : means) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += values[pick(rng)];
    m = sum / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  const auto at = [&](double q) {
    return means[static_cast<std::size_t>(q * static_cast<double>(means.size() - 1))];
  };
  out.low = at(0.025);
  out.high = at(0.975);
  return out;
}

void Smooth(cli::ModeResult& mode, std::uint32_t window) {
  window = std::max<std::uint32_t>(1, window);
  auto& curve = *mode.mutable_curve();
  for (int i = 0; i < curve.size(); ++i) {
    if (static_cast<std::uint32_t>(i + 1) < window) {
      curve[i].clear_smoothed_accuracy();
      continue;
    }
    double sum = 0;
    for (int j = i + 1 - static_cast<int>(window); j <= i; ++j) sum += curve[j].accuracy();
    curve[i].set_smoothed_accuracy(sum / window);
  }
}

void ApplyTargets(cli::ExperimentResult& result) {
  for (cli::ModeResult& m : *result.mutable_modes()) Smooth(m, result.eval_smoothing());
  std::map<std::uint32_t, double> targets;
  for (const cli::ModeResult& m : result.modes()) {
    if (targets.contains(m.seed_index())) continue;
    double target = result.target_is_baseline_best() ? 0.0 : result.target_accuracy();
    if (result.target_is_baseline_best()) {
      if (const cli::ModeResult* base = BaselineOf(result, m.seed_index())) target = Plateau(*base);
    }
    targets[m.seed_index()] = target;
  }
  for (cli::ModeResult& m : *result.mutable_modes())
    ApplyTargetToSmoothed(m, targets[m.seed_index()]);
  if (result.target_is_baseline_best() && !targets.empty()) {
    result.set_target_accuracy(targets.begin()->second);
  }
}

void ApplyModelled(cli::ExperimentResult& result) {
  for (cli::ModeResult& m : *result.mutable_modes()) {
    m.clear_modelled_energy_to_target_joules();
    const cli::ModeResult* base = BaselineOf(result, m.seed_index());
    if (base == nullptr || base->macs() <= 0 || base->energy_joules() <= 0) continue;
    const double joules_per_mac = base->energy_joules() / base->macs();
    m.set_modelled_energy_to_target_joules(joules_per_mac * ModelledCost(m));
  }
}

std::vector<cli::ModeSummary> Summarise(const cli::ExperimentResult& result) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const cli::ModeResult*>> runs;
  for (const cli::ModeResult& m : result.modes()) {
    if (!runs.contains(m.mode())) order.push_back(m.mode());
    runs[m.mode()].push_back(&m);
  }
  std::vector<cli::ModeSummary> out;
  for (const std::string& mode : order) {
    cli::ModeSummary s;
    s.set_mode(mode);
    std::vector<double> share, modelled;
    std::size_t included = 0;
    double val = 0, test = 0, minutes = 0, eval_share = 0, real = 0, infra = 0, infra_part = 0;
    for (const cli::ModeResult* m : runs[mode]) {
      const cli::ModeResult* base = BaselineOf(result, m->seed_index());
      if (m->state() != "succeeded" || base == nullptr) continue;
      // A run too short for the collector to have sampled its trainer has no collector share
      // (the infrastructure alone would make any ratio); its modelled share still counts.
      // A run that never reached the target saved nothing: whatever it spent, its share is at
      // least 1 (its whole energy alone would be a lower bound, flattering a run that gave up
      // early or trained on less).
      const bool reached = m->has_energy_to_target_joules();
      const auto floor_at = [reached](double x) { return reached ? x : std::max(1.0, x); };
      if (TrainerCost(*base) > 0) {
        share.push_back(floor_at(CollectorCost(*m) / CollectorCost(*base)));
      }
      if (ModelledCost(*base) > 0) {
        modelled.push_back(floor_at(ModelledCost(*m) / ModelledCost(*base)));
      }
      ++included;
      if (m->has_energy_to_target_joules()) s.set_reached(s.reached() + 1);
      if (m->feedback_errors() > 0) s.set_degraded(s.degraded() + 1);
      val += m->final_accuracy();
      const bool baseline = m->mode() == "baseline";
      test +=
          baseline && m->has_best_test_accuracy() ? m->best_test_accuracy() : m->test_accuracy();
      minutes += m->crowd().modelled_seconds() / 60.0;
      eval_share += m->macs() > 0 ? m->eval_macs() / m->macs() : 0.0;
      real += m->real_raters_equivalent();
      infra += InfraCost(*m);
      infra_part += CollectorCost(*m) > 0 ? InfraCost(*m) / CollectorCost(*m) : 0.0;
    }
    const auto n = static_cast<double>(included);
    s.set_seeds(static_cast<std::uint32_t>(included));
    if (included > 0) {
      const MeanInterval a = BootstrapMean(share);
      const MeanInterval b = BootstrapMean(modelled);
      s.set_share_mean(a.mean);
      s.set_share_low(a.low);
      s.set_share_high(a.high);
      s.set_modelled_share_mean(b.mean);
      s.set_modelled_share_low(b.low);
      s.set_modelled_share_high(b.high);
      s.set_validation_accuracy(val / n);
      s.set_test_accuracy(test / n);
      s.set_rater_minutes(minutes / n);
      s.set_eval_share_modelled(eval_share / n);
      s.set_real_raters_equivalent(real / n);
      s.set_infra_joules_mean(infra / n);
      s.set_infra_part_mean(infra_part / n);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string HeadlineLines(const cli::ExperimentResult& result) {
  std::string out;
  for (const cli::ModeSummary& s : result.summaries()) {
    out += fmt::format(
        "headline: {} share={:.2f} [{:.2f}-{:.2f}] modelled={:.2f} [{:.2f}-{:.2f}] seeds={} "
        "val={:.4f} test={:.4f} rater_min={:.0f}\n",
        s.mode(), s.share_mean(), s.share_low(), s.share_high(), s.modelled_share_mean(),
        s.modelled_share_low(), s.modelled_share_high(), s.seeds(), s.validation_accuracy(),
        s.test_accuracy(), s.rater_minutes());
  }
  return out;
}

namespace {

std::string Interval(double mean, double low, double high) {
  return fmt::format("{:.2f} [{:.2f}-{:.2f}]", mean, low, high);
}

std::string EnergyKind(const cli::ExperimentResult& r) {
  for (const cli::ModeResult& m : r.modes()) {
    if (m.energy_source() == "estimated") return "estimated";
  }
  return "measured";
}

}  // namespace

std::string SeedsTable(const cli::ExperimentResult& result) {
  std::string out = fmt::format(
      "over {} paired seeds — share of the same seed's baseline energy to its plateau "
      "(mean [95 % bootstrap CI]); collector figure {}, MAC figure modelled\n",
      result.seeds(), EnergyKind(result));
  out += fmt::format("{:<9} {:>18} {:>18} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}\n", "mode",
                     "share", "modelled", "reached", "val", "test", "rater-min", "raters", "eval",
                     "infra");
  for (const cli::ModeSummary& s : result.summaries()) {
    out += fmt::format(
        "{:<9} {:>18} {:>18} {:>8} {:>8.4f} {:>8.4f} {:>9.1f} {:>8.1f} {:>7.1f}% {:>7.1f}%{}\n",
        s.mode(), Interval(s.share_mean(), s.share_low(), s.share_high()),
        Interval(s.modelled_share_mean(), s.modelled_share_low(), s.modelled_share_high()),
        fmt::format("{}/{}", s.reached(), s.seeds()), s.validation_accuracy(), s.test_accuracy(),
        s.rater_minutes(), s.real_raters_equivalent(), 100 * s.eval_share_modelled(),
        100 * s.infra_part_mean(),
        s.degraded() > 0 ? fmt::format("  ({} degraded)", s.degraded()) : "");
  }
  return out;
}

std::string SeedsMarkdown(const cli::ExperimentResult& result) {
  std::string md = fmt::format("## Over {} paired seeds\n\n", result.seeds());
  md += fmt::format(
      "Each seed runs every mode with the same initialisation, data order, noise draw and "
      "crowd. Share: the mode's energy to the target over its seed's baseline energy to the "
      "same target (the baseline's plateau: the best moving average of {} evaluations); a run "
      "that never reached it counts with its whole energy. Collector figures are `{}`; the "
      "MAC figure is `modelled` (counted multiply-accumulates of every pass × the J/MAC of the "
      "seed's baseline). The collector figure includes the humans' infrastructure (the feedback "
      "service and PostgreSQL, registered in every mode: their mean power × the time to target), "
      "shown apart as its part of the cost; the modelled figure counts the trainer's passes "
      "only. Test accuracy is at stop (for the baseline: at its plateau).\n\n",
      std::max<std::uint32_t>(1, result.eval_smoothing()), EnergyKind(result));
  md +=
      "| mode | share (95 % CI) | modelled share (95 % CI) | reached | validation | test | "
      "rater-min (modelled) | real raters to keep up | evaluation share (modelled) | "
      "infrastructure (J, part of cost) |\n";
  md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const cli::ModeSummary& s : result.summaries()) {
    md += fmt::format(
        "| {} | {} | {} | {}/{} | {:.4f} | {:.4f} | {:.1f} | {:.1f} | {:.1f} % | {:.1f} J, {:.1f} "
        "% "
        "|\n",
        s.mode(), Interval(s.share_mean(), s.share_low(), s.share_high()),
        Interval(s.modelled_share_mean(), s.modelled_share_low(), s.modelled_share_high()),
        s.reached(), s.seeds(), s.validation_accuracy(), s.test_accuracy(), s.rater_minutes(),
        s.real_raters_equivalent(), 100 * s.eval_share_modelled(), s.infra_joules_mean(),
        100 * s.infra_part_mean());
  }
  return md + "\n";
}

}  // namespace greenloop::experiment
