#include "tools/greenloop/experiment/points.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace greenloop::experiment {

std::string ProgressBar(std::size_t done, std::size_t total, std::size_t width) {
  const std::size_t filled = total == 0 ? width : std::min(width, done * width / total);
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
}

namespace {

std::string Summary(const cli::ModeResult& m) {
  const double joules =
      m.collector_active_joules() > 0 ? m.collector_active_joules() : m.energy_joules();
  return m.state() == "failed" ? fmt::format("failed: {}", m.error())
                               : fmt::format("{}, {:.1f} J", m.state(), joules);
}

}  // namespace

absl::StatusOr<PointsOutcome> RunPoints(const std::vector<std::string>& labels,
                                        const PointHooks& hooks, std::ostream& progress) {
  PointsOutcome out;
  const std::size_t total = labels.size();
  for (std::size_t i = 0; i < total; ++i) {
    PointOutcome point{.index = i};
    if (std::optional<cli::ModeResult> stored = hooks.stored(i)) {
      point.run = *std::move(stored);
      point.resumed = true;
      ++out.resumed;
    } else {
      absl::StatusOr<cli::ModeResult> run = hooks.run(i);
      if (!run.ok()) return run.status();
      point.run = *std::move(run);
      hooks.keep(i, point.run);
    }
    progress << fmt::format("{} {}/{} {}: {}{}\n", ProgressBar(i + 1, total), i + 1, total,
                            labels[i], Summary(point.run), point.resumed ? " (stored)" : "");
    const std::string state = point.run.state();
    out.points.push_back(std::move(point));
    if (state == "failed") ++out.failed;
    if (state == "interrupted") {
      out.state = "interrupted";
      return out;
    }
  }
  if (out.failed > 0) out.state = "failed";
  return out;
}

}  // namespace greenloop::experiment
