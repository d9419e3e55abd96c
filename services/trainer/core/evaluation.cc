#include "services/trainer/core/evaluation.h"

#include <algorithm>
#include <numeric>
#include <span>

namespace greenloop::trainer {

SplitScore ScoreSplit(ClassifierImpl& model, const LoadedDataset& dataset, const Split& split,
                      const torch::Tensor& images, std::uint32_t rank, std::uint32_t world) {
  torch::NoGradGuard no_grad;
  model.eval();
  SplitScore score;
  std::vector<std::int64_t> positions;
  for (std::size_t i = world > 1 ? rank : 0; i < split.size();
       i += std::max<std::uint32_t>(1, world)) {
    positions.push_back(static_cast<std::int64_t>(i));
  }
  constexpr std::size_t kEvalBatch = 1024;
  for (std::size_t start = 0; start < positions.size(); start += kEvalBatch) {
    const std::size_t end = std::min(positions.size(), start + kEvalBatch);
    std::span<const std::int64_t> chunk(positions.data() + start, end - start);
    torch::Tensor logits = model.forward(GatherInput(dataset, split, images, chunk));
    std::vector<std::int64_t> labels;
    labels.reserve(chunk.size());
    for (std::int64_t p : chunk) labels.push_back(split.labels[static_cast<std::size_t>(p)]);
    torch::Tensor target = torch::tensor(labels, torch::kInt64);
    score.loss +=
        torch::nn::functional::cross_entropy(
            logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
            .item<double>();
    score.correct += logits.argmax(1).eq(target).sum().item<double>();
    score.count += static_cast<double>(chunk.size());
  }
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
