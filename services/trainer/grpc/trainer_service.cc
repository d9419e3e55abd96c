#include "services/trainer/grpc/trainer_service.h"

#include <fmt/format.h>

#include "common/grpc/channel.h"
#include "common/logging/logging.h"
#include "common/grpc/status.h"
#include "common/status/status.h"

namespace greenloop::trainer {
namespace {

using rpc::Role;

::grpc::Status Internal(std::string_view where) {
  const absl::Status s = StatusFromCurrentException(where);
  logging::Error("handler failed", {{"rpc", where}, {"error", s.ToString()}});
  return ToGrpcStatus(s);
}

}  // namespace

TrainerGrpcService::TrainerGrpcService(RunManager* runs, const rpc::Authenticator* authenticator)
    : runs_(runs), authenticator_(authenticator) {}

absl::Status TrainerGrpcService::Allow(const ::grpc::ServerContext& context,
                                       std::initializer_list<Role> roles) const {
  if (authenticator_ == nullptr) return absl::OkStatus();
  return rpc::Authorize(context, *authenticator_, roles).status();
}

::grpc::Status TrainerGrpcService::StartRun(::grpc::ServerContext* context,
                                            const v1::StartRunRequest* request,
                                            v1::StartRunResponse* response) {
  try {
    if (absl::Status s = Allow(*context, {Role::kWorker, Role::kAdmin}); !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::StatusOr<v1::Run> run = runs_->StartRun(*request);
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response->mutable_run() = *std::move(run);
    return ::grpc::Status::OK;
  } catch (...) {
    return Internal("TrainerService.StartRun");
  }
}

::grpc::Status TrainerGrpcService::StopRun(::grpc::ServerContext* context,
                                           const v1::StopRunRequest* request,
                                           v1::StopRunResponse* response) {
  try {
    if (absl::Status s = Allow(*context, {Role::kWorker, Role::kAdmin}); !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::StatusOr<v1::Run> run = runs_->StopRun(request->run_id(), request->reason());
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response->mutable_run() = *std::move(run);
    return ::grpc::Status::OK;
  } catch (...) {
    return Internal("TrainerService.StopRun");
  }
}

::grpc::Status TrainerGrpcService::GetRun(::grpc::ServerContext* context,
                                          const v1::GetRunRequest* request,
                                          v1::GetRunResponse* response) {
  try {
    if (absl::Status s = Allow(*context, {Role::kWorker, Role::kAdmin}); !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::StatusOr<v1::Run> run = runs_->GetRun(request->run_id());
    if (!run.ok()) return ToGrpcStatus(run.status());
    *response->mutable_run() = *std::move(run);
    return ::grpc::Status::OK;
  } catch (...) {
    return Internal("TrainerService.GetRun");
  }
}

::grpc::Status TrainerGrpcService::ListRuns(::grpc::ServerContext* context,
                                            const v1::ListRunsRequest* request,
                                            v1::ListRunsResponse* response) {
  try {
    if (absl::Status s = Allow(*context, {Role::kWorker, Role::kAdmin}); !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::StatusOr<v1::ListRunsResponse> runs = runs_->ListRuns(*request);
    if (!runs.ok()) return ToGrpcStatus(runs.status());
    *response = *std::move(runs);
    return ::grpc::Status::OK;
  } catch (...) {
    return Internal("TrainerService.ListRuns");
  }
}

::grpc::Status TrainerGrpcService::StreamProgress(
    ::grpc::ServerContext* context, const v1::StreamProgressRequest* request,
    ::grpc::ServerWriter<v1::StreamProgressResponse>* writer) {
  try {
    if (absl::Status s = Allow(*context, {Role::kWorker, Role::kAdmin}); !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::StatusOr<std::shared_ptr<ProgressSubscription>> subscription =
        runs_->Subscribe(request->run_id(), request->min_interval_ms());
    if (!subscription.ok()) return ToGrpcStatus(subscription.status());
    while (!context->IsCancelled()) {
      std::optional<v1::StreamProgressResponse> event =
          (*subscription)->Next(std::chrono::milliseconds(200));
      if (event) {
        if (!writer->Write(*event)) return ::grpc::Status::CANCELLED;
        continue;
      }
      if ((*subscription)->shut_down()) {
        return ::grpc::Status(::grpc::StatusCode::UNAVAILABLE,
                              "the trainer worker is shutting down");
      }
      if ((*subscription)->done()) return ::grpc::Status::OK;
    }
    return ::grpc::Status::CANCELLED;
  } catch (...) {
    return Internal("TrainerService.StreamProgress");
  }
}

}  // namespace greenloop::trainer
