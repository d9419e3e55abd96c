// In-process fakes of the EnergyService and FeedbackService gRPC contracts, for the trainer's
// tests while (and after) the real collector and queue land: register them on an rpc::Server at
// 127.0.0.1:0 and point the trainer's clients at its port. They implement just the RPCs the
// trainer calls, with the contract's semantics (idempotent Register, NOT_FOUND for unknown runs,
// a resumable WatchVerdicts stream keyed by cursor); the rest is UNIMPLEMENTED.
//
// Thread-safety: thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "greenloop/v1/energy.grpc.pb.h"
#include "greenloop/v1/feedback.grpc.pb.h"

namespace greenloop::trainer::testing {

// Energy: `watts` × seconds registered, for the node "fake-node".
class FakeEnergyService final : public v1::EnergyService::Service {
 public:
  explicit FakeEnergyService(double watts = 15.0) : watts_(watts) {}

  ::grpc::Status Register(::grpc::ServerContext* ctx, const v1::RegisterRequest* request,
                          v1::RegisterResponse* response) override {
    std::lock_guard lock(mu_);
    last_authorization_ = Authorization(*ctx);
    if (request->pids().empty()) {
      return ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT, "no pid");
    }
    Run& run = runs_[request->run_id()];
    if (run.pids.empty()) run.since = Clock::now();
    for (int pid : request->pids()) run.pids.insert(pid);
    ++registers_;
    response->set_node("fake-node");
    response->add_estimated_domains(v1::ENERGY_DOMAIN_NODE);
    for (int pid : run.pids) response->add_pids(pid);
    return ::grpc::Status::OK;
  }
  ::grpc::Status Unregister(::grpc::ServerContext*, const v1::UnregisterRequest* request,
                            v1::UnregisterResponse* response) override {
    std::lock_guard lock(mu_);
    auto it = runs_.find(request->run_id());
    if (it == runs_.end()) return ::grpc::Status(::grpc::StatusCode::NOT_FOUND, "unknown run");
    Run& run = it->second;
    if (request->pids().empty()) {
      run.pids.clear();
    } else {
      for (int pid : request->pids()) run.pids.erase(pid);
    }
    if (run.pids.empty() && run.since) {
      run.joules += Elapsed(*run.since);
      run.since.reset();
    }
    ++unregisters_;
    response->set_active(!run.pids.empty());
    return ::grpc::Status::OK;
  }
  ::grpc::Status GetRunEnergy(::grpc::ServerContext*, const v1::GetRunEnergyRequest* request,
                              v1::GetRunEnergyResponse* response) override {
    std::lock_guard lock(mu_);
    auto it = runs_.find(request->run_id());
    if (it == runs_.end()) return ::grpc::Status(::grpc::StatusCode::NOT_FOUND, "unknown run");
    ++reads_;
    response->set_run_id(request->run_id());
    v1::NodeRunEnergy* node = response->add_nodes();
    node->set_node("fake-node");
    node->set_active(!it->second.pids.empty());
    node->set_active_energy_joules(it->second.joules +
                                   (it->second.since ? Elapsed(*it->second.since) : 0.0));
    return ::grpc::Status::OK;
  }

  int registers() const {
    std::lock_guard lock(mu_);
    return registers_;
  }
  int unregisters() const {
    std::lock_guard lock(mu_);
    return unregisters_;
  }
  int reads() const {
    std::lock_guard lock(mu_);
    return reads_;
  }
  bool active(const std::string& run_id) const {
    std::lock_guard lock(mu_);
    auto it = runs_.find(run_id);
    return it != runs_.end() && !it->second.pids.empty();
  }
  std::string last_authorization() const {
    std::lock_guard lock(mu_);
    return last_authorization_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Run {
    std::set<int> pids;
    std::optional<Clock::time_point> since;
    double joules = 0;
  };
  static std::string Authorization(const ::grpc::ServerContext& ctx) {
    auto it = ctx.client_metadata().find("authorization");
    return it == ctx.client_metadata().end() ? ""
                                             : std::string(it->second.data(), it->second.size());
  }
  double Elapsed(Clock::time_point since) const {
    return watts_ * std::chrono::duration<double>(Clock::now() - since).count();
  }
  const double watts_;
  mutable std::mutex mu_;
  std::map<std::string, Run> runs_;
  int registers_ = 0;
  int unregisters_ = 0;
  int reads_ = 0;
  std::string last_authorization_;
};

// Feedback: campaigns, items and a verdict log. A crowd function turns each newly enqueued item
// into a verdict (or none), which joins the log at once; WatchVerdicts streams the log after the
// request's cursor, then live, until the client cancels or BreakStreams() is called.
class FakeFeedbackService final : public v1::FeedbackService::Service {
 public:
  using Crowd = std::function<std::optional<v1::Verdict>(const v1::ItemInput&)>;
  explicit FakeFeedbackService(Crowd crowd) : crowd_(std::move(crowd)) {}

  ::grpc::Status CreateCampaign(::grpc::ServerContext*, const v1::CreateCampaignRequest* request,
                                v1::CreateCampaignResponse* response) override {
    std::lock_guard lock(mu_);
    auto [it, created] = campaigns_.emplace(request->campaign_id(), request->spec());
    response->mutable_campaign()->set_campaign_id(request->campaign_id());
    *response->mutable_campaign()->mutable_spec() = it->second;
    response->set_created(created);
    return ::grpc::Status::OK;
  }
  ::grpc::Status GetCampaign(::grpc::ServerContext*, const v1::GetCampaignRequest* request,
                             v1::GetCampaignResponse* response) override {
    std::lock_guard lock(mu_);
    auto it = campaigns_.find(request->campaign_id());
    if (it == campaigns_.end()) return ::grpc::Status(::grpc::StatusCode::NOT_FOUND, "no campaign");
    response->mutable_campaign()->set_campaign_id(it->first);
    *response->mutable_campaign()->mutable_spec() = it->second;
    return ::grpc::Status::OK;
  }
  ::grpc::Status EnqueueItems(::grpc::ServerContext*, const v1::EnqueueItemsRequest* request,
                              v1::EnqueueItemsResponse* response) override {
    std::lock_guard lock(mu_);
    if (!campaigns_.contains(request->campaign_id())) {
      return ::grpc::Status(::grpc::StatusCode::NOT_FOUND, "no campaign");
    }
    if (request->items().empty() || request->items_size() > 500) {
      return ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT, "1 to 500 items");
    }
    for (const v1::ItemInput& item : request->items()) {
      const std::string item_id = "item-" + std::to_string(item.sample().index());
      v1::EnqueueResult* result = response->add_results();
      result->set_item_id(item_id);
      const bool fresh = items_.emplace(item_id, item).second;
      result->set_outcome(fresh ? v1::ENQUEUE_OUTCOME_CREATED : v1::ENQUEUE_OUTCOME_UPDATED);
      if (!fresh) continue;
      if (std::optional<v1::Verdict> verdict = crowd_(item)) {
        verdict->set_item_id(item_id);
        *verdict->mutable_sample() = item.sample();
        if (item.has_given_label()) verdict->set_given_label(item.given_label());
        if (verdict->revision() == 0) verdict->set_revision(1);
        log_.push_back(*verdict);
      }
    }
    cv_.notify_all();
    return ::grpc::Status::OK;
  }
  ::grpc::Status WatchVerdicts(::grpc::ServerContext* ctx, const v1::WatchVerdictsRequest* request,
                               ::grpc::ServerWriter<v1::WatchVerdictsResponse>* writer) override {
    std::size_t next = 0;
    if (!request->cursor().empty()) next = std::stoul(request->cursor());
    std::unique_lock lock(mu_);
    if (!campaigns_.contains(request->campaign_id())) {
      return ::grpc::Status(::grpc::StatusCode::NOT_FOUND, "no campaign");
    }
    ++streams_;
    const int generation = generation_;
    while (!ctx->IsCancelled()) {
      if (generation != generation_) {
        return ::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "stream broken on purpose");
      }
      if (next < log_.size()) {
        v1::WatchVerdictsResponse response;
        *response.mutable_verdict() = log_[next];
        ++next;
        response.set_cursor(std::to_string(next));
        lock.unlock();
        const bool ok = writer->Write(response);
        lock.lock();
        if (!ok) break;
        continue;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    return ::grpc::Status::OK;
  }

  // Ends every open WatchVerdicts stream with UNAVAILABLE (clients must resume from a cursor).
  void BreakStreams() {
    std::lock_guard lock(mu_);
    ++generation_;
    cv_.notify_all();
  }
  std::size_t items() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }
  std::size_t verdicts() const {
    std::lock_guard lock(mu_);
    return log_.size();
  }
  int streams() const {
    std::lock_guard lock(mu_);
    return streams_;
  }
  std::map<std::string, v1::ItemInput> item_map() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  bool has_campaign(const std::string& id) const {
    std::lock_guard lock(mu_);
    return campaigns_.contains(id);
  }

 private:
  Crowd crowd_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, v1::CampaignSpec> campaigns_;
  std::map<std::string, v1::ItemInput> items_;
  std::vector<v1::Verdict> log_;
  int generation_ = 0;
  int streams_ = 0;
};

}  // namespace greenloop::trainer::testing
