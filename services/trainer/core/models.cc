#include "services/trainer/core/models.h"

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "services/trainer/core/image_models.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/text_models.h"

namespace greenloop::trainer {

absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(v1::ModelKind kind,
                                                          const LoadedDataset& dataset,
                                                          const v1::ModelShape& shape) {
  kind = ResolveModelKind(kind, dataset.dataset);
  if (absl::Status s = ValidateModelShape(kind, shape); !s.ok()) return s;
  const bool images = dataset.image_pixels() > 0;
  if (IsImageModel(kind) && !images) {
    return absl::InvalidArgumentError(
        fmt::format("config.model_kind: {} needs an image dataset (DATASET_FASHION_MNIST)",
                    v1::ModelKind_Name(kind)));
  }
  if (!IsImageModel(kind) && dataset.vocabulary_size == 0) {
    return absl::InvalidArgumentError(
        fmt::format("config.model_kind: {} needs a text dataset (DATASET_SPAM_ASSASSIN)",
                    v1::ModelKind_Name(kind)));
  }
  const v1::ModelShape s = ResolveModelShape(kind, shape);
  if (IsImageModel(kind)) {
    return MakeImageModel(kind, dataset.image_rows, dataset.image_cols, dataset.num_classes(),
                          static_cast<int>(s.width()), static_cast<int>(s.depth()));
  }
  return MakeTextModel(kind, dataset.vocabulary_size, dataset.num_classes(),
                       static_cast<int>(s.width()), static_cast<int>(s.depth()));
}

v1::ModelInfo DescribeModel(ClassifierImpl& model, v1::ModelKind kind, const v1::ModelShape& shape,
                            const LoadedDataset& dataset) {
  kind = ResolveModelKind(kind, dataset.dataset);
  v1::ModelInfo info;
  std::uint64_t params = 0;
  for (const torch::Tensor& p : model.parameters()) {
    if (p.requires_grad()) params += static_cast<std::uint64_t>(p.numel());
  }
  info.set_parameter_count(params);
  info.set_architecture(ArchitectureName(kind, shape));
  LayerTally layers;
  if (IsImageModel(kind)) {
    // One blank image through the model in evaluation mode: batch norm's running statistics stay.
    torch::NoGradGuard no_grad;
    const bool was_training = model.is_training();
    model.eval();
    model.layers = &layers;
    model.forward(ModelInput{torch::zeros({1, 1, dataset.image_rows, dataset.image_cols}), {}});
    model.layers = nullptr;
    model.train(was_training);
  } else {
    const v1::ModelShape s = ResolveModelShape(kind, shape);
    layers = TextModelLayers(kind, dataset.vocabulary_size, dataset.num_classes(),
                             static_cast<int>(s.width()), static_cast<int>(s.depth()),
                             dataset.mean_tokens_per_sample, dataset.train);
  }
  std::uint64_t forward = 0;
  std::uint64_t backward = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    forward += layers[i].macs_per_sample();
    // The weights' gradient, and the input's except at the first layer.
    backward += (i == 0 ? 1 : 2) * layers[i].macs_per_sample();
  }
  info.set_macs_per_sample(forward);
  info.set_backward_macs_per_sample(backward);
  *info.mutable_layers() = {layers.begin(), layers.end()};
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
