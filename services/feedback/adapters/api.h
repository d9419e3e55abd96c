// What the gRPC and HTTP adapters share: turning a bearer token into a Caller (against the token
// table, with a short cache) and calling a FeedbackQueue method with the error policy and metrics
// applied the same way for both.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc/auth.h"
#include "common/grpc/handler_guard.h"
#include "common/logging/logging.h"
#include "common/status/status.h"
#include "services/feedback/adapters/metrics.h"
#include "services/feedback/core/queue.h"
#include "services/feedback/core/store.h"

namespace greenloop::feedback {

/// \brief The feedback service's own rpc::Authenticator: bearer tokens checked against the hashed
/// token table (FeedbackStore::FindToken), cached for `cache_ttl` (each entry for 90–110 % of it,
/// so that a crowd that started together does not come back in the same second).
///
/// Only the SHA-256 of a presented token is looked up, and the stored hash is compared again in
/// constant time. A revoked or expired token is UNAUTHENTICATED; a revoke made through this
/// process takes effect at once (Invalidate()), one made through another replica within
/// `revocation_check` (the cache is dropped when FeedbackStore::RevocationMark() moves; one
/// cheap query per interval, by whichever call finds it due). Unknown tokens are not cached.
/// UNAVAILABLE when the database is down.
///
/// Thread-safety: thread-safe; `store` must outlive it.
class TokenAuthenticator final : public rpc::Authenticator {
 public:
  explicit TokenAuthenticator(FeedbackStore* store, absl::Duration cache_ttl = absl::Minutes(5),
                              absl::Duration revocation_check = absl::Seconds(1));
  absl::StatusOr<rpc::Principal> Authenticate(std::string_view bearer_token) const override;
  /// Forgets every cached token (after a revoke).
  void Invalidate();

 private:
  struct Entry {
    rpc::Principal principal;
    absl::Time until;
  };
  // Drops the cache when a revoke happened anywhere since the last look (at most once per
  // revocation_check_).
  void CheckRevocations(absl::Time now) const;

  FeedbackStore* const store_;
  const absl::Duration cache_ttl_;
  const absl::Duration revocation_check_;
  mutable absl::Mutex mu_;
  mutable std::map<std::string, Entry> cache_ ABSL_GUARDED_BY(mu_);  // by token hash
  mutable absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  mutable std::optional<std::int64_t> revocation_mark_ ABSL_GUARDED_BY(mu_);
  mutable std::uint64_t jitter_state_ ABSL_GUARDED_BY(mu_) = 0x9e3779b97f4a7c15u;
};

/// v1::Role ↔ rpc::Role.
v1::Role ToProto(rpc::Role role);

/// \brief Calls FeedbackQueue methods on behalf of an adapter: authenticates the caller (or acts
/// as the anonymous identity when `authenticator` is null, i.e. authentication disabled), runs the
/// method, converts escaped exceptions to INTERNAL (logged), and counts auth failures, errors and
/// Lease latency.
///
/// Thread-safety: thread-safe; the queue, authenticator and metrics must outlive it.
class FeedbackApi final {
 public:
  FeedbackApi(FeedbackQueue* queue, TokenAuthenticator* authenticator, FeedbackMetrics* metrics);

  /// The caller holding `token` (the result of parsing the request's authorization header).
  absl::StatusOr<Caller> Authenticate(const absl::StatusOr<std::string_view>& token) const;
  /// Authenticate(), with a failure counted against `rpc` as Call() counts it: for an adapter
  /// that checks the caller before it reads the request (the HTTP body).
  absl::StatusOr<Caller> Admit(std::string_view rpc,
                               const absl::StatusOr<std::string_view>& token) const;
  /// Counts a call refused because its client failed to authenticate too often.
  void CountThrottled() const { metrics_->OnAuthThrottled(); }

  /// Runs `method` for the holder of `token`.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(std::string_view rpc, const absl::StatusOr<std::string_view>& token,
                            absl::StatusOr<Resp> (FeedbackQueue::*method)(const Caller&,
                                                                          const Req&),
                            const Req& request) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Resp> result = [&]() -> absl::StatusOr<Resp> {
      try {
        GREENLOOP_ASSIGN_OR_RETURN(Caller caller, Authenticate(token));
        return (queue_->*method)(caller, request);
      } catch (...) {
        return StatusFromCurrentException(rpc);
      }
    }();
    Account(rpc, result.status());
    if (rpc == "Lease" && result.ok()) {
      metrics_->ObserveLeaseLatency(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    if (rpc == "RevokeToken" && result.ok() && authenticator_ != nullptr) {
      authenticator_->Invalidate();
    }
    return result;
  }

  FeedbackQueue* queue() const { return queue_; }
  bool auth_disabled() const { return authenticator_ == nullptr; }

 private:
  void Account(std::string_view rpc, const absl::Status& status) const;

  FeedbackQueue* const queue_;
  TokenAuthenticator* const authenticator_;
  FeedbackMetrics* const metrics_;
  const rpc::HandlerGuard guard_;  // logs and counts (greenloop_feedback_errors_total) INTERNAL
};

}  // namespace greenloop::feedback
