// Validation of StartRun requests and run configs, and the documented defaults of RunConfig
// (trainer.proto), in one place so that the adapter, the loop and the store agree on them.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"

namespace greenloop::trainer {

// Checks a client-chosen identifier (run_id, campaign_id, experiment_id): 1 to 63 characters of
// [a-z0-9-], starting with a letter or digit. INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateIdentifier(std::string_view field, std::string_view value);

// Returns `config` with every "0 means X" default filled in, or INVALID_ARGUMENT naming the first
// field that does not validate: dataset unset or unknown, a model that does not fit the dataset, a
// negative or non-finite learning rate, no budget, target_accuracy outside [0, 1], mode unset,
// select_every_steps 0 outside MODE_BASELINE, feedback endpoint or campaign missing in MODE_HITL /
// MODE_HYBRID, label noise out of range, policy or auto-review values out of range.
absl::StatusOr<v1::RunConfig> ValidateRunConfig(const v1::RunConfig& config);

// Validates a StartRunRequest as a whole (run_id, rank < world_size, rendezvous address when
// world_size > 1, the config) and returns the request with world_size and config defaults filled.
absl::StatusOr<v1::StartRunRequest> ValidateStartRun(const v1::StartRunRequest& request);

// Whether `mode` asks human raters (about samples, about features in MODE_HITL_FEATURES, or both
// in MODE_HITL_COMBINED).
inline bool UsesHumans(v1::Mode mode) {
  return mode == v1::MODE_HITL || mode == v1::MODE_HYBRID || mode == v1::MODE_HITL_FEATURES ||
         mode == v1::MODE_HITL_COMBINED;
}

// Whether `mode` judges samples (selection, verdicts): MODE_HITL, MODE_AUTO, MODE_HYBRID and
// MODE_HITL_COMBINED.
inline bool JudgesSamples(v1::Mode mode) {
  return mode == v1::MODE_HITL || mode == v1::MODE_HYBRID || mode == v1::MODE_AUTO ||
         mode == v1::MODE_HITL_COMBINED;
}

// Whether `mode` asks raters for feature rules (or per-item masks).
inline bool AsksForFeatures(v1::Mode mode) {
  return mode == v1::MODE_HITL_FEATURES || mode == v1::MODE_HITL_COMBINED;
}

// The mode whose sample review `mode` runs: MODE_HITL_COMBINED reviews samples as MODE_HITL does
// (label questions to humans, nothing automatic); every other mode is its own.
inline v1::Mode SampleReviewMode(v1::Mode mode) {
  return mode == v1::MODE_HITL_COMBINED ? v1::MODE_HITL : mode;
}

// The campaign the feature questions of a run with `config` go to: FeedbackTarget's
// feature_campaign_id in MODE_HITL_COMBINED, its campaign_id otherwise.
inline const std::string& FeatureCampaignId(const v1::RunConfig& config) {
  return config.mode() == v1::MODE_HITL_COMBINED ? config.feedback().feature_campaign_id()
                                                 : config.feedback().campaign_id();
}

// FeatureFeedback.item_questions at most: one enqueue batch.
inline constexpr std::uint32_t kMaxItemQuestions = 500;

// Whether `mode` may prune its epochs (RunConfig.pruning): every judging mode and MODE_PRUNE.
inline bool MayPrune(v1::Mode mode) { return JudgesSamples(mode) || mode == v1::MODE_PRUNE; }

// `shape` with the kind's defaults filled in (0 stays 0 for kinds of fixed shape).
v1::ModelShape ResolveModelShape(v1::ModelKind kind, const v1::ModelShape& shape);

// OK when `shape` fits `kind`: width at most 512 (a multiple of 4 for the Transformer), depth
// within the kind's bound (CNN 4 on 28 × 28 images, others 8; none for the bag of words), nothing
// set for a kind of fixed shape; else INVALID_ARGUMENT naming config.model_shape.width or .depth.
absl::Status ValidateModelShape(v1::ModelKind kind, const v1::ModelShape& shape);

// "MODEL_KIND_RESNET width=16 depth=1" (the resolved shape); the kind alone for a fixed shape.
std::string ArchitectureName(v1::ModelKind kind, const v1::ModelShape& shape);

// The model kind a run of `dataset` uses when `kind` is unspecified.
v1::ModelKind ResolveModelKind(v1::ModelKind kind, v1::Dataset dataset);

// Whether `kind` is a model for images (every kind but the bag of words and the Transformer).
inline bool IsImageModel(v1::ModelKind kind) {
  return kind != v1::MODEL_KIND_BAG_OF_WORDS && kind != v1::MODEL_KIND_TRANSFORMER;
}

}  // namespace greenloop::trainer
