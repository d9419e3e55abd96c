// The TrainerService gRPC adapter: authenticates the caller, maps proto to RunManager calls and
// absl::Status to grpc::Status, and nothing else. The logic lives in core/run_manager.h.
//
// StreamProgress is a sync server stream: a handler thread per follower, polling its
// subscription every 200 ms so that a cancelled client or a shutdown ends it promptly.
//
// Thread-safety: handlers run on gRPC's threads; RunManager is thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/grpc/auth.h"
#include "common/grpc/handler_guard.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "greenloop/v1/trainer.grpc.pb.h"
#include "services/trainer/core/run_manager.h"

namespace greenloop::trainer {

class TrainerGrpcService final : public v1::TrainerService::Service {
 public:
  // `authenticator` null means authentication is disabled (local development): every call acts
  // as the built-in "anonymous" identity with the role it needs. Neither is owned. `registry`:
  // where calls answered INTERNAL are counted (greenloop_trainer_errors_total{rpc}); null counts
  // nothing (they are logged either way).
  TrainerGrpcService(RunManager* runs, const rpc::Authenticator* authenticator,
                     prometheus::Registry* registry = nullptr);

  ::grpc::Status StartRun(::grpc::ServerContext* context, const v1::StartRunRequest* request,
                          v1::StartRunResponse* response) override;
  ::grpc::Status StopRun(::grpc::ServerContext* context, const v1::StopRunRequest* request,
                         v1::StopRunResponse* response) override;
  ::grpc::Status GetRun(::grpc::ServerContext* context, const v1::GetRunRequest* request,
                        v1::GetRunResponse* response) override;
  ::grpc::Status ListRuns(::grpc::ServerContext* context, const v1::ListRunsRequest* request,
                          v1::ListRunsResponse* response) override;
  ::grpc::Status StreamProgress(::grpc::ServerContext* context,
                                const v1::StreamProgressRequest* request,
                                ::grpc::ServerWriter<v1::StreamProgressResponse>* writer) override;

 private:
  absl::Status Allow(const ::grpc::ServerContext& context,
                     std::initializer_list<rpc::Role> roles) const;

  RunManager* const runs_;
  const rpc::Authenticator* const authenticator_;
  const rpc::HandlerGuard guard_;
};

}  // namespace greenloop::trainer
