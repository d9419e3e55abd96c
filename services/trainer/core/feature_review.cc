#include "services/trainer/core/feature_review.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/logging/logging.h"
#include "services/trainer/core/features.h"
#include "services/trainer/core/rater_items.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/text_features.h"

namespace greenloop::trainer {
namespace {

// Salts the run's seed for the draw of the per-item questions' samples.
constexpr std::uint64_t kItemSeedSalt = 0xD1B54A32D192ED03ULL;

}  // namespace

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
                                            static_cast<double>(model.embedding_dim()) *
                                            dataset_.num_classes());
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

std::vector<v1::ItemInput> FeatureReview::ItemQuestions(ClassifierImpl& model,
                                                        const torch::Tensor& images,
                                                        const std::vector<std::int64_t>& labels,
                                                        double macs_per_sample,
                                                        v1::Progress& progress) {
  const std::vector<std::int64_t> positions =
      ItemsToAsk(labels, dataset_.num_classes(), config_.feature_feedback().item_questions(),
                 config_.seed() ^ kItemSeedSalt);
  std::vector<v1::ItemInput> items;
  if (dataset_.vocabulary.empty()) {
    const std::vector<std::vector<std::uint8_t>> evidence =
        SampleEvidence(model, images, positions);
    for (std::size_t i = 0; i < positions.size(); ++i) {
      const auto p = static_cast<std::size_t>(positions[i]);
      items.push_back(MaskItemFor(dataset_, p, labels[p], evidence[i]));
    }
    progress.set_macs(progress.macs() +
                      kSaliencyPasses * static_cast<double>(positions.size()) * macs_per_sample);
    return items;
  }
  questions_.clear();
  for (std::int64_t position : positions) {
    const auto p = static_cast<std::size_t>(position);
    const std::vector<std::string> words = MailTopTokens(model, dataset_, p, labels[p], kRuleWords);
    if (words.empty()) continue;
    // Every distinct word's contribution to every class.
    progress.set_macs(progress.macs() + static_cast<double>(dataset_.train.offsets[p + 1] -
                                                            dataset_.train.offsets[p]) *
                                            static_cast<double>(model.embedding_dim()) *
                                            dataset_.num_classes());
    items.push_back(MaskItemForWords(dataset_, p, labels[p], words));
    v1::FeatureRule& q = questions_.emplace_back();
    q.set_sample(dataset_.train.refs[p]);
    for (const std::string& w : words) q.add_irrelevant_tokens(w);
  }
  return items;
}

void FeatureReview::StepEnded(ClassifierImpl& model, const torch::Tensor& images,
                              const std::vector<std::int64_t>& labels, double macs_per_sample,
                              v1::Progress& progress) {
  if (asked_ || feedback_ == nullptr || !AsksForFeatures(config_.mode()) ||
      progress.step() < next_step_) {
    return;
  }
  const bool per_item = config_.feature_feedback().item_questions() > 0;
  const std::vector<v1::ItemInput> items =
      per_item ? ItemQuestions(model, images, labels, macs_per_sample, progress)
               : Questions(model, images, labels, macs_per_sample, progress);
  if (items.empty()) {
    asked_ = true;  // no class has anything to ask about
    return;
  }
  const absl::Status s = feedback_->Enqueue(FeatureCampaignId(config_), items);
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
        per_item ? fmt::format("asked raters what to ignore in {} training samples at step {}",
                               items.size(), progress.step())
                 : fmt::format("asked raters {} rule questions (one per class) at step {}",
                               items.size(), progress.step()));
}

std::optional<v1::FeatureRule> FeatureReview::RuleOf(const v1::Verdict& verdict) const {
  const bool per_item = verdict.question_kind() == v1::QUESTION_KIND_FEATURE_MASK;
  if ((!per_item && verdict.question_kind() != v1::QUESTION_KIND_FEATURE_RULE) ||
      verdict.decision_case() != v1::Verdict::kFeatureMask ||
      verdict.feature_mask().irrelevant_cells().empty() ||
      (!per_item && !verdict.has_given_label())) {
    return std::nullopt;
  }
  v1::FeatureRule rule;
  if (per_item) {
    rule.set_sample(verdict.sample().index());
  } else {
    rule.set_label(verdict.given_label());
  }
  if (dataset_.vocabulary.empty()) {
    *rule.mutable_irrelevant_cells() = verdict.feature_mask().irrelevant_cells();
    return rule;
  }
  const auto asked = std::find_if(questions_.begin(), questions_.end(), [&](const auto& q) {
    return per_item ? q.has_sample() && q.sample() == verdict.sample().index()
                    : !q.has_sample() && q.label() == verdict.given_label();
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

std::vector<std::int64_t> ItemsToAsk(const std::vector<std::int64_t>& labels, int classes,
                                     std::uint32_t count, std::uint64_t seed) {
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(classes));
  for (std::uint64_t i : SeededPermutation(labels.size(), seed)) {
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<std::int64_t>(i));
  }
  std::vector<std::int64_t> out;
  for (std::size_t round = 0; out.size() < count; ++round) {
    bool any = false;
    for (const auto& members : by_class) {
      if (round >= members.size() || out.size() >= count) continue;
      out.push_back(members[round]);
      any = true;
    }
    if (!any) break;
  }
  return out;
}

}  // namespace greenloop::trainer
