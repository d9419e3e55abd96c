// The training loop of one rank: LibTorch training on a loaded dataset, steered by verdicts.
//
// Train() runs a run to its end on the calling thread:
//
//   * registers the rank's pid with the node's energy collector (a run that cannot register
//     fails: greenloop does not train unmeasured) and unregisters at the end, whatever the end;
//   * trains data parallel when ports.collective spans several ranks: one global sample order
//     per epoch (seeded), rank r takes its slice of every global batch, gradients are summed in
//     one all-reduce per step that also carries the control flags (stop, energy budget, verdict
//     count), so every rank stops at the same step and applies the same verdicts at the same step;
//   * every select_every_steps (outside MODE_BASELINE) rank 0 scores a seeded candidate pool
//     (loss, margin or entropy), enqueues the best candidates not asked about yet with a display
//     payload (MODE_HITL, MODE_HYBRID), and flags likely-wrong labels itself (MODE_AUTO, and the
//     confident part of MODE_HYBRID);
//   * applies verdicts as they stream in, never waiting for them (see verdicts.h), and reports
//     every change;
//   * evaluates on the test split every eval_every_steps or at each epoch end, with the run's
//     energy at that point, and stops at target_accuracy or at the first budget reached;
//   * writes a checkpoint at each epoch end and when stopped (model, optimizer, training set
//     state, sample order, verdict cursor, counters) under
//     <checkpoint_dir>/<run_id>/rank-<rank>/, and resumes from the latest one when asked.
//
// LibTorch exceptions and port errors end the run as RUN_STATE_FAILED with a message; Train()
// does not throw.
//
// This header does not include LibTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

// Who this rank is.
struct RankOptions {
  std::string run_id;
  std::uint32_t rank = 0;
  std::uint32_t world_size = 1;
  std::string node;
  int pid = 0;
  // Continue from the latest checkpoint under config.checkpoint_dir, when there is one.
  bool resume = false;
  // LibTorch intra-op threads; 0 keeps LibTorch's default. Process-wide.
  int threads = 0;
  // Emit a STEP event every this many steps.
  std::uint32_t step_event_every = 10;
  // Check the energy budget every this many steps (besides every evaluation).
  std::uint32_t energy_check_every = 25;
};

// What the loop reports as it goes. Called on the training thread; keep it quick.
class TrainingListener {
 public:
  virtual ~TrainingListener() = default;
  // A progress event (trainer.proto ProgressEventKind) with the progress right after it.
  virtual void OnEvent(v1::ProgressEventKind kind, const v1::Progress& progress,
                       const std::string& message) = 0;
  // The model was built.
  virtual void OnModel(const v1::ModelInfo&) {}
  // An evaluation was made (one point of the accuracy curve).
  virtual void OnEvaluation(const EvaluationPoint&) {}
  // Verdicts changed (or confirmed) training samples.
  virtual void OnChanges(const std::vector<SampleChange>&) {}
  // Mean seconds from decision to application of the human verdicts just applied.
  virtual void OnQueueLag(double) {}
};

// The outside world of one run.
struct TrainingPorts {
  EnergyMeter* energy = nullptr;      // required
  FeedbackQueue* feedback = nullptr;  // required on rank 0 in the modes that ask humans
  // Rank 0 in MODE_HITL_COMBINED: a second client of the same feedback service, following the
  // feature questions' campaign (FeedbackTarget.feature_campaign_id); required there.
  FeedbackQueue* feature_feedback = nullptr;
  Collective* collective = nullptr;  // null: a single-process run
  TrainingListener* listener = nullptr;
  // Polled once per step; true asks the run to stop at this step boundary.
  std::function<bool()> stop_requested;
};

// How a run ended.
struct TrainingOutcome {
  v1::RunState state = v1::RUN_STATE_FAILED;
  v1::FinishReason finish_reason = v1::FINISH_REASON_ERROR;
  std::string error_message;
  v1::Progress progress;
  v1::ModelInfo model;
  std::optional<double> best_eval_accuracy;
  std::optional<double> energy_to_target_joules;
  std::optional<std::uint64_t> steps_to_target;
  std::optional<double> projection_relative_error;
  // Validation runs only (RunConfig.validation_samples > 0): the test split, once, at the end.
  std::optional<double> test_accuracy;       // the final model
  std::optional<double> best_test_accuracy;  // the model at best_smoothed_eval_accuracy
  std::optional<double> best_smoothed_eval_accuracy;
  // Runs with a decoy (validation runs): the final model's saliency share on it, test split.
  std::optional<double> decoy_saliency;
  // Runs with a decoy: what the final model looks at per class (Explain in features.h).
  std::optional<v1::Explanation> explanation;
  // RunConfig.inference (rank 0): the final model's inference cost per batch size.
  std::vector<v1::InferenceFigures> inference;
  std::string checkpoint_path;
  std::vector<EvaluationPoint> curve;  // this session's evaluations
  std::uint64_t changes_correct = 0;   // this session's human/auto changes that were right
  std::uint64_t changes_total = 0;
};

// Runs one rank of a run to its end. `config` must have its defaults filled
// (ValidateRunConfig); `dataset` is the run's dataset (LoadDataset). Never throws.
TrainingOutcome Train(const v1::RunConfig& config, const LoadedDataset& dataset,
                      const RankOptions& options, const TrainingPorts& ports);

// Directory of a rank's checkpoints: <checkpoint_dir>/<run_id>/rank-<rank>.
std::string RankCheckpointDir(const std::string& checkpoint_dir, const std::string& run_id,
                              std::uint32_t rank);

// Whether a checkpoint of the run exists for `rank`.
bool HasCheckpoint(const std::string& checkpoint_dir, const std::string& run_id,
                   std::uint32_t rank);

}  // namespace greenloop::trainer
