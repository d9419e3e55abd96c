#include "common/metrics/metrics_server.h"

#include <prometheus/gauge.h>

#include <exception>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/logging/logging.h"

namespace greenloop::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string bind_address) {
  return Start(std::move(bind_address), std::make_shared<prometheus::Registry>());
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::string bind_address, std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("MetricsServer::Start: registry must not be null");
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // Two workers: a Prometheus scrape and a concurrent probe or human curl never queue.
    exposer = std::make_unique<prometheus::Exposer>(bind_address, /*num_threads=*/2);
  } catch (const std::exception& e) {
    // civetweb reports every start failure the same way; binding is by far the likeliest cause.
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", bind_address,
                                               " (port in use or address not local?): ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", bind_address, ": no listening port"));
  }
  exposer->RegisterCollectable(registry);
  logging::Info("metrics server listening",
                {{"address", bind_address}, {"port", ports.front()}, {"path", "/metrics"}});
  return std::unique_ptr<MetricsServer>(new MetricsServer(
      std::move(bind_address), std::move(registry), std::move(exposer), ports.front()));
}

MetricsServer::MetricsServer(std::string bind_address,
                             std::shared_ptr<prometheus::Registry> registry,
                             std::unique_ptr<prometheus::Exposer> exposer, int port)
    : bind_address_(std::move(bind_address)),
      registry_(std::move(registry)),
      exposer_(std::move(exposer)),
      port_(port) {}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() { exposer_.reset(); }

void RegisterBuildInfo(prometheus::Registry& registry, std::string_view service,
                       std::string_view version) {
  prometheus::BuildGauge()
      .Name("greenloop_build_info")
      .Help("Build of the running binary; the value is always 1")
      .Register(registry)
      .Add({{"service", std::string(service)}, {"version", std::string(version)}})
      .Set(1);
}

}  // namespace greenloop::metrics
