#include "services/feedback/adapters/grpc_service.h"

namespace greenloop::feedback {

FeedbackGrpcService::FeedbackGrpcService(FeedbackApi* api, VerdictStreams* streams)
    : api_(api), streams_(streams) {}

#define GREENLOOP_FEEDBACK_UNARY(Rpc)                                                              \
  ::grpc::Status FeedbackGrpcService::Rpc(::grpc::ServerContext* ctx, const v1::Rpc##Request* req, \
                                          v1::Rpc##Response* resp) {                               \
    return Unary(ctx, #Rpc, &FeedbackQueue::Rpc, *req, resp);                                      \
  }

GREENLOOP_FEEDBACK_UNARY(CreateCampaign)
GREENLOOP_FEEDBACK_UNARY(GetCampaign)
GREENLOOP_FEEDBACK_UNARY(ListCampaigns)
GREENLOOP_FEEDBACK_UNARY(CloseCampaign)
GREENLOOP_FEEDBACK_UNARY(EnqueueItems)
GREENLOOP_FEEDBACK_UNARY(Lease)
GREENLOOP_FEEDBACK_UNARY(Submit)
GREENLOOP_FEEDBACK_UNARY(Skip)
GREENLOOP_FEEDBACK_UNARY(Release)
GREENLOOP_FEEDBACK_UNARY(GetCampaignStats)
GREENLOOP_FEEDBACK_UNARY(ListMyRatings)
GREENLOOP_FEEDBACK_UNARY(CreateToken)
GREENLOOP_FEEDBACK_UNARY(RevokeToken)
GREENLOOP_FEEDBACK_UNARY(ListTokens)
GREENLOOP_FEEDBACK_UNARY(WhoAmI)

#undef GREENLOOP_FEEDBACK_UNARY

::grpc::ServerWriteReactor<v1::WatchVerdictsResponse>* FeedbackGrpcService::WatchVerdicts(
    ::grpc::CallbackServerContext* ctx, const v1::WatchVerdictsRequest* req) {
  absl::StatusOr<std::int64_t> after =
      api_->Call("WatchVerdicts", rpc::BearerToken(*ctx), &FeedbackQueue::StartWatch, *req);
  if (!after.ok()) return FailedVerdictStream(ToGrpcStatus(after.status()));
  return streams_->Open(req->campaign_id(), *after);
}

}  // namespace greenloop::feedback
