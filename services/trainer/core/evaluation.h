// Scoring a model on a split, and the smoothed accuracy a run stops on.
//
// ScoreSplit() runs inference (no gradients, eval mode) over a split, or over one rank's share of
// it. ModelState() lists the tensors that make a model what it is, so that a
// snapshot can be taken and put back. MovingAverage is the eval_smoothing window: the run's
// target and plateau are read on it, never on a single noisy evaluation.
//
// This header includes LibTorch.
//
// Thread-safety: one thread per model.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"

namespace greenloop::trainer {

// Correct predictions, summed cross-entropy and samples scored.
struct SplitScore {
  double correct = 0;
  double loss = 0;
  double count = 0;
};

// Samples per forward pass of ScoreSplit: measured fastest of 64–1 024 on the zoo (2 cores,
// tests/bench/trainer), small enough that a batch's activations stay in cache.
inline constexpr std::int64_t kEvalBatch = 256;

// Scores `model` on `split` (`images`: its ImagesTensor, undefined for text) under
// torch::InferenceMode, `batch` samples per forward pass, taken as slices of the split (no
// per-sample gather). With `world` > 1, only the samples of `rank` (every world-th, from `rank`);
// the caller sums the ranks.
SplitScore ScoreSplit(ClassifierImpl& model, const LoadedDataset& dataset, const Split& split,
                      const torch::Tensor& images, std::uint32_t rank = 0, std::uint32_t world = 1,
                      std::int64_t batch = kEvalBatch);

// The model's parameters and buffers (batch-norm statistics), in a fixed order. The tensors are
// the model's own: copying into them changes the model.
std::vector<torch::Tensor> ModelState(const torch::nn::Module& model);

// The mean of the last `window` values, once `window` values have been added.
class MovingAverage final {
 public:
  // `window` 0 counts as 1 (no smoothing).
  explicit MovingAverage(std::uint32_t window) : window_(window == 0 ? 1 : window) {}
  // Adds `value`; returns the mean of the window when it is full.
  std::optional<double> Add(double value);

 private:
  std::size_t window_;
  std::deque<double> values_;
};

}  // namespace greenloop::trainer
