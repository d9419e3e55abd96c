// libFuzzer target: what a worker accepts from the network before it trains. A StartRunRequest
// (RunConfig included) decoded from the fuzzer's bytes goes through ValidateStartRun() and the
// worker's policy (ApplyWorkerPolicy: endpoints, checkpoint folder), as RunManager::StartRun
// does; the energy collector's run-id rule sees the same run id.
#include <cstddef>
#include <cstdint>

#include "services/energy/core/collector.h"
#include "services/trainer/core/run_config.h"
#include "services/trainer/core/worker_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  greenloop::v1::StartRunRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  (void)greenloop::energy::ValidateRunId(request.run_id());
  absl::StatusOr<greenloop::v1::StartRunRequest> valid =
      greenloop::trainer::ValidateStartRun(request);
  if (!valid.ok()) return 0;
  const greenloop::trainer::WorkerPolicy policy{.checkpoint_root = "/var/lib/greenloop/checkpoints",
                                                .endpoints = {"127.0.0.1:7101", "127.0.0.1:7102"}};
  absl::StatusOr<greenloop::v1::RunConfig> resolved =
      greenloop::trainer::ApplyWorkerPolicy(valid->config(), policy);
  if (resolved.ok() && !resolved->checkpoint_dir().empty()) {
    // Whatever the run asked for, it stays inside the root.
    if (resolved->checkpoint_dir().rfind(policy.checkpoint_root + "/", 0) != 0 ||
        resolved->checkpoint_dir().find("/../") != std::string::npos) {
      __builtin_trap();
    }
  }
  return 0;
}
