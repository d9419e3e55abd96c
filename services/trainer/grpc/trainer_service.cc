#include "services/trainer/grpc/trainer_service.h"

#include <optional>

#include "common/status/status.h"

namespace greenloop::trainer {

using rpc::Role;

TrainerGrpcService::TrainerGrpcService(RunManager* runs, const rpc::Authenticator* authenticator,
                                       prometheus::Registry* registry)
    : runs_(runs),
      authenticator_(authenticator),
      guard_("trainer", rpc::HandlerGuard::CountIn(registry, "greenloop_trainer_errors_total")) {}

absl::Status TrainerGrpcService::Allow(const ::grpc::ServerContext& context,
                                       std::initializer_list<Role> roles) const {
  if (authenticator_ == nullptr) return absl::OkStatus();
  return rpc::Authorize(context, *authenticator_, roles).status();
}

::grpc::Status TrainerGrpcService::StartRun(::grpc::ServerContext* context,
                                            const v1::StartRunRequest* request,
                                            v1::StartRunResponse* response) {
  return guard_.Run("StartRun", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context, {Role::kWorker, Role::kAdmin}));
    GREENLOOP_ASSIGN_OR_RETURN(*response->mutable_run(), runs_->StartRun(*request));
    return absl::OkStatus();
  });
}

::grpc::Status TrainerGrpcService::StopRun(::grpc::ServerContext* context,
                                           const v1::StopRunRequest* request,
                                           v1::StopRunResponse* response) {
  return guard_.Run("StopRun", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context, {Role::kWorker, Role::kAdmin}));
    GREENLOOP_ASSIGN_OR_RETURN(*response->mutable_run(),
                               runs_->StopRun(request->run_id(), request->reason()));
    return absl::OkStatus();
  });
}

::grpc::Status TrainerGrpcService::GetRun(::grpc::ServerContext* context,
                                          const v1::GetRunRequest* request,
                                          v1::GetRunResponse* response) {
  return guard_.Run("GetRun", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context, {Role::kWorker, Role::kAdmin}));
    GREENLOOP_ASSIGN_OR_RETURN(*response->mutable_run(), runs_->GetRun(request->run_id()));
    return absl::OkStatus();
  });
}

::grpc::Status TrainerGrpcService::ListRuns(::grpc::ServerContext* context,
                                            const v1::ListRunsRequest* request,
                                            v1::ListRunsResponse* response) {
  return guard_.Run("ListRuns", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context, {Role::kWorker, Role::kAdmin}));
    GREENLOOP_ASSIGN_OR_RETURN(*response, runs_->ListRuns(*request));
    return absl::OkStatus();
  });
}

::grpc::Status TrainerGrpcService::StreamProgress(
    ::grpc::ServerContext* context, const v1::StreamProgressRequest* request,
    ::grpc::ServerWriter<v1::StreamProgressResponse>* writer) {
  return guard_.Run("StreamProgress", [&]() -> absl::Status {
    GREENLOOP_RETURN_IF_ERROR(Allow(*context, {Role::kWorker, Role::kAdmin}));
    GREENLOOP_ASSIGN_OR_RETURN(std::shared_ptr<ProgressSubscription> subscription,
                               runs_->Subscribe(request->run_id(), request->min_interval_ms()));
    while (!context->IsCancelled()) {
      std::optional<v1::StreamProgressResponse> event =
          subscription->Next(std::chrono::milliseconds(200));
      if (event) {
        if (!writer->Write(*event)) return absl::CancelledError("the client went away");
        continue;
      }
      if (subscription->shut_down()) {
        return absl::UnavailableError("the trainer worker is shutting down");
      }
      if (subscription->done()) return absl::OkStatus();
    }
    return absl::CancelledError("the client cancelled the stream");
  });
}

}  // namespace greenloop::trainer
