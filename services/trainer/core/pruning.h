// Which samples an epoch trains on: InfoBatch's unbiased dynamic data pruning (Qin et al.,
// "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning", ICLR 2024).
//
// At each epoch start, every active sample whose last recorded training loss is below the mean of
// the recorded losses is "well learnt"; each of those is left out of the epoch with probability
// `ratio`, and the well-learnt samples kept train with their loss weight scaled by 1 / (1 - ratio),
// so the expected gradient of the epoch equals the full one. Samples never seen yet always train.
// During the last anneal_fraction of the epochs every sample trains, unscaled (InfoBatch's
// annealing, which removes the remaining bias).
//
//   EpochPlan plan = PlanEpoch(state.active(), stats, pruning, epoch, max_epochs, seed);
//   for (std::int64_t p : plan.positions) ... weight = state.weights()[p] * plan.scale[p];
//
// The plan is a pure function of its inputs, so ranks holding the same statistics plan the same
// epoch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/sample_stats.h"

namespace greenloop::trainer {

struct EpochPlan {
  std::vector<std::int64_t> positions;  // active samples this epoch trains, in position order
  std::vector<float> scale;             // per training position (all samples): loss weight factor
  std::uint64_t pruned = 0;             // active samples left out
};

// Plans epoch `epoch` (1-based) of `max_epochs` (0: unknown, never anneals). `pruning` must be
// valid (ratio in [0, 1), anneal_fraction in [0, 1); 0 means 0.125).
EpochPlan PlanEpoch(std::span<const std::uint8_t> active, const SampleStats& stats,
                    const v1::Pruning& pruning, std::uint32_t epoch, std::uint32_t max_epochs,
                    std::uint64_t seed);

// Whether `epoch` of `max_epochs` is in the annealing tail where nothing is pruned.
bool InAnnealing(const v1::Pruning& pruning, std::uint32_t epoch, std::uint32_t max_epochs);

}  // namespace greenloop::trainer
