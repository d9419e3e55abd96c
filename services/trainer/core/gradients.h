// The gradient exchange of a data-parallel step: every rank's gradients and the step's control
// values travel in one all-reduce, and every rank ends with the mean gradient and the summed
// control values.
//
// This header includes LibTorch.
//
// Thread-safety: called by the training thread of each rank, at the same step on every rank.
#pragma once

#include <torch/torch.h>

#include <span>
#include <vector>

#include "absl/status/status.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

// Sums the gradients of `params` (float32; an undefined gradient counts as zeros) and `control`
// across the ranks of `collective` in one all-reduce through `buffer` (reused between steps),
// then sets each gradient to the mean over the ranks and `control` to the sums. Returns the
// collective's error (UNAVAILABLE when a rank is gone).
absl::Status AllReduceGradients(Collective& collective, std::vector<torch::Tensor>& params,
                                std::span<float> control, std::vector<float>& buffer);

}  // namespace greenloop::trainer
