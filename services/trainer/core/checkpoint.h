// A rank's checkpoints on disk: the model, the optimizer and the loop's state, published
// atomically under <checkpoint_dir>/<run_id>/rank-<rank>/<name>/, with a LATEST file naming the
// newest. Only the newest is kept.
//
// SaveCheckpoint() writes into <name>.tmp, renames it into place, then rewrites LATEST
// (write-then-rename), so that a crash leaves either the old or the new checkpoint, never half
// of one. LoadLatestCheckpoint() reads what LATEST names.
//
// Errors: INTERNAL when a file cannot be written; NOT_FOUND when there is no checkpoint;
// DATA_LOSS when one is broken or belongs to another run; FAILED_PRECONDITION when it was written
// by a run with another number of ranks.
//
// Thread-safety: one rank writes its own directory from its training thread.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/trainer/core/trainer_internal.pb.h"

namespace greenloop::trainer {

// Writes a checkpoint `name` of `model`, `optimizer` and `state` into `dir` (created when
// missing) and removes older ones; returns the checkpoint's path.
absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& name,
                                           torch::nn::Module& model,
                                           torch::optim::Optimizer& optimizer,
                                           const internal::CheckpointState& state);

// A checkpoint read back.
struct LoadedCheckpoint {
  internal::CheckpointState state;
  std::string path;
};

// Loads the checkpoint LATEST names in `dir` into `model` and `optimizer` and returns its state,
// after checking that it belongs to `run_id`, was written by `world_size` ranks and, when
// `architecture` is not empty, of a model of that architecture (ModelInfo.architecture;
// FAILED_PRECONDITION naming both otherwise; one written before architectures were recorded is
// not checked).
absl::StatusOr<LoadedCheckpoint> LoadLatestCheckpoint(const std::string& dir,
                                                      const std::string& run_id,
                                                      std::uint32_t world_size,
                                                      torch::nn::Module& model,
                                                      torch::optim::Optimizer& optimizer,
                                                      const std::string& architecture = "");

}  // namespace greenloop::trainer
