// gRPC clients of the services a trainer calls, behind the core's ports: the energy collector of
// the node (EnergyService) and the feedback queue (FeedbackService). They speak only the
// greenloop.v1 contracts, so they work with the real services and with the in-process fakes the
// tests start. Deadlines are set here, retries of UNAVAILABLE by the channel (rpc::CreateChannel).
//
// Thread-safety: both clients are thread-safe.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/grpc/channel.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

struct ClientSettings {
  std::string bearer_token;  // the worker's own token (ROLE_WORKER); empty sends none
  std::string node;          // this worker's node name, checked by the collector
  std::chrono::milliseconds deadline{5000};
  // First wait before reconnecting a broken verdict stream; doubles up to 30 s.
  std::chrono::milliseconds reconnect_backoff{250};
  // TLS to the collector and the feedback service (the worker's tls.ca_path); plaintext when
  // empty, which sends the bearer token in the clear: loopback only.
  std::optional<rpc::ClientTlsOptions> tls;
};

// EnergyService client: registers the rank's pid and reads the run's energy on this node.
class EnergyGrpcClient final : public EnergyMeter {
 public:
  EnergyGrpcClient(std::shared_ptr<::grpc::Channel> channel, ClientSettings settings);
  // Creates the channel to `endpoint` ("host:port"). INVALID_ARGUMENT for an empty endpoint.
  static absl::StatusOr<std::unique_ptr<EnergyMeter>> Connect(const std::string& endpoint,
                                                              ClientSettings settings);

  absl::Status Register(const std::string& run_id, int pid, std::uint32_t rank) override;
  absl::Status Unregister(const std::string& run_id, int pid) override;
  absl::StatusOr<double> RunEnergyJoules(const std::string& run_id) override;

 private:
  std::unique_ptr<v1::EnergyService::Stub> stub_;
  const ClientSettings settings_;
};

// FeedbackService client: creates the campaign, enqueues candidates, follows verdicts on a
// background thread that reconnects from its last cursor (exponential backoff) when the stream
// breaks, so training never waits for the queue.
class FeedbackGrpcClient final : public FeedbackQueue {
 public:
  FeedbackGrpcClient(std::shared_ptr<::grpc::Channel> channel, ClientSettings settings);
  static absl::StatusOr<std::unique_ptr<FeedbackQueue>> Connect(const std::string& endpoint,
                                                                ClientSettings settings);
  // Stops watching.
  ~FeedbackGrpcClient() override;

  absl::Status EnsureCampaign(const std::string& campaign_id,
                              const v1::CampaignSpec& spec) override;
  absl::Status Enqueue(const std::string& campaign_id,
                       const std::vector<v1::ItemInput>& items) override;
  absl::Status StartWatching(const std::string& campaign_id, const std::string& cursor) override;
  std::vector<ReceivedVerdict> TakeVerdicts() override;
  void StopWatching() override;

  // Times the stream was (re)opened; for tests and logs.
  int stream_opens() const;

 private:
  void Watch(std::string campaign_id);

  std::unique_ptr<v1::FeedbackService::Stub> stub_;
  const ClientSettings settings_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ReceivedVerdict> received_;
  std::string cursor_;
  bool stopping_ = false;
  int stream_opens_ = 0;
  ::grpc::ClientContext* stream_context_ = nullptr;  // live stream, for cancellation
  std::thread watcher_;
};

}  // namespace greenloop::trainer
