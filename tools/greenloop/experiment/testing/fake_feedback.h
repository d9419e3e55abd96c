// An in-process fake of the FeedbackService rater API for the crowd's tests (and for running an
// experiment before the real queue is deployed): campaigns, tokens (CreateToken, one identity per
// bearer token), EnqueueItems, Lease (up to max_items) / Submit / Skip / Release with the
// contract's rules — an item is leased to at most k raters counting ratings and live leases, never
// twice to the same rater, never again to a rater who skipped it — and a majority verdict per item
// after k ratings, streamed by WatchVerdicts. Register on an rpc::Server bound to 127.0.0.1:0.
//
// Thread-safety: thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "greenloop/v1/feedback.grpc.pb.h"

namespace greenloop::experiment::testing {

class FakeFeedbackService final : public v1::FeedbackService::Service {
 public:
  struct Rating {
    std::string rater;
    std::uint32_t label = 0;
    double seconds = 0;
    std::uint64_t order = 0;  // 1 for the service's first rating, and so on
  };
  struct Item {
    std::string id;
    v1::ItemInput input;
    std::vector<Rating> ratings;
    std::set<std::string> skipped_by;
    std::set<std::string> leased_by;  // live leases
    bool decided = false;
  };

  ::grpc::Status CreateCampaign(::grpc::ServerContext*, const v1::CreateCampaignRequest* request,
                                v1::CreateCampaignResponse* response) override {
    std::lock_guard lock(mu_);
    auto [it, created] = campaigns_.emplace(request->campaign_id(), Campaign{request->spec()});
    response->mutable_campaign()->set_campaign_id(request->campaign_id());
    *response->mutable_campaign()->mutable_spec() = it->second.spec;
    response->set_created(created);
    return ::grpc::Status::OK;
  }
  ::grpc::Status CloseCampaign(::grpc::ServerContext*, const v1::CloseCampaignRequest* request,
                               v1::CloseCampaignResponse* response) override {
    std::lock_guard lock(mu_);
    auto it = campaigns_.find(request->campaign_id());
    if (it == campaigns_.end()) return Err(::grpc::StatusCode::NOT_FOUND, "no campaign");
    it->second.closed = true;
    response->mutable_campaign()->set_campaign_id(it->first);
    cv_.notify_all();
    return ::grpc::Status::OK;
  }
  ::grpc::Status CreateToken(::grpc::ServerContext*, const v1::CreateTokenRequest* request,
                             v1::CreateTokenResponse* response) override {
    std::lock_guard lock(mu_);
    const std::string token = "glt_fake_" + std::to_string(++tokens_);
    names_[token] = request->name();
    response->set_token(token);
    response->mutable_info()->set_token_id(std::to_string(tokens_));
    response->mutable_info()->set_name(request->name());
    response->mutable_info()->set_role(request->role());
    return ::grpc::Status::OK;
  }
  ::grpc::Status EnqueueItems(::grpc::ServerContext*, const v1::EnqueueItemsRequest* request,
                              v1::EnqueueItemsResponse* response) override {
    std::lock_guard lock(mu_);
    auto it = campaigns_.find(request->campaign_id());
    if (it == campaigns_.end()) return Err(::grpc::StatusCode::NOT_FOUND, "no campaign");
    for (const v1::ItemInput& in : request->items()) {
      const std::string id = "item-" + std::to_string(in.sample().index());
      auto [item, fresh] = it->second.items.emplace(id, Item{id, in, {}, {}, {}, false});
      if (fresh) it->second.order.push_back(id);
      response->add_results()->set_item_id(id);
    }
    return ::grpc::Status::OK;
  }
  ::grpc::Status Lease(::grpc::ServerContext* ctx, const v1::LeaseRequest* request,
                       v1::LeaseResponse* response) override {
    const std::string rater = Rater(*ctx);
    if (rater.empty()) return Err(::grpc::StatusCode::UNAUTHENTICATED, "no token");
    std::lock_guard lock(mu_);
    auto it = campaigns_.find(request->campaign_id());
    if (it == campaigns_.end()) return Err(::grpc::StatusCode::NOT_FOUND, "no campaign");
    Campaign& c = it->second;
    if (c.closed) return Err(::grpc::StatusCode::FAILED_PRECONDITION, "closed");
    const std::size_t k = c.spec.ratings_per_item() == 0 ? 3 : c.spec.ratings_per_item();
    if (request->max_items() > 20) return Err(::grpc::StatusCode::INVALID_ARGUMENT, "max_items");
    const int wanted = request->max_items() == 0 ? 1 : static_cast<int>(request->max_items());
    for (const std::string& id : c.order) {
      if (response->items_size() == wanted) break;
      Item& item = c.items.at(id);
      const bool rated = std::any_of(item.ratings.begin(), item.ratings.end(),
                                     [&](const Rating& r) { return r.rater == rater; });
      if (item.decided || rated || item.skipped_by.contains(rater) ||
          item.leased_by.contains(rater) || item.ratings.size() + item.leased_by.size() >= k) {
        continue;
      }
      item.leased_by.insert(rater);
      const std::string lease_id = "lease-" + std::to_string(++leases_);
      leases_by_id_[lease_id] = {request->campaign_id(), id, rater};
      v1::LeasedItem* out = response->add_items();
      out->set_lease_id(lease_id);
      out->set_item_id(id);
      out->set_campaign_id(request->campaign_id());
      *out->mutable_payload() = item.input.payload();
      out->mutable_question()->set_kind(c.spec.question_kind());
      *out->mutable_question()->mutable_labels() = c.spec.labels();
      if (item.input.has_given_label()) {
        out->mutable_question()->set_given_label(item.input.given_label());
      }
    }
    if (response->items_size() == 0) {
      response->set_retry_after_ms(50);
    } else {
      lease_batches_.push_back(response->items_size());
    }
    return ::grpc::Status::OK;
  }
  ::grpc::Status Submit(::grpc::ServerContext* ctx, const v1::SubmitRequest* request,
                        v1::SubmitResponse* response) override {
    std::lock_guard lock(mu_);
    Item* item = Leased(*ctx, request->lease_id());
    if (item == nullptr) return Err(::grpc::StatusCode::NOT_FOUND, "no such lease");
    if (request->seconds_spent() < 0 || request->seconds_spent() > 86400) {
      return Err(::grpc::StatusCode::INVALID_ARGUMENT, "seconds_spent");
    }
    const std::string rater = Rater(*ctx);
    item->leased_by.erase(rater);
    ++submits_;
    item->ratings.push_back({rater, request->answer().label(), request->seconds_spent(),
                             static_cast<std::uint64_t>(submits_)});
    leases_by_id_.erase(request->lease_id());
    response->set_rating_id(std::to_string(submits_));
    Campaign& c = campaigns_.at(campaign_of_[item->id]);
    const std::size_t k = c.spec.ratings_per_item() == 0 ? 3 : c.spec.ratings_per_item();
    if (item->ratings.size() >= k) {
      item->decided = true;
      std::map<std::uint32_t, int> votes;
      for (const Rating& r : item->ratings) ++votes[r.label];
      auto best = std::max_element(votes.begin(), votes.end(),
                                   [](auto& a, auto& b) { return a.second < b.second; });
      v1::Verdict v;
      v.set_item_id(item->id);
      *v.mutable_sample() = item->input.sample();
      v.set_consensus_label(best->first);
      v.set_ratings_count(static_cast<std::uint32_t>(item->ratings.size()));
      v.set_confidence(static_cast<double>(best->second) / static_cast<double>(k));
      v.set_revision(1);
      verdicts_.push_back(v);
      cv_.notify_all();
    }
    return ::grpc::Status::OK;
  }
  ::grpc::Status Skip(::grpc::ServerContext* ctx, const v1::SkipRequest* request,
                      v1::SkipResponse*) override {
    std::lock_guard lock(mu_);
    Item* item = Leased(*ctx, request->lease_id());
    if (item == nullptr) return Err(::grpc::StatusCode::NOT_FOUND, "no such lease");
    const std::string rater = Rater(*ctx);
    item->leased_by.erase(rater);
    item->skipped_by.insert(rater);
    leases_by_id_.erase(request->lease_id());
    ++skips_;
    return ::grpc::Status::OK;
  }
  ::grpc::Status Release(::grpc::ServerContext* ctx, const v1::ReleaseRequest* request,
                         v1::ReleaseResponse*) override {
    std::lock_guard lock(mu_);
    Item* item = Leased(*ctx, request->lease_id());
    if (item == nullptr) return ::grpc::Status::OK;
    item->leased_by.erase(Rater(*ctx));
    leases_by_id_.erase(request->lease_id());
    return ::grpc::Status::OK;
  }
  ::grpc::Status WatchVerdicts(::grpc::ServerContext* ctx, const v1::WatchVerdictsRequest* request,
                               ::grpc::ServerWriter<v1::WatchVerdictsResponse>* writer) override {
    std::size_t next = request->cursor().empty() ? 0 : std::stoul(request->cursor());
    std::unique_lock lock(mu_);
    while (!ctx->IsCancelled()) {
      if (next < verdicts_.size()) {
        v1::WatchVerdictsResponse r;
        *r.mutable_verdict() = verdicts_[next++];
        r.set_cursor(std::to_string(next));
        lock.unlock();
        const bool ok = writer->Write(r);
        lock.lock();
        if (!ok) break;
        continue;
      }
      auto c = campaigns_.find(request->campaign_id());
      if (c != campaigns_.end() && c->second.closed) break;
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    return ::grpc::Status::OK;
  }

  // Test access.
  std::vector<Item> ItemsOf(const std::string& campaign) const {
    std::lock_guard lock(mu_);
    std::vector<Item> out;
    for (const auto& [id, item] : campaigns_.at(campaign).items) out.push_back(item);
    return out;
  }
  std::string NameOf(const std::string& token) const {
    std::lock_guard lock(mu_);
    auto it = names_.find(token);
    return it == names_.end() ? "" : it->second;
  }
  int skips() const {
    std::lock_guard lock(mu_);
    return skips_;
  }
  std::size_t verdicts() const {
    std::lock_guard lock(mu_);
    return verdicts_.size();
  }
  // The number of items of every Lease that returned some.
  std::vector<int> lease_batches() const {
    std::lock_guard lock(mu_);
    return lease_batches_;
  }

 private:
  struct Campaign {
    v1::CampaignSpec spec;
    std::map<std::string, Item> items;
    std::vector<std::string> order;
    bool closed = false;
  };
  struct LeaseRef {
    std::string campaign, item, rater;
  };
  static ::grpc::Status Err(::grpc::StatusCode code, const std::string& m) { return {code, m}; }
  static std::string Rater(const ::grpc::ServerContext& ctx) {
    auto it = ctx.client_metadata().find("authorization");
    if (it == ctx.client_metadata().end()) return "";
    std::string v(it->second.data(), it->second.size());
    return v.rfind("Bearer ", 0) == 0 ? v.substr(7) : "";
  }
  Item* Leased(const ::grpc::ServerContext& ctx, const std::string& lease_id) {
    auto it = leases_by_id_.find(lease_id);
    if (it == leases_by_id_.end() || it->second.rater != Rater(ctx)) return nullptr;
    campaign_of_[it->second.item] = it->second.campaign;
    return &campaigns_.at(it->second.campaign).items.at(it->second.item);
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Campaign> campaigns_;
  std::map<std::string, LeaseRef> leases_by_id_;
  std::map<std::string, std::string> campaign_of_;
  std::map<std::string, std::string> names_;
  std::vector<v1::Verdict> verdicts_;
  std::vector<int> lease_batches_;
  int tokens_ = 0;
  int leases_ = 0;
  int submits_ = 0;
  int skips_ = 0;
};

}  // namespace greenloop::experiment::testing
