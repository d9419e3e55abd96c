// The image models of the zoo (ModelKind in trainer.proto gives their layers and defaults): the
// small CNN, an MLP, LeNet-5, a small ResNet and a MobileNet-style network, each recording its
// convolutions and linear layers in ClassifierImpl::layers while that is set (DescribeModel).
//
// This header includes LibTorch.
//
// Thread-safety: a model is used by one thread at a time.
#pragma once

#include <memory>

#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/models.h"

namespace greenloop::trainer {

// Stores the convolution weights of `model` channels-last (NHWC), the layout oneDNN's
// convolutions run fastest in on CPU: their outputs, gradients and Adam's moments follow it.
// Values are unchanged. Checkpoints keep the layout (fast_paths_test).
void ToChannelsLast(torch::nn::Module& model);

// The image model of `kind` (not MODEL_KIND_BAG_OF_WORDS) for rows × cols greyscale images and
// `classes` classes, of `width` and `depth` (resolved and validated: ValidateModelShape), its
// convolutions channels-last (ToChannelsLast).
std::shared_ptr<ClassifierImpl> MakeImageModel(v1::ModelKind kind, int rows, int cols, int classes,
                                               int width, int depth);

}  // namespace greenloop::trainer
