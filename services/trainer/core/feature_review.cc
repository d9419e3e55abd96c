#include "services/trainer/core/feature_review.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/logging/logging.h"
#include "services/trainer/core/features.h"
#include "services/trainer/core/rater_items.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/text_features.h"

namespace greenloop::trainer {

FeatureReview::FeatureReview(const v1::RunConfig& config, const LoadedDataset& dataset,
                             FeedbackQueue* feedback, std::string run_id, Emit emit)
    : config_(config),
      dataset_(dataset),
      feedback_(feedback),
      run_id_(std::move(run_id)),
      emit_(std::move(emit)),
      next_step_(config.feature_feedback().ask_after_steps()) {}

std::vector<v1::ItemInput> FeatureReview::Questions(ClassifierImpl& model,
                                                    const torch::Tensor& images,
                                                    const std::vector<std::int64_t>& labels,
                                                    double macs_per_sample,
                                                    v1::Progress& progress) {
  std::vector<v1::ItemInput> items;
  if (!dataset_.vocabulary.empty()) {
    // Every word's contribution to every class: one embedding row times the output weights.
    progress.set_macs(progress.macs() + static_cast<double>(dataset_.vocabulary_size) *
                                            kBagEmbeddingDim * dataset_.num_classes());
    const std::vector<std::vector<std::string>> words =
        TopTokens(model, dataset_, labels, kRuleWords);
    questions_.clear();
    for (std::size_t c = 0; c < words.size(); ++c) {
      if (words[c].empty()) continue;  // nothing the class's mails share to ask about
      items.push_back(RuleItemForWords(dataset_, static_cast<std::int64_t>(c), words[c]));
      v1::FeatureRule& q = questions_.emplace_back();
      q.set_label(static_cast<std::uint32_t>(c));
      for (const std::string& w : words[c]) q.add_irrelevant_tokens(w);
    }
    return items;
  }
  const std::vector<std::vector<std::uint8_t>> evidence =
      RuleEvidence(model, dataset_, labels, images, kEvidenceImages);
  for (std::size_t c = 0; c < evidence.size(); ++c) {
    items.push_back(RuleItemFor(dataset_, static_cast<std::int64_t>(c), evidence[c]));
  }
  progress.set_macs(progress.macs() + kSaliencyPasses * kEvidenceImages *
                                          static_cast<double>(evidence.size()) * macs_per_sample);
  return items;
}

void FeatureReview::StepEnded(ClassifierImpl& model, const torch::Tensor& images,
                              const std::vector<std::int64_t>& labels, double macs_per_sample,
                              v1::Progress& progress) {
  if (asked_ || feedback_ == nullptr || !AsksForFeatures(config_.mode()) ||
      progress.step() < next_step_) {
    return;
  }
  const std::vector<v1::ItemInput> items =
      Questions(model, images, labels, macs_per_sample, progress);
  if (items.empty()) {
    asked_ = true;  // no class has anything to ask about
    return;
  }
  const absl::Status s = feedback_->Enqueue(config_.feedback().campaign_id(), items);
  if (!s.ok()) {
    progress.set_feedback_errors(progress.feedback_errors() + 1);
    next_step_ = progress.step() + kRetrySteps;
    logging::Warn("cannot enqueue the rule questions; training goes on without them",
                  {{"run", run_id_}, {"error", s.ToString()}, {"retry_step", next_step_}});
    return;
  }
  asked_ = true;
  just_asked_ = true;
  progress.set_items_enqueued(progress.items_enqueued() + items.size());
  emit_(v1::PROGRESS_EVENT_KIND_SELECTION,
        fmt::format("asked raters {} rule questions (one per class) at step {}", items.size(),
                    progress.step()));
}

std::optional<v1::FeatureRule> FeatureReview::RuleOf(const v1::Verdict& verdict) const {
  if (verdict.question_kind() != v1::QUESTION_KIND_FEATURE_RULE ||
      verdict.decision_case() != v1::Verdict::kFeatureMask ||
      verdict.feature_mask().irrelevant_cells().empty() || !verdict.has_given_label()) {
    return std::nullopt;
  }
  v1::FeatureRule rule;
  rule.set_label(verdict.given_label());
  if (dataset_.vocabulary.empty()) {
    *rule.mutable_irrelevant_cells() = verdict.feature_mask().irrelevant_cells();
    return rule;
  }
  const auto asked = std::find_if(questions_.begin(), questions_.end(), [&](const auto& q) {
    return q.label() == verdict.given_label();
  });
  if (asked == questions_.end()) return std::nullopt;
  for (std::uint32_t cell : verdict.feature_mask().irrelevant_cells()) {
    if (cell < static_cast<std::uint32_t>(asked->irrelevant_tokens_size())) {
      rule.add_irrelevant_tokens(asked->irrelevant_tokens(static_cast<int>(cell)));
    }
  }
  if (rule.irrelevant_tokens().empty()) return std::nullopt;
  return rule;
}

}  // namespace greenloop::trainer
