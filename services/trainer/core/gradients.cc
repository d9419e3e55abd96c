#include "services/trainer/core/gradients.h"

#include <algorithm>
#include <cstring>

namespace greenloop::trainer {

absl::Status AllReduceGradients(Collective& collective, std::vector<torch::Tensor>& params,
                                std::span<float> control, std::vector<float>& buffer) {
  std::size_t total = 0;
  for (const torch::Tensor& p : params) total += static_cast<std::size_t>(p.numel());
  buffer.resize(total + control.size());
  std::size_t offset = 0;
  for (const torch::Tensor& p : params) {
    const auto n = static_cast<std::size_t>(p.numel());
    if (p.grad().defined()) {
      torch::Tensor g = p.grad().contiguous();
      std::memcpy(buffer.data() + offset, g.data_ptr<float>(), n * sizeof(float));
    } else {
      std::fill_n(buffer.data() + offset, n, 0.0f);
    }
    offset += n;
  }
  std::copy(control.begin(), control.end(), buffer.begin() + static_cast<std::ptrdiff_t>(offset));
  if (absl::Status s = collective.AllReduceSum(buffer); !s.ok()) return s;
  const float scale = 1.0f / static_cast<float>(collective.world_size());
  offset = 0;
  for (torch::Tensor& p : params) {
    torch::Tensor mean =
        torch::from_blob(buffer.data() + offset, p.sizes(), torch::kFloat32) * scale;
    if (p.mutable_grad().defined()) {
      p.mutable_grad().copy_(mean);
    } else {
      p.mutable_grad() = mean.clone();
    }
    offset += static_cast<std::size_t>(p.numel());
  }
  std::copy(buffer.begin() + static_cast<std::ptrdiff_t>(offset), buffer.end(), control.begin());
  return absl::OkStatus();
}

}  // namespace greenloop::trainer
