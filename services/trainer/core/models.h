// The models the trainer trains (the model zoo), built with LibTorch's C++ API, and their size
// (parameters and multiply-accumulates per sample, per layer), which feeds the energy prediction.
//
//   MODEL_KIND_CNN           images: depth × [conv 3×3 (width·2^i) · ReLU · max-pool 2] ·
//                            linear (→64) · ReLU · linear (→classes); default 8 × 2: conv 1→8,
//                            conv 8→16, linear 16·7·7→64 (52 138 parameters)
//   MODEL_KIND_MLP           images: depth × [linear (→width) · ReLU] · linear (→classes)
//   MODEL_KIND_LENET5        images: LeNet-5 (conv 5×5 1→6, conv 5×5 6→16, linear 400→120→84)
//   MODEL_KIND_RESNET        images: stem, three stages of depth basic blocks (width, 2·, 4·)
//   MODEL_KIND_MOBILENET     images: stem, depthwise-separable blocks to 2·width and 4·width
//   MODEL_KIND_BAG_OF_WORDS  text: EmbeddingBag (vocabulary→width, mean) · linear (→classes)
//   MODEL_KIND_TRANSFORMER   text: token and position embeddings · depth encoder layers · mean ·
//                            linear (→classes)
//
// trainer.proto's ModelKind gives each kind's layers and default shape in full.
//
// This header includes LibTorch; only the few translation units that run tensors include it.
//
// Thread-safety: a model is used by one thread at a time.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"

namespace greenloop::trainer {

// Fashion-MNIST's pixel mean and standard deviation (of x / 255): images are fed as
// (x / 255 − mean) / std.
inline constexpr float kFashionMean = 0.2860f;
inline constexpr float kFashionStd = 0.3530f;

// The inputs of one forward pass: images [B, 1, rows, cols] (float, normalised), or text token ids
// [T] with bag offsets [B].
struct ModelInput {
  torch::Tensor values;
  torch::Tensor offsets;  // text only
};

// The layers one forward pass ran, recorded while a model's `layers` points here.
using LayerTally = std::vector<v1::LayerInfo>;

// A classifier: forward() returns logits [B, classes].
class ClassifierImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const ModelInput& input) = 0;
  // While set, every convolution and linear layer of forward() appends itself, with its
  // parameters and its MACs for one sample (DescribeModel).
  LayerTally* layers = nullptr;
  // Whether TokenContributions and ForgetTokens work (the bag of words): text feature feedback
  // and the decoy's share need them.
  virtual bool ExplainsTokens() const { return false; }
  // The bag of words' embedding width; 0 for other models.
  virtual std::int64_t embedding_dim() const { return 0; }
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

// Returns the model of `kind` and `shape` for `dataset` (MODEL_KIND_UNSPECIFIED: the dataset's
// own; a 0 in `shape`: the kind's default). INVALID_ARGUMENT naming config.model_kind when the
// model does not fit the dataset (an image model on text, a bag of words on images), and
// config.model_shape when the shape does not fit the kind (ValidateModelShape).
absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(v1::ModelKind kind,
                                                          const LoadedDataset& dataset,
                                                          const v1::ModelShape& shape = {});

// Returns the number of trainable parameters, the layers and the MACs of one forward and one
// backward pass of one sample (images: counted on a forward pass of one blank image; text:
// analytically, for a sample of mean length), and the architecture's name.
v1::ModelInfo DescribeModel(ClassifierImpl& model, v1::ModelKind kind, const v1::ModelShape& shape,
                            const LoadedDataset& dataset);

// All of a split's images as one normalised float tensor [N, 1, rows, cols], made once per run.
torch::Tensor ImagesTensor(const Split& split, const LoadedDataset& dataset);

// The input of the samples at `positions` of `split` (`images`: ImagesTensor(split) for images,
// undefined for text).
ModelInput GatherInput(const LoadedDataset& dataset, const Split& split,
                       const torch::Tensor& images, std::span<const std::int64_t> positions);

}  // namespace greenloop::trainer
