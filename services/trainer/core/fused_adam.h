// torch::optim::Adam with a fused step: one pass over each parameter's memory instead of about
// eight tensor operations and two temporaries the size of the parameter.
//
// Same arithmetic as Adam (LibTorch 1.13, amsgrad off, no weight decay), element by element, so
// the trajectories agree to float rounding (fused_adam_test); the state it keeps is Adam's own
// AdamParamState, so checkpoints, Adam::save/load and ForgetWords see no difference. Parameter
// groups with amsgrad or weight decay, and parameters whose gradient or moments are not laid out
// like the parameter, take Adam's own step.
//
// This header includes LibTorch.
//
// Thread-safety: as torch::optim::Adam (one thread at a time).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

namespace greenloop::trainer {

class FusedAdam final : public torch::optim::Adam {
 public:
  explicit FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options = {})
      : Adam(std::move(params), options) {}

  // Adam's step; the closure, when given, is evaluated first as in Adam.
  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  // One parameter's fused step: the parameter, its Adam state and its group's options.
  struct Slot {
    torch::Tensor* param;
    torch::optim::AdamParamState* state;
    const torch::optim::AdamOptions* options;
  };
  // Every parameter with a gradient, when all of them can take the fused step (then all do);
  // nullopt when one cannot (then all take Adam's).
  std::optional<std::vector<Slot>> Plan();
  // The fused step of one parameter.
  static void Step(const Slot& slot);
  // Adam's state of `p`, created (zero moments, step 0) at its first step.
  torch::optim::AdamParamState& StateOf(const torch::Tensor& p);
};

}  // namespace greenloop::trainer
