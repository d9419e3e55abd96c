#include "services/feedback/adapters/api.h"

#include "services/feedback/core/tokens.h"

namespace greenloop::feedback {
namespace {

rpc::Role FromProto(v1::Role role) {
  switch (role) {
    case v1::ROLE_WORKER:
      return rpc::Role::kWorker;
    case v1::ROLE_ADMIN:
      return rpc::Role::kAdmin;
    default:
      return rpc::Role::kRater;
  }
}

}  // namespace

v1::Role ToProto(rpc::Role role) {
  switch (role) {
    case rpc::Role::kRater:
      return v1::ROLE_RATER;
    case rpc::Role::kWorker:
      return v1::ROLE_WORKER;
    case rpc::Role::kAdmin:
      return v1::ROLE_ADMIN;
  }
  return v1::ROLE_UNSPECIFIED;
}

TokenAuthenticator::TokenAuthenticator(FeedbackStore* store, absl::Duration cache_ttl,
                                       absl::Duration revocation_check)
    : store_(store), cache_ttl_(cache_ttl), revocation_check_(revocation_check) {}

void TokenAuthenticator::CheckRevocations(absl::Time now) const {
  {
    absl::MutexLock lock(&mu_);
    if (now < next_check_) return;
    next_check_ = now + revocation_check_;  // the other callers go on with the cache meanwhile
  }
  absl::StatusOr<std::int64_t> mark = store_->RevocationMark();
  if (!mark.ok()) return;  // the lookup that follows a miss reports the database's state
  absl::MutexLock lock(&mu_);
  if (revocation_mark_.has_value() && *revocation_mark_ != *mark) cache_.clear();
  revocation_mark_ = *mark;
}

absl::StatusOr<rpc::Principal> TokenAuthenticator::Authenticate(
    std::string_view bearer_token) const {
  const std::string hash = HashTokenSecret(bearer_token);
  const absl::Time now = absl::Now();
  CheckRevocations(now);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(hash); it != cache_.end()) {
      if (it->second.until > now) return it->second.principal;
      cache_.erase(it);
    }
  }
  GREENLOOP_ASSIGN_OR_RETURN(std::optional<TokenRecord> found, store_->FindToken(hash));
  if (!found.has_value() || !ConstantTimeEqual(found->hash, hash)) {
    return absl::UnauthenticatedError("unknown bearer token");
  }
  const v1::TokenInfo& info = found->info;
  if (info.has_revoke_time()) {
    return absl::UnauthenticatedError(fmt::format("token '{}' was revoked", info.name()));
  }
  absl::Time until;
  {
    absl::MutexLock lock(&mu_);
    jitter_state_ = jitter_state_ * 6364136223846793005u + 1442695040888963407u;  // LCG
    const double spread = 0.9 + 0.2 * static_cast<double>(jitter_state_ >> 11) / 0x1p53;
    until = now + cache_ttl_ * spread;
  }
  if (info.has_expire_time()) {
    const absl::Time expire = absl::FromUnixSeconds(info.expire_time().seconds());
    if (expire <= now) {
      return absl::UnauthenticatedError(fmt::format("token '{}' has expired", info.name()));
    }
    until = std::min(until, expire);
  }
  rpc::Principal principal{info.token_id(), info.name(), FromProto(info.role())};
  absl::MutexLock lock(&mu_);
  cache_[hash] = {principal, until};
  return principal;
}

void TokenAuthenticator::Invalidate() {
  absl::MutexLock lock(&mu_);
  cache_.clear();
}

FeedbackApi::FeedbackApi(FeedbackQueue* queue, TokenAuthenticator* authenticator,
                         FeedbackMetrics* metrics)
    : queue_(queue),
      authenticator_(authenticator),
      metrics_(metrics),
      guard_("feedback",
             [metrics](std::string_view rpc) { metrics->OnInternalError(std::string(rpc)); }) {}

absl::StatusOr<Caller> FeedbackApi::Authenticate(
    const absl::StatusOr<std::string_view>& token) const {
  if (authenticator_ == nullptr) return Caller::Anonymous();
  if (!token.ok()) return token.status();
  GREENLOOP_ASSIGN_OR_RETURN(rpc::Principal p, authenticator_->Authenticate(*token));
  return Caller{p.id, p.name, ToProto(p.role)};
}

absl::StatusOr<Caller> FeedbackApi::Admit(std::string_view rpc,
                                          const absl::StatusOr<std::string_view>& token) const {
  absl::StatusOr<Caller> caller = Authenticate(token);
  if (!caller.ok()) Account(rpc, caller.status());
  return caller;
}

void FeedbackApi::Account(std::string_view rpc, const absl::Status& status) const {
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
      metrics_->OnUnauthenticated();
      break;
    case absl::StatusCode::kPermissionDenied:
      metrics_->OnPermissionDenied();
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      guard_.Account(rpc, status);  // the common policy: logged and counted
      break;
    default:
      break;
  }
}

}  // namespace greenloop::feedback
