// What raters are shown for a training sample: the item the trainer enqueues.
//
// ItemFor() builds the ItemInput of one training sample: its SampleRef, its display payload (a
// greyscale PNG for images, the mail's text for SpamAssassin) and the label training uses now.
// The caller adds the model's prediction and the priority it knows. LabelCampaignFor() is the
// campaign a run's label questions go to, RuleCampaignFor() the one its feature rules go to
// (MODE_HITL_FEATURES), MaskCampaignFor() the one its per-item masks go to
// (FeatureFeedback.item_questions): the one place a run's campaign is described.
//
// Thread-safety: a pure function of the dataset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "greenloop/v1/feedback.pb.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"

namespace greenloop::trainer {

// The item of training sample `position` of `dataset`, whose current label is `given_label`.
// `position` must be inside the training split.
v1::ItemInput ItemFor(const LoadedDataset& dataset, std::size_t position, std::int64_t given_label);

// The label-choice campaign of run `run_id`: its name, the dataset's classes as the labels, and
// k, gold share and display from `target`.
v1::CampaignSpec LabelCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                  const v1::FeedbackTarget& target);

// Words a text rule question shows (RuleItemForWords).
inline constexpr int kRuleWords = 12;

// The rule campaign of run `run_id` (MODE_HITL_FEATURES): one QUESTION_KIND_FEATURE_RULE item
// per class over the dataset's 7 × 7 feature grid (text: a 1 × kRuleWords grid, cell i the item's
// i-th word), the classes as labels, and k and agreement from `target`.
v1::CampaignSpec RuleCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                 const v1::FeedbackTarget& target);

// The per-item mask campaign of run `run_id` (FeatureFeedback.item_questions): one
// QUESTION_KIND_FEATURE_MASK item per sample asked, over the grid RuleCampaignFor() uses (images:
// two panels, the sample and its saliency), the classes as labels, k and agreement from `target`.
v1::CampaignSpec MaskCampaignFor(const LoadedDataset& dataset, const std::string& run_id,
                                 const v1::FeedbackTarget& target);

// The per-item mask item of training sample `position`, whose training label is `given_label`:
// its SampleRef, its payload the model's evidence `evidence` on it (rows × 2·cols: the sample on
// the left, its saliency on the right; SampleEvidence in features.h).
v1::ItemInput MaskItemFor(const LoadedDataset& dataset, std::size_t position,
                          std::int64_t given_label, std::span<const std::uint8_t> evidence);

// The per-item mask item of training mail `position`: its payload the mail's words that push the
// model most towards `given_label` (MailTopTokens in text_features.h), one per line.
v1::ItemInput MaskItemForWords(const LoadedDataset& dataset, std::size_t position,
                               std::int64_t given_label, const std::vector<std::string>& words);

// The rule item of class `label`: its key is the class (SampleRef index = label), its payload the
// model's evidence `evidence`, a rows × 2·cols greyscale picture (the class's mean image on the
// left, where the model looks on the right; RuleEvidence in features.h).
v1::ItemInput RuleItemFor(const LoadedDataset& dataset, std::int64_t label,
                          std::span<const std::uint8_t> evidence);

// The rule item of class `label` of a text dataset: its payload the words that push the model
// most towards the class (TopTokens in text_features.h), one per line, at most kRuleWords.
v1::ItemInput RuleItemForWords(const LoadedDataset& dataset, std::int64_t label,
                               const std::vector<std::string>& words);

}  // namespace greenloop::trainer
