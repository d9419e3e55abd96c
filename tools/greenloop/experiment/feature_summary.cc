#include "tools/greenloop/experiment/feature_summary.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "tools/greenloop/experiment/summary.h"

namespace greenloop::experiment {
namespace {

// Trainer and infrastructure joules to the target; nullopt when the run never reached it.
std::optional<double> CostToTarget(const cli::ModeResult& m) {
  if (!m.has_energy_to_target_joules() || !m.has_steps_to_target()) return std::nullopt;
  return m.energy_to_target_joules() +
         (m.has_infra_to_target_joules() ? m.infra_to_target_joules() : 0.0);
}

struct Sums {
  std::string dataset;
  int seeds = 0;
  double test = 0;
  double saliency = 0;
  int scored = 0;  // runs with a decoy saliency
  double minutes = 0;
  int reached = 0;
  double energy = 0;
  int shared = 0;
  double share = 0;
};

std::string Number(double value, int reached, const char* format) {
  return reached == 0 ? "nan" : fmt::format(fmt::runtime(format), value / reached);
}

}  // namespace

bool HasDecoy(const cli::ExperimentResult& result) {
  for (const cli::ModeResult& m : result.modes()) {
    if (m.has_decoy_saliency()) return true;
  }
  return false;
}

std::string FeatureLines(const cli::ExperimentResult& result) {
  if (!HasDecoy(result)) return "";
  std::vector<std::string> order;
  std::map<std::string, Sums> sums;
  for (const cli::ModeResult& m : result.modes()) {
    if (m.state() != "succeeded") continue;
    if (!sums.contains(m.mode())) order.push_back(m.mode());
    Sums& s = sums[m.mode()];
    ++s.seeds;
    s.test += m.test_accuracy();
    if (m.has_decoy_saliency()) {
      s.saliency += m.decoy_saliency();
      ++s.scored;
    }
    s.minutes += m.crowd().modelled_seconds() / 60.0;
    const std::optional<double> cost = CostToTarget(m);
    if (!cost) continue;
    ++s.reached;
    s.energy += *cost;
    const cli::ModeResult* base = BaselineOf(result, m.seed_index());
    if (base != nullptr && base->steps() > 0 && m.steps_to_target() > 0) {
      const double per_step =
          (base->energy_joules() + InfraJoules(*base)) / static_cast<double>(base->steps());
      if (per_step > 0) {
        ++s.shared;
        s.share += *cost / (per_step * static_cast<double>(m.steps_to_target()));
      }
    }
  }
  std::string out;
  for (const std::string& mode : order) {
    const Sums& s = sums[mode];
    out += fmt::format(
        "features: {} {} test={:.4f} decoy_saliency={} energy_to_target={} J share={} "
        "rater_min={:.0f} seeds={}\n",
        result.dataset(), mode, s.test / s.seeds, Number(s.saliency, s.scored, "{:.2f}"),
        Number(s.energy, s.reached, "{:.1f}"), Number(s.share, s.shared, "{:.2f}"),
        s.minutes / s.seeds, s.seeds);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ExplanationPictures(
    const cli::ExperimentResult& result) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const cli::ModeResult& m : result.modes()) {
    if (m.seed_index() != 0 || m.explanation_png().empty()) continue;
    out.emplace_back(fmt::format("explanation-{}.png", m.mode()), m.explanation_png());
  }
  return out;
}

namespace {

// What the first seed's final models look at: a picture per mode (images), or each class's
// strongest words (text).
std::string ExplanationMarkdown(const cli::ExperimentResult& result) {
  std::string md;
  for (const auto& [name, png] : ExplanationPictures(result)) {
    md += fmt::format("![{}]({})\n\n", name.substr(12, name.size() - 16), name);
  }
  std::string words;
  for (const cli::ModeResult& m : result.modes()) {
    if (m.seed_index() != 0) continue;
    for (int c = 0; c < m.explanation_words_size(); ++c) {
      words += fmt::format("| {} | {} | {} |\n", m.mode(), c,
                           fmt::join(m.explanation_words(c).words(), " "));
    }
  }
  if (!words.empty()) {
    md += "| mode | class | strongest words, first seed |\n|---|---|---|\n" + words + "\n";
  }
  if (md.empty()) return "";
  return "### What the final models look at (first seed)\n\n" + md +
         "Pictures: a row per class (class 0 on top); left the mean of up to 64 test images of the "
         "class, right where the model looks (its mean input-gradient saliency; bright: a "
         "lot). Words: those that pull the model most towards the class.\n\n";
}

}  // namespace

std::string FeatureMarkdown(const cli::ExperimentResult& result) {
  if (!HasDecoy(result)) return "";
  return "## Feature feedback (planted decoy)\n\n```\n" + FeatureLines(result) +
         "```\n\n"
         "`test`: the final models' test accuracy (the same decoyed test images in every mode); "
         "`decoy_saliency`: the share of their input-gradient saliency on the decoy's cell "
         "(chance for one cell of 49: 0.02); `energy_to_target`: estimated joules, trainer and "
         "feedback infrastructure, to the target on the validation split, over the seeds that "
         "reached it; `share`: that energy over the seed's baseline joules per step times the "
         "steps taken (what a step costs against a baseline step); `rater_min`: modelled.\n\n" +
         ExplanationMarkdown(result);
}

}  // namespace greenloop::experiment
