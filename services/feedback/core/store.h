// The feedback queue's storage port: what the core needs from a database, declared here and
// implemented by services/feedback/storage (PostgreSQL). Data travels as the contract's messages.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "greenloop/v1/feedback.pb.h"
#include "services/feedback/core/consensus.h"
#include "services/feedback/core/dispatcher.h"

namespace greenloop::feedback {

/// One item leased to a rater, as stored; the core adds the question.
struct LeaseGrant {
  std::int64_t lease_id = 0;
  std::int64_t item_id = 0;
  std::string campaign_id;
  absl::Time expire_time;
  v1::Payload payload;
  std::optional<std::uint32_t> given_label;
  std::optional<v1::ModelPrediction> prediction;
};

/// What a Submit did.
struct SubmitOutcome {
  std::int64_t rating_id = 0;
  bool duplicate = false;  // the lease had been submitted with this answer already
  std::string campaign_id;
  double server_seconds = 0;     // lease to submit, as the database clock measured it
  bool verdict_emitted = false;  // this rating completed the item
};

/// A page of verdicts after a cursor.
struct VerdictBatch {
  std::vector<std::pair<std::int64_t, v1::Verdict>> verdicts;  // (seq, verdict), seq ascending
  bool finished = false;  // campaign closed, nothing live, and nothing after the last one
};

/// A campaign's ratings, for Dawid–Skene re-estimation.
struct CampaignRatings {
  v1::CampaignSpec spec;
  std::vector<Observation> observations;                // every rating, gold items included
  std::map<std::int64_t, int> gold;                     // item → known category
  std::map<std::int64_t, std::pair<int, int>> decided;  // item → (current decision, revision)
};

/// A stored token, looked up by the hash of its secret.
struct TokenRecord {
  v1::TokenInfo info;
  std::string hash;  // SHA-256 of the secret, raw bytes
};

/// \brief Durable state of the feedback queue. Every method is one transaction; the contract's
/// error codes come back as documented on each RPC (NOT_FOUND for an unknown campaign, lease or
/// token, FAILED_PRECONDITION for a closed campaign or an ended lease, ...), and UNAVAILABLE when
/// the database is down.
///
/// Thread-safety: implementations are safe to call from many threads at once.
class FeedbackStore {
 public:
  virtual ~FeedbackStore() = default;

  /// Creates the campaign (spec already normalized) or returns the existing equal one with
  /// created = false; ALREADY_EXISTS when it exists with another spec.
  virtual absl::StatusOr<std::pair<v1::Campaign, bool>> CreateCampaign(
      const std::string& campaign_id, const v1::CampaignSpec& spec) = 0;
  virtual absl::StatusOr<v1::Campaign> GetCampaign(const std::string& campaign_id) = 0;
  /// Campaigns newest first, created before `before_seq` (all when nullopt), filtered by state
  /// (empty: every state) and run; returns (seq, campaign) pairs.
  virtual absl::StatusOr<std::vector<std::pair<std::int64_t, v1::Campaign>>> ListCampaigns(
      const std::vector<v1::CampaignState>& states, const std::string& run_id,
      std::optional<std::int64_t> before_seq, int limit) = 0;
  virtual absl::StatusOr<v1::Campaign> CloseCampaign(const std::string& campaign_id) = 0;

  /// Enqueues a validated batch atomically (see EnqueueItems). FAILED_PRECONDITION when closed.
  virtual absl::StatusOr<std::vector<v1::EnqueueResult>> Enqueue(
      const std::string& campaign_id, const v1::CampaignSpec& spec,
      const google::protobuf::RepeatedPtrField<v1::ItemInput>& items) = 0;

  /// Leases up to `max_items` to `rater_id`, of which up to `gold_wanted` gold items, never more
  /// than the rater's `max_live` live leases in all. FAILED_PRECONDITION when closed. Ordinary
  /// items come from `candidates` (ids, best first; hints that may be stale) where they still
  /// qualify, then, when `walk_head`, from the queue head (and gold items to fill up).
  virtual absl::StatusOr<std::vector<LeaseGrant>> Lease(const std::string& campaign_id,
                                                        const std::string& rater_id, int max_items,
                                                        int gold_wanted, int max_live,
                                                        const std::vector<std::int64_t>& candidates,
                                                        bool walk_head) = 0;
  /// The best `limit` items of the campaign that still need ratings (k = `ratings_per_item`,
  /// capped at `agreeing_ratings` raters until that many ratings are in; CampaignSpec), best
  /// first, with their free slots; a plain read, nothing locked.
  virtual absl::StatusOr<std::vector<HeadItem>> QueueHead(const std::string& campaign_id,
                                                          int ratings_per_item,
                                                          int agreeing_ratings, int limit) = 0;
  /// Records an answer (validated against the campaign here, in the transaction) and, when it
  /// completes the item, its verdict. See Submit in the contract for the codes.
  virtual absl::StatusOr<SubmitOutcome> Submit(const std::string& rater_id, std::int64_t lease_id,
                                               const v1::Answer& answer, double seconds_spent) = 0;
  /// Returns the campaign of the skipped item.
  virtual absl::StatusOr<std::string> Skip(const std::string& rater_id, std::int64_t lease_id,
                                           v1::SkipReason reason) = 0;
  virtual absl::Status Release(const std::string& rater_id, std::int64_t lease_id) = 0;
  /// Ends every live lease past its expire time; returns how many.
  virtual absl::StatusOr<std::int64_t> ExpireLeases() = 0;

  /// Verdicts of a campaign after `after_seq`, at most `limit`. NOT_FOUND for an unknown campaign.
  virtual absl::StatusOr<VerdictBatch> ReadVerdicts(const std::string& campaign_id,
                                                    std::int64_t after_seq, int limit) = 0;
  /// Every rating of a campaign with gold answers and current decisions.
  virtual absl::StatusOr<CampaignRatings> LoadRatings(const std::string& campaign_id) = 0;
  /// Stores new rater models and, for items whose decision changed, a new verdict revision.
  /// Returns the revisions emitted.
  virtual absl::StatusOr<int> SaveEstimate(const std::string& campaign_id,
                                           const DawidSkeneResult& estimate) = 0;
  /// Open campaigns with ratings newer than their models (for the re-estimator).
  virtual absl::StatusOr<std::vector<std::string>> CampaignsToReestimate() = 0;

  /// Queue, rater and throughput figures; the agreement fields are filled by the core.
  virtual absl::StatusOr<v1::GetCampaignStatsResponse> Stats(const std::string& campaign_id) = 0;
  /// The rater's ratings, newest first, with rating_id below `before` (all when nullopt).
  virtual absl::StatusOr<std::vector<std::pair<std::int64_t, v1::MyRating>>> ListMyRatings(
      const std::string& rater_id, const std::string& campaign_id, bool include_payloads,
      std::optional<std::int64_t> before, int limit) = 0;

  virtual absl::StatusOr<v1::TokenInfo> CreateToken(const std::string& name, v1::Role role,
                                                    const std::string& hash,
                                                    const std::string& prefix,
                                                    std::optional<absl::Time> expire_time) = 0;
  /// FAILED_PRECONDITION when it is the last live admin token. Releases a rater's live leases.
  virtual absl::StatusOr<v1::TokenInfo> RevokeToken(std::int64_t token_id) = 0;
  virtual absl::StatusOr<std::vector<std::pair<std::int64_t, v1::TokenInfo>>> ListTokens(
      bool include_revoked, v1::Role role, std::optional<std::int64_t> after, int limit) = 0;
  /// The token with this hash, revoked and expired ones included; nullopt when none. Marks it
  /// used (at minute precision).
  virtual absl::StatusOr<std::optional<TokenRecord>> FindToken(const std::string& hash) = 0;
  /// The token with this id; NOT_FOUND when none.
  virtual absl::StatusOr<v1::TokenInfo> GetToken(std::int64_t token_id) = 0;
  /// Whether a live (not revoked, not expired) admin token exists.
  virtual absl::StatusOr<bool> HasLiveAdmin() = 0;
  /// A mark that changes whenever any token is revoked (by any replica): the newest revoke time
  /// in microseconds, 0 when none. Cheap: token caches ask it every second.
  virtual absl::StatusOr<std::int64_t> RevocationMark() = 0;
};

}  // namespace greenloop::feedback
