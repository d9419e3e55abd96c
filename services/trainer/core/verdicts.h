// The training set as verdicts have changed it, and the one place verdicts are applied.
//
// A TrainingSetState holds, for every training sample, the label training uses, its loss weight
// and whether it is still in training. Apply() turns one verdict (human, from the feedback queue,
// or automatic) into at most one SampleChange under the run's VerdictPolicy:
//
//   label confirmed (label_correct, or consensus_label == label)   keep (recorded, no change)
//   consensus_label != label                                        on_wrong_label: relabel to it,
//                                                                   drop, or reweight
//   label_correct == false (no label offered)                       relabel → drop; drop; reweight
//   relevant == false                                               drop when drop_irrelevant
//   relevant == true                                                weight × relevant_weight
//   undecidable                                                     counted, not applied
//   confidence < min_confidence                                     counted, not applied
//
// A later revision of a verdict for the same item is applied again on top of the current state.
// Application is a pure function of the state and the verdict, so ranks that apply the same
// verdicts in the same order hold identical training sets.
//
// Clean labels are read only to fill SampleChange::correct.
//
// Thread-safety: not thread-safe; owned by the training loop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "greenloop/v1/feedback.pb.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

// Returns `policy` with its documented defaults filled in (min_confidence 0.6, relabel,
// reweight_factor 0.1).
v1::VerdictPolicy WithDefaults(const v1::VerdictPolicy& policy);

class TrainingSetState final {
 public:
  // Starts from the labels training sees (`train.labels`, possibly noisy), weight 1, all active.
  explicit TrainingSetState(const Split& train);
  // Starts from the clean labels instead when `clean_labels` (MODE_CLEAN, the reference).
  TrainingSetState(const Split& train, bool clean_labels);

  // Applies `verdict` at `step`; returns the change, or nothing when the verdict is not applied
  // (unknown sample, low confidence, undecidable, a label outside [0, num_classes)).
  // `policy` must have its defaults filled (WithDefaults).
  std::optional<SampleChange> Apply(const v1::Verdict& verdict, ChangeSource source,
                                    const v1::VerdictPolicy& policy, std::uint64_t step,
                                    int num_classes);

  // Position of the sample with SampleRef index `ref`; nullopt when not in this training set.
  std::optional<std::size_t> PositionOf(std::uint64_t ref) const;

  const std::vector<std::int64_t>& labels() const { return labels_; }
  const std::vector<float>& weights() const { return weights_; }
  const std::vector<std::uint8_t>& active() const { return active_; }
  std::size_t active_count() const { return active_count_; }

  // Replaces the state (from a checkpoint). INVALID_ARGUMENT when the sizes do not match.
  absl::Status Restore(std::vector<std::int64_t> labels, std::vector<float> weights,
                       std::vector<std::uint8_t> active);

 private:
  const Split& train_;
  std::vector<std::int64_t> labels_;
  std::vector<float> weights_;
  std::vector<std::uint8_t> active_;
  std::size_t active_count_ = 0;
  std::unordered_map<std::uint64_t, std::size_t> position_of_;
};

// Serializes verdicts for a broadcast between ranks, and back. Deserialize returns
// INVALID_ARGUMENT for bytes Serialize did not write.
struct PendingVerdict {
  v1::Verdict verdict;
  ChangeSource source = ChangeSource::kHuman;
  std::string cursor;            // stream cursor after this verdict; empty for automatic ones
  double queue_lag_seconds = 0;  // decide_time to receipt, human verdicts only
  // A feature-rule verdict's rule, decided on rank 0 (FeatureReview::RuleOf); none otherwise.
  std::optional<v1::FeatureRule> rule;
  // MODE_HITL_COMBINED: the verdict came on the feature questions' stream, so `cursor` is that
  // stream's.
  bool feature_stream = false;
};
std::string SerializeVerdicts(const std::vector<PendingVerdict>& verdicts);
absl::StatusOr<std::vector<PendingVerdict>> DeserializeVerdicts(const std::string& bytes);

// What one batch of verdicts did.
struct AppliedVerdicts {
  std::vector<SampleChange> changes;  // in verdict order
  std::string cursor;                 // the last human verdict's cursor; empty when none had one
  std::uint64_t humans = 0;           // human verdicts among them
  double queue_lag_seconds_sum = 0;   // over the human verdicts
  std::uint64_t correct() const;      // changes that moved a sample towards its clean label
};

// Applies `verdicts` in order to `state` at `step`: human ones under `human_policy`, automatic
// ones under `auto_policy` (both with defaults filled), and counts them in `progress`
// (verdicts_received/applied/correct, samples_relabelled/dropped/reweighted). `on_human` (may be
// empty) sees every human verdict before it is applied.
AppliedVerdicts ApplyVerdicts(const std::vector<PendingVerdict>& verdicts, TrainingSetState& state,
                              const v1::VerdictPolicy& human_policy,
                              const v1::VerdictPolicy& auto_policy, std::uint64_t step,
                              int num_classes, v1::Progress& progress,
                              const std::function<void(const v1::Verdict&)>& on_human);

}  // namespace greenloop::trainer
