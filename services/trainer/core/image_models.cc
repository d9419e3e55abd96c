#include "services/trainer/core/image_models.h"

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace greenloop::trainer {
namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;
using torch::nn::Linear;

std::uint64_t Parameters(const torch::nn::Module& m) {
  std::uint64_t n = 0;
  for (const torch::Tensor& p : m.parameters()) n += static_cast<std::uint64_t>(p.numel());
  return n;
}

// conv's output on `x`, recorded in `tally` (when set) as layer `name`: per sample, each output
// element takes (in channels / groups) × kernel MACs.
torch::Tensor Conv(LayerTally* tally, std::string name, Conv2d& conv, const torch::Tensor& x) {
  torch::Tensor y = conv->forward(x);
  if (tally != nullptr) {
    const auto& o = conv->options;
    const auto kernel = static_cast<std::uint64_t>(o.kernel_size()->at(0) * o.kernel_size()->at(1));
    const auto per_output = static_cast<std::uint64_t>(o.in_channels() / o.groups()) * kernel;
    v1::LayerInfo& l = tally->emplace_back();
    l.set_name(std::move(name));
    l.set_parameter_count(Parameters(*conv));
    l.set_macs_per_sample(static_cast<std::uint64_t>(y.numel() / y.size(0)) * per_output);
  }
  return y;
}

torch::Tensor Dense(LayerTally* tally, std::string name, Linear& fc, const torch::Tensor& x) {
  torch::Tensor y = fc->forward(x);
  if (tally != nullptr) {
    v1::LayerInfo& l = tally->emplace_back();
    l.set_name(std::move(name));
    l.set_parameter_count(Parameters(*fc));
    l.set_macs_per_sample(
        static_cast<std::uint64_t>(fc->options.in_features() * fc->options.out_features()));
  }
  return y;
}

Conv2d Conv3(std::int64_t in, std::int64_t out, std::int64_t stride = 1, std::int64_t groups = 1) {
  return Conv2d(Conv2dOptions(in, out, 3).stride(stride).padding(1).groups(groups).bias(false));
}

// depth × [conv 3×3 · ReLU · max-pool 2] · linear (→64) · ReLU · linear (→classes).
class CnnImpl final : public ClassifierImpl {
 public:
  CnnImpl(int rows, int cols, int classes, int width, int depth) {
    std::int64_t in = 1;
    for (int i = 0; i < depth; ++i) {
      const std::int64_t out = static_cast<std::int64_t>(width) << i;
      convs_.push_back(register_module(fmt::format("conv{}", i + 1),
                                       Conv2d(Conv2dOptions(in, out, 3).padding(1))));
      in = out;
      rows /= 2;
      cols /= 2;
    }
    fc1_ = register_module("fc1", Linear(in * rows * cols, 64));
    fc2_ = register_module("fc2", Linear(64, classes));
  }

  torch::Tensor forward(const ModelInput& input) override {
    torch::Tensor x = input.values;
    for (std::size_t i = 0; i < convs_.size(); ++i) {
      x = torch::max_pool2d(torch::relu(Conv(layers, fmt::format("conv{}", i + 1), convs_[i], x)),
                            2);
    }
    x = torch::relu(Dense(layers, "fc1", fc1_, x.flatten(1)));
    return Dense(layers, "fc2", fc2_, x);
  }

 private:
  std::vector<Conv2d> convs_;
  Linear fc1_{nullptr};
  Linear fc2_{nullptr};
};

// depth × [linear (→width) · ReLU] · linear (→classes).
class MlpImpl final : public ClassifierImpl {
 public:
  MlpImpl(int inputs, int classes, int width, int depth) {
    std::int64_t in = inputs;
    for (int i = 0; i < depth; ++i) {
      hidden_.push_back(register_module(fmt::format("fc{}", i + 1), Linear(in, width)));
      in = width;
    }
    out_ = register_module("out", Linear(in, classes));
  }

  torch::Tensor forward(const ModelInput& input) override {
    torch::Tensor x = input.values.flatten(1);
    for (std::size_t i = 0; i < hidden_.size(); ++i) {
      x = torch::relu(Dense(layers, fmt::format("fc{}", i + 1), hidden_[i], x));
    }
    return Dense(layers, "out", out_, x);
  }

 private:
  std::vector<Linear> hidden_;
  Linear out_{nullptr};
};

// LeNet-5 with ReLU and max-pooling, its first convolution padded for 28 × 28 inputs.
class LeNet5Impl final : public ClassifierImpl {
 public:
  LeNet5Impl(int rows, int cols, int classes)
      : conv1_(register_module("conv1", Conv2d(Conv2dOptions(1, 6, 5).padding(2)))),
        conv2_(register_module("conv2", Conv2d(Conv2dOptions(6, 16, 5)))),
        fc1_(register_module("fc1", Linear(16 * ((rows / 2 - 4) / 2) * ((cols / 2 - 4) / 2), 120))),
        fc2_(register_module("fc2", Linear(120, 84))),
        fc3_(register_module("fc3", Linear(84, classes))) {}

  torch::Tensor forward(const ModelInput& input) override {
    torch::Tensor x =
        torch::max_pool2d(torch::relu(Conv(layers, "conv1", conv1_, input.values)), 2);
    x = torch::max_pool2d(torch::relu(Conv(layers, "conv2", conv2_, x)), 2);
    x = torch::relu(Dense(layers, "fc1", fc1_, x.flatten(1)));
    x = torch::relu(Dense(layers, "fc2", fc2_, x));
    return Dense(layers, "fc3", fc3_, x);
  }

 private:
  Conv2d conv1_;
  Conv2d conv2_;
  Linear fc1_;
  Linear fc2_;
  Linear fc3_;
};

// A ResNet basic block: conv 3×3 · BN · ReLU · conv 3×3 · BN, plus the input (or its 1×1
// projection when the shape changes), · ReLU.
class BasicBlockImpl final : public torch::nn::Module {
 public:
  BasicBlockImpl(std::int64_t in, std::int64_t out, std::int64_t stride)
      : conv1_(register_module("conv1", Conv3(in, out, stride))),
        bn1_(register_module("bn1", BatchNorm2d(out))),
        conv2_(register_module("conv2", Conv3(out, out))),
        bn2_(register_module("bn2", BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      proj_ = register_module("proj", Conv2d(Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      proj_bn_ = register_module("proj_bn", BatchNorm2d(out));
    }
  }

  torch::Tensor forward(const torch::Tensor& x, LayerTally* tally, const std::string& name) {
    torch::Tensor y = torch::relu(bn1_->forward(Conv(tally, name + ".conv1", conv1_, x)));
    y = bn2_->forward(Conv(tally, name + ".conv2", conv2_, y));
    const torch::Tensor shortcut =
        proj_ ? proj_bn_->forward(Conv(tally, name + ".proj", proj_, x)) : x;
    return torch::relu(y + shortcut);
  }

 private:
  Conv2d conv1_;
  BatchNorm2d bn1_;
  Conv2d conv2_;
  BatchNorm2d bn2_;
  Conv2d proj_{nullptr};
  BatchNorm2d proj_bn_{nullptr};
};
TORCH_MODULE(BasicBlock);

class ResNetImpl final : public ClassifierImpl {
 public:
  ResNetImpl(int classes, int width, int depth)
      : stem_(register_module("stem", Conv3(1, width))),
        stem_bn_(register_module("stem_bn", BatchNorm2d(width))) {
    std::int64_t in = width;
    for (int stage = 0; stage < 3; ++stage) {
      const std::int64_t out = static_cast<std::int64_t>(width) << stage;
      for (int b = 0; b < depth; ++b) {
        const std::string name = fmt::format("stage{}.block{}", stage + 1, b);
        names_.push_back(name);
        blocks_.push_back(register_module(fmt::format("stage{}_block{}", stage + 1, b),
                                          BasicBlock(in, out, stage > 0 && b == 0 ? 2 : 1)));
        in = out;
      }
    }
    fc_ = register_module("fc", Linear(in, classes));
  }

  torch::Tensor forward(const ModelInput& input) override {
    torch::Tensor x = torch::relu(stem_bn_->forward(Conv(layers, "stem", stem_, input.values)));
    for (std::size_t i = 0; i < blocks_.size(); ++i) x = blocks_[i]->forward(x, layers, names_[i]);
    return Dense(layers, "fc", fc_, x.mean({2, 3}));
  }

 private:
  Conv2d stem_;
  BatchNorm2d stem_bn_;
  std::vector<BasicBlock> blocks_;
  std::vector<std::string> names_;
  Linear fc_{nullptr};
};

// depthwise conv 3×3 · BN · ReLU · pointwise conv 1×1 · BN · ReLU.
class SeparableImpl final : public torch::nn::Module {
 public:
  SeparableImpl(std::int64_t in, std::int64_t out, std::int64_t stride)
      : depthwise_(register_module("depthwise", Conv3(in, in, stride, in))),
        bn1_(register_module("bn1", BatchNorm2d(in))),
        pointwise_(register_module("pointwise", Conv2d(Conv2dOptions(in, out, 1).bias(false)))),
        bn2_(register_module("bn2", BatchNorm2d(out))) {}

  torch::Tensor forward(const torch::Tensor& x, LayerTally* tally, const std::string& name) {
    torch::Tensor y = torch::relu(bn1_->forward(Conv(tally, name + ".depthwise", depthwise_, x)));
    return torch::relu(bn2_->forward(Conv(tally, name + ".pointwise", pointwise_, y)));
  }

 private:
  Conv2d depthwise_;
  BatchNorm2d bn1_;
  Conv2d pointwise_;
  BatchNorm2d bn2_;
};
TORCH_MODULE(Separable);

class MobileNetImpl final : public ClassifierImpl {
 public:
  MobileNetImpl(int classes, int width, int depth)
      : stem_(register_module("stem", Conv3(1, width))),
        stem_bn_(register_module("stem_bn", BatchNorm2d(width))) {
    std::vector<std::pair<std::int64_t, std::int64_t>> plan = {{2 * width, 2}, {4 * width, 2}};
    for (int i = 0; i < depth; ++i) plan.emplace_back(4 * width, 1);
    std::int64_t in = width;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      blocks_.push_back(
          register_module(fmt::format("block{}", i), Separable(in, plan[i].first, plan[i].second)));
      in = plan[i].first;
    }
    fc_ = register_module("fc", Linear(in, classes));
  }

  torch::Tensor forward(const ModelInput& input) override {
    torch::Tensor x = torch::relu(stem_bn_->forward(Conv(layers, "stem", stem_, input.values)));
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      x = blocks_[i]->forward(x, layers, fmt::format("block{}", i));
    }
    return Dense(layers, "fc", fc_, x.mean({2, 3}));
  }

 private:
  Conv2d stem_;
  BatchNorm2d stem_bn_;
  std::vector<Separable> blocks_;
  Linear fc_{nullptr};
};

}  // namespace

void ToChannelsLast(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : model.parameters()) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

std::shared_ptr<ClassifierImpl> MakeImageModel(v1::ModelKind kind, int rows, int cols, int classes,
                                               int width, int depth) {
  std::shared_ptr<ClassifierImpl> model;
  switch (kind) {
    case v1::MODEL_KIND_MLP:
      return std::make_shared<MlpImpl>(rows * cols, classes, width, depth);
    case v1::MODEL_KIND_LENET5:
      model = std::make_shared<LeNet5Impl>(rows, cols, classes);
      break;
    case v1::MODEL_KIND_RESNET:
      model = std::make_shared<ResNetImpl>(classes, width, depth);
      break;
    case v1::MODEL_KIND_MOBILENET:
      model = std::make_shared<MobileNetImpl>(classes, width, depth);
      break;
    default:
      model = std::make_shared<CnnImpl>(rows, cols, classes, width, depth);
  }
  ToChannelsLast(*model);
  return model;
}

}  // namespace greenloop::trainer
