// What a worker lets a run ask of it: the RPC that starts a run comes from the network, so the
// places the run writes and the services the worker sends its bearer token to are the worker's
// own config's, and the run only picks among them.
//
//   absl::StatusOr<v1::RunConfig> resolved = ApplyWorkerPolicy(request.config(), policy);
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"

namespace greenloop::trainer {

struct WorkerPolicy {
  // Directory under which runs keep their checkpoints (RunConfig.checkpoint_dir names a folder
  // inside it); empty: runs may not checkpoint.
  std::string checkpoint_root;
  // Energy collectors and feedback services ("host:port", compared as written) this worker may
  // send its token to.
  std::vector<std::string> endpoints;
};

// Returns `config` with checkpoint_dir resolved under the policy's root, or:
//   PERMISSION_DENIED   energy_endpoint, or feedback.endpoint in a mode that asks humans, is not
//                       one of the policy's endpoints (the message names the key and the list);
//   INVALID_ARGUMENT    checkpoint_dir is not a relative path of plain names ([A-Za-z0-9._-], no
//                       '.' or '..', at most 255 characters);
//   FAILED_PRECONDITION checkpoint_dir is set and the worker keeps no checkpoints.
absl::StatusOr<v1::RunConfig> ApplyWorkerPolicy(const v1::RunConfig& config,
                                                const WorkerPolicy& policy);

// OK when `name` is a checkpoint's folder name as SaveCheckpoint writes it ("epoch-3-step-468");
// DATA_LOSS otherwise, naming `latest_file` (a LATEST file never points outside its directory).
absl::Status CheckCheckpointName(std::string_view name, std::string_view latest_file);

}  // namespace greenloop::trainer
