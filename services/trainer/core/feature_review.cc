#include "services/trainer/core/feature_review.h"

#include <fmt/format.h>

#include "common/logging/logging.h"
#include "services/trainer/core/features.h"
#include "services/trainer/core/rater_items.h"
#include "services/trainer/core/run_config.h"

namespace greenloop::trainer {

FeatureReview::FeatureReview(const v1::RunConfig& config, const LoadedDataset& dataset,
                             FeedbackQueue* feedback, std::string run_id, Emit emit)
    : config_(config),
      dataset_(dataset),
      feedback_(feedback),
      run_id_(std::move(run_id)),
      emit_(std::move(emit)),
      next_step_(config.feature_feedback().ask_after_steps()) {}

void FeatureReview::StepEnded(ClassifierImpl& model, const torch::Tensor& images,
                              const std::vector<std::int64_t>& labels, double macs_per_sample,
                              v1::Progress& progress) {
  if (asked_ || feedback_ == nullptr || !AsksForFeatures(config_.mode()) ||
      progress.step() < next_step_) {
    return;
  }
  const std::vector<std::vector<std::uint8_t>> evidence =
      RuleEvidence(model, dataset_, labels, images, kEvidenceImages);
  double scored = 0;
  std::vector<v1::ItemInput> items;
  for (std::size_t c = 0; c < evidence.size(); ++c) {
    items.push_back(RuleItemFor(dataset_, static_cast<std::int64_t>(c), evidence[c]));
    scored += kEvidenceImages;
  }
  progress.set_macs(progress.macs() + kSaliencyPasses * scored * macs_per_sample);
  const absl::Status s = feedback_->Enqueue(config_.feedback().campaign_id(), items);
  if (!s.ok()) {
    progress.set_feedback_errors(progress.feedback_errors() + 1);
    next_step_ = progress.step() + kRetrySteps;
    logging::Warn("cannot enqueue the rule questions; training goes on without them",
                  {{"run", run_id_}, {"error", s.ToString()}, {"retry_step", next_step_}});
    return;
  }
  asked_ = true;
  progress.set_items_enqueued(progress.items_enqueued() + items.size());
  emit_(v1::PROGRESS_EVENT_KIND_SELECTION,
        fmt::format("asked raters {} rule questions (one per class) at step {}", items.size(),
                    progress.step()));
}

std::optional<v1::FeatureRule> FeatureReview::RuleOf(const v1::Verdict& verdict) {
  if (verdict.question_kind() != v1::QUESTION_KIND_FEATURE_RULE ||
      verdict.decision_case() != v1::Verdict::kFeatureMask ||
      verdict.feature_mask().irrelevant_cells().empty() || !verdict.has_given_label()) {
    return std::nullopt;
  }
  v1::FeatureRule rule;
  *rule.mutable_irrelevant_cells() = verdict.feature_mask().irrelevant_cells();
  rule.set_label(verdict.given_label());
  return rule;
}

}  // namespace greenloop::trainer
