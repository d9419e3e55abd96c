#include "services/trainer/core/features.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "services/trainer/core/decoy.h"
#include "services/trainer/core/png.h"
#include "services/trainer/core/rater_items.h"

namespace greenloop::trainer {
namespace {

constexpr std::int64_t kSaliencyBatch = 512;

}  // namespace

FeatureMasks::FeatureMasks(const LoadedDataset& dataset)
    : rows_(dataset.image_rows),
      cols_(dataset.image_cols),
      grid_rows_(dataset.image_pixels() > 0 ? dataset.image_rows / kFeatureCellPixels : 0),
      grid_cols_(dataset.image_pixels() > 0 ? dataset.image_cols / kFeatureCellPixels : 0),
      classes_(dataset.num_classes()) {
  if (cells() > 0) class_masks_ = torch::zeros({classes_, 1, rows_, cols_}, torch::kFloat32);
}

absl::Status FeatureMasks::AddRule(const v1::FeatureRule& rule, std::string_view field) {
  if (cells() == 0) {
    return absl::InvalidArgumentError(
        fmt::format("{}: only image datasets have feature cells", field));
  }
  if (rule.irrelevant_cells().empty()) {
    return absl::InvalidArgumentError(fmt::format("{}.irrelevant_cells is empty", field));
  }
  if (rule.has_label() && rule.label() >= static_cast<std::uint32_t>(classes_)) {
    return absl::InvalidArgumentError(
        fmt::format("{}.label {} is not one of the {} classes", field, rule.label(), classes_));
  }
  torch::Tensor cell_mask = torch::zeros({grid_rows_, grid_cols_}, torch::kFloat32);
  for (int i = 0; i < rule.irrelevant_cells_size(); ++i) {
    const std::uint32_t cell = rule.irrelevant_cells(i);
    if (cell >= static_cast<std::uint32_t>(cells())) {
      return absl::InvalidArgumentError(fmt::format(
          "{}.irrelevant_cells[{}] = {} is outside the {} cells", field, i, cell, cells()));
    }
    cell_mask[cell / grid_cols_][cell % grid_cols_] = 1.0f;
  }
  const torch::Tensor pixels = cell_mask.repeat_interleave(kFeatureCellPixels, 0)
                                   .repeat_interleave(kFeatureCellPixels, 1)
                                   .unsqueeze(0);
  if (rule.has_label()) {
    class_masks_[rule.label()] = torch::maximum(class_masks_[rule.label()], pixels);
  } else {
    class_masks_ = torch::maximum(class_masks_, pixels.unsqueeze(0));
  }
  ++rules_;
  return absl::OkStatus();
}

FeatureMasks::Batch FeatureMasks::ForLabels(const torch::Tensor& labels) const {
  if (empty()) return {};
  Batch batch;
  batch.mask = class_masks_.index_select(0, labels);
  batch.covered = batch.mask.flatten(1).amax(1).gt(0).sum().item<std::int64_t>();
  if (batch.covered == 0) return {};
  return batch;
}

FeatureTraining::FeatureTraining(const v1::FeatureFeedback& config, const LoadedDataset& dataset)
    : config_(config),
      method_(config.method() == v1::FEATURE_METHOD_UNSPECIFIED ? v1::FEATURE_METHOD_RRR
                                                                : config.method()),
      masks_(dataset),
      words_(dataset),
      weight_(config.penalty_weight()) {}

absl::Status FeatureTraining::AddConfigRules(ClassifierImpl* model) {
  for (int i = 0; i < config_.rules_size(); ++i) {
    const std::string field = fmt::format("config.feature_feedback.rules[{}]", i);
    absl::Status s = config_.rules(i).irrelevant_tokens().empty()
                         ? masks_.AddRule(config_.rules(i), field)
                         : words_.AddRule(config_.rules(i), field);
    if (!s.ok()) return s;
    if (model != nullptr && method_ == v1::FEATURE_METHOD_REMOVE) {
      ForgetWords(*model, nullptr, words_.Ids(config_.rules(i)));
    }
  }
  return absl::OkStatus();
}

absl::Status FeatureTraining::AddRule(const v1::FeatureRule& rule, std::string_view field,
                                      ClassifierImpl* model, torch::optim::Adam* optimizer) {
  absl::Status s =
      rule.irrelevant_tokens().empty() ? masks_.AddRule(rule, field) : words_.AddRule(rule, field);
  if (!s.ok()) return s;
  added_.push_back(rule);
  if (model != nullptr && method_ == v1::FEATURE_METHOD_REMOVE) {
    ForgetWords(*model, optimizer, words_.Ids(rule));
  }
  return s;
}

std::int64_t FeatureTraining::Prepare(ModelInput& input, const torch::Tensor& labels,
                                      std::uint64_t step) {
  std::int64_t covered = 0;
  if (input.offsets.defined()) {
    TokenMasks::Batch batch = words_.ForInput(input, labels);
    batch_mask_ = batch.masked;
    covered = batch.covered;
  } else {
    FeatureMasks::Batch batch = masks_.ForLabels(labels);
    batch_mask_ = batch.mask;
    covered = batch.covered;
  }
  if (covered == 0) return 0;
  if (method_ == v1::FEATURE_METHOD_RRR && weight_ == 0 && step < kCalibrationStep) {
    batch_mask_ = torch::Tensor();  // not yet: see kCalibrationStep
    return 0;
  }
  if (input.offsets.defined()) {
    if (method_ == v1::FEATURE_METHOD_REMOVE) input = DropTokens(input, batch_mask_);
    if (method_ == v1::FEATURE_METHOD_COUNTEREXAMPLE) {
      input.values = ReplaceTokens(input.values, batch_mask_);
    }
    return covered;
  }
  if (method_ == v1::FEATURE_METHOD_COUNTEREXAMPLE) {
    input.values = Counterexamples(input.values, batch_mask_);
  } else {
    input.values = input.values.detach().requires_grad_(true);
  }
  return covered;
}

absl::StatusOr<torch::Tensor> FeatureTraining::AddPenalty(ClassifierImpl& model,
                                                          const torch::Tensor& loss,
                                                          const torch::Tensor& logits,
                                                          const ModelInput& input,
                                                          double batch_size) {
  if (method_ != v1::FEATURE_METHOD_RRR || !batch_mask_.defined()) return loss;
  if (input.offsets.defined()) {
    // Text: the contributions are exact, and a model that has learnt the words carries them
    // from the first steps on; λ is calibrated on the penalty itself.
    const torch::Tensor penalty = ContributionPenalty(model, input, batch_mask_) / batch_size;
    if (weight_ == 0) {
      calibration_ = {static_cast<float>(loss.item<double>()),
                      static_cast<float>(penalty.item<double>())};
      return loss;
    }
    return Checked(loss + weight_ * penalty, penalty);
  }
  const torch::Tensor gradient = LogProbInputGradient(logits, input.values, /*create_graph=*/true);
  const torch::Tensor penalty = (batch_mask_ * gradient).pow(2).sum() / batch_size;
  if (weight_ == 0) {
    // The penalty the masked pixels would carry if the model's input gradient were spread evenly
    // over the image: calibrating on it keeps λ finite when the model ignores the cells at first.
    // Every rank's pair is summed before λ is set (Calibrate), so all ranks agree.
    const double masked_share =
        batch_mask_.sum().item<double>() / static_cast<double>(batch_mask_.numel());
    calibration_ = {static_cast<float>(loss.item<double>()),
                    static_cast<float>(gradient.detach().pow(2).sum().item<double>() / batch_size *
                                       masked_share)};
    return loss;
  }
  return Checked(loss + weight_ * penalty, penalty);
}

absl::StatusOr<torch::Tensor> FeatureTraining::Checked(const torch::Tensor& total,
                                                       const torch::Tensor& penalty) const {
  if (!std::isfinite(total.item<double>())) {
    return absl::InvalidArgumentError(fmt::format(
        "config.feature_feedback.penalty_weight: λ = {} makes the loss non-finite (penalty {}); "
        "set a smaller λ or 0 to calibrate it",
        weight_, penalty.item<double>()));
  }
  return total;
}

bool FeatureTraining::Calibrating(std::uint64_t step) const {
  return method_ == v1::FEATURE_METHOD_RRR && weight_ == 0 && active() && step >= kCalibrationStep;
}

std::array<float, 2> FeatureTraining::TakeCalibration() {
  const std::array<float, 2> out = calibration_;
  calibration_ = {0, 0};
  return out;
}

void FeatureTraining::Calibrate(double cross_entropy, double even_penalty) {
  weight_ = CalibratePenaltyWeight(cross_entropy, even_penalty).value_or(0);
}

double FeatureTraining::ExtraPassesPerCovered() const {
  return method_ == v1::FEATURE_METHOD_RRR && masks_.cells() > 0 ? 6.0 : 0.0;
}

torch::Tensor LogProbInputGradient(const torch::Tensor& logits, const torch::Tensor& values,
                                   bool create_graph) {
  const torch::Tensor summed = torch::log_softmax(logits, 1).sum();
  return torch::autograd::grad({summed}, {values}, /*grad_outputs=*/{},
                               /*retain_graph=*/true, create_graph)[0];
}

torch::Tensor RrrPenalty(const torch::Tensor& logits, const torch::Tensor& values,
                         const torch::Tensor& mask) {
  const torch::Tensor gradient = LogProbInputGradient(logits, values, /*create_graph=*/true);
  return (mask * gradient).pow(2).sum();
}

torch::Tensor Counterexamples(const torch::Tensor& values, const torch::Tensor& mask) {
  const std::int64_t n = values.size(0);
  if (n < 2) {
    constexpr float kLow = (0.0f - kFashionMean) / kFashionStd;
    constexpr float kHigh = (1.0f - kFashionMean) / kFashionStd;
    return values * (1 - mask) + (torch::rand_like(values) * (kHigh - kLow) + kLow) * mask;
  }
  // A random cycle through the batch: sample order[i] takes its masked pixels from order[i + 1].
  const torch::Tensor order = torch::randperm(n, torch::kInt64);
  const torch::Tensor donors =
      torch::empty_like(values).index_copy_(0, order, values.index_select(0, order.roll(-1)));
  return values * (1 - mask) + donors * mask;
}

std::optional<double> DecoySaliency(ClassifierImpl& model, const LoadedDataset& dataset,
                                    const Split& split, const torch::Tensor& images) {
  if (!dataset.vocabulary.empty()) return DecoyContributionShare(model, split);
  if (dataset.image_pixels() == 0 || split.decoy_cells.empty() || split.size() == 0) {
    return std::nullopt;
  }
  const bool was_training = model.is_training();
  model.eval();
  const auto n = static_cast<std::int64_t>(split.size());
  double share_sum = 0;
  for (std::int64_t begin = 0; begin < n; begin += kSaliencyBatch) {
    const std::int64_t end = std::min(n, begin + kSaliencyBatch);
    torch::Tensor x = images.slice(0, begin, end).clone().requires_grad_(true);
    const torch::Tensor logits = model.forward(ModelInput{x, {}});
    // [B, grid rows, grid cols]: the saliency summed per cell.
    const torch::Tensor cells = LogProbInputGradient(logits, x, false)
                                    .abs()
                                    .squeeze(1)
                                    .unfold(1, kFeatureCellPixels, kFeatureCellPixels)
                                    .unfold(2, kFeatureCellPixels, kFeatureCellPixels)
                                    .sum({3, 4})
                                    .flatten(1);
    const torch::Tensor total = cells.sum(1).clamp_min(1e-30);
    std::vector<std::int64_t> decoy(split.decoy_cells.begin() + begin,
                                    split.decoy_cells.begin() + end);
    const torch::Tensor index = torch::tensor(decoy, torch::kInt64).unsqueeze(1);
    share_sum += (cells.gather(1, index).squeeze(1) / total).sum().item<double>();
  }
  model.train(was_training);
  return share_sum / static_cast<double>(n);
}

std::vector<std::vector<std::uint8_t>> RuleEvidence(ClassifierImpl& model,
                                                    const LoadedDataset& dataset,
                                                    const std::vector<std::int64_t>& labels,
                                                    const torch::Tensor& images, int per_class) {
  const int classes = dataset.num_classes();
  const int rows = dataset.image_rows;
  const int cols = dataset.image_cols;
  std::vector<std::vector<std::int64_t>> members(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    auto& m = members[static_cast<std::size_t>(labels[i])];
    if (static_cast<int>(m.size()) < per_class) m.push_back(static_cast<std::int64_t>(i));
  }
  const bool was_training = model.is_training();
  model.eval();
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(classes));
  for (int c = 0; c < classes; ++c) {
    std::vector<std::uint8_t>& picture = out[static_cast<std::size_t>(c)];
    picture.assign(static_cast<std::size_t>(rows * 2 * cols), 0);
    const auto& m = members[static_cast<std::size_t>(c)];
    if (m.empty()) continue;
    const torch::Tensor index = torch::tensor(m, torch::kInt64);
    torch::Tensor x = images.index_select(0, index).clone().requires_grad_(true);
    const torch::Tensor saliency =
        LogProbInputGradient(model.forward(ModelInput{x, {}}), x, false).abs().mean(0)[0];
    const torch::Tensor mean = ((x.detach().mean(0)[0] * kFashionStd + kFashionMean) * 255)
                                   .clamp(0, 255)
                                   .to(torch::kUInt8)
                                   .contiguous();
    const torch::Tensor heat = (saliency / saliency.max().clamp_min(1e-30) * 255)
                                   .clamp(0, 255)
                                   .to(torch::kUInt8)
                                   .contiguous();
    const std::uint8_t* left = mean.data_ptr<std::uint8_t>();
    const std::uint8_t* right = heat.data_ptr<std::uint8_t>();
    for (int r = 0; r < rows; ++r) {
      std::copy_n(left + r * cols, cols, picture.data() + r * 2 * cols);
      std::copy_n(right + r * cols, cols, picture.data() + r * 2 * cols + cols);
    }
  }
  model.train(was_training);
  return out;
}

v1::Explanation Explain(ClassifierImpl& model, const LoadedDataset& dataset,
                        const torch::Tensor& test_images) {
  v1::Explanation out;
  if (!dataset.vocabulary.empty()) {
    for (const auto& words : TopTokens(model, dataset, dataset.train.labels, kRuleWords)) {
      *out.add_class_words()->mutable_words() = {words.begin(), words.end()};
    }
    return out;
  }
  const std::vector<std::vector<std::uint8_t>> pictures =
      RuleEvidence(model, dataset, dataset.test.clean_labels, test_images, 64);
  std::vector<std::uint8_t> stacked;
  for (const auto& p : pictures) stacked.insert(stacked.end(), p.begin(), p.end());
  const int rows = dataset.image_rows * static_cast<int>(pictures.size());
  out.set_png(EncodeGreyscalePng(stacked, rows, 2 * dataset.image_cols, 3));
  return out;
}

std::optional<double> CalibratePenaltyWeight(double cross_entropy, double penalty) {
  if (!std::isfinite(cross_entropy) || !std::isfinite(penalty) || penalty < 1e-12) {
    return std::nullopt;
  }
  return cross_entropy / penalty;
}

}  // namespace greenloop::trainer
