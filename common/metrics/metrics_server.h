// The /metrics endpoint of a greenloop service, and the metrics every service exports.
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace greenloop::metrics {

/// \brief Serves a prometheus::Registry over HTTP at /metrics.
///
/// Each service starts exactly one, on its metrics port (9101 for the energy collector, 9102 for
/// the feedback queue, 9103 for trainers), and hands registry() to the components that own
/// metrics, through their constructors. Tests bind to "127.0.0.1:0" and read the chosen port from
/// port(), then scrape it over real HTTP.
///
/// Use this rather than a prometheus::Exposer directly: it turns civetweb's bind failure (an
/// exception) into an absl::Status, and reports the bound port. Do not use it to serve anything but
/// metrics; the rater web client and JSON API have their own HTTP server.
///
/// The server runs civetweb worker threads from Start() until Stop() or destruction.
///
/// Thread-safety: registry() and port() may be called from any thread; metrics in the registry are
/// themselves thread-safe. Call Stop() from the owning thread only.
///
/// \code
///   GREENLOOP_ASSIGN_OR_RETURN(auto metrics, metrics::MetricsServer::Start("0.0.0.0:9101"));
///   metrics::RegisterBuildInfo(*metrics->registry(), "energy", "0.1.0");
///   auto& joules = prometheus::BuildCounter()
///                      .Name("greenloop_node_energy_joules_total")
///                      .Help("Energy the node used, in joules")
///                      .Register(*metrics->registry());
///   EnergyCollector collector(joules, ...);
/// \endcode
class MetricsServer final {
 public:
  /// Binds `bind_address` ("host:port"; port 0 picks a free one) and serves a new, empty registry.
  /// UNAVAILABLE naming the address when it cannot be bound (port taken, address not local).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(std::string bind_address);
  /// As above, serving `registry` (must not be null; INVALID_ARGUMENT otherwise).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      std::string bind_address, std::shared_ptr<prometheus::Registry> registry);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  /// Stops serving (see Stop()).
  ~MetricsServer();

  /// The TCP port the server listens on; still the bound port after Stop().
  int port() const { return port_; }
  /// The address Start() was given.
  const std::string& bind_address() const { return bind_address_; }
  /// The registry served at /metrics; shared, so components may outlive the server.
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }
  /// Closes the port and joins the HTTP threads. Idempotent. Takes up to 2 s once something has
  /// connected: civetweb polls its listening socket in 2 s quanta.
  void Stop();

 private:
  MetricsServer(std::string bind_address, std::shared_ptr<prometheus::Registry> registry,
                std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::string bind_address_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

/// Registers the gauge `greenloop_build_info{service="<service>",version="<version>"} 1`, the
/// conventional way to put the running build on a dashboard and to join it to other series.
/// Calling it again with the same labels is harmless.
void RegisterBuildInfo(prometheus::Registry& registry, std::string_view service,
                       std::string_view version);

}  // namespace greenloop::metrics
