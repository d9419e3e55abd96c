#include "common/metrics/metrics_server.h"

#include <CivetServer.h>
#include <prometheus/gauge.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/logging/logging.h"

namespace greenloop::metrics {
namespace {

// What civetweb logged while the calling thread started a server: civetweb reports every start
// failure to CivetServer as the same "null context", and says what really went wrong only here.
// Only the thread inside Start() captures; civetweb's workers log later errors as before.
thread_local bool capturing = false;
thread_local std::string start_log;

int CaptureStartLog(const mg_connection* /*conn*/, const char* message) {
  if (!capturing) return 0;  // civetweb prints it
  if (message != nullptr) absl::StrAppend(&start_log, start_log.empty() ? "" : "; ", message);
  return 1;  // handled: not printed to stderr as well
}

// Why the server could not start, from civetweb's own words where it gave any.
std::string StartFailure(const std::string& log, const char* exception) {
  if (log.find("Cannot create threads") != std::string::npos) {
    // Seen with Debian's libopenblas0-pthread: its 60 KiB of static TLS no longer fits in the
    // 100 KiB stacks civetweb gives its threads, and pthread_create fails (EINVAL).
    return absl::StrCat(log,
                        " (civetweb's threads have fixed 100 KiB stacks; a loaded library with "
                        "large static TLS, such as OpenBLAS built with pthreads or OpenMP, leaves "
                        "them no room: use libopenblas0-serial or the reference BLAS)");
  }
  if (!log.empty()) return log;
  return absl::StrCat("port in use or address not local? ", exception);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string bind_address) {
  return Start(std::move(bind_address), std::make_shared<prometheus::Registry>());
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::string bind_address, std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("MetricsServer::Start: registry must not be null");
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  CivetCallbacks callbacks;
  callbacks.log_message = CaptureStartLog;
  start_log.clear();
  capturing = true;
  try {
    // Two workers: a Prometheus scrape and a concurrent probe or human curl never queue.
    exposer = std::make_unique<prometheus::Exposer>(bind_address, /*num_threads=*/2, &callbacks);
  } catch (const std::exception& e) {
    capturing = false;
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", bind_address, ": ",
                                               StartFailure(start_log, e.what())));
  }
  capturing = false;
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
