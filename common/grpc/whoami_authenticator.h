// An Authenticator for the services that do not own the token store (energy collector, trainer):
// it asks the feedback service, which does, through FeedbackService.WhoAmI.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc/auth.h"
#include "greenloop/v1/feedback.grpc.pb.h"

namespace greenloop::rpc {

/// \brief Authenticates a bearer token by calling FeedbackService.WhoAmI with it, and caches the
/// answer for `cache_ttl` so that a busy service does not call the feedback service per RPC.
///
/// A revoked token therefore keeps working here for up to `cache_ttl` (default 30 s). Unknown
/// tokens are not cached (each costs one WhoAmI call). Errors: UNAUTHENTICATED when the feedback
/// service rejects the token; UNAVAILABLE (naming the feedback service) when it cannot be asked.
///
/// Thread-safety: safe from any thread.
class WhoAmIAuthenticator final : public Authenticator {
 public:
  /// `feedback` is a channel to the feedback service (rpc::CreateChannel).
  explicit WhoAmIAuthenticator(std::shared_ptr<::grpc::Channel> feedback,
                               absl::Duration cache_ttl = absl::Seconds(30),
                               absl::Duration deadline = absl::Seconds(2));

  absl::StatusOr<Principal> Authenticate(std::string_view bearer_token) const override;

 private:
  struct Entry {
    Principal principal;
    absl::Time expires;
  };
  std::unique_ptr<v1::FeedbackService::Stub> stub_;
  const absl::Duration cache_ttl_;
  const absl::Duration deadline_;
  mutable absl::Mutex mu_;
  mutable std::map<std::string, Entry, std::less<>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::rpc
