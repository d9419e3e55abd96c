// The study's analysis and report (study.h): correlations, fits, prediction errors, guidelines.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <span>

#include "tools/greenloop/experiment/prediction.h"
#include "tools/greenloop/experiment/study.h"

namespace greenloop::experiment {
namespace {

std::optional<double> Opt(const absl::StatusOr<double>& s) {
  return s.ok() ? std::optional<double>(*s) : std::nullopt;
}

std::vector<RunObservation> TrainingObservations(std::span<const StudyRow> rows) {
  std::vector<RunObservation> out;
  for (const StudyRow& r : rows) {
    RunObservation& o = out.emplace_back();
    o.features = {.parameters = r.parameters,
                  .macs_per_sample = r.macs_per_sample,
                  .samples_processed = r.samples,
                  .batch_size = r.batch_size,
                  .node_kind = r.node,
                  .architecture = r.architecture};
    o.energy_joules = r.energy_joules;
  }
  return out;
}

// One observation per inference batch size that was metered: energy per sample against the
// model's size and the inference batch (samples fixed at 1).
std::vector<RunObservation> InferenceObservations(std::span<const StudyRow> rows) {
  std::vector<RunObservation> out;
  for (const StudyRow& r : rows) {
    for (const cli::InferencePoint& p : r.inference) {
      if (!p.error().empty() || p.joules_per_sample() <= 0) continue;
      RunObservation& o = out.emplace_back();
      o.features = {.parameters = r.parameters,
                    .macs_per_sample = r.macs_per_sample,
                    .samples_processed = 1,
                    .batch_size = static_cast<double>(p.batch_size()),
                    .node_kind = r.node,
                    .architecture = r.architecture};
      o.energy_joules = p.joules_per_sample();
    }
  }
  return out;
}

LogLogFit FitLogLog(const std::string& quantity, const std::vector<double>& x,
                    const std::vector<double>& y) {
  LogLogFit fit{.quantity = quantity};
  std::vector<double> lx, ly;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] > 0 && y[i] > 0) {
      lx.push_back(std::log(x[i]));
      ly.push_back(std::log(y[i]));
    }
  }
  const std::optional<double> r = Pearson(lx, ly);
  if (!r) return fit;
  const double n = static_cast<double>(lx.size());
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) mx += lx[i] / n, my += ly[i] / n;
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) {
    sxy += (lx[i] - mx) * (ly[i] - my);
    sxx += (lx[i] - mx) * (lx[i] - mx);
  }
  fit.slope = sxy / sxx;
  fit.intercept = my - fit.slope * mx;
  fit.r_squared = *r * *r;
  return fit;
}

std::optional<double> MeanAbs(const std::vector<StudyRow>& rows,
                              std::optional<double> StudyRow::*field) {
  double sum = 0;
  int n = 0;
  for (const StudyRow& r : rows) {
    if (r.*field) sum += std::abs(*(r.*field)), ++n;
  }
  return n > 0 ? std::optional<double>(sum / n) : std::nullopt;
}

void BatchGuideline(const std::vector<StudyRow>& rows, std::vector<std::string>& out) {
  std::map<double, std::pair<double, int>> by_batch;  // batch → (sum J/sample, points)
  for (const StudyRow& r : rows) {
    auto& [sum, n] = by_batch[r.batch_size];
    sum += r.energy_per_sample_joules;
    ++n;
  }
  if (by_batch.size() < 2) return;
  auto mean = [](const std::pair<double, int>& p) { return p.first / p.second; };
  const auto best = std::min_element(by_batch.begin(), by_batch.end(), [&](auto& a, auto& b) {
    return mean(a.second) < mean(b.second);
  });
  const auto worst = std::max_element(by_batch.begin(), by_batch.end(), [&](auto& a, auto& b) {
    return mean(a.second) < mean(b.second);
  });
  out.push_back(fmt::format(
      "Batch size {:g} trained for the least energy per sample here: {:.3g} mJ (mean of {} "
      "points), against {:.3g} mJ at batch {:g} ({:.1f}× more).",
      best->first, 1000 * mean(best->second), best->second.second, 1000 * mean(worst->second),
      worst->first, mean(worst->second) / mean(best->second)));
}

void ModelGuideline(const std::vector<StudyRow>& rows, std::vector<std::string>& out) {
  if (rows.empty()) return;
  double best = 0;
  for (const StudyRow& r : rows) best = std::max(best, r.accuracy);
  const StudyRow* smallest = nullptr;
  for (const StudyRow& r : rows) {
    if (r.accuracy >= 0.99 * best && (smallest == nullptr || r.parameters < smallest->parameters)) {
      smallest = &r;
    }
  }
  out.push_back(
      fmt::format("The smallest model within 1 % of the best accuracy ({:.4f}) is {} ({}): {:.0f} "
                  "parameters, accuracy {:.4f}, {:.1f} J.",
                  best, smallest->architecture, smallest->label, smallest->parameters,
                  smallest->accuracy, smallest->energy_joules));
}

void IdleGuideline(const std::vector<StudyRow>& rows, std::vector<std::string>& out) {
  double idle = 0, active = 0, seconds = 0;
  for (const StudyRow& r : rows) {
    idle += r.idle_joules;
    active += r.energy_joules;
    seconds += r.duration_seconds;
  }
  if (seconds <= 0) return;
  out.push_back(fmt::format(
      "Idle power, which no model choice removes, averaged {:.1f} W: {:.1f} Wh per hour of a run, "
      "{:.0f} % on top of the active energy of these runs.",
      idle / seconds, idle / seconds, active > 0 ? 100 * idle / active : 0.0));
}

void InferenceGuideline(const std::vector<StudyRow>& rows, std::vector<std::string>& out) {
  std::map<std::uint32_t, std::pair<double, int>> by_batch;
  for (const StudyRow& r : rows) {
    for (const cli::InferencePoint& p : r.inference) {
      if (!p.error().empty() || p.joules_per_sample() <= 0) continue;
      auto& [sum, n] = by_batch[p.batch_size()];
      sum += p.joules_per_sample();
      ++n;
    }
  }
  if (by_batch.size() < 2) return;
  auto mean = [](const std::pair<double, int>& p) { return p.first / p.second; };
  const auto best = std::min_element(by_batch.begin(), by_batch.end(), [&](auto& a, auto& b) {
    return mean(a.second) < mean(b.second);
  });
  const auto first = by_batch.begin();
  out.push_back(fmt::format(
      "Inference cost least per sample at batch {}: {:.3g} mJ (mean over models); batch {} cost "
      "{:.1f}× that.",
      best->first, 1000 * mean(best->second), first->first,
      mean(first->second) / mean(best->second)));
}

std::string Percent(std::optional<double> v) {
  return v ? fmt::format("{:.1f}%", 100 * *v) : std::string("nan%");
}

std::string Num(std::optional<double> v, const char* format = "{:.3f}") {
  return v ? fmt::format(fmt::runtime(format), *v) : std::string("—");
}

}  // namespace

StudyAnalysis AnalyseStudy(std::vector<StudyRow> rows) {
  StudyAnalysis a;
  std::vector<StudyRow> ok;
  for (const StudyRow& r : rows) {
    if (r.state == "succeeded" && r.energy_joules > 0 && r.parameters > 0) {
      ok.push_back(r);
    } else {
      ++a.failed;
    }
  }
  a.points = ok.size();
  std::vector<std::string> families;
  for (const StudyRow& r : ok) {
    const std::string f = ArchitectureFamily(r.architecture);
    if (std::find(families.begin(), families.end(), f) == families.end()) families.push_back(f);
  }
  a.architectures = families.size();
  std::vector<double> energy, params, macs, per_param, batch, duration;
  for (const StudyRow& r : ok) {
    energy.push_back(r.energy_joules);
    params.push_back(r.parameters);
    macs.push_back(r.macs_per_sample);
    per_param.push_back(r.macs_per_sample / r.parameters);
    batch.push_back(r.batch_size);
    duration.push_back(r.duration_seconds);
  }
  const std::pair<const char*, const std::vector<double>*> quantities[] = {
      {"parameters", &params},
      {"MACs per sample", &macs},
      {"MACs per parameter", &per_param},
      {"batch size", &batch},
      {"duration", &duration}};
  for (const auto& [name, x] : quantities) {
    a.correlations.push_back(
        {.quantity = name, .pearson = Pearson(*x, energy), .spearman = Spearman(*x, energy)});
  }
  a.fits = {FitLogLog("parameters", params, energy), FitLogLog("MACs per sample", macs, energy)};
  const std::vector<RunObservation> training = TrainingObservations(ok);
  a.loo = Opt(LeaveOneOutError(training));
  a.loao = Opt(LeaveOneArchitectureOutError(training));
  a.infer_loao = Opt(LeaveOneArchitectureOutError(InferenceObservations(ok)));
  a.proj5 = MeanAbs(ok, &StudyRow::projection_error_5);
  a.proj25 = MeanAbs(ok, &StudyRow::projection_error_25);
  a.pareto = ParetoFront(ok);
  BatchGuideline(ok, a.guidelines);
  ModelGuideline(ok, a.guidelines);
  IdleGuideline(ok, a.guidelines);
  InferenceGuideline(ok, a.guidelines);
  a.rows = std::move(ok);
  return a;
}

std::string StudyLine(const StudyAnalysis& a) {
  return fmt::format(
      "study: points={} archs={} loo={} loao={} infer_loao={} proj5={} proj25={} "
      "pareto={}",
      a.points, a.architectures, Percent(a.loo), Percent(a.loao), Percent(a.infer_loao),
      Percent(a.proj5), Percent(a.proj25), a.pareto.size());
}

std::string StudyMarkdown(const std::string& study_id, const std::string& spec_path,
                          const StudyAnalysis& a, const std::vector<std::string>& plots) {
  std::string md = fmt::format(
      "# Green-ML study {}\n\nSpec `{}`: {} points over {} model "
      "families succeeded, {} did not. Energy is the collector's active "
      "energy (`{}`); MACs are modelled (counted per layer).\n\n",
      study_id, spec_path, a.points, a.architectures, a.failed,
      a.rows.empty() ? "none" : a.rows.front().energy_source);
  md +=
      "| point | architecture | parameters | MACs/sample | energy (J) | mJ/sample | to target "
      "(J) | accuracy | seconds | idle (J) | gCO2e | Pareto |\n|---|---|---|---|---|---|---|---|"
      "---|---|---|---|\n";
  for (std::size_t i = 0; i < a.rows.size(); ++i) {
    const StudyRow& r = a.rows[i];
    const bool front = std::find(a.pareto.begin(), a.pareto.end(), i) != a.pareto.end();
    md += fmt::format(
        "| {} | {} | {:.0f} | {:.0f} | {:.1f} | {:.3f} | {} | {:.4f} | {:.1f} | "
        "{:.1f} | {:.3f} | {} |\n",
        r.label, r.architecture, r.parameters, r.macs_per_sample, r.energy_joules,
        1000 * r.energy_per_sample_joules, Num(r.energy_to_target_joules, "{:.1f}"), r.accuracy,
        r.duration_seconds, r.idle_joules, r.carbon_grams, front ? "yes" : "");
  }
  md +=
      "\n## Energy against size (over the succeeded points)\n\n| quantity | Pearson | "
      "Spearman |\n|---|---|---|\n";
  for (const Correlation& c : a.correlations) {
    md += fmt::format("| {} | {} | {} |\n", c.quantity, Num(c.pearson), Num(c.spearman));
  }
  md += "\n| log-log fit | slope | intercept | R² |\n|---|---|---|---|\n";
  for (const LogLogFit& f : a.fits) {
    md += fmt::format("| ln E vs ln {} | {:.3f} | {:.3f} | {:.3f} |\n", f.quantity, f.slope,
                      f.intercept, f.r_squared);
  }
  md += "\n## Inference energy per sample (mJ) by batch size\n\n";
  for (const StudyRow& r : a.rows) {
    std::string cells;
    for (const cli::InferencePoint& p : r.inference) {
      cells += p.error().empty() ? fmt::format(" batch {}: {:.4f} mJ, {:.2f} ms, {:.0f}/s;",
                                               p.batch_size(), 1000 * p.joules_per_sample(),
                                               p.latency_ms(), p.samples_per_second())
                                 : fmt::format(" batch {}: {};", p.batch_size(), p.error());
    }
    if (!cells.empty()) md += fmt::format("- {}:{}\n", r.label, cells);
  }
  md += fmt::format(
      "\n## Prediction\n\n- training energy, leave-one-out: {}\n- leave-one-architecture-out "
      "(a family never seen, from its size): {}\n- inference energy per sample, "
      "leave-one-architecture-out: {}\n- projection from 5 % of a run: {} mean |error|; from "
      "25 %: {}\n\n## Guidelines for this cluster\n\n",
      Percent(a.loo), Percent(a.loao), Percent(a.infer_loao), Percent(a.proj5), Percent(a.proj25));
  for (const std::string& g : a.guidelines) md += "- " + g + "\n";
  for (const std::string& p : plots) md += fmt::format("\n![{}]({})\n", p, p);
  md += "\n" + StudyLine(a) + "\n";
  return md;
}

}  // namespace greenloop::experiment
