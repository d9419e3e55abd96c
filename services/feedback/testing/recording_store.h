// An in-memory FeedbackStore for tests and fuzz targets of the queue's own rules (roles,
// validation before storage, rate limits): it records what reached it and answers with empty
// successes, or NOT_FOUND where a value is needed and none was planted. The SQL behind the real
// store is tested against PostgreSQL in tests/integration/feedback.
//
// Thread-safety: none; one test thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "services/feedback/core/store.h"

namespace greenloop::feedback::testing {

// Every method counts its call and returns an empty success (or NOT_FOUND where a value is
// needed and none was planted).
class RecordingStore final : public FeedbackStore {
 public:
  int calls = 0;
  std::optional<v1::Campaign> campaign;
  std::vector<std::pair<std::string, int>> leases;  // (rater, gold_wanted)
  std::map<std::string, TokenRecord> tokens;        // by hash

  absl::StatusOr<std::pair<v1::Campaign, bool>> CreateCampaign(
      const std::string& id, const v1::CampaignSpec& spec) override {
    ++calls;
    v1::Campaign c;
    c.set_campaign_id(id);
    *c.mutable_spec() = spec;
    return std::make_pair(c, true);
  }
  absl::StatusOr<v1::Campaign> GetCampaign(const std::string& id) override {
    ++calls;
    if (!campaign.has_value()) return absl::NotFoundError("campaign '" + id + "' does not exist");
    return *campaign;
  }
  absl::StatusOr<std::vector<std::pair<std::int64_t, v1::Campaign>>> ListCampaigns(
      const std::vector<v1::CampaignState>&, const std::string&, std::optional<std::int64_t>,
      int) override {
    ++calls;
    return std::vector<std::pair<std::int64_t, v1::Campaign>>();
  }
  absl::StatusOr<v1::Campaign> CloseCampaign(const std::string& id) override {
    return GetCampaign(id);
  }
  absl::StatusOr<std::vector<v1::EnqueueResult>> Enqueue(
      const std::string&, const v1::CampaignSpec&,
      const google::protobuf::RepeatedPtrField<v1::ItemInput>& items) override {
    ++calls;
    return std::vector<v1::EnqueueResult>(items.size());
  }
  absl::StatusOr<std::vector<LeaseGrant>> Lease(const std::string&, const std::string& rater, int,
                                                int gold, int, const std::vector<std::int64_t>&,
                                                bool) override {
    ++calls;
    leases.emplace_back(rater, gold);
    return std::vector<LeaseGrant>();
  }
  absl::StatusOr<std::vector<HeadItem>> QueueHead(const std::string&, int, int, int) override {
    ++calls;
    return std::vector<HeadItem>();
  }
  absl::StatusOr<SubmitOutcome> Submit(const std::string&, std::int64_t, const v1::Answer&,
                                       double) override {
    ++calls;
    return SubmitOutcome{.rating_id = 7};
  }
  absl::StatusOr<std::string> Skip(const std::string&, std::int64_t, v1::SkipReason) override {
    ++calls;
    return std::string("c");
  }
  absl::Status Release(const std::string&, std::int64_t) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::StatusOr<std::int64_t> ExpireLeases() override { return 0; }
  absl::StatusOr<VerdictBatch> ReadVerdicts(const std::string&, std::int64_t, int) override {
    return VerdictBatch();
  }
  absl::StatusOr<CampaignRatings> LoadRatings(const std::string&) override {
    return CampaignRatings();
  }
  absl::StatusOr<int> SaveEstimate(const std::string&, const DawidSkeneResult&) override {
    return 0;
  }
  absl::StatusOr<std::vector<std::string>> CampaignsToReestimate() override {
    return std::vector<std::string>();
  }
  absl::StatusOr<v1::GetCampaignStatsResponse> Stats(const std::string&) override {
    ++calls;
    return v1::GetCampaignStatsResponse();
  }
  absl::StatusOr<std::vector<std::pair<std::int64_t, v1::MyRating>>> ListMyRatings(
      const std::string&, const std::string&, bool, std::optional<std::int64_t>, int) override {
    ++calls;
    return std::vector<std::pair<std::int64_t, v1::MyRating>>();
  }
  absl::StatusOr<v1::TokenInfo> CreateToken(const std::string& name, v1::Role role,
                                            const std::string& hash, const std::string& prefix,
                                            std::optional<absl::Time>) override {
    ++calls;
    v1::TokenInfo info;
    info.set_token_id(std::to_string(tokens.size() + 1));
    info.set_name(name);
    info.set_role(role);
    info.set_token_prefix(prefix);
    tokens[hash] = {info, hash};
    return info;
  }
  absl::StatusOr<v1::TokenInfo> RevokeToken(std::int64_t) override {
    ++calls;
    return v1::TokenInfo();
  }
  absl::StatusOr<std::vector<std::pair<std::int64_t, v1::TokenInfo>>> ListTokens(
      bool, v1::Role, std::optional<std::int64_t>, int) override {
    ++calls;
    return std::vector<std::pair<std::int64_t, v1::TokenInfo>>();
  }
  absl::StatusOr<std::optional<TokenRecord>> FindToken(const std::string& hash) override {
    if (auto it = tokens.find(hash); it != tokens.end()) return std::optional(it->second);
    return std::optional<TokenRecord>();
  }
  absl::StatusOr<v1::TokenInfo> GetToken(std::int64_t) override {
    return absl::NotFoundError("no token");
  }
  absl::StatusOr<bool> HasLiveAdmin() override { return !tokens.empty(); }
  absl::StatusOr<std::int64_t> RevocationMark() override { return 0; }
};

}  // namespace greenloop::feedback::testing
