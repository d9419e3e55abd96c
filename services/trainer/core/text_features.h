// Feature feedback for text (the bag-of-words model): which words of a mail the model should
// ignore, per class, and what training does with them.
//
//   remove          the masked words are dropped from the mail before the bag is pooled, so they
//                   count toward neither the sum nor the mean's length (a zeroed embedding would
//                   still lengthen the bag and dilute the others);
//   counterexamples each masked word is replaced by a word drawn from the batch's mails;
//   RRR             λ Σ over the masked occurrences of a covered mail of the squared contribution
//                   of the word to the centred logits: its embedding row times the output weights,
//                   over the mail's length; exact for the linear model after pooling, so no double
//                   backpropagation.
//
// And the explanation raters see with a rule question: the words that push the model most
// towards a class, by that same contribution.
//
// This header includes LibTorch.
//
// Thread-safety: a TokenMasks is built and changed by the training thread; the free functions are
// thread-safe on distinct tensors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"

namespace greenloop::trainer {

// The words of a run's rules, per class: a rule for every mail applies to all classes, a class
// rule to the mails training sees with that label, a per-item mask to its mail only.
class TokenMasks final {
 public:
  // An empty set for `dataset` (no rule yet). Image datasets have no words: AddRule refuses.
  explicit TokenMasks(const LoadedDataset& dataset);

  bool empty() const { return rules_ == 0; }
  int rules() const { return rules_; }

  // Adds `rule`; INVALID_ARGUMENT naming `field` for a dataset without words, no words, a word the
  // vocabulary lacks or a label outside the classes. `position`: a per-item mask's mail
  // (FeatureRule.sample) as a position in the training split.
  absl::Status AddRule(const v1::FeatureRule& rule, std::string_view field,
                       std::optional<std::int64_t> position = std::nullopt);

  // Which tokens of `input` (a batch of mails whose training labels are `labels` [B] and, when
  // given, whose training positions are `positions`, for per-item masks) a rule masks, [T] bool,
  // and how many mails hold one. Undefined tensor when none does.
  struct Batch {
    torch::Tensor masked;
    std::int64_t covered = 0;
  };
  Batch ForInput(const ModelInput& input, const torch::Tensor& labels,
                 std::span<const std::int64_t> positions = {}) const;

  // The token ids of the words of `rule` the vocabulary holds.
  std::vector<std::int64_t> Ids(const v1::FeatureRule& rule) const;

 private:
  int classes_ = 0;
  int rules_ = 0;
  std::unordered_map<std::string, std::int64_t> ids_;
  torch::Tensor class_masks_;                                     // [classes, vocabulary] bool
  std::unordered_map<std::int64_t, torch::Tensor> sample_words_;  // position → ids [n] int64
};

// Makes `model` forget the words `ids`: their embedding rows zeroed and, with `optimizer`, the
// same rows of Adam's moment estimates, so that no momentum from before moves them again.
void ForgetWords(ClassifierImpl& model, torch::optim::Adam* optimizer,
                 const std::vector<std::int64_t>& ids);

// The mail each token of a bag-of-words input belongs to, [T] int64.
torch::Tensor TokenSamples(const ModelInput& input);

// `input` without the tokens `masked` [T] marks: values and offsets rebuilt, a mail left empty
// pooling to zeros.
ModelInput DropTokens(const ModelInput& input, const torch::Tensor& masked);

// `values` [T] with each masked token replaced by an unmasked token of the batch drawn at random
// (torch's global generator, seeded by the run); by the unknown token when every token is masked.
torch::Tensor ReplaceTokens(const torch::Tensor& values, const torch::Tensor& masked);

// The RRR penalty for text: Σ over masked tokens of ‖centred contribution / mail length‖²,
// differentiable in the model's parameters. Zero (a defined scalar) when nothing is masked.
torch::Tensor ContributionPenalty(ClassifierImpl& model, const ModelInput& input,
                                  const torch::Tensor& masked);

// The evidence of a rule question, per class: up to `per_class` words that push `model` most
// towards the class (contribution to its logit minus the mean over classes), strongest first,
// among the words at least 2 % of the class's training mails hold (by `labels`, the labels
// training sees), so that raters judge words the class really uses.
std::vector<std::vector<std::string>> TopTokens(ClassifierImpl& model, const LoadedDataset& dataset,
                                                const std::vector<std::int64_t>& labels,
                                                int per_class);

// The explanation of one training mail (position `position`, training label `label`): up to
// `count` of its distinct words that push `model` most towards `label` (centred contribution times
// the word's share of the mail's bag), strongest first; the unknown word is never shown.
std::vector<std::string> MailTopTokens(ClassifierImpl& model, const LoadedDataset& dataset,
                                       std::size_t position, std::int64_t label, int count);

// The share of each mail's summed |centred contribution| that its planted decoy words carry,
// averaged over the mails of `split`; nullopt without a decoy.
std::optional<double> DecoyContributionShare(ClassifierImpl& model, const Split& split);

}  // namespace greenloop::trainer
