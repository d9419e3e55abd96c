// A rank's checkpoints on disk: the model, the optimizer and the loop's state, published
// atomically under <checkpoint_dir>/<run_id>/rank-<rank>/<name>/ (name "epoch-E-step-S"), with a
// LATEST file naming the newest. The newest kKeptCheckpoints are kept, so that ranks that crashed
// at different moments still share a step to resume from (ResumeStep()).
//
// SaveCheckpoint() writes into <name>.tmp, flushes every file to the disk (fsync), renames it into
// place and flushes the directory, then rewrites LATEST the same way (write, fsync, rename,
// fsync), so that a crash, or a power loss, leaves either the old or the new checkpoint, never
// half of one. LoadLatestCheckpoint() reads what LATEST names; LoadCheckpointAt() one step's.
//
// Errors: INTERNAL when a file cannot be written; NOT_FOUND when there is no checkpoint;
// DATA_LOSS when one is broken or belongs to another run; FAILED_PRECONDITION when it was written
// by a run with another number of ranks.
//
// Thread-safety: one rank writes its own directory from its training thread.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/trainer/core/trainer_internal.pb.h"

namespace greenloop::trainer {

// Checkpoints kept per rank directory.
inline constexpr std::size_t kKeptCheckpoints = 2;

// Writes a checkpoint `name` of `model`, `optimizer` and `state` into `dir` (created when
// missing) and removes all but the newest kKeptCheckpoints; returns the checkpoint's path.
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
// The steps of the complete checkpoints in `dir`, ascending (empty when there are none).
std::vector<std::uint64_t> CheckpointSteps(const std::string& dir);

// The step every rank resumes from, given each rank's CheckpointSteps() (indexed by rank): the
// newest step all of them hold; nullopt when no rank holds any (a fresh start).
// FAILED_PRECONDITION naming the rank when some ranks hold checkpoints and another none, or when
// they share no step: a rank must never start from scratch while the others resume.
absl::StatusOr<std::optional<std::uint64_t>> ResumeStep(
    const std::vector<std::vector<std::uint64_t>>& per_rank, const std::string& run_id);

// Loads the checkpoint of `step` in `dir`, with LoadLatestCheckpoint()'s checks; NOT_FOUND when
// there is none of that step.
absl::StatusOr<LoadedCheckpoint> LoadCheckpointAt(const std::string& dir, std::uint64_t step,
                                                  const std::string& run_id,
                                                  std::uint32_t world_size,
                                                  torch::nn::Module& model,
                                                  torch::optim::Optimizer& optimizer,
                                                  const std::string& architecture = "");

absl::StatusOr<LoadedCheckpoint> LoadLatestCheckpoint(const std::string& dir,
                                                      const std::string& run_id,
                                                      std::uint32_t world_size,
                                                      torch::nn::Module& model,
                                                      torch::optim::Optimizer& optimizer,
                                                      const std::string& architecture = "");

}  // namespace greenloop::trainer
