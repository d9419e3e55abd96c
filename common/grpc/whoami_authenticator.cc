#include "common/grpc/whoami_authenticator.h"

#include "common/grpc/channel.h"
#include "fmt/format.h"

namespace greenloop::rpc {

WhoAmIAuthenticator::WhoAmIAuthenticator(std::shared_ptr<::grpc::Channel> feedback,
                                         absl::Duration cache_ttl, absl::Duration deadline)
    : stub_(v1::FeedbackService::NewStub(std::move(feedback))),
      cache_ttl_(cache_ttl),
      deadline_(deadline) {}

absl::StatusOr<Principal> WhoAmIAuthenticator::Authenticate(std::string_view bearer_token) const {
  if (bearer_token.empty()) return absl::UnauthenticatedError("empty bearer token");
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(bearer_token);
    if (it != cache_.end()) {
      if (it->second.expires > now) return it->second.principal;
      cache_.erase(it);
    }
  }
  auto context = NewClientContext(absl::ToChronoMilliseconds(deadline_), bearer_token);
  v1::WhoAmIRequest request;
  v1::WhoAmIResponse response;
  ::grpc::Status status = stub_->WhoAmI(context.get(), request, &response);
  if (status.error_code() == ::grpc::StatusCode::UNAUTHENTICATED ||
      status.error_code() == ::grpc::StatusCode::PERMISSION_DENIED) {
    return absl::UnauthenticatedError("unknown, revoked or expired token");
  }
  if (!status.ok()) {
    return absl::UnavailableError(fmt::format(
        "cannot check the token with the feedback service: {}", status.error_message()));
  }
  Principal principal;
  principal.id = response.info().token_id();
  principal.name = response.info().name();
  switch (response.info().role()) {
    case v1::ROLE_RATER:
      principal.role = Role::kRater;
      break;
    case v1::ROLE_WORKER:
      principal.role = Role::kWorker;
      break;
    case v1::ROLE_ADMIN:
      principal.role = Role::kAdmin;
      break;
    default:
      return absl::UnauthenticatedError("the feedback service reported a token without a role");
  }
  absl::MutexLock lock(&mu_);
  cache_[std::string(bearer_token)] = {principal, now + cache_ttl_};
  return principal;
}

}  // namespace greenloop::rpc
