// Feature feedback in training: which input features a sample's model should ignore (rules over a
// coarse grid of image cells, or words: text_features.h), and the ways training makes it ignore
// them.
//
//   RRR             "Right for the Right Reasons" (Ross, Hughes & Doshi-Velez, IJCAI 2017):
//                   loss = CE + λ Σ_i Σ_x (A_i ⊙ ∂ Σ_k log p̂_k(x_i) / ∂x_i)², A_i the pixel mask of
//                   sample i, by double backpropagation; λ calibrated once, where the penalty
//                   first applies, so that it would equal the cross-entropy if the model's input
//                   gradient were spread evenly over the image (the masked share of its squared
//                   norm): a model that ignores the cells at first does not make λ explode.
//   counterexamples CAIPI (Teso & Kersting, AIES 2019): the masked pixels are replaced by those of
//                   another sample of the batch, the label kept; no extra passes.
//
// The grid: images of R × C pixels are (R / 4) × (C / 4) cells of kFeatureCellPixels², numbered
// row-major (Fashion-MNIST: 7 × 7 = 49 cells; a decoy corner is one cell).
//
// This header includes LibTorch.
//
// Thread-safety: a FeatureMasks is built and changed by the training thread; the free functions
// are thread-safe on distinct tensors.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/models.h"
#include "services/trainer/core/text_features.h"

namespace greenloop::trainer {

// The irrelevant-pixel masks of a run's rules, per class: a rule for every sample applies to all
// classes, a class rule to the samples training sees with that label, a per-item mask to its
// sample only.
class FeatureMasks final {
 public:
  // An empty set for `dataset` (no rule yet). Text datasets have no grid: AddRule refuses.
  explicit FeatureMasks(const LoadedDataset& dataset);

  // Cells of the grid (0 for text).
  int cells() const { return grid_rows_ * grid_cols_; }
  // Whether any rule was added.
  bool empty() const { return rules_ == 0; }
  // Rules added.
  int rules() const { return rules_; }

  // Adds `rule`; INVALID_ARGUMENT naming `field` (e.g. "config.feature_feedback.rules[2]") for a
  // dataset without a grid, no cells, a cell outside the grid or a label outside the classes.
  // `position`: a per-item mask's sample (FeatureRule.sample) as a position in the training split.
  absl::Status AddRule(const v1::FeatureRule& rule, std::string_view field,
                       std::optional<std::int64_t> position = std::nullopt);

  // The pixel masks [B, 1, rows, cols] (1: ignore) of samples whose training labels are `labels`
  // [B] (int64) and, when given, whose training positions are `positions` (per-item masks), and
  // how many of them a rule covers. Undefined tensor when none is covered.
  struct Batch {
    torch::Tensor mask;
    std::int64_t covered = 0;
  };
  Batch ForBatch(const torch::Tensor& labels, std::span<const std::int64_t> positions = {}) const;

 private:
  int rows_ = 0;
  int cols_ = 0;
  int grid_rows_ = 0;
  int grid_cols_ = 0;
  int classes_ = 0;
  int rules_ = 0;
  torch::Tensor class_masks_;                                     // [classes, 1, rows, cols]
  std::unordered_map<std::int64_t, torch::Tensor> sample_masks_;  // position → [1, rows, cols]
};

// What one run's training does with its rules, step by step: masks the covered samples of a batch
// (counterexamples) or adds the RRR penalty to its loss, with λ calibrated once.
class FeatureTraining final {
 public:
  // `config` is RunConfig.feature_feedback; its rules are added by AddConfigRules().
  FeatureTraining(const v1::FeatureFeedback& config, const LoadedDataset& dataset);

  // Adds the config's rules; INVALID_ARGUMENT naming config.feature_feedback.rules[i]. With
  // `model`, removal makes it forget their words first (ForgetWords): a word dropped from every
  // training mail would otherwise keep its random initial row at evaluation.
  absl::Status AddConfigRules(ClassifierImpl* model = nullptr);
  // Adds one more rule (e.g. from raters); errors as FeatureMasks::AddRule, and a per-item mask
  // (FeatureRule.sample) whose sample is not in the training split. With `model`, removal
  // also makes the model forget the rule's words (ForgetWords, Adam's moments of their rows in
  // `optimizer` too): a word dropped from every mail that carried it is never seen again, and what
  // the model learnt from it before the rule would stay (measured on Decoy SpamAssassin with the
  // rules at step 50: 0.83 test without forgetting, against 0.95 for RRR, which unlearns). A
  // checkpoint's rules are added without it (the checkpoint's weights already forgot). A per-item
  // mask is never forgotten: the other mails still carry its words.
  absl::Status AddRule(const v1::FeatureRule& rule, std::string_view field,
                       ClassifierImpl* model = nullptr, torch::optim::Adam* optimizer = nullptr);
  // The rules added after the config's (from raters), in order, for a checkpoint.
  const std::vector<v1::FeatureRule>& added_rules() const { return added_; }
  // Puts a checkpoint's λ back (0: calibrate again).
  void RestorePenaltyWeight(double weight) { weight_ = weight; }

  // Whether any rule is in force, and how many.
  bool active() const { return !masks_.empty() || !words_.empty(); }
  int rules() const { return masks_.rules() + words_.rules(); }
  // λ in force (0 before calibration).
  double penalty_weight() const { return weight_; }

  // The first step whose batch λ may be calibrated on. At initialisation the model's input
  // gradients are near zero, and a λ calibrated there is 10⁴–10⁵ times what works (measured on
  // Decoy Fashion-MNIST: λ from 1 to 100 gives the same accuracy, 10⁵ costs 14 points); until
  // then an uncalibrated RRR rule is not applied.
  static constexpr std::uint64_t kCalibrationStep = 20;

  // Before the forward pass of step `step` (0-based) on a batch whose training labels are
  // `labels` and training positions `positions` (for per-item masks; empty: none apply):
  // counterexamples replace the covered samples' masked pixels; RRR makes the input require
  // gradients when at least half the batch is covered (else AddPenalty gives the covered samples
  // a forward pass of their own); text: REMOVE drops the masked words, counterexamples replace
  // them. Returns the samples the rules act on this step.
  std::int64_t Prepare(ModelInput& input, const torch::Tensor& labels, std::uint64_t step,
                       std::span<const std::int64_t> positions = {});
  // After the forward pass of `model` (RRR): `loss` + λ · penalty / `batch_size`. While λ is not
  // calibrated, `loss` itself, and the batch's (cross-entropy, penalty) pair is kept for
  // TakeCalibration() (images: the evenly-spread penalty). INVALID_ARGUMENT naming
  // config.feature_feedback.penalty_weight when the sum is not finite.
  absl::StatusOr<torch::Tensor> AddPenalty(ClassifierImpl& model, const torch::Tensor& loss,
                                           const torch::Tensor& logits, const ModelInput& input,
                                           double batch_size);

  // Whether step `step` calibrates λ: RRR, no λ yet, a rule in force and step ≥ kCalibrationStep.
  // The same on every rank (rules are applied in broadcast order), so every rank joins the sum.
  bool Calibrating(std::uint64_t step) const;
  // This step's (cross-entropy, evenly-spread penalty) pair, zeros when the batch held no covered
  // sample; resets it.
  std::array<float, 2> TakeCalibration();
  // Sets λ from the pairs summed over the ranks (stays 0 when the penalty sum is too small: the
  // next step tries again).
  void Calibrate(double cross_entropy, double even_penalty);
  // Forward-pass equivalents of one sample that this step cost beyond a plain step, summed over
  // the batch (RRR on images: the double backpropagation, about twice a plain step's three passes,
  // kRrrPasses, over the whole batch when it ran through the step's graph, or over the covered
  // samples plus their own forward pass; text and counterexamples: none); resets it.
  double TakeExtraPasses();
  static constexpr double kRrrPasses = 6.0;

 private:
  v1::FeatureFeedback config_;
  v1::FeatureMethod method_;
  FeatureMasks masks_;                                         // images
  TokenMasks words_;                                           // text
  std::unordered_map<std::uint64_t, std::int64_t> positions_;  // SampleRef.index → position
  double weight_ = 0;
  std::vector<v1::FeatureRule> added_;
  std::array<float, 2> calibration_ = {0, 0};
  // The prepared batch's pixel masks (images) or masked tokens (text); undefined when none is
  // covered.
  torch::Tensor batch_mask_;
  // RRR on a few covered images (or the ones drawn, FeatureFeedback.penalty_samples): their rows
  // in the batch (batch_mask_ holds only theirs); undefined when the penalty runs through the
  // step's own graph.
  torch::Tensor batch_rows_;
  double extra_passes_ = 0;  // this step's, for TakeExtraPasses()
  // RRR with penalty_samples: covered samples / those drawn (1 when all take the penalty).
  double penalty_scale_ = 1.0;
  // Adds `rule` to the masks (and forgets its words, see AddRule), without recording it.
  absl::Status Add(const v1::FeatureRule& rule, std::string_view field, ClassifierImpl* model,
                   torch::optim::Adam* optimizer);
  // A per-item mask's sample as a training position; INVALID_ARGUMENT naming `field` when the
  // training split lacks it. nullopt for other rules.
  absl::StatusOr<std::optional<std::int64_t>> PositionOf(const v1::FeatureRule& rule,
                                                         std::string_view field) const;
  // `total`, or INVALID_ARGUMENT naming the penalty weight when it is not finite.
  absl::StatusOr<torch::Tensor> Checked(const torch::Tensor& total,
                                        const torch::Tensor& penalty) const;
};

// The input-gradient explanation the RRR penalty and the saliency score read: ∂ Σ_k log p̂_k / ∂x
// of every sample, [B, 1, rows, cols]. With `create_graph` the result stays differentiable (for
// the penalty); `values` must require gradients.
torch::Tensor LogProbInputGradient(const torch::Tensor& logits, const torch::Tensor& values,
                                   bool create_graph);

// The RRR penalty Σ_i Σ_x (mask ⊙ gradient)², differentiable; `values` requires gradients and
// `logits` were computed from it.
torch::Tensor RrrPenalty(const torch::Tensor& logits, const torch::Tensor& values,
                         const torch::Tensor& mask);

// `values` with the pixels under `mask` replaced by the same pixels of another sample of the batch
// (counterexamples: the masked region stays a region real images have, but no longer tells the
// sample's class), along a random cycle drawn from torch's global generator (seeded by the run).
// A batch of one gets uniform noise over the normalised pixel range instead.
torch::Tensor Counterexamples(const torch::Tensor& values, const torch::Tensor& mask);

// The share of the input-gradient saliency |∂ Σ_k log p̂_k / ∂x| of `model` that falls on each
// image's decoy cell (Split::decoy_cells), averaged over the images of `split`; nullopt when the
// split has no decoy. In batches of 512, outside autograd of the model's parameters. Text: the
// share of the words' contributions the planted words carry (DecoyContributionShare); nullopt for a
// model whose contributions are not exact (the Transformer).
std::optional<double> DecoySaliency(ClassifierImpl& model, const LoadedDataset& dataset,
                                    const Split& split, const torch::Tensor& images);

// The evidence shown with a rule question, one picture per class: the mean of up to
// `per_class` training images of that class (by the label training sees) on the left, the mean
// input-gradient saliency of `model` on them on the right (scaled to 0..255), rows × 2·cols
// greyscale bytes each. Outside autograd of the model's parameters; costs about 3 forward passes
// per image (SaliencyMacsPasses).
std::vector<std::vector<std::uint8_t>> RuleEvidence(ClassifierImpl& model,
                                                    const LoadedDataset& dataset,
                                                    const std::vector<std::int64_t>& labels,
                                                    const torch::Tensor& images, int per_class);
inline constexpr double kSaliencyPasses = 3.0;

// The evidence shown with a per-item mask question, one picture per training position of
// `positions` (rows of `images`, the training split's ImagesTensor): the sample on the left, the
// input-gradient saliency of `model` on it on the right (scaled to 0..255), rows × 2·cols greyscale
// bytes each. Outside autograd of the model's parameters; about kSaliencyPasses forward passes per
// sample.
std::vector<std::vector<std::uint8_t>> SampleEvidence(ClassifierImpl& model,
                                                      const torch::Tensor& images,
                                                      const std::vector<std::int64_t>& positions);

// What `model` looks at for each class: images, RuleEvidence over up to 64 test images per class
// (their clean labels), the classes' pictures stacked in one PNG scaled 3×; text, the
// kRuleWords words that pull it most towards each class (TopTokens, the training labels).
v1::Explanation Explain(ClassifierImpl& model, const LoadedDataset& dataset,
                        const torch::Tensor& test_images);

// The λ that makes λ · `penalty` equal `cross_entropy`; nullopt when the penalty is too small to
// calibrate on (below 1e-12) or either value is not finite.
std::optional<double> CalibratePenaltyWeight(double cross_entropy, double penalty);

}  // namespace greenloop::trainer
