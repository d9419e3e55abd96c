#include "services/trainer/core/pruning.h"

#include <cmath>

#include "services/trainer/core/datasets.h"

namespace greenloop::trainer {

bool InAnnealing(const v1::Pruning& pruning, std::uint32_t epoch, std::uint32_t max_epochs) {
  if (max_epochs == 0) return false;
  const double fraction = pruning.anneal_fraction() > 0 ? pruning.anneal_fraction() : 0.125;
  const auto full_epochs =
      static_cast<std::uint32_t>(std::ceil(fraction * static_cast<double>(max_epochs)));
  return epoch + full_epochs > max_epochs;
}

EpochPlan PlanEpoch(std::span<const std::uint8_t> active, const SampleStats& stats,
                    const v1::Pruning& pruning, std::uint32_t epoch, std::uint32_t max_epochs,
                    std::uint64_t seed) {
  EpochPlan plan;
  plan.scale.assign(active.size(), 1.0f);
  const double ratio = pruning.ratio();
  const bool prune = ratio > 0 && !InAnnealing(pruning, epoch, max_epochs);
  double mean = 0;
  std::size_t seen = 0;
  if (prune) {
    for (std::size_t p = 0; p < active.size(); ++p) {
      if (active[p] != 0 && stats.seen(p)) {
        mean += stats.loss(p);
        ++seen;
      }
    }
    mean = seen > 0 ? mean / static_cast<double>(seen) : 0;
  }
  const auto kept_scale = static_cast<float>(1.0 / (1.0 - ratio));
  SeededRng rng(seed);
  for (std::size_t p = 0; p < active.size(); ++p) {
    if (active[p] == 0) continue;
    if (prune && seen > 0 && stats.seen(p) && stats.loss(p) < mean) {
      if (rng.Unit() < ratio) {
        ++plan.pruned;
        continue;
      }
      plan.scale[p] = kept_scale;
    }
    plan.positions.push_back(static_cast<std::int64_t>(p));
  }
  return plan;
}

}  // namespace greenloop::trainer
