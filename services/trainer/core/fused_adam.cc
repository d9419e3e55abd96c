#include "services/trainer/core/fused_adam.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <memory>
#include <optional>

namespace greenloop::trainer {
namespace {

// Whether `t` covers its storage densely with exactly `p`'s strides, so that element i of the
// flat buffers of both is the same logical element.
bool SameLayout(const torch::Tensor& t, const torch::Tensor& p) {
  return t.defined() && t.scalar_type() == torch::kFloat32 && t.strides() == p.strides() &&
         t.sizes() == p.sizes() && t.is_non_overlapping_and_dense();
}

struct Coefficients {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_bias_correction2, eps, minus_step_size;
};

// Adam's update of n elements, in the order LibTorch's Adam computes it:
//   m = m·β1 + g·(1−β1); v = v·β2 + (1−β2)·g·g; p += −step · m / (√v / √bc2 + ε).
// Compiled for AVX2 and for plain x86-64, chosen when the program loads (as ATen's own kernels
// are); kept out of line so that the vectoriser sees the loop alone.
[[gnu::noinline, gnu::target_clones("avx2", "default")]] void Update(
    float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
    std::int64_t n, const Coefficients& c) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] * c.beta1 + gi * c.one_minus_beta1;
    const float vi = v[i] * c.beta2 + c.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] += c.minus_step_size * (mi / (std::sqrt(vi) / c.sqrt_bias_correction2 + c.eps));
  }
}

}  // namespace

torch::optim::AdamParamState& FusedAdam::StateOf(const torch::Tensor& p) {
  std::unique_ptr<torch::optim::OptimizerParamState>& slot =
      state_[c10::guts::to_string(p.unsafeGetTensorImpl())];
  if (slot == nullptr) {
    auto state = std::make_unique<torch::optim::AdamParamState>();
    state->step(0);
    state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    slot = std::move(state);
  }
  return static_cast<torch::optim::AdamParamState&>(*slot);
}

std::optional<std::vector<FusedAdam::Slot>> FusedAdam::Plan() {
  std::vector<Slot> plan;
  for (torch::optim::OptimizerParamGroup& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    if (o.amsgrad() || o.weight_decay() != 0) return std::nullopt;
    for (torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      torch::optim::AdamParamState& s = StateOf(p);
      if (!SameLayout(p, p) || !SameLayout(p.grad(), p) || !SameLayout(s.exp_avg(), p) ||
          !SameLayout(s.exp_avg_sq(), p)) {
        return std::nullopt;
      }
      plan.push_back({&p, &s, &o});
    }
  }
  return plan;
}

void FusedAdam::Step(const Slot& slot) {
  torch::Tensor& p = *slot.param;
  torch::optim::AdamParamState& s = *slot.state;
  const auto [beta1, beta2] = slot.options->betas();
  s.step(s.step() + 1);
  const double bias_correction1 = 1 - std::pow(beta1, s.step());
  const double bias_correction2 = 1 - std::pow(beta2, s.step());
  const Coefficients c{static_cast<float>(beta1),
                       static_cast<float>(1 - beta1),
                       static_cast<float>(beta2),
                       static_cast<float>(1 - beta2),
                       static_cast<float>(std::sqrt(bias_correction2)),
                       static_cast<float>(slot.options->eps()),
                       static_cast<float>(-slot.options->lr() / bias_correction1)};
  float* pp = p.data_ptr<float>();
  const float* gp = p.grad().data_ptr<float>();
  float* mp = s.exp_avg().data_ptr<float>();
  float* vp = s.exp_avg_sq().data_ptr<float>();
  at::parallel_for(0, p.numel(), 1 << 15, [&](std::int64_t begin, std::int64_t end) {
    Update(pp + begin, gp + begin, mp + begin, vp + begin, end - begin, c);
  });
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  const std::optional<std::vector<Slot>> plan = Plan();
  if (!plan) {
    Adam::step();
    return loss;
  }
  torch::NoGradGuard no_grad;
  for (const Slot& slot : *plan) Step(slot);
  return loss;
}

}  // namespace greenloop::trainer
