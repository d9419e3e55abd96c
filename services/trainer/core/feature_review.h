// Rank 0's side of MODE_HITL_FEATURES: once training has warmed up, ask raters one rule question
// per class (which image cells, or words, the model should ignore for every sample of the class),
// shown with the model's own evidence (its mean saliency map, or the words that push it most
// towards the class), or with FeatureFeedback.item_questions, a per-item mask question for each
// of that many training samples, shown with the model's explanation of the sample (its saliency,
// or the mail's words that push it most towards the mail's label); and turn the verdicts that
// come back into feature rules (per-item masks: FeatureRule.sample).
//
// The questions go out once, at FeatureFeedback.ask_after_steps; an enqueue that fails (the
// feedback service is down) is counted in Progress.feedback_errors, logged, and retried every
// kRetrySteps steps: training never waits for people.
//
// This header includes LibTorch.
//
// Thread-safety: used by the training thread of rank 0.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

class FeatureReview final {
 public:
  using Emit = std::function<void(v1::ProgressEventKind, const std::string&)>;
  static constexpr std::uint64_t kRetrySteps = 50;
  // Training images per class whose saliency makes a rule question's evidence.
  static constexpr int kEvidenceImages = 64;

  // `feedback` may be null (nothing is asked). Does not own its arguments.
  FeatureReview(const v1::RunConfig& config, const LoadedDataset& dataset, FeedbackQueue* feedback,
                std::string run_id, Emit emit);

  // After each step: asks the rule questions when they are due, the evidence computed on `model`
  // over `images` (the training split's ImagesTensor) with the labels training sees. Counts the
  // evidence's MACs and the items in `progress`.
  void StepEnded(ClassifierImpl& model, const torch::Tensor& images,
                 const std::vector<std::int64_t>& labels, double macs_per_sample,
                 v1::Progress& progress);

  // Whether the questions went out; a resumed run sets it from its checkpoint.
  bool asked() const { return asked_; }
  void set_asked(bool asked) { asked_ = asked; }
  // Whether the questions went out since the last call (the run checkpoints then); resets.
  bool TakeJustAsked() { return std::exchange(just_asked_, false); }
  // Text: the words each question showed (label: the class; a per-item question: sample, its
  // SampleRef.index), for a checkpoint; a resumed run puts them back.
  const std::vector<v1::FeatureRule>& questions() const { return questions_; }
  void set_questions(std::vector<v1::FeatureRule> questions) { questions_ = std::move(questions); }

  // The rule a feature-rule verdict decides: its consensus cells for its class (text: the words
  // at those positions of the class's question); of a feature-mask verdict, the same for its
  // sample (FeatureRule.sample). nullopt for other verdicts, undecidable ones, empty masks, and
  // text verdicts for a question this run did not ask.
  std::optional<v1::FeatureRule> RuleOf(const v1::Verdict& verdict) const;

 private:
  const v1::RunConfig& config_;
  const LoadedDataset& dataset_;
  FeedbackQueue* feedback_;
  std::string run_id_;
  Emit emit_;
  bool asked_ = false;
  bool just_asked_ = false;
  std::uint64_t next_step_;
  std::vector<v1::FeatureRule> questions_;  // text: the words asked, per class

  // The questions' items: one per class, with the evidence computed on `model`; counts its MACs.
  std::vector<v1::ItemInput> Questions(ClassifierImpl& model, const torch::Tensor& images,
                                       const std::vector<std::int64_t>& labels,
                                       double macs_per_sample, v1::Progress& progress);
  // The per-item questions' items (FeatureFeedback.item_questions): the samples ItemsToAsk()
  // draws, each with the model's explanation of it; counts its MACs.
  std::vector<v1::ItemInput> ItemQuestions(ClassifierImpl& model, const torch::Tensor& images,
                                           const std::vector<std::int64_t>& labels,
                                           double macs_per_sample, v1::Progress& progress);
};

// The training positions of `count` samples drawn at random (seeded by `seed`), in turn from each
// class by `labels` (the labels training sees) while it has samples left: as even over the classes
// as they allow. Fewer when the split holds fewer.
std::vector<std::int64_t> ItemsToAsk(const std::vector<std::int64_t>& labels, int classes,
                                     std::uint32_t count, std::uint64_t seed);

}  // namespace greenloop::trainer
