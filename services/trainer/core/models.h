// The models the trainer trains, built with LibTorch's C++ API, and their size (parameters and
// multiply-accumulates per sample), which feeds the before-the-run energy prediction.
//
//   MODEL_KIND_CNN           images: conv 3×3 (1→8) · ReLU · max-pool 2 · conv 3×3 (8→16) · ReLU ·
//                            max-pool 2 · linear (16·7·7→64) · ReLU · linear (64→classes)
//   MODEL_KIND_BAG_OF_WORDS  text: EmbeddingBag (vocabulary→64, mean) · linear (64→classes)
//
// This header includes LibTorch; only the few translation units that run tensors include it.
//
// Thread-safety: a model is used by one thread at a time.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"

namespace greenloop::trainer {

// Fashion-MNIST's pixel mean and standard deviation (of x / 255): images are fed as
// (x / 255 − mean) / std.
inline constexpr float kFashionMean = 0.2860f;
inline constexpr float kFashionStd = 0.3530f;

// Width of the bag-of-words model's embedding.
inline constexpr int kBagEmbeddingDim = 64;

// The inputs of one forward pass: images [B, 1, rows, cols] (float, normalised), or text token ids
// [T] with bag offsets [B].
struct ModelInput {
  torch::Tensor values;
  torch::Tensor offsets;  // text only
};

// A classifier: forward() returns logits [B, classes].
class ClassifierImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const ModelInput& input) = 0;
  // Bag of words only: what one occurrence of each token of `token_ids` [N] adds to the logits
  // before the mean divides by the bag's length, [N, classes] (its embedding row times the output
  // weights; exact, the model being linear after pooling). With `rows_only` it is
  // differentiable in the embedding rows only (the output weights detached). Undefined for other
  // models.
  virtual torch::Tensor TokenContributions(const torch::Tensor& /*token_ids*/,
                                           bool /*rows_only*/ = false) {
    return {};
  }
  // Bag of words only: zeroes the embedding rows of `token_ids` [N], so that those words add
  // nothing until training teaches them again, and returns the embedding parameter (for its
  // optimizer state: ForgetWords). A no-op returning an undefined tensor for other models.
  virtual torch::Tensor ForgetTokens(const torch::Tensor& /*token_ids*/) { return {}; }
};

// Returns the model of `kind` for `dataset` (MODEL_KIND_UNSPECIFIED: the dataset's own).
// INVALID_ARGUMENT when the model does not fit the dataset (a CNN on text, a bag of words on
// images).
absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(v1::ModelKind kind,
                                                          const LoadedDataset& dataset);

// The model kind a run of `dataset` uses when `kind` is unspecified.
v1::ModelKind ResolveModelKind(v1::ModelKind kind, v1::Dataset dataset);

// Returns the number of trainable parameters and the MACs of one forward pass of one sample (for
// text, of a sample of mean length).
v1::ModelInfo DescribeModel(ClassifierImpl& model, v1::ModelKind kind,
                            const LoadedDataset& dataset);

// All of a split's images as one normalised float tensor [N, 1, rows, cols], made once per run.
torch::Tensor ImagesTensor(const Split& split, const LoadedDataset& dataset);

// The input of the samples at `positions` of `split` (`images`: ImagesTensor(split) for images,
// undefined for text).
ModelInput GatherInput(const LoadedDataset& dataset, const Split& split,
                       const torch::Tensor& images, std::span<const std::int64_t> positions);

}  // namespace greenloop::trainer
