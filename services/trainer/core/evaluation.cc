#include "services/trainer/core/evaluation.h"

#include <algorithm>
#include <numeric>
#include <span>

namespace greenloop::trainer {

namespace {

// The input of samples [begin, end) of `split`, every `stride`-th from `begin`, without copying
// sample by sample: a strided view of the images, or the split's own token buffer (stride 1).
ModelInput SliceInput(const LoadedDataset& dataset, const Split& split, const torch::Tensor& images,
                      std::int64_t begin, std::int64_t end, std::int64_t stride) {
  if (dataset.image_pixels() > 0) return {images.slice(0, begin, end, stride).contiguous(), {}};
  if (stride != 1) {
    std::vector<std::int64_t> positions;
    for (std::int64_t i = begin; i < end; i += stride) positions.push_back(i);
    return GatherInput(dataset, split, images, positions);
  }
  auto* offsets = const_cast<std::int64_t*>(split.offsets.data());
  const std::int64_t first = offsets[begin];
  torch::Tensor tokens = torch::from_blob(const_cast<std::int64_t*>(split.tokens.data()) + first,
                                          {offsets[end] - first}, torch::kInt64);
  torch::Tensor bags = torch::from_blob(offsets + begin, {end - begin}, torch::kInt64) - first;
  return {tokens, bags};
}

}  // namespace

SplitScore ScoreSplit(ClassifierImpl& model, const LoadedDataset& dataset, const Split& split,
                      const torch::Tensor& images, std::uint32_t rank, std::uint32_t world,
                      std::int64_t batch) {
  torch::InferenceMode inference;
  model.eval();
  const std::int64_t stride = std::max<std::uint32_t>(1, world);
  const std::int64_t first = world > 1 ? rank : 0;
  const auto n = static_cast<std::int64_t>(split.size());
  const torch::Tensor labels =
      torch::from_blob(const_cast<std::int64_t*>(split.labels.data()), {n}, torch::kInt64);
  torch::Tensor loss = torch::zeros({}, torch::kFloat64);
  torch::Tensor correct = torch::zeros({}, torch::kInt64);
  SplitScore score;
  const std::int64_t span = std::max<std::int64_t>(1, batch) * stride;
  for (std::int64_t begin = first; begin < n; begin += span) {
    const std::int64_t end = std::min(n, begin + span);
    const torch::Tensor logits =
        model.forward(SliceInput(dataset, split, images, begin, end, stride));
    const torch::Tensor target = labels.slice(0, begin, end, stride);
    loss += torch::nn::functional::cross_entropy(
        logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    correct += logits.argmax(1).eq(target).sum();
    score.count += static_cast<double>(target.size(0));
  }
  score.loss = loss.item<double>();
  score.correct = static_cast<double>(correct.item<std::int64_t>());
  return score;
}

std::vector<torch::Tensor> ModelState(const torch::nn::Module& model) {
  std::vector<torch::Tensor> out = model.parameters();
  for (const torch::Tensor& b : model.buffers()) out.push_back(b);
  return out;
}

std::optional<double> MovingAverage::Add(double value) {
  values_.push_back(value);
  if (values_.size() > window_) values_.pop_front();
  if (values_.size() < window_) return std::nullopt;
  return std::accumulate(values_.begin(), values_.end(), 0.0) / static_cast<double>(window_);
}

}  // namespace greenloop::trainer
