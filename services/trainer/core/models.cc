#include "services/trainer/core/models.h"

#include <fmt/format.h>

namespace greenloop::trainer {
namespace {

class CnnImpl final : public ClassifierImpl {
 public:
  CnnImpl(int rows, int cols, int classes)
      : conv1_(register_module("conv1",
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 8, 3).padding(1)))),
        conv2_(register_module("conv2",
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1)))),
        fc1_(register_module("fc1", torch::nn::Linear(16 * (rows / 4) * (cols / 4), 64))),
        fc2_(register_module("fc2", torch::nn::Linear(64, classes))) {}

  torch::Tensor forward(const ModelInput& input) override {
    torch::Tensor x = torch::max_pool2d(torch::relu(conv1_->forward(input.values)), 2);
    x = torch::max_pool2d(torch::relu(conv2_->forward(x)), 2);
    x = torch::relu(fc1_->forward(x.flatten(1)));
    return fc2_->forward(x);
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::Conv2d conv2_;
  torch::nn::Linear fc1_;
  torch::nn::Linear fc2_;
};

class BagOfWordsImpl final : public ClassifierImpl {
 public:
  BagOfWordsImpl(std::int64_t vocabulary, int classes)
      : bag_(register_module(
            "bag",
            torch::nn::EmbeddingBag(
                torch::nn::EmbeddingBagOptions(vocabulary, kBagEmbeddingDim).mode(torch::kMean)))),
        fc_(register_module("fc", torch::nn::Linear(kBagEmbeddingDim, classes))) {}

  torch::Tensor forward(const ModelInput& input) override {
    return fc_->forward(bag_->forward(input.values, input.offsets));
  }

  torch::Tensor ForgetTokens(const torch::Tensor& token_ids) override {
    torch::NoGradGuard no_grad;
    bag_->weight.index_fill_(0, token_ids, 0.0);
    return bag_->weight;
  }

  torch::Tensor TokenContributions(const torch::Tensor& token_ids, bool rows_only) override {
    const torch::Tensor out = rows_only ? fc_->weight.detach() : fc_->weight;
    return torch::nn::functional::linear(bag_->weight.index_select(0, token_ids), out);
  }

 private:
  torch::nn::EmbeddingBag bag_;
  torch::nn::Linear fc_;
};

}  // namespace

v1::ModelKind ResolveModelKind(v1::ModelKind kind, v1::Dataset dataset) {
  if (kind != v1::MODEL_KIND_UNSPECIFIED) return kind;
  return dataset == v1::DATASET_SPAM_ASSASSIN ? v1::MODEL_KIND_BAG_OF_WORDS : v1::MODEL_KIND_CNN;
}

absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(v1::ModelKind kind,
                                                          const LoadedDataset& dataset) {
  switch (ResolveModelKind(kind, dataset.dataset)) {
    case v1::MODEL_KIND_CNN:
      if (dataset.image_pixels() == 0) {
        return absl::InvalidArgumentError(
            "config.model_kind: MODEL_KIND_CNN needs an image dataset (DATASET_FASHION_MNIST)");
      }
      return std::shared_ptr<ClassifierImpl>(
          std::make_shared<CnnImpl>(dataset.image_rows, dataset.image_cols, dataset.num_classes()));
    case v1::MODEL_KIND_BAG_OF_WORDS:
      if (dataset.vocabulary_size == 0) {
        return absl::InvalidArgumentError(
            "config.model_kind: MODEL_KIND_BAG_OF_WORDS needs a text dataset "
            "(DATASET_SPAM_ASSASSIN)");
      }
      return std::shared_ptr<ClassifierImpl>(
          std::make_shared<BagOfWordsImpl>(dataset.vocabulary_size, dataset.num_classes()));
    default:
      return absl::InvalidArgumentError(
          fmt::format("config.model_kind: unknown model kind {}", static_cast<int>(kind)));
  }
}

v1::ModelInfo DescribeModel(ClassifierImpl& model, v1::ModelKind kind,
                            const LoadedDataset& dataset) {
  v1::ModelInfo info;
  std::uint64_t params = 0;
  for (const torch::Tensor& p : model.parameters()) {
    if (p.requires_grad()) params += static_cast<std::uint64_t>(p.numel());
  }
  info.set_parameter_count(params);
  const int classes = dataset.num_classes();
  std::uint64_t macs = 0;
  if (ResolveModelKind(kind, dataset.dataset) == v1::MODEL_KIND_CNN) {
    const std::uint64_t rows = static_cast<std::uint64_t>(dataset.image_rows);
    const std::uint64_t cols = static_cast<std::uint64_t>(dataset.image_cols);
    macs += rows * cols * 8 * 1 * 9;                   // conv1, same padding
    macs += (rows / 2) * (cols / 2) * 16 * 8 * 9;      // conv2 after the first pooling
    macs += 16 * (rows / 4) * (cols / 4) * 64;         // fc1
    macs += 64 * static_cast<std::uint64_t>(classes);  // fc2
  } else {
    // An embedding bag adds one 64-vector per token (a MAC each with the mean's scaling).
    macs += static_cast<std::uint64_t>(dataset.mean_tokens_per_sample * kBagEmbeddingDim + 0.5);
    macs += kBagEmbeddingDim * static_cast<std::uint64_t>(classes);
  }
  info.set_macs_per_sample(macs);
  return info;
}

torch::Tensor ImagesTensor(const Split& split, const LoadedDataset& dataset) {
  if (dataset.image_pixels() == 0) return {};
  const auto n = static_cast<std::int64_t>(split.size());
  torch::Tensor bytes =
      torch::from_blob(const_cast<std::uint8_t*>(split.pixels.data()),
                       {n, 1, dataset.image_rows, dataset.image_cols}, torch::kUInt8);
  return ((bytes.to(torch::kFloat32) / 255.0f) - kFashionMean) / kFashionStd;
}

ModelInput GatherInput(const LoadedDataset& dataset, const Split& split,
                       const torch::Tensor& images, std::span<const std::int64_t> positions) {
  ModelInput input;
  if (dataset.image_pixels() > 0) {
    torch::Tensor index =
        torch::from_blob(const_cast<std::int64_t*>(positions.data()),
                         {static_cast<std::int64_t>(positions.size())}, torch::kInt64);
    input.values = images.index_select(0, index);
    return input;
  }
  std::vector<std::int64_t> tokens;
  std::vector<std::int64_t> offsets;
  offsets.reserve(positions.size());
  for (std::int64_t p : positions) {
    offsets.push_back(static_cast<std::int64_t>(tokens.size()));
    const auto begin = static_cast<std::size_t>(split.offsets[static_cast<std::size_t>(p)]);
    const auto end = static_cast<std::size_t>(split.offsets[static_cast<std::size_t>(p) + 1]);
    tokens.insert(tokens.end(), split.tokens.begin() + static_cast<std::ptrdiff_t>(begin),
                  split.tokens.begin() + static_cast<std::ptrdiff_t>(end));
  }
  input.values = torch::tensor(tokens, torch::kInt64);
  input.offsets = torch::tensor(offsets, torch::kInt64);
  return input;
}

}  // namespace greenloop::trainer
