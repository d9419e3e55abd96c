#include "services/trainer/grpc/clients.h"

#include <fmt/format.h>

#include "common/grpc/channel.h"
#include "common/grpc/status.h"
#include "common/logging/logging.h"
#include "common/status/status.h"

namespace greenloop::trainer {
namespace {

absl::Status Named(std::string_view what, const ::grpc::Status& status) {
  absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), fmt::format("{}: {}", what, std::string(s.message())));
}

}  // namespace

// --- energy ----------------------------------------------------------------------------------

EnergyGrpcClient::EnergyGrpcClient(std::shared_ptr<::grpc::Channel> channel,
                                   ClientSettings settings)
    : stub_(v1::EnergyService::NewStub(std::move(channel))), settings_(std::move(settings)) {}

absl::StatusOr<std::unique_ptr<EnergyMeter>> EnergyGrpcClient::Connect(const std::string& endpoint,
                                                                       ClientSettings settings) {
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
      rpc::CreateChannel(endpoint, {.tls = settings.tls});
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<EnergyMeter>(
      std::make_unique<EnergyGrpcClient>(*std::move(channel), std::move(settings)));
}

absl::Status EnergyGrpcClient::Register(const std::string& run_id, int pid, std::uint32_t rank) {
  v1::RegisterRequest request;
  request.set_run_id(run_id);
  request.add_pids(pid);
  request.set_node(settings_.node);
  request.set_rank(rank);
  v1::RegisterResponse response;
  auto ctx = rpc::NewClientContext(settings_.deadline, settings_.bearer_token);
  const ::grpc::Status status = stub_->Register(ctx.get(), request, &response);
  if (!status.ok()) return Named("EnergyService.Register", status);
  if (response.estimated_domains_size() > 0) {
    std::string domains;
    for (int d : response.estimated_domains()) {
      domains += (domains.empty() ? "" : ",") + v1::EnergyDomain_Name(d);
    }
    logging::Warn("energy of these domains is estimated on this node, not measured",
                  {{"run", run_id}, {"node", response.node()}, {"domains", domains}});
  }
  return absl::OkStatus();
}

absl::Status EnergyGrpcClient::Unregister(const std::string& run_id, int pid) {
  v1::UnregisterRequest request;
  request.set_run_id(run_id);
  request.add_pids(pid);
  v1::UnregisterResponse response;
  auto ctx = rpc::NewClientContext(settings_.deadline, settings_.bearer_token);
  const ::grpc::Status status = stub_->Unregister(ctx.get(), request, &response);
  if (status.error_code() == ::grpc::StatusCode::NOT_FOUND) return absl::OkStatus();
  if (!status.ok()) return Named("EnergyService.Unregister", status);
  return absl::OkStatus();
}

absl::StatusOr<double> EnergyGrpcClient::RunEnergyJoules(const std::string& run_id) {
  v1::GetRunEnergyRequest request;
  request.set_run_id(run_id);
  v1::GetRunEnergyResponse response;
  auto ctx = rpc::NewClientContext(settings_.deadline, settings_.bearer_token);
  const ::grpc::Status status = stub_->GetRunEnergy(ctx.get(), request, &response);
  if (!status.ok()) return Named("EnergyService.GetRunEnergy", status);
  double joules = 0;
  for (const v1::NodeRunEnergy& node : response.nodes()) joules += node.active_energy_joules();
  return joules;
}

// --- feedback --------------------------------------------------------------------------------

FeedbackGrpcClient::FeedbackGrpcClient(std::shared_ptr<::grpc::Channel> channel,
                                       ClientSettings settings)
    : stub_(v1::FeedbackService::NewStub(std::move(channel))), settings_(std::move(settings)) {}

FeedbackGrpcClient::~FeedbackGrpcClient() { StopWatching(); }

absl::StatusOr<std::unique_ptr<FeedbackQueue>> FeedbackGrpcClient::Connect(
    const std::string& endpoint, ClientSettings settings) {
  absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
      rpc::CreateChannel(endpoint, {.tls = settings.tls});
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<FeedbackQueue>(
      std::make_unique<FeedbackGrpcClient>(*std::move(channel), std::move(settings)));
}

absl::Status FeedbackGrpcClient::EnsureCampaign(const std::string& campaign_id,
                                                const v1::CampaignSpec& spec) {
  v1::GetCampaignRequest get;
  get.set_campaign_id(campaign_id);
  v1::GetCampaignResponse existing;
  auto get_ctx = rpc::NewClientContext(settings_.deadline, settings_.bearer_token);
  const ::grpc::Status got = stub_->GetCampaign(get_ctx.get(), get, &existing);
  if (got.ok()) return absl::OkStatus();  // made beforehand (greenloop experiment run does)
  if (got.error_code() != ::grpc::StatusCode::NOT_FOUND) {
    return Named("FeedbackService.GetCampaign", got);
  }
  v1::CreateCampaignRequest request;
  request.set_campaign_id(campaign_id);
  *request.mutable_spec() = spec;
  v1::CreateCampaignResponse response;
  auto ctx = rpc::NewClientContext(settings_.deadline, settings_.bearer_token);
  const ::grpc::Status status = stub_->CreateCampaign(ctx.get(), request, &response);
  if (!status.ok()) return Named("FeedbackService.CreateCampaign", status);
  return absl::OkStatus();
}

absl::Status FeedbackGrpcClient::Enqueue(const std::string& campaign_id,
                                         const std::vector<v1::ItemInput>& items) {
  constexpr std::size_t kBatch = 500;
  for (std::size_t start = 0; start < items.size(); start += kBatch) {
    v1::EnqueueItemsRequest request;
    request.set_campaign_id(campaign_id);
    for (std::size_t i = start; i < items.size() && i < start + kBatch; ++i) {
      *request.add_items() = items[i];
    }
    v1::EnqueueItemsResponse response;
    auto ctx = rpc::NewClientContext(settings_.deadline, settings_.bearer_token);
    const ::grpc::Status status = stub_->EnqueueItems(ctx.get(), request, &response);
    if (!status.ok()) return Named("FeedbackService.EnqueueItems", status);
  }
  return absl::OkStatus();
}

absl::Status FeedbackGrpcClient::StartWatching(const std::string& campaign_id,
                                               const std::string& cursor) {
  std::lock_guard lock(mu_);
  if (watcher_.joinable()) {
    return absl::FailedPreconditionError("already watching verdicts");
  }
  cursor_ = cursor;
  stopping_ = false;
  watcher_ = std::thread(&FeedbackGrpcClient::Watch, this, campaign_id);
  return absl::OkStatus();
}

void FeedbackGrpcClient::Watch(std::string campaign_id) {
  std::chrono::milliseconds backoff = settings_.reconnect_backoff;
  while (true) {
    ::grpc::ClientContext ctx;
    if (!settings_.bearer_token.empty()) {
      ctx.AddMetadata("authorization", "Bearer " + settings_.bearer_token);
    }
    v1::WatchVerdictsRequest request;
    request.set_campaign_id(campaign_id);
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      request.set_cursor(cursor_);
      stream_context_ = &ctx;
      ++stream_opens_;
    }
    auto reader = stub_->WatchVerdicts(&ctx, request);
    v1::WatchVerdictsResponse response;
    bool got_any = false;
    while (reader->Read(&response)) {
      got_any = true;
      std::lock_guard lock(mu_);
      cursor_ = response.cursor();
      received_.push_back({.verdict = std::move(*response.mutable_verdict()),
                           .cursor = response.cursor(),
                           .receive_time = absl::Now()});
    }
    const ::grpc::Status status = reader->Finish();
    {
      std::unique_lock lock(mu_);
      stream_context_ = nullptr;
      if (stopping_) return;
      if (status.ok()) {
        logging::Info("verdict stream ended: campaign closed", {{"campaign", campaign_id}});
        return;
      }
      if (got_any) backoff = settings_.reconnect_backoff;
      logging::Warn("verdict stream broke; reconnecting from the last cursor",
                    {{"campaign", campaign_id},
                     {"error", status.error_message()},
                     {"retry_ms", static_cast<std::int64_t>(backoff.count())}});
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      if (stopping_) return;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(30));
    }
  }
}

std::vector<ReceivedVerdict> FeedbackGrpcClient::TakeVerdicts() {
  std::lock_guard lock(mu_);
  std::vector<ReceivedVerdict> out(std::make_move_iterator(received_.begin()),
                                   std::make_move_iterator(received_.end()));
  received_.clear();
  return out;
}

void FeedbackGrpcClient::StopWatching() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (stream_context_ != nullptr) stream_context_->TryCancel();
    cv_.notify_all();
  }
  if (watcher_.joinable()) watcher_.join();
}

int FeedbackGrpcClient::stream_opens() const {
  std::lock_guard lock(mu_);
  return stream_opens_;
}

}  // namespace greenloop::trainer
