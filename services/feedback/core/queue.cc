#include "services/feedback/core/queue.h"

#include <algorithm>
#include <cmath>

#include "common/status/status.h"
#include "fmt/format.h"
#include "google/protobuf/util/time_util.h"
#include "services/feedback/core/tokens.h"

namespace greenloop::feedback {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::StatusOr<std::int64_t> LeaseId(std::string_view lease_id) {
  if (lease_id.empty()) return absl::InvalidArgumentError("lease_id is required");
  std::optional<std::int64_t> id = ParseId(lease_id);
  if (!id.has_value()) {
    return absl::NotFoundError(fmt::format("lease '{}' does not exist", lease_id.substr(0, 80)));
  }
  return *id;
}

std::string RoleList(std::initializer_list<v1::Role> roles) {
  std::string out;
  for (v1::Role r : roles) {
    if (!out.empty()) out += " or ";
    out += v1::Role_Name(r);
  }
  return out;
}

}  // namespace

FeedbackQueue::FeedbackQueue(FeedbackStore* store, QueueOptions options, QueueObserver* observer)
    : store_(store),
      options_(std::move(options)),
      observer_(observer),
      head_(options_.head_max_age) {
  absl::MutexLock lock(&mu_);
  rng_.seed(options_.seed != 0 ? options_.seed : std::random_device{}());
}

absl::Status FeedbackQueue::Allow(const Caller& caller,
                                  std::initializer_list<v1::Role> roles) const {
  if (caller.anonymous || roles.size() == 0) return absl::OkStatus();
  if (std::find(roles.begin(), roles.end(), caller.role) != roles.end()) return absl::OkStatus();
  return absl::PermissionDeniedError(fmt::format("'{}' has role {}; this method needs role {}",
                                                 caller.name, v1::Role_Name(caller.role),
                                                 RoleList(roles)));
}

absl::Status FeedbackQueue::RateLimit(const Caller& caller) {
  if (options_.rater_requests_per_second <= 0) return absl::OkStatus();
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = buckets_.try_emplace(caller.id, Bucket{options_.rater_burst, now});
  Bucket& b = it->second;
  b.tokens = std::min(options_.rater_burst, b.tokens + absl::ToDoubleSeconds(now - b.updated) *
                                                           options_.rater_requests_per_second);
  b.updated = now;
  if (b.tokens < 1) {
    if (observer_ != nullptr) observer_->OnRateLimited();
    return absl::ResourceExhaustedError(
        fmt::format("rate limit: at most {} requests per second per rater; slow down",
                    options_.rater_requests_per_second));
  }
  b.tokens -= 1;
  return absl::OkStatus();
}

int FeedbackQueue::DrawGold(double share, int n) {
  if (share <= 0) return 0;
  absl::MutexLock lock(&mu_);
  std::uniform_real_distribution<double> u(0, 1);
  int gold = 0;
  for (int i = 0; i < n; ++i) gold += u(rng_) < share ? 1 : 0;
  return gold;
}

std::vector<std::int64_t> FeedbackQueue::Candidates(const v1::Campaign& campaign,
                                                    const std::string& rater, int n) {
  if (options_.head_size <= 0 || n <= 0) return {};
  const std::string& id = campaign.campaign_id();
  // Spares: when another Lease holds a candidate's row, the store takes a spare, not a walk.
  constexpr int kSpares = 8;
  bool refill = false;
  std::vector<std::int64_t> out = head_.Take(id, rater, n, options_.clock(), &refill, kSpares);
  if (!refill) return out;
  absl::StatusOr<std::vector<HeadItem>> items =
      store_->QueueHead(id, static_cast<int>(campaign.spec().ratings_per_item()),
                        static_cast<int>(campaign.spec().agreeing_ratings()), options_.head_size);
  // A failed read leaves an empty view: Lease walks the head itself until the next refill.
  head_.Refill(id, items.ok() ? *std::move(items) : std::vector<HeadItem>(), options_.clock());
  if (out.empty()) out = head_.Take(id, rater, n, options_.clock(), nullptr, kSpares);
  return out;
}

absl::StatusOr<std::vector<LeaseGrant>> FeedbackQueue::LeaseFrom(const v1::Campaign& campaign,
                                                                 const std::string& rater,
                                                                 int wanted, int gold) {
  const std::string& id = campaign.campaign_id();
  auto lease = [&](int n, int g, const std::vector<std::int64_t>& candidates,
                   bool walk) -> absl::StatusOr<std::vector<LeaseGrant>> {
    GREENLOOP_ASSIGN_OR_RETURN(
        std::vector<LeaseGrant> grants,
        store_->Lease(id, rater, n, g, options_.limits.max_live_leases, candidates, walk));
    if (!grants.empty()) {  // a no-op without a view (head_size 0)
      std::vector<std::int64_t> leased;
      for (const LeaseGrant& grant : grants) leased.push_back(grant.item_id);
      head_.Leased(id, rater, leased);
    }
    return grants;
  };
  // Candidates alone first: walking a busy head costs tens of times more than rows by key.
  const std::vector<std::int64_t> candidates = Candidates(campaign, rater, wanted - gold);
  GREENLOOP_ASSIGN_OR_RETURN(std::vector<LeaseGrant> grants,
                             lease(wanted, gold, candidates, candidates.empty()));
  const int missing = wanted - static_cast<int>(grants.size());
  if (!candidates.empty() && missing > 0) {
    // Some candidates were gone: fresh ones, then the walk for whatever they do not give.
    GREENLOOP_ASSIGN_OR_RETURN(std::vector<LeaseGrant> more,
                               lease(missing, 0, Candidates(campaign, rater, missing), true));
    for (LeaseGrant& g : more) grants.push_back(std::move(g));
  }
  return grants;
}

void FeedbackQueue::NotifyVerdicts(const std::string& campaign_id) const {
  if (on_verdicts_) on_verdicts_(campaign_id);
}

absl::StatusOr<v1::CreateCampaignResponse> FeedbackQueue::CreateCampaign(
    const Caller& caller, const v1::CreateCampaignRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_WORKER, v1::ROLE_ADMIN}));
  std::string id = req.campaign_id();
  if (id.empty()) {
    absl::MutexLock lock(&mu_);
    id = fmt::format("c-{:016x}", rng_());
  }
  GREENLOOP_RETURN_IF_ERROR(ValidateClientId(id));
  if (!req.has_spec()) return absl::InvalidArgumentError("spec is required");
  GREENLOOP_ASSIGN_OR_RETURN(v1::CampaignSpec spec, NormalizeSpec(req.spec()));
  GREENLOOP_ASSIGN_OR_RETURN(auto created, store_->CreateCampaign(id, spec));
  v1::CreateCampaignResponse out;
  *out.mutable_campaign() = std::move(created.first);
  out.set_created(created.second);
  return out;
}

absl::StatusOr<v1::GetCampaignResponse> FeedbackQueue::GetCampaign(
    const Caller& caller, const v1::GetCampaignRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {}));
  GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  GREENLOOP_ASSIGN_OR_RETURN(v1::Campaign campaign, store_->GetCampaign(req.campaign_id()));
  if (!caller.anonymous && caller.role == v1::ROLE_RATER &&
      campaign.state() == v1::CAMPAIGN_STATE_CLOSED) {
    return absl::NotFoundError(fmt::format("campaign '{}' does not exist", req.campaign_id()));
  }
  v1::GetCampaignResponse out;
  *out.mutable_campaign() = std::move(campaign);
  return out;
}

absl::StatusOr<v1::ListCampaignsResponse> FeedbackQueue::ListCampaigns(
    const Caller& caller, const v1::ListCampaignsRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {}));
  std::vector<v1::CampaignState> states;
  std::string scope = "campaigns/" + req.run_id();
  for (int s : req.states()) {
    if (s == v1::CAMPAIGN_STATE_UNSPECIFIED || !v1::CampaignState_IsValid(s)) {
      return absl::InvalidArgumentError(
          "states holds CAMPAIGN_STATE_UNSPECIFIED or an unknown "
          "state; use CAMPAIGN_STATE_OPEN or CAMPAIGN_STATE_CLOSED");
    }
    states.push_back(static_cast<v1::CampaignState>(s));
    scope += fmt::format("/{}", s);
  }
  if (!req.run_id().empty()) GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.run_id(), "run_id"));
  const bool rater = !caller.anonymous && caller.role == v1::ROLE_RATER;
  if (rater) {
    const bool wants_open = states.empty() || std::find(states.begin(), states.end(),
                                                        v1::CAMPAIGN_STATE_OPEN) != states.end();
    if (!wants_open) return v1::ListCampaignsResponse();
    states = {v1::CAMPAIGN_STATE_OPEN};
  }
  GREENLOOP_ASSIGN_OR_RETURN(std::optional<std::int64_t> before,
                             DecodePageToken(scope, req.page().page_token()));
  const int size = PageSize(req.page());
  GREENLOOP_ASSIGN_OR_RETURN(auto rows,
                             store_->ListCampaigns(states, req.run_id(), before, size + 1));
  v1::ListCampaignsResponse out;
  for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
    *out.add_campaigns() = rows[i].second;
  }
  if (static_cast<int>(rows.size()) > size) {
    out.set_next_page_token(EncodePageToken(scope, rows[size - 1].first));
  }
  return out;
}

absl::StatusOr<v1::CloseCampaignResponse> FeedbackQueue::CloseCampaign(
    const Caller& caller, const v1::CloseCampaignRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_WORKER, v1::ROLE_ADMIN}));
  GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  GREENLOOP_ASSIGN_OR_RETURN(v1::Campaign campaign, store_->CloseCampaign(req.campaign_id()));
  head_.Forget(req.campaign_id());
  NotifyVerdicts(req.campaign_id());  // streams may now be able to end
  v1::CloseCampaignResponse out;
  *out.mutable_campaign() = std::move(campaign);
  return out;
}

absl::StatusOr<v1::EnqueueItemsResponse> FeedbackQueue::EnqueueItems(
    const Caller& caller, const v1::EnqueueItemsRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_WORKER, v1::ROLE_ADMIN}));
  GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  if (req.items_size() == 0) return absl::InvalidArgumentError("items is empty");
  if (req.items_size() > options_.limits.max_batch_items) {
    return absl::InvalidArgumentError(fmt::format("items has {} entries; at most {} per call",
                                                  req.items_size(),
                                                  options_.limits.max_batch_items));
  }
  GREENLOOP_ASSIGN_OR_RETURN(v1::Campaign campaign, store_->GetCampaign(req.campaign_id()));
  std::map<std::pair<int, std::uint64_t>, int> seen;
  for (int i = 0; i < req.items_size(); ++i) {
    GREENLOOP_RETURN_IF_ERROR(ValidateItem(campaign.spec(), req.items(i), i, options_.limits));
    const auto key = std::make_pair(static_cast<int>(req.items(i).sample().dataset()),
                                    req.items(i).sample().index());
    if (auto [it, inserted] = seen.emplace(key, i); !inserted) {
      return absl::InvalidArgumentError(
          fmt::format("items[{}]: sample {} is also items[{}]; a sample may appear once per batch",
                      i, req.items(i).sample().index(), it->second));
    }
  }
  GREENLOOP_ASSIGN_OR_RETURN(auto results,
                             store_->Enqueue(req.campaign_id(), campaign.spec(), req.items()));
  v1::EnqueueItemsResponse out;
  for (auto& r : results) *out.add_results() = std::move(r);
  return out;
}

absl::StatusOr<v1::LeaseResponse> FeedbackQueue::Lease(const Caller& caller,
                                                       const v1::LeaseRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_RATER}));
  if (!req.campaign_id().empty()) GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  if (req.max_items() > static_cast<std::uint32_t>(options_.limits.max_lease_items)) {
    return absl::InvalidArgumentError(
        fmt::format("max_items {} is above {}", req.max_items(), options_.limits.max_lease_items));
  }
  GREENLOOP_RETURN_IF_ERROR(RateLimit(caller));
  const int wanted = req.max_items() == 0 ? 1 : static_cast<int>(req.max_items());

  std::vector<v1::Campaign> campaigns;
  if (!req.campaign_id().empty()) {
    // Specs never change, so a campaign seen once is not read again here; the store checks the
    // state (closed) in the lease's own transaction.
    absl::MutexLock lock(&mu_);
    auto it = campaigns_.find(req.campaign_id());
    if (it != campaigns_.end()) campaigns.push_back(it->second);
  }
  if (!req.campaign_id().empty() && campaigns.empty()) {
    GREENLOOP_ASSIGN_OR_RETURN(v1::Campaign c, store_->GetCampaign(req.campaign_id()));
    absl::MutexLock lock(&mu_);
    campaigns_[c.campaign_id()] = c;
    campaigns.push_back(std::move(c));
  } else if (req.campaign_id().empty()) {
    GREENLOOP_ASSIGN_OR_RETURN(auto rows,
                               store_->ListCampaigns({v1::CAMPAIGN_STATE_OPEN}, "", {}, 50));
    for (auto& [seq, c] : rows) campaigns.push_back(std::move(c));
  }
  v1::LeaseResponse out;
  for (const v1::Campaign& campaign : campaigns) {
    const int gold = DrawGold(campaign.spec().gold_share(), wanted);
    GREENLOOP_ASSIGN_OR_RETURN(std::vector<LeaseGrant> grants,
                               LeaseFrom(campaign, caller.id, wanted, gold));
    for (LeaseGrant& g : grants) {
      v1::LeasedItem* item = out.add_items();
      item->set_lease_id(std::to_string(g.lease_id));
      item->set_item_id(std::to_string(g.item_id));
      item->set_campaign_id(g.campaign_id);
      *item->mutable_expire_time() = ToTimestamp(g.expire_time);
      *item->mutable_payload() = std::move(g.payload);
      *item->mutable_question() = MakeQuestion(campaign.spec(), g.given_label,
                                               g.prediction.has_value() ? &*g.prediction : nullptr);
    }
    if (!grants.empty()) {
      if (observer_ != nullptr) {
        observer_->OnLeased(campaign.campaign_id(), static_cast<int>(grants.size()));
      }
      break;
    }
  }
  if (out.items_size() == 0) out.set_retry_after_ms(1000);
  return out;
}

absl::StatusOr<v1::SubmitResponse> FeedbackQueue::Submit(const Caller& caller,
                                                         const v1::SubmitRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_RATER}));
  GREENLOOP_ASSIGN_OR_RETURN(std::int64_t lease_id, LeaseId(req.lease_id()));
  if (!req.has_answer() || req.answer().value_case() == v1::Answer::VALUE_NOT_SET) {
    return absl::InvalidArgumentError("answer is required");
  }
  const double s = req.seconds_spent();
  if (!std::isfinite(s) || s < 0 || s > 86400) {
    return absl::InvalidArgumentError(
        fmt::format("seconds_spent {} is outside [0, 86400]", req.seconds_spent()));
  }
  GREENLOOP_RETURN_IF_ERROR(RateLimit(caller));
  GREENLOOP_ASSIGN_OR_RETURN(SubmitOutcome outcome,
                             store_->Submit(caller.id, lease_id, req.answer(), s));
  if (observer_ != nullptr) {
    observer_->OnSubmitted(outcome.campaign_id, outcome.duplicate, outcome.verdict_emitted,
                           outcome.server_seconds);
  }
  if (outcome.verdict_emitted) NotifyVerdicts(outcome.campaign_id);
  v1::SubmitResponse out;
  out.set_rating_id(std::to_string(outcome.rating_id));
  out.set_duplicate(outcome.duplicate);
  return out;
}

absl::StatusOr<v1::SkipResponse> FeedbackQueue::Skip(const Caller& caller,
                                                     const v1::SkipRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_RATER}));
  GREENLOOP_ASSIGN_OR_RETURN(std::int64_t lease_id, LeaseId(req.lease_id()));
  if (!v1::SkipReason_IsValid(req.reason())) {
    return absl::InvalidArgumentError("reason is not a SkipReason");
  }
  GREENLOOP_RETURN_IF_ERROR(RateLimit(caller));
  GREENLOOP_ASSIGN_OR_RETURN(std::string campaign, store_->Skip(caller.id, lease_id, req.reason()));
  if (observer_ != nullptr) observer_->OnSkipped(campaign);
  NotifyVerdicts(campaign);  // enough skips make an undecidable verdict
  return v1::SkipResponse();
}

absl::StatusOr<v1::ReleaseResponse> FeedbackQueue::Release(const Caller& caller,
                                                           const v1::ReleaseRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_RATER}));
  GREENLOOP_ASSIGN_OR_RETURN(std::int64_t lease_id, LeaseId(req.lease_id()));
  GREENLOOP_RETURN_IF_ERROR(RateLimit(caller));
  GREENLOOP_RETURN_IF_ERROR(store_->Release(caller.id, lease_id));
  return v1::ReleaseResponse();
}

absl::StatusOr<v1::GetCampaignStatsResponse> FeedbackQueue::GetCampaignStats(
    const Caller& caller, const v1::GetCampaignStatsRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_WORKER, v1::ROLE_ADMIN}));
  GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  GREENLOOP_ASSIGN_OR_RETURN(v1::GetCampaignStatsResponse out, store_->Stats(req.campaign_id()));
  GREENLOOP_ASSIGN_OR_RETURN(CampaignRatings ratings, store_->LoadRatings(req.campaign_id()));
  std::vector<Observation> ordinary;
  for (const Observation& o : ratings.observations) {
    if (!ratings.gold.contains(o.item)) ordinary.push_back(o);
  }
  const int k = Categories(ratings.spec);
  // Feature questions have no categories to agree on (k = 0): no κ or α.
  if (k < 2) {
    *out.mutable_compute_time() = ToTimestamp(options_.clock());
    return out;
  }
  if (auto kappa = FleissKappa(k, static_cast<int>(ratings.spec.ratings_per_item()), ordinary)) {
    out.set_fleiss_kappa(*kappa);
  }
  if (auto alpha = KrippendorffAlpha(k, ordinary)) out.set_krippendorff_alpha(*alpha);
  *out.mutable_compute_time() = ToTimestamp(options_.clock());
  return out;
}

absl::StatusOr<v1::ListMyRatingsResponse> FeedbackQueue::ListMyRatings(
    const Caller& caller, const v1::ListMyRatingsRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_RATER}));
  if (!req.campaign_id().empty()) GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  GREENLOOP_RETURN_IF_ERROR(RateLimit(caller));
  const std::string scope =
      fmt::format("my/{}/{}/{}", caller.id, req.campaign_id(), req.include_payloads());
  GREENLOOP_ASSIGN_OR_RETURN(std::optional<std::int64_t> before,
                             DecodePageToken(scope, req.page().page_token()));
  const int size = PageSize(req.page());
  GREENLOOP_ASSIGN_OR_RETURN(
      auto rows, store_->ListMyRatings(caller.id, req.campaign_id(), req.include_payloads(), before,
                                       size + 1));
  v1::ListMyRatingsResponse out;
  for (int i = 0; i < static_cast<int>(rows.size()) && i < size; ++i) {
    *out.add_ratings() = std::move(rows[i].second);
  }
  if (static_cast<int>(rows.size()) > size) {
    out.set_next_page_token(EncodePageToken(scope, rows[size - 1].first));
  }
  return out;
}

absl::StatusOr<std::int64_t> FeedbackQueue::StartWatch(const Caller& caller,
                                                       const v1::WatchVerdictsRequest& req) {
  GREENLOOP_RETURN_IF_ERROR(Allow(caller, {v1::ROLE_WORKER, v1::ROLE_ADMIN}));
  GREENLOOP_RETURN_IF_ERROR(ValidateClientId(req.campaign_id()));
  GREENLOOP_ASSIGN_OR_RETURN(std::int64_t after, DecodeCursor(req.campaign_id(), req.cursor()));
  GREENLOOP_RETURN_IF_ERROR(store_->GetCampaign(req.campaign_id()).status());
  return after;
}

absl::StatusOr<FeedbackQueue::VerdictPage> FeedbackQueue::NextVerdicts(
    const std::string& campaign_id, std::int64_t after_seq, int limit) {
  GREENLOOP_ASSIGN_OR_RETURN(VerdictBatch batch,
                             store_->ReadVerdicts(campaign_id, after_seq, limit));
  VerdictPage out;
  out.last_seq = after_seq;
  out.finished = batch.finished;
  out.responses.reserve(batch.verdicts.size());
  for (auto& [seq, verdict] : batch.verdicts) {
    v1::WatchVerdictsResponse& r = out.responses.emplace_back();
    *r.mutable_verdict() = std::move(verdict);
    r.set_cursor(EncodeCursor(campaign_id, seq));
    out.last_seq = seq;
  }
  return out;
}

absl::StatusOr<std::int64_t> FeedbackQueue::ExpireLeases() {
  GREENLOOP_ASSIGN_OR_RETURN(std::int64_t n, store_->ExpireLeases());
  if (n > 0 && observer_ != nullptr) observer_->OnLeasesExpired(n);
  return n;
}

absl::StatusOr<int> FeedbackQueue::Reestimate(const std::string& campaign_id) {
  GREENLOOP_ASSIGN_OR_RETURN(CampaignRatings ratings, store_->LoadRatings(campaign_id));
  // Feature masks are decided per cell when an item completes; nothing to re-estimate.
  if (Categories(ratings.spec) < 2) return 0;
  GREENLOOP_ASSIGN_OR_RETURN(
      DawidSkeneResult estimate,
      EstimateDawidSkene(Categories(ratings.spec), ratings.observations, ratings.gold));
  GREENLOOP_ASSIGN_OR_RETURN(int revisions, store_->SaveEstimate(campaign_id, estimate));
  if (revisions > 0) {
    if (observer_ != nullptr) observer_->OnRevisions(campaign_id, revisions);
    NotifyVerdicts(campaign_id);
  }
  return revisions;
}

absl::Status FeedbackQueue::ReestimateAll() {
  GREENLOOP_ASSIGN_OR_RETURN(std::vector<std::string> campaigns, store_->CampaignsToReestimate());
  absl::Status first;
  for (const std::string& c : campaigns) {
    if (absl::StatusOr<int> r = Reestimate(c); !r.ok() && first.ok()) first = r.status();
  }
  return first;
}

MaintenanceLoop::MaintenanceLoop(FeedbackQueue* queue, absl::Duration reap_interval,
                                 absl::Duration reestimate_interval,
                                 std::function<void(const absl::Status&)> on_error)
    : queue_(queue),
      reap_interval_(reap_interval),
      reestimate_interval_(reestimate_interval),
      on_error_(std::move(on_error)) {}

MaintenanceLoop::~MaintenanceLoop() { Stop(); }

void MaintenanceLoop::Start() { thread_ = std::thread(&MaintenanceLoop::Loop, this); }

void MaintenanceLoop::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void MaintenanceLoop::Loop() {
  absl::Time next_estimate = absl::Now() + reestimate_interval_;
  while (!stop_.WaitForNotificationWithTimeout(reap_interval_)) {
    if (absl::StatusOr<std::int64_t> n = queue_->ExpireLeases(); !n.ok()) on_error_(n.status());
    if (absl::Now() >= next_estimate) {
      if (absl::Status s = queue_->ReestimateAll(); !s.ok()) on_error_(s);
      next_estimate = absl::Now() + reestimate_interval_;
    }
  }
}

}  // namespace greenloop::feedback
