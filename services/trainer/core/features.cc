#include "services/trainer/core/features.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/status/status.h"
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

absl::Status FeatureMasks::AddRule(const v1::FeatureRule& rule, std::string_view field,
                                   std::optional<std::int64_t> position) {
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
  if (position) {
    torch::Tensor& mask = sample_masks_[*position];
    mask = mask.defined() ? torch::maximum(mask, pixels) : pixels;
  } else if (rule.has_label()) {
    class_masks_[rule.label()] = torch::maximum(class_masks_[rule.label()], pixels);
  } else {
    class_masks_ = torch::maximum(class_masks_, pixels.unsqueeze(0));
  }
  ++rules_;
  return absl::OkStatus();
}

FeatureMasks::Batch FeatureMasks::ForBatch(const torch::Tensor& labels,
                                           std::span<const std::int64_t> positions) const {
  if (empty()) return {};
  Batch batch;
  batch.mask = class_masks_.index_select(0, labels);
  for (std::size_t i = 0; i < positions.size() && !sample_masks_.empty(); ++i) {
    const auto it = sample_masks_.find(positions[i]);
    if (it == sample_masks_.end()) continue;
    const auto row = static_cast<std::int64_t>(i);
    batch.mask[row] = torch::maximum(batch.mask[row], it->second);
  }
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
      weight_(config.penalty_weight()) {
  positions_.reserve(dataset.train.refs.size());
  for (std::size_t i = 0; i < dataset.train.refs.size(); ++i) {
    positions_.emplace(dataset.train.refs[i], static_cast<std::int64_t>(i));
  }
}

absl::StatusOr<std::optional<std::int64_t>> FeatureTraining::PositionOf(
    const v1::FeatureRule& rule, std::string_view field) const {
  if (!rule.has_sample()) return std::optional<std::int64_t>();
  if (rule.has_label()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: a per-item mask (sample) covers one sample: no label", field));
  }
  const auto it = positions_.find(rule.sample());
  if (it == positions_.end()) {
    return absl::InvalidArgumentError(
        fmt::format("{}.sample {} is not in the run's training split", field, rule.sample()));
  }
  return std::optional<std::int64_t>(it->second);
}

absl::Status FeatureTraining::AddConfigRules(ClassifierImpl* model) {
  for (int i = 0; i < config_.rules_size(); ++i) {
    const std::string field = fmt::format("config.feature_feedback.rules[{}]", i);
    GREENLOOP_RETURN_IF_ERROR(Add(config_.rules(i), field, model, nullptr));
  }
  return absl::OkStatus();
}

absl::Status FeatureTraining::AddRule(const v1::FeatureRule& rule, std::string_view field,
                                      ClassifierImpl* model, torch::optim::Adam* optimizer) {
  GREENLOOP_RETURN_IF_ERROR(Add(rule, field, model, optimizer));
  added_.push_back(rule);
  return absl::OkStatus();
}

absl::Status FeatureTraining::Add(const v1::FeatureRule& rule, std::string_view field,
                                  ClassifierImpl* model, torch::optim::Adam* optimizer) {
  absl::StatusOr<std::optional<std::int64_t>> position = PositionOf(rule, field);
  if (!position.ok()) return position.status();
  GREENLOOP_RETURN_IF_ERROR(rule.irrelevant_tokens().empty()
                                ? masks_.AddRule(rule, field, *position)
                                : words_.AddRule(rule, field, *position));
  if (model != nullptr && method_ == v1::FEATURE_METHOD_REMOVE && !rule.has_sample()) {
    ForgetWords(*model, optimizer, words_.Ids(rule));
  }
  return absl::OkStatus();
}

std::int64_t FeatureTraining::Prepare(ModelInput& input, const torch::Tensor& labels,
                                      std::uint64_t step, std::span<const std::int64_t> positions) {
  std::int64_t covered = 0;
  batch_rows_ = torch::Tensor();
  if (input.offsets.defined()) {
    TokenMasks::Batch batch = words_.ForInput(input, labels, positions);
    batch_mask_ = batch.masked;
    covered = batch.covered;
  } else {
    FeatureMasks::Batch batch = masks_.ForBatch(labels, positions);
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
    return covered;
  }
  const std::int64_t batch = input.values.size(0);
  const auto limit = static_cast<std::int64_t>(config_.penalty_samples());
  penalty_scale_ = 1.0;
  if (limit == 0 && 2 * covered >= batch) {
    // Most of the batch is covered: the double backpropagation runs through the step's own graph,
    // over every sample of the batch.
    input.values = input.values.detach().requires_grad_(true);
    extra_passes_ = kRrrPasses * static_cast<double>(batch);
    return covered;
  }
  // A few covered samples (per-item masks), or a drawn few of them (penalty_samples): a forward
  // pass of their own keeps the double backpropagation off the others.
  batch_rows_ = batch_mask_.flatten(1).amax(1).gt(0).nonzero().squeeze(1);
  if (limit > 0 && covered > limit) {
    const torch::Tensor drawn = torch::randperm(covered, torch::kInt64).slice(0, 0, limit);
    batch_rows_ = batch_rows_.index_select(0, drawn);
    penalty_scale_ = static_cast<double>(covered) / static_cast<double>(limit);
  }
  batch_mask_ = batch_mask_.index_select(0, batch_rows_);
  extra_passes_ = (kRrrPasses + 1) * static_cast<double>(batch_rows_.size(0));
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
  torch::Tensor gradient;
  if (batch_rows_.defined()) {
    torch::Tensor x = input.values.index_select(0, batch_rows_).detach().requires_grad_(true);
    gradient = LogProbInputGradient(model.forward(ModelInput{x, {}}), x, /*create_graph=*/true);
  } else {
    gradient = LogProbInputGradient(logits, input.values, /*create_graph=*/true);
  }
  const torch::Tensor penalty = (batch_mask_ * gradient).pow(2).sum() * penalty_scale_ / batch_size;
  if (weight_ == 0) {
    // The penalty the masked pixels would carry if the model's input gradient were spread evenly
    // over the image: calibrating on it keeps λ finite when the model ignores the cells at first.
    // Every rank's pair is summed before λ is set (Calibrate), so all ranks agree.
    const double masked_share =
        batch_mask_.sum().item<double>() / static_cast<double>(batch_mask_.numel());
    calibration_ = {static_cast<float>(loss.item<double>()),
                    static_cast<float>(gradient.detach().pow(2).sum().item<double>() *
                                       penalty_scale_ / batch_size * masked_share)};
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

double FeatureTraining::TakeExtraPasses() { return std::exchange(extra_passes_, 0.0); }

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
  if (!dataset.vocabulary.empty()) {
    // Only the bag of words' contributions are exact; a Transformer's share is not measured.
    if (!model.ExplainsTokens()) return std::nullopt;
    return DecoyContributionShare(model, split);
  }
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

namespace {

// One evidence picture: `image` [rows, cols] (normalised pixels) on the left, `saliency`
// [rows, cols] scaled to its maximum on the right, rows × 2·cols greyscale bytes.
std::vector<std::uint8_t> TwoPanels(const torch::Tensor& image, const torch::Tensor& saliency) {
  const auto rows = static_cast<int>(image.size(0));
  const auto cols = static_cast<int>(image.size(1));
  const torch::Tensor left =
      ((image * kFashionStd + kFashionMean) * 255).clamp(0, 255).to(torch::kUInt8).contiguous();
  const torch::Tensor right = (saliency / saliency.max().clamp_min(1e-30) * 255)
                                  .clamp(0, 255)
                                  .to(torch::kUInt8)
                                  .contiguous();
  std::vector<std::uint8_t> picture(static_cast<std::size_t>(rows * 2 * cols), 0);
  const std::uint8_t* l = left.data_ptr<std::uint8_t>();
  const std::uint8_t* r = right.data_ptr<std::uint8_t>();
  for (int y = 0; y < rows; ++y) {
    std::copy_n(l + y * cols, cols, picture.data() + y * 2 * cols);
    std::copy_n(r + y * cols, cols, picture.data() + y * 2 * cols + cols);
  }
  return picture;
}

// |∂ Σ_k log p̂_k / ∂x| of `model` on `x` [B, 1, rows, cols], [B, rows, cols].
torch::Tensor Saliency(ClassifierImpl& model, const torch::Tensor& x) {
  torch::Tensor leaf = x.clone().requires_grad_(true);
  return LogProbInputGradient(model.forward(ModelInput{leaf, {}}), leaf, false).abs().squeeze(1);
}

}  // namespace

std::vector<std::vector<std::uint8_t>> RuleEvidence(ClassifierImpl& model,
                                                    const LoadedDataset& dataset,
                                                    const std::vector<std::int64_t>& labels,
                                                    const torch::Tensor& images, int per_class) {
  const int classes = dataset.num_classes();
  std::vector<std::vector<std::int64_t>> members(static_cast<std::size_t>(classes));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    auto& m = members[static_cast<std::size_t>(labels[i])];
    if (static_cast<int>(m.size()) < per_class) m.push_back(static_cast<std::int64_t>(i));
  }
  const bool was_training = model.is_training();
  model.eval();
  std::vector<std::vector<std::uint8_t>> out(static_cast<std::size_t>(classes));
  for (int c = 0; c < classes; ++c) {
    const auto& m = members[static_cast<std::size_t>(c)];
    if (m.empty()) {
      out[static_cast<std::size_t>(c)].assign(
          static_cast<std::size_t>(dataset.image_rows * 2 * dataset.image_cols), 0);
      continue;
    }
    const torch::Tensor x = images.index_select(0, torch::tensor(m, torch::kInt64));
    out[static_cast<std::size_t>(c)] = TwoPanels(x.mean(0)[0], Saliency(model, x).mean(0));
  }
  model.train(was_training);
  return out;
}

std::vector<std::vector<std::uint8_t>> SampleEvidence(ClassifierImpl& model,
                                                      const torch::Tensor& images,
                                                      const std::vector<std::int64_t>& positions) {
  std::vector<std::vector<std::uint8_t>> out;
  if (positions.empty()) return out;
  const bool was_training = model.is_training();
  model.eval();
  const torch::Tensor x = images.index_select(0, torch::tensor(positions, torch::kInt64));
  const torch::Tensor saliency = Saliency(model, x);
  for (std::int64_t i = 0; i < x.size(0); ++i) out.push_back(TwoPanels(x[i][0], saliency[i]));
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
