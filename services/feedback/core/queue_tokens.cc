// FeedbackQueue's token use cases: CreateToken, RevokeToken, ListTokens, WhoAmI and the bootstrap
// admin token (the rest of the queue is in queue.cc).
#include "common/status/status.h"
#include "fmt/format.h"
#include "google/protobuf/util/time_util.h"
#include "services/feedback/core/answers.h"
#include "services/feedback/core/queue.h"
#include "services/feedback/core/tokens.h"

namespace greenloop::feedback {

using google::protobuf::util::TimeUtil;

absl::StatusOr<v1::CreateTokenResponse> FeedbackQueue::CreateToken(
    const Caller& caller, const v1::CreateTokenRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_ADMIN}));
  if (req.role() == v1::ROLE_UNSPECIFIED || !v1::Role_IsValid(req.role())) {
    return absl::InvalidArgumentError("role is required: ROLE_RATER, ROLE_WORKER or ROLE_ADMIN");
  }
  if (req.name().empty() || req.name().size() > 64) {
    return absl::InvalidArgumentError("name must be 1 to 64 characters");
  }
  std::optional<absl::Time> expire;
  if (req.has_expire_time()) {
    expire = absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(req.expire_time()));
    if (*expire <= options_.clock()) {
      return absl::InvalidArgumentError("expire_time is in the past");
    }
  }
  GREENLOOP_ASSIGN_OR_RETURN(std::string secret, GenerateTokenSecret());
  GREENLOOP_ASSIGN_OR_RETURN(v1::TokenInfo info,
                             store_->CreateToken(req.name(), req.role(), HashTokenSecret(secret),
                                                 TokenPrefix(secret), expire));
  v1::CreateTokenResponse out;
  out.set_token(secret);
  *out.mutable_info() = std::move(info);
  return out;
}

absl::StatusOr<v1::RevokeTokenResponse> FeedbackQueue::RevokeToken(
    const Caller& caller, const v1::RevokeTokenRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_ADMIN}));
  if (req.token_id().empty()) return absl::InvalidArgumentError("token_id is required");
  std::optional<std::int64_t> id = ParseId(req.token_id());
  if (!id.has_value()) {
    return absl::NotFoundError(
        fmt::format("token '{}' does not exist", std::string_view(req.token_id()).substr(0, 80)));
  }
  GREENLOOP_ASSIGN_OR_RETURN(v1::TokenInfo info, store_->RevokeToken(*id));
  v1::RevokeTokenResponse out;
  *out.mutable_info() = std::move(info);
  return out;
}

absl::StatusOr<v1::ListTokensResponse> FeedbackQueue::ListTokens(const Caller& caller,
                                                                 const v1::ListTokensRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_ADMIN}));
  if (!v1::Role_IsValid(req.role())) return absl::InvalidArgumentError("role is not a Role");
  const std::string scope =
      fmt::format("tokens/{}/{}", req.include_revoked(), static_cast<int>(req.role()));
  GREENLOOP_ASSIGN_OR_RETURN(std::optional<std::int64_t> after,
                             DecodePageToken(scope, req.page().page_token()));
  const int size = PageSize(req.page());
  GREENLOOP_ASSIGN_OR_RETURN(
      auto rows, store_->ListTokens(req.include_revoked(), req.role(), after, size + 1));
  v1::ListTokensResponse out;
  for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
    *out.add_tokens() = std::move(rows[i].second);
  }
  if (static_cast<int>(rows.size()) > size) {
    out.set_next_page_token(EncodePageToken(scope, rows[size - 1].first));
  }
  return out;
}

absl::StatusOr<v1::WhoAmIResponse> FeedbackQueue::WhoAmI(const Caller& caller,
                                                         const v1::WhoAmIRequest&) {
  v1::WhoAmIResponse out;
  if (caller.anonymous) {
    out.mutable_info()->set_name(caller.name);
    out.mutable_info()->set_role(caller.role);
    return out;
  }
  std::optional<std::int64_t> id = ParseId(caller.id);
  if (!id.has_value()) return absl::UnauthenticatedError("unknown bearer token");
  GREENLOOP_ASSIGN_OR_RETURN(v1::TokenInfo info, store_->GetToken(*id));
  *out.mutable_info() = std::move(info);
  return out;
}

absl::StatusOr<bool> FeedbackQueue::EnsureAdminToken(const std::string& secret,
                                                     const std::string& name) {
  const std::string hash = HashTokenSecret(secret);
  GREENLOOP_ASSIGN_OR_RETURN(std::optional<TokenRecord> found, store_->FindToken(hash));
  if (found.has_value()) return false;
  GREENLOOP_RETURN_IF_ERROR(
      store_->CreateToken(name, v1::ROLE_ADMIN, hash, TokenPrefix(secret), std::nullopt).status());
  return true;
}

}  // namespace greenloop::feedback
