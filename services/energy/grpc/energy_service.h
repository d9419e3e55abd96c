// greenloop.v1.EnergyService over the collector core: proto <-> domain, auth, status mapping.
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/grpc/auth.h"
#include "common/grpc/handler_guard.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "services/energy/core/collector.h"
#include "services/energy/core/sampling_loop.h"
#include "services/energy/core/store.h"

namespace greenloop::energy {

/// What GetNodeInfo reports besides the collector's own state.
struct NodeDescription {
  std::string hostname;
  std::string version;
  absl::Time start_time;
  absl::Duration interval;
  CpuInfo cpu;
};

/// \brief The gRPC face of the energy collector. Unary RPCs are sync handlers; WatchNodeSamples is
/// a callback-API stream fed by the SampleHub.
///
/// `authenticator` null means authentication is disabled (local development): every call acts as
/// the built-in "anonymous" identity with the role it needs; main logs a warning and exports it.
///
/// Roles: every RPC takes a worker or an admin token (raters have no business here: a run's CPU
/// share and the node's processes are not theirs to read). A run belongs to the principal that
/// registered it: another worker's Register or Unregister of it is PERMISSION_DENIED (an admin
/// may), and a pid another active run holds is refused (Collector::Register).
///
/// Thread-safety: handlers run on gRPC threads; everything they touch is thread-safe. The
/// collector, store (may be null), hub and authenticator must outlive the service.
class EnergyGrpcService final
    : public v1::EnergyService::WithCallbackMethod_WatchNodeSamples<v1::EnergyService::Service> {
 public:
  /// `registry`: where calls answered INTERNAL are counted (greenloop_energy_errors_total{rpc});
  /// null counts nothing (they are logged either way).
  EnergyGrpcService(Collector* collector, EnergyStore* store, SampleHub* hub,
                    const rpc::Authenticator* authenticator, NodeDescription node,
                    prometheus::Registry* registry = nullptr);

  ::grpc::Status Register(::grpc::ServerContext* context, const v1::RegisterRequest* request,
                          v1::RegisterResponse* response) override;
  ::grpc::Status Unregister(::grpc::ServerContext* context, const v1::UnregisterRequest* request,
                            v1::UnregisterResponse* response) override;
  ::grpc::Status GetRunEnergy(::grpc::ServerContext* context,
                              const v1::GetRunEnergyRequest* request,
                              v1::GetRunEnergyResponse* response) override;
  ::grpc::ServerWriteReactor<v1::WatchNodeSamplesResponse>* WatchNodeSamples(
      ::grpc::CallbackServerContext* context, const v1::WatchNodeSamplesRequest* request) override;
  ::grpc::Status ListMeters(::grpc::ServerContext* context, const v1::ListMetersRequest* request,
                            v1::ListMetersResponse* response) override;
  ::grpc::Status GetNodeInfo(::grpc::ServerContext* context, const v1::GetNodeInfoRequest* request,
                             v1::GetNodeInfoResponse* response) override;
  ::grpc::Status ListRegistrations(::grpc::ServerContext* context,
                                   const v1::ListRegistrationsRequest* request,
                                   v1::ListRegistrationsResponse* response) override;

  /// Ends every WatchNodeSamples stream this service opened with UNAVAILABLE (call before
  /// Server::Shutdown()); another instance's streams stay open.
  void CloseStreams();

 private:
  // The caller, when it holds a worker or admin token (the anonymous admin when authentication
  // is off); UNAUTHENTICATED or PERMISSION_DENIED otherwise.
  absl::StatusOr<Registrant> Allow(const ::grpc::ServerContextBase& context) const;

  Collector* const collector_;
  EnergyStore* const store_;
  SampleHub* const hub_;
  const rpc::Authenticator* const authenticator_;
  const NodeDescription node_;
  const rpc::HandlerGuard guard_;
  absl::Mutex streams_mu_;
  bool closing_ ABSL_GUARDED_BY(streams_mu_) = false;
  struct OpenStreams;
  const std::shared_ptr<OpenStreams> open_streams_;
};

/// Fills a NodeRunEnergy from a run's figures.
void ToProto(const RunEnergy& run, const std::string& node, const CarbonFactors& carbon,
             v1::NodeRunEnergy* out);

v1::EnergyDomain ToProto(Domain domain);
v1::EnergySource ToProto(Source source);

}  // namespace greenloop::energy
