// The noise review: which training samples the automatic stand-in fixes, which go to humans and
// which train as they are, decided from the per-sample losses training recorded (SampleStats)
// through a two-component mixture (see NoiseReview in trainer.proto), and how fast items may be
// enqueued so that the crowd is neither starved nor flooded (OutstandingLimit).
//
//   ReviewSplit split = SplitForReview(stats, state.active(), state.labels(), review, mode,
//                                      [&](std::size_t p) { return decided.contains(p); });
//   for (std::int64_t p : split.automatic) ... relabel p to stats.predicted(p)
//   for (std::int64_t p : split.human) ... enqueue, most suspicious first, while limit.Room() > 0
//
// Thread-safety: not thread-safe; owned by the training loop (rank 0).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/time/time.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/sample_stats.h"

namespace greenloop::trainer {

// Returns `review` with its documented defaults filled in.
v1::NoiseReview WithDefaults(const v1::NoiseReview& review, std::uint32_t candidates);

struct ReviewSplit {
  std::vector<std::int64_t> automatic;  // confidently noisy, for the automatic stand-in
  std::vector<double> automatic_posterior;
  std::vector<std::int64_t> human;  // for raters, most suspicious first
  std::vector<double> human_posterior;
  std::size_t classified = 0;  // samples the mixture classified (seen, active, not decided)
  MixtureFit fit;              // posterior_high cleared
};

// Splits the active samples that have a recorded loss and are not `decided` (asked already or
// fixed automatically) by their posterior of the high-loss component of a mixture fitted to their
// losses relative to their batch's and to their label's mean loss (class-wise), for `mode`:
// MODE_AUTO fills `automatic`, MODE_HITL fills `human` (posterior >= human_threshold), MODE_HYBRID
// both: the confidently noisy samples whose class the model is sure of (relabel_probability) are
// automatic, the ambiguous band and the confident ones the model is unsure of go to humans. A
// confidently noisy sample whose predicted class is its current label is left alone. `review`
// must have its defaults filled. Samples whose last record was made before `min_record_step` (by
// a model that had hardly trained) are left for a later review.
ReviewSplit SplitForReview(const SampleStats& stats, std::span<const std::uint8_t> active,
                           std::span<const std::int64_t> labels, const v1::NoiseReview& review,
                           v1::Mode mode, const std::function<bool(std::size_t)>& decided,
                           std::uint64_t min_record_step = 0);

// How many items may await human verdicts at once: min_outstanding_items at first, then the
// measured verdict rate (verdicts per second since the first enqueue) × outstanding_seconds.
class OutstandingLimit final {
 public:
  OutstandingLimit(std::uint64_t min_items, double seconds) : min_(min_items), seconds_(seconds) {}

  void Enqueued(std::uint64_t n, absl::Time now);
  void Answered(std::uint64_t n);
  // Items that may be enqueued now (0 when the limit is reached).
  std::uint64_t Room(absl::Time now) const;
  std::uint64_t outstanding() const { return enqueued_ > answered_ ? enqueued_ - answered_ : 0; }
  // Verdicts per second since the first enqueue; 0 before.
  double Rate(absl::Time now) const;

 private:
  std::uint64_t min_;
  double seconds_;
  std::uint64_t enqueued_ = 0;
  std::uint64_t answered_ = 0;
  absl::Time first_ = absl::InfinitePast();
};

}  // namespace greenloop::trainer
