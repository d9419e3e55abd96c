// The feedback queue's FeedbackStore over PostgreSQL (tables in deploy/db/feedback/).
#pragma once

#include <map>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "services/feedback/core/store.h"

namespace greenloop::feedback {

/// The feedback service's SQL migrations, embedded at build time from deploy/db/feedback.
std::vector<pg::Migration> FeedbackMigrations();

/// \brief FeedbackStore in PostgreSQL: each method is one read-committed transaction on `pool`.
///
/// Lease and Submit are one stored function each (deploy/db/feedback/0002_feedback_hot_path.sql):
/// one round trip, plans cached per connection. Submit adds a second statement when the rating
/// completes its item: the verdict, decided by the core (core/verdicts.h) from the ratings the
/// function returned, in the same transaction. Tokens are in pg_tokens.cc, read-side figures in
/// pg_stats.cc.
///
/// How the queue keeps its promises:
///   - Lease picks items with `SELECT … FOR UPDATE SKIP LOCKED` and counts a lease on the item row
///     itself (`holds`), so the `ratings_count + holds < k` test is re-checked on the locked row
///     version and concurrent raters never take an item beyond k. A rater's own Lease calls are
///     serialized by a transaction-scoped advisory lock (its live-lease cap, its "not twice" rule).
///   - Submit locks the lease row, so a retry, a late answer and the reaper see one order; the
///     rating, the lease's end, the item's counters and, when the item is complete, its verdict
///     commit together: an acknowledged rating is durable and a verdict is written exactly once.
///   - Verdicts are written without a seq; ReadVerdicts numbers the committed ones first, under
///     the campaign row's lock (feedback_sequence_verdicts), so seqs are dense, a verdict
///     committed later gets a later seq, and a cursor never skips one, while writers of one
///     campaign never wait for each other.
///
/// Thread-safety: thread-safe; `pool` must outlive the store.
class PgFeedbackStore final : public FeedbackStore {
 public:
  explicit PgFeedbackStore(pg::Pool* pool);

  absl::StatusOr<std::pair<v1::Campaign, bool>> CreateCampaign(
      const std::string& campaign_id, const v1::CampaignSpec& spec) override;
  absl::StatusOr<v1::Campaign> GetCampaign(const std::string& campaign_id) override;
  absl::StatusOr<std::vector<std::pair<std::int64_t, v1::Campaign>>> ListCampaigns(
      const std::vector<v1::CampaignState>& states, const std::string& run_id,
      std::optional<std::int64_t> before_seq, int limit) override;
  absl::StatusOr<v1::Campaign> CloseCampaign(const std::string& campaign_id) override;
  absl::StatusOr<std::vector<v1::EnqueueResult>> Enqueue(
      const std::string& campaign_id, const v1::CampaignSpec& spec,
      const google::protobuf::RepeatedPtrField<v1::ItemInput>& items) override;
  absl::StatusOr<std::vector<LeaseGrant>> Lease(const std::string& campaign_id,
                                                const std::string& rater_id, int max_items,
                                                int gold_wanted, int max_live,
                                                const std::vector<std::int64_t>& candidates,
                                                bool walk_head) override;
  absl::StatusOr<std::vector<HeadItem>> QueueHead(const std::string& campaign_id,
                                                  int ratings_per_item, int agreeing_ratings,
                                                  int limit) override;
  absl::StatusOr<SubmitOutcome> Submit(const std::string& rater_id, std::int64_t lease_id,
                                       const v1::Answer& answer, double seconds_spent) override;
  absl::StatusOr<std::string> Skip(const std::string& rater_id, std::int64_t lease_id,
                                   v1::SkipReason reason) override;
  absl::Status Release(const std::string& rater_id, std::int64_t lease_id) override;
  absl::StatusOr<std::int64_t> ExpireLeases() override;
  absl::StatusOr<VerdictBatch> ReadVerdicts(const std::string& campaign_id, std::int64_t after_seq,
                                            int limit) override;
  absl::StatusOr<CampaignRatings> LoadRatings(const std::string& campaign_id) override;
  absl::StatusOr<int> SaveEstimate(const std::string& campaign_id,
                                   const DawidSkeneResult& estimate) override;
  absl::StatusOr<std::vector<std::string>> CampaignsToReestimate() override;
  absl::StatusOr<v1::GetCampaignStatsResponse> Stats(const std::string& campaign_id) override;
  absl::StatusOr<std::vector<std::pair<std::int64_t, v1::MyRating>>> ListMyRatings(
      const std::string& rater_id, const std::string& campaign_id, bool include_payloads,
      std::optional<std::int64_t> before, int limit) override;
  absl::StatusOr<v1::TokenInfo> CreateToken(const std::string& name, v1::Role role,
                                            const std::string& hash, const std::string& prefix,
                                            std::optional<absl::Time> expire_time) override;
  absl::StatusOr<v1::TokenInfo> RevokeToken(std::int64_t token_id) override;
  absl::StatusOr<std::vector<std::pair<std::int64_t, v1::TokenInfo>>> ListTokens(
      bool include_revoked, v1::Role role, std::optional<std::int64_t> after, int limit) override;
  absl::StatusOr<std::optional<TokenRecord>> FindToken(const std::string& hash) override;
  absl::StatusOr<v1::TokenInfo> GetToken(std::int64_t token_id) override;
  absl::StatusOr<bool> HasLiveAdmin() override;
  absl::StatusOr<std::int64_t> RevocationMark() override;

  /// Queue depth (items still needing ratings) and live leases per open campaign, for metrics.
  struct Gauges {
    std::map<std::string, std::int64_t> depth;
    std::map<std::string, std::int64_t> live_leases;
  };
  absl::StatusOr<Gauges> ReadGauges();

 private:
  // The spec of a campaign, cached: specs never change once created.
  absl::StatusOr<v1::CampaignSpec> Spec(pqxx::work& tx, const std::string& campaign_id);

  // The campaign of a lease owned by `rater_id`: from the leases this process granted, else one
  // lookup. NOT_FOUND when there is none or another rater holds it.
  absl::StatusOr<std::string> LeaseCampaign(pqxx::work& tx, const std::string& rater_id,
                                            std::int64_t lease_id);
  void ForgetLease(std::int64_t lease_id);

  struct LeaseOwner {
    std::string campaign_id;
    std::string rater_id;
  };
  // Bounds lease_owners_: when full it is emptied (a miss costs one primary-key lookup).
  static constexpr std::size_t kLeaseOwnersCap = 100'000;

  pg::Pool* const pool_;
  absl::Mutex mu_;
  std::map<std::string, v1::CampaignSpec> specs_ ABSL_GUARDED_BY(mu_);
  // Leases granted here and not yet ended here: Submit validates the answer against the
  // campaign's spec before its one round trip.
  std::unordered_map<std::int64_t, LeaseOwner> lease_owners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::feedback
