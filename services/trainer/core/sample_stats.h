// Per-sample training statistics, recorded for free from the forward passes training already
// makes, and the two-component mixture that splits them into "learnt" and "suspicious".
//
// SampleStats keeps, for every training sample (by position in the training split), the loss of
// its most recent training forward pass, that loss relative to its batch's mean loss (so that
// losses recorded early and late in an epoch compare: the model improves between them), and the
// model's most probable class with its probability. The trainer records each batch right after
// its forward pass; with several ranks, each rank records its own slice and MergeEpoch() makes
// every rank hold the union (each sample is seen by exactly one rank per epoch).
//
// FitTwoGaussians() fits a 1-D two-component Gaussian mixture by EM (DivideMix, Li et al., ICLR
// 2020, on the small-loss criterion of Arpit et al., ICML 2017: networks fit clean labels first,
// so early on the noisy labels are the high-loss component).
//
// Thread-safety: not thread-safe; owned by the training loop.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace greenloop::trainer {

class SampleStats final {
 public:
  // Statistics for `n` training samples, none seen yet.
  explicit SampleStats(std::size_t n);

  // Records one batch: `losses[i]` is the cross-entropy of sample `positions[i]` under the label
  // it trained with, `probs` its class probabilities (positions.size() × classes, row-major).
  void Record(std::span<const std::int64_t> positions, std::span<const float> losses,
              std::span<const float> probs, int classes, std::uint64_t step = 0);

  // The samples recorded since the last call, flattened for a sum across ranks: 5 floats per
  // sample (seen, loss, relative loss, predicted class + probability packed as class + p/2, the
  // step), zeros for samples this rank did not see. Absorb() takes the summed buffer back.
  std::vector<float> EpochBuffer() const;
  void Absorb(std::span<const float> summed);
  // Starts a new epoch of recording (what EpochBuffer() packs).
  void NewEpoch();

  std::size_t size() const { return loss_.size(); }
  bool seen(std::size_t p) const { return seen_[p] != 0; }
  float loss(std::size_t p) const { return loss_[p]; }
  float relative_loss(std::size_t p) const { return relative_[p]; }
  std::int64_t predicted(std::size_t p) const { return predicted_[p]; }
  float predicted_probability(std::size_t p) const { return predicted_p_[p]; }
  // The optimizer step at which the sample's last record was made.
  std::uint64_t recorded_step(std::size_t p) const { return step_[p]; }
  std::size_t seen_count() const { return seen_count_; }

 private:
  void Set(std::size_t p, float loss, float relative, std::int64_t predicted, float predicted_p,
           std::uint64_t step);

  std::vector<std::uint8_t> seen_;
  std::vector<std::uint8_t> seen_this_epoch_;
  std::vector<float> loss_;
  std::vector<float> relative_;
  std::vector<std::int64_t> predicted_;
  std::vector<float> predicted_p_;
  std::vector<std::uint64_t> step_;
  std::size_t seen_count_ = 0;
};

// The result of FitTwoGaussians: per-value posterior of the high-mean component.
struct MixtureFit {
  std::vector<double> posterior_high;  // one per input value, in [0, 1]
  double mean_low = 0;
  double mean_high = 0;
  double weight_high = 0;  // mixing weight of the high component
  // False when the values do not separate into two components (fewer than 4 values, no spread,
  // or the high mean within one standard deviation of the low one): then every posterior is 0.
  bool separated = false;
};

// Fits a two-component 1-D Gaussian mixture to `values` by EM (`iterations` rounds, variances
// floored so that no component collapses), initialised from the lower and upper quartiles.
MixtureFit FitTwoGaussians(std::span<const double> values, int iterations = 30);

}  // namespace greenloop::trainer
