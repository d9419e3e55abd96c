// The feedback queue's logic, one method per RPC: who may call it, what is valid, what the store
// does, what comes back. The gRPC and HTTP adapters only authenticate, convert and call these, so
// both speak the same contract with the same rules and the same errors.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "greenloop/v1/feedback.pb.h"
#include "services/feedback/core/answers.h"
#include "services/feedback/core/dispatcher.h"
#include "services/feedback/core/store.h"

namespace greenloop::feedback {

/// Who is calling, as the adapters authenticated it.
struct Caller {
  std::string id;    // token_id; the rater id of ratings and leases
  std::string name;  // the token's name
  v1::Role role = v1::ROLE_UNSPECIFIED;
  bool anonymous = false;  // authentication disabled: passes every role check

  /// The built-in identity used when authentication is disabled.
  static Caller Anonymous() { return {"anonymous", "anonymous", v1::ROLE_ADMIN, true}; }
};

/// Hooks for metrics; every method has a no-op default. Called after the store's transaction
/// committed, from the RPC's thread.
class QueueObserver {
 public:
  virtual ~QueueObserver() = default;
  virtual void OnLeased(const std::string& /*campaign_id*/, int /*items*/) {}
  virtual void OnSubmitted(const std::string& /*campaign_id*/, bool /*duplicate*/,
                           bool /*verdict_emitted*/, double /*server_seconds*/) {}
  virtual void OnSkipped(const std::string& /*campaign_id*/) {}
  virtual void OnLeasesExpired(std::int64_t /*count*/) {}
  virtual void OnRevisions(const std::string& /*campaign_id*/, int /*count*/) {}
  virtual void OnRateLimited() {}
};

struct QueueOptions {
  Limits limits;
  double rater_requests_per_second = 50;  // per-rater token bucket; 0 disables the limit
  double rater_burst = 100;
  std::uint64_t seed = 0;  // for the gold draws; 0 takes one from std::random_device
  // The in-memory queue head Lease takes candidates from (core/dispatcher.h): items read per
  // refill (0: none, every Lease walks the head in the store) and the oldest view served.
  int head_size = 1024;
  absl::Duration head_max_age = absl::Seconds(1);
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

/// \brief The feedback service's use cases over a FeedbackStore.
///
/// Each method checks the caller's role (PERMISSION_DENIED naming the role needed), validates the
/// request (INVALID_ARGUMENT), applies the per-rater rate limit (RESOURCE_EXHAUSTED) and runs the
/// store; the codes are the contract's (proto/greenloop/v1/feedback.proto).
///
/// `on_verdicts(campaign_id)` is called after a transaction that added verdicts to a campaign
/// committed, so that open WatchVerdicts streams wake up at once instead of at their next poll.
///
/// Thread-safety: all methods are thread-safe. The store and observer must outlive the queue.
class FeedbackQueue final {
 public:
  FeedbackQueue(FeedbackStore* store, QueueOptions options, QueueObserver* observer = nullptr);

  /// Sets the verdict wake-up hook; call before serving.
  void SetVerdictListener(std::function<void(const std::string&)> on_verdicts) {
    on_verdicts_ = std::move(on_verdicts);
  }

  absl::StatusOr<v1::CreateCampaignResponse> CreateCampaign(const Caller& caller,
                                                            const v1::CreateCampaignRequest& req);
  absl::StatusOr<v1::GetCampaignResponse> GetCampaign(const Caller& caller,
                                                      const v1::GetCampaignRequest& req);
  absl::StatusOr<v1::ListCampaignsResponse> ListCampaigns(const Caller& caller,
                                                          const v1::ListCampaignsRequest& req);
  absl::StatusOr<v1::CloseCampaignResponse> CloseCampaign(const Caller& caller,
                                                          const v1::CloseCampaignRequest& req);
  absl::StatusOr<v1::EnqueueItemsResponse> EnqueueItems(const Caller& caller,
                                                        const v1::EnqueueItemsRequest& req);
  absl::StatusOr<v1::LeaseResponse> Lease(const Caller& caller, const v1::LeaseRequest& req);
  absl::StatusOr<v1::SubmitResponse> Submit(const Caller& caller, const v1::SubmitRequest& req);
  absl::StatusOr<v1::SkipResponse> Skip(const Caller& caller, const v1::SkipRequest& req);
  absl::StatusOr<v1::ReleaseResponse> Release(const Caller& caller, const v1::ReleaseRequest& req);
  absl::StatusOr<v1::GetCampaignStatsResponse> GetCampaignStats(
      const Caller& caller, const v1::GetCampaignStatsRequest& req);
  absl::StatusOr<v1::ListMyRatingsResponse> ListMyRatings(const Caller& caller,
                                                          const v1::ListMyRatingsRequest& req);
  absl::StatusOr<v1::CreateTokenResponse> CreateToken(const Caller& caller,
                                                      const v1::CreateTokenRequest& req);
  absl::StatusOr<v1::RevokeTokenResponse> RevokeToken(const Caller& caller,
                                                      const v1::RevokeTokenRequest& req);
  absl::StatusOr<v1::ListTokensResponse> ListTokens(const Caller& caller,
                                                    const v1::ListTokensRequest& req);
  absl::StatusOr<v1::WhoAmIResponse> WhoAmI(const Caller& caller, const v1::WhoAmIRequest& req);

  /// WatchVerdicts' checks: role, campaign id, cursor. Returns the seq to stream after.
  absl::StatusOr<std::int64_t> StartWatch(const Caller& caller,
                                          const v1::WatchVerdictsRequest& req);
  /// The next verdicts after `after_seq`, as stream responses with their cursors.
  struct VerdictPage {
    std::vector<v1::WatchVerdictsResponse> responses;
    std::int64_t last_seq = 0;  // seq of the last response (after_seq when none)
    bool finished = false;      // the campaign is closed and nothing more will come
  };
  absl::StatusOr<VerdictPage> NextVerdicts(const std::string& campaign_id, std::int64_t after_seq,
                                           int limit);

  /// Ends expired leases (the reaper). Returns how many.
  absl::StatusOr<std::int64_t> ExpireLeases();
  /// Re-runs Dawid–Skene over one campaign, stores the rater models, emits changed verdicts.
  absl::StatusOr<int> Reestimate(const std::string& campaign_id);
  /// Re-estimates every campaign with new ratings.
  absl::Status ReestimateAll();

  /// Creates the first admin token from `secret` when no token has its hash (bootstrap).
  /// Returns whether one was created.
  absl::StatusOr<bool> EnsureAdminToken(const std::string& secret, const std::string& name);

  FeedbackStore* store() const { return store_; }

 private:
  absl::Status Allow(const Caller& caller, std::initializer_list<v1::Role> roles) const;
  absl::Status RateLimit(const Caller& caller);
  int DrawGold(double share, int n);
  // Leases from one campaign: candidates first, then fresh candidates and the store's walk of
  // the head for whatever is still missing.
  absl::StatusOr<std::vector<LeaseGrant>> LeaseFrom(const v1::Campaign& campaign,
                                                    const std::string& rater, int wanted, int gold);
  // Up to `n` candidate items for the rater from the in-memory head, refilled here when due.
  std::vector<std::int64_t> Candidates(const v1::Campaign& campaign, const std::string& rater,
                                       int n);
  void NotifyVerdicts(const std::string& campaign_id) const;

  FeedbackStore* const store_;
  const QueueOptions options_;
  QueueObserver* const observer_;
  std::function<void(const std::string&)> on_verdicts_;
  HeadDispatcher head_;

  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::Campaign> campaigns_ ABSL_GUARDED_BY(mu_);  // spec cache for Lease
};

/// \brief The queue's background work: reaps expired leases every `reap_interval` and re-runs
/// Dawid–Skene every `reestimate_interval`. Failures are logged by `on_error` and retried at the
/// next tick. Start() once; Stop() joins the thread (idempotent; the destructor stops).
class MaintenanceLoop final {
 public:
  MaintenanceLoop(FeedbackQueue* queue, absl::Duration reap_interval,
                  absl::Duration reestimate_interval,
                  std::function<void(const absl::Status&)> on_error);
  ~MaintenanceLoop();
  void Start();
  void Stop();

 private:
  void Loop();

  FeedbackQueue* const queue_;
  const absl::Duration reap_interval_;
  const absl::Duration reestimate_interval_;
  std::function<void(const absl::Status&)> on_error_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace greenloop::feedback
