// Rank 0's judge of the training samples: which ones the trainer fixes itself and which ones it
// asks raters about, and at what pace.
//
// Two paths, chosen by RunConfig.noise_review.enabled:
//
//   * the noise review (noise_review.h): at epoch ends (after the warm-up) and every
//     review_every_steps, the per-sample losses are split by a mixture; confidently noisy samples
//     become automatic verdicts, the ambiguous ones a queue for humans, enqueued every
//     select_every_steps as far as the crowd's measured pace allows (OutstandingLimit);
//   * the scored pool (selection.h): every select_every_steps a pool of samples is scored (from
//     their training forward passes, or from an extra forward pass over a random pool) and the
//     best candidates are flagged automatically or enqueued, by mode; MODE_HYBRID's threshold
//     follows the humans' answers (ThresholdCalibrator).
//
// Automatic verdicts wait in the judge until the loop takes them (TakeAutoVerdicts) and
// broadcasts them with the human ones, so that every rank applies them at the same step. A
// feedback outage is counted in Progress.feedback_errors and never fatal: training goes on
// without humans meanwhile.
//
// This header includes LibTorch.
//
// Thread-safety: owned by the training loop of rank 0.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/noise_review.h"
#include "services/trainer/core/ports.h"
#include "services/trainer/core/sample_stats.h"
#include "services/trainer/core/selection.h"
#include "services/trainer/core/verdicts.h"

namespace greenloop::trainer {

// The model as it is now, for scoring a random pool (an extra forward pass, whose MACs count).
struct ScoringModel {
  ClassifierImpl& model;
  const torch::Tensor& train_images;  // ImagesTensor of the training split (images only)
  double macs_per_sample = 0;
};

class SampleJudge final {
 public:
  // Reports a progress event (kind, message); the loop adds its progress.
  using EmitFn = std::function<void(v1::ProgressEventKind, const std::string&)>;

  // Every reference must outlive the judge. `feedback` may be null outside the human modes.
  SampleJudge(const v1::RunConfig& config, const LoadedDataset& dataset,
              const TrainingSetState& state, const SampleStats& stats, FeedbackQueue* feedback,
              std::string run_id, EmitFn emit);

  // Whether the run judges samples through the noise review (else the scored pool, if at all).
  bool Reviews() const { return reviews_; }

  // After a training forward pass over `positions`: keeps their class probabilities for the
  // next scored-pool selection, where that selection reads them.
  void RecordBatch(const std::vector<std::int64_t>& positions, const torch::Tensor& logits);
  // At an epoch end (`epoch`, of `steps_per_epoch` steps): the noise review, once warmed up.
  void EpochEnded(std::uint32_t epoch, std::uint64_t steps_per_epoch, v1::Progress& progress);
  // After optimizer step progress.step(): reviews, selects and enqueues as the config says.
  void StepEnded(const ScoringModel& model, v1::Progress& progress);

  // `n` human verdicts arrived (the crowd's pace).
  void Answered(std::size_t n) { limit_.Answered(n); }
  // A human verdict, before it is applied (MODE_HYBRID calibrates its threshold on it).
  void ObserveHuman(const v1::Verdict& verdict);
  // The automatic verdicts decided since the previous call, in order.
  std::vector<PendingVerdict> TakeAutoVerdicts();

  // Checkpointed state: the samples asked about, and the calibration.
  const std::unordered_set<std::uint64_t>& asked() const { return asked_; }
  const ThresholdCalibrator& calibrator() const { return calibrator_; }
  void Restore(std::vector<std::uint64_t> asked, double threshold,
               std::vector<std::pair<double, bool>> points,
               std::map<std::uint64_t, double> in_band);

 private:
  void Review(std::uint64_t min_record_step, v1::Progress& progress);
  void EnqueueReviewed(v1::Progress& progress);
  void Select(const ScoringModel& model, v1::Progress& progress);
  void CandidatePool(const ScoringModel& model, v1::Progress& progress,
                     std::vector<std::int64_t>& pool, std::vector<float>& probs);
  bool Selectable(std::int64_t position) const;
  void QueueAutoVerdict(std::size_t position, std::optional<std::int64_t> label, double confidence);
  // Enqueues `items` (training samples `refs`); false, counted and logged, when the queue fails.
  bool Enqueue(const std::vector<v1::ItemInput>& items, const std::vector<std::uint64_t>& refs,
               v1::Progress& progress);

  const v1::RunConfig& config_;
  const LoadedDataset& ds_;
  const TrainingSetState& state_;
  const SampleStats& stats_;
  FeedbackQueue* const feedback_;
  const std::string run_id_;
  const EmitFn emit_;
  const v1::NoiseReview review_;
  const bool reviews_;
  OutstandingLimit limit_;
  ThresholdCalibrator calibrator_;
  std::unordered_set<std::uint64_t> asked_;  // SampleRef indexes enqueued at least once
  std::unordered_set<std::size_t> decided_;  // positions fixed automatically
  std::vector<std::int64_t> human_queue_;    // noise review: positions for raters, in order
  std::vector<double> human_posterior_;
  std::size_t human_next_ = 0;
  std::vector<PendingVerdict> auto_verdicts_;
  // Scored pool from training batches: samples trained on since the last selection and their
  // class probabilities.
  std::vector<std::int64_t> recent_positions_;
  std::vector<float> recent_probs_;
};

}  // namespace greenloop::trainer
