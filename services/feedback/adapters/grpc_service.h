// greenloop.v1.FeedbackService over gRPC: a thin adapter over FeedbackApi. Unary RPCs are sync
// handlers; WatchVerdicts is a callback-API stream served by VerdictStreams.
#pragma once

#include "common/grpc/status.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "services/feedback/adapters/api.h"
#include "services/feedback/adapters/verdict_streams.h"

namespace greenloop::feedback {

/// \brief The gRPC face of the feedback queue. Every handler reads the bearer token from the
/// call's `authorization` metadata and hands the request to FeedbackApi, which applies the
/// contract's rules; nothing else happens here.
///
/// Thread-safety: handlers run on gRPC threads; the api and streams must outlive the service.
class FeedbackGrpcService final
    : public v1::FeedbackService::WithCallbackMethod_WatchVerdicts<v1::FeedbackService::Service> {
 public:
  FeedbackGrpcService(FeedbackApi* api, VerdictStreams* streams);

  ::grpc::Status CreateCampaign(::grpc::ServerContext* ctx, const v1::CreateCampaignRequest* req,
                                v1::CreateCampaignResponse* resp) override;
  ::grpc::Status GetCampaign(::grpc::ServerContext* ctx, const v1::GetCampaignRequest* req,
                             v1::GetCampaignResponse* resp) override;
  ::grpc::Status ListCampaigns(::grpc::ServerContext* ctx, const v1::ListCampaignsRequest* req,
                               v1::ListCampaignsResponse* resp) override;
  ::grpc::Status CloseCampaign(::grpc::ServerContext* ctx, const v1::CloseCampaignRequest* req,
                               v1::CloseCampaignResponse* resp) override;
  ::grpc::Status EnqueueItems(::grpc::ServerContext* ctx, const v1::EnqueueItemsRequest* req,
                              v1::EnqueueItemsResponse* resp) override;
  ::grpc::Status Lease(::grpc::ServerContext* ctx, const v1::LeaseRequest* req,
                       v1::LeaseResponse* resp) override;
  ::grpc::Status Submit(::grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                        v1::SubmitResponse* resp) override;
  ::grpc::Status Skip(::grpc::ServerContext* ctx, const v1::SkipRequest* req,
                      v1::SkipResponse* resp) override;
  ::grpc::Status Release(::grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                         v1::ReleaseResponse* resp) override;
  ::grpc::ServerWriteReactor<v1::WatchVerdictsResponse>* WatchVerdicts(
      ::grpc::CallbackServerContext* ctx, const v1::WatchVerdictsRequest* req) override;
  ::grpc::Status GetCampaignStats(::grpc::ServerContext* ctx,
                                  const v1::GetCampaignStatsRequest* req,
                                  v1::GetCampaignStatsResponse* resp) override;
  ::grpc::Status ListMyRatings(::grpc::ServerContext* ctx, const v1::ListMyRatingsRequest* req,
                               v1::ListMyRatingsResponse* resp) override;
  ::grpc::Status CreateToken(::grpc::ServerContext* ctx, const v1::CreateTokenRequest* req,
                             v1::CreateTokenResponse* resp) override;
  ::grpc::Status RevokeToken(::grpc::ServerContext* ctx, const v1::RevokeTokenRequest* req,
                             v1::RevokeTokenResponse* resp) override;
  ::grpc::Status ListTokens(::grpc::ServerContext* ctx, const v1::ListTokensRequest* req,
                            v1::ListTokensResponse* resp) override;
  ::grpc::Status WhoAmI(::grpc::ServerContext* ctx, const v1::WhoAmIRequest* req,
                        v1::WhoAmIResponse* resp) override;

 private:
  template <typename Req, typename Resp>
  ::grpc::Status Unary(::grpc::ServerContext* ctx, std::string_view rpc,
                       absl::StatusOr<Resp> (FeedbackQueue::*method)(const Caller&, const Req&),
                       const Req& req, Resp* resp) {
    absl::StatusOr<Resp> result = api_->Call(rpc, rpc::BearerToken(*ctx), method, req);
    if (!result.ok()) return ToGrpcStatus(result.status());
    *resp = std::move(*result);
    return ::grpc::Status::OK;
  }

  FeedbackApi* const api_;
  VerdictStreams* const streams_;
};

}  // namespace greenloop::feedback
