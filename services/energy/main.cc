// greenloop-energy: the per-node energy collector. Wiring only: config, meters, storage, gRPC,
// metrics, the sampling loop, and a clean shutdown on SIGTERM.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "common/config/config.h"
#include "common/grpc/channel.h"
#include "common/grpc/server.h"
#include "common/grpc/shutdown_signal.h"
#include "common/grpc/whoami_authenticator.h"
#include "common/logging/logging.h"
#include "common/metrics/metrics_server.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "common/pg/url.h"
#include "common/status/status.h"
#include "fmt/format.h"
#include "services/energy/core/collector.h"
#include "services/energy/core/estimator.h"
#include "services/energy/core/hwmon.h"
#include "services/energy/core/nvml.h"
#include "services/energy/core/rapl.h"
#include "services/energy/core/sampling_loop.h"
#include "services/energy/core/store.h"
#include "services/energy/core/sysfs.h"
#include "services/energy/grpc/energy_service.h"
#include "services/energy/grpc/metrics.h"
#include "services/energy/storage/pg_store.h"

#ifndef GREENLOOP_VERSION
#define GREENLOOP_VERSION "dev"
#endif

namespace greenloop::energy {
namespace {

constexpr std::string_view kProgram = "greenloop-energy";

// Defaults for the carbon factors, cited in docs/energy.md.
constexpr double kDefaultPue = 1.58;           // Uptime Institute Global Data Center Survey 2023
constexpr double kDefaultGridIntensity = 475;  // IEA, world average, gCO2/kWh (2019)
constexpr std::string_view kDefaultCarbonSource =
    "defaults: PUE 1.58 (Uptime Institute Global Data Center Survey 2023), grid 475 gCO2e/kWh "
    "(IEA world average); set carbon.* for this site";

struct Config {
  std::string node;
  std::string grpc_address = "0.0.0.0:7101";
  std::string metrics_address = "0.0.0.0:9101";
  std::chrono::milliseconds interval{1000};
  std::string pg_url;
  std::chrono::milliseconds sample_resolution{10000};
  std::chrono::milliseconds flush_interval{5000};
  std::int64_t max_buffered_samples = 100'000;
  std::string rapl_root = "/sys/class/powercap";
  std::string hwmon_root = "/sys/class/hwmon";
  std::string proc_root = "/proc";
  std::int64_t rescan_intervals = 5;
  bool nvml_enabled = true;
  std::string nvml_library = "libnvidia-ml.so.1";
  double cpu_idle_watts = 0;
  double cpu_max_watts = 0;
  double dram_watts = 0;
  double pue = kDefaultPue;
  double grid_intensity = kDefaultGridIntensity;
  std::string carbon_source = std::string(kDefaultCarbonSource);
  bool auth_disabled = false;
  std::string auth_feedback_address;
  std::string auth_feedback_ca_path;
  std::string auth_feedback_server_name;
  std::string tls_cert_path;
  std::string tls_key_path;
  std::chrono::milliseconds run_retention{3'600'000};
  std::chrono::milliseconds run_series_grace{300'000};
  std::chrono::milliseconds max_restore_gap{600'000};
  std::string log_format = "text";
  std::string log_level = "info";
};

std::string Hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

absl::Status Run(int argc, char** argv) {
  Config cfg;
  cfg.node = config::DefaultNodeName();
  config::Schema schema{std::string(kProgram)};
  schema.Add("node", &cfg.node, "node name in every figure and label (default: the host name)")
      .Add("grpc.address", &cfg.grpc_address, "gRPC listen address, host:port")
      .Add("metrics.address", &cfg.metrics_address, "Prometheus /metrics listen address")
      .Add("interval", &cfg.interval, "sampling interval", {.min = 50, .max = 60'000})
      .Add("pg.url", &cfg.pg_url,
           "PostgreSQL connection string; empty: figures are kept in memory only", {.secret = true})
      .Add("storage.sample_resolution", &cfg.sample_resolution, "length of a stored sample bucket",
           {.min = 1000})
      .Add("storage.flush_interval", &cfg.flush_interval, "how often batches are written",
           {.min = 100})
      .Add("storage.max_buffered_samples", &cfg.max_buffered_samples,
           "sample rows kept through a PostgreSQL outage before the oldest are dropped", {.min = 1})
      .Add("rapl.sysfs_root", &cfg.rapl_root, "powercap sysfs directory")
      .Add("hwmon.sysfs_root", &cfg.hwmon_root, "hwmon sysfs directory")
      .Add("procfs.root", &cfg.proc_root, "procfs mount (the host's, for containers)")
      .Add("procfs.rescan_intervals", &cfg.rescan_intervals,
           "scan all of /proc for new child processes every this many intervals (1: every one)",
           {.min = 1, .max = 600})
      .Add("nvml.enabled", &cfg.nvml_enabled, "look for NVIDIA GPUs through NVML")
      .Add("nvml.library", &cfg.nvml_library, "NVML library to dlopen")
      .Add("estimator.cpu_idle_watts", &cfg.cpu_idle_watts,
           "node CPU power at idle for the estimator (0: 0.74 W per logical CPU)", {.min = 0})
      .Add("estimator.cpu_max_watts", &cfg.cpu_max_watts,
           "node CPU power at 100 % for the estimator (0: 3.5 W per logical CPU)", {.min = 0})
      .Add("estimator.dram_watts", &cfg.dram_watts,
           "memory power standing in for a failing RAPL dram zone (0: none)", {.min = 0})
      .Add("carbon.pue", &cfg.pue, "power usage effectiveness of the site", {.min = 1, .max = 5})
      .Add("carbon.grid_intensity_grams_per_kwh", &cfg.grid_intensity,
           "grid carbon intensity, gCO2e per kWh", {.min = 0, .max = 2000})
      .Add("carbon.source", &cfg.carbon_source, "where the two carbon factors come from")
      .Add("auth.disabled", &cfg.auth_disabled,
           "accept calls without a token (local development only, opted into explicitly; logged "
           "and exported)")
      .Add("auth.feedback_address", &cfg.auth_feedback_address,
           "feedback service (host:port) that checks bearer tokens when auth is enabled")
      .Add("auth.feedback_ca_path", &cfg.auth_feedback_ca_path,
           "PEM CA of the feedback service's TLS certificate: the token check goes over TLS "
           "(empty: plaintext, for loopback only)")
      .Add("auth.feedback_server_name", &cfg.auth_feedback_server_name,
           "name expected in the feedback service's certificate when it differs from the "
           "address's host (optional)")
      .Add("tls.cert_path", &cfg.tls_cert_path, "PEM certificate chain for gRPC TLS (optional)")
      .Add("tls.key_path", &cfg.tls_key_path, "PEM private key for gRPC TLS")
      .Add("runs.retention", &cfg.run_retention, "how long ended runs stay in memory")
      .Add("metrics.run_series_grace", &cfg.run_series_grace,
           "how long a finished run's series stay on /metrics")
      .Add("restart.max_gap", &cfg.max_restore_gap,
           "counters saved less than this long ago are continued after a restart")
      .Add("log.format", &cfg.log_format, "text or json", {.one_of = {"text", "json"}})
      .Add("log.level", &cfg.log_level, "debug, info, warn or error",
           {.one_of = {"debug", "info", "warn", "error"}})
      .Check([&cfg]() -> absl::Status {
        if (!cfg.auth_disabled && cfg.auth_feedback_address.empty()) {
          return absl::InvalidArgumentError(
              "auth.feedback_address is required: the feedback service checks the callers' "
              "tokens (or set auth.disabled=true for local development)");
        }
        if (cfg.tls_cert_path.empty() != cfg.tls_key_path.empty()) {
          return absl::InvalidArgumentError("set both tls.cert_path and tls.key_path, or neither");
        }
        if (cfg.auth_feedback_ca_path.empty() && !cfg.auth_feedback_server_name.empty()) {
          return absl::InvalidArgumentError(
              "auth.feedback_server_name needs auth.feedback_ca_path (TLS to the feedback "
              "service)");
        }
        return absl::OkStatus();
      });
  GREENLOOP_RETURN_IF_ERROR(schema.Load(argc, argv));
  if (schema.help_requested()) {
    std::cout << schema.Usage();
    return absl::OkStatus();
  }
  logging::Init({.service = "energy",
                 .format = *logging::ParseFormat(cfg.log_format),
                 .level = *logging::ParseLevel(cfg.log_level)});
  if (absl::Status s = ValidateRunId(cfg.node); !s.ok()) {
    // Node names land in labels and keys like run ids do; hold them to the same rule.
    return absl::InvalidArgumentError(
        fmt::format("node '{}' must be 1 to 63 characters of [a-z0-9-]; set node=...", cfg.node));
  }
  GREENLOOP_ASSIGN_OR_RETURN(std::unique_ptr<rpc::ShutdownSignal> signals,
                             rpc::ShutdownSignal::Install());

  // Meters.
  ProcFs procfs(cfg.proc_root);
  const CpuInfo cpu = procfs.ReadCpuInfo();
  GREENLOOP_ASSIGN_OR_RETURN(MeterList meters, DiscoverRaplZones({.sysfs_root = cfg.rapl_root}));
  GREENLOOP_ASSIGN_OR_RETURN(MeterList hwmon, DiscoverHwmonSensors(cfg.hwmon_root));
  for (auto& m : hwmon) meters.push_back(std::move(m));
  std::vector<GpuDescription> gpus;
  if (cfg.nvml_enabled) {
    absl::StatusOr<NvmlDiscovery> nvml = DiscoverNvmlGpus(cfg.nvml_library);
    if (nvml.ok()) {
      for (auto& m : nvml->meters) meters.push_back(std::move(m));
      gpus = std::move(nvml->gpus);
    } else {
      logging::Info("no GPU meters", {{"reason", std::string(nvml.status().message())}});
    }
  }
  CollectorOptions options{
      .node = cfg.node,
      .carbon = {.pue = cfg.pue,
                 .grid_intensity_grams_per_kwh = cfg.grid_intensity,
                 .source = cfg.carbon_source},
      .estimator = {.cpu_idle_watts = cfg.cpu_idle_watts > 0
                                          ? cfg.cpu_idle_watts
                                          : kDefaultIdleWattsPerCpu * cpu.logical_cpus,
                    .cpu_max_watts = cfg.cpu_max_watts > 0
                                         ? cfg.cpu_max_watts
                                         : kDefaultMaxWattsPerCpu * cpu.logical_cpus,
                    .dram_watts = cfg.dram_watts},
      .max_restore_gap = absl::FromChrono(cfg.max_restore_gap),
      .process_rescan_intervals = static_cast<int>(cfg.rescan_intervals)};
  Collector collector(options, std::move(meters), gpus, &procfs);
  const std::string boot_id =
      ReadLineFile(cfg.proc_root + "/sys/kernel/random/boot_id").value_or("");

  // Storage: fail fast at start (one line), buffer through outages later.
  std::unique_ptr<pg::Pool> pool;
  std::unique_ptr<PgEnergyStore> store;
  std::unique_ptr<BufferedWriter> writer;
  if (!cfg.pg_url.empty()) {
    GREENLOOP_ASSIGN_OR_RETURN(pool, pg::Pool::Create({.url = cfg.pg_url, .max_size = 4}));
    GREENLOOP_RETURN_IF_ERROR(pg::ApplyMigrations(*pool, "energy", EnergyMigrations()));
    store = std::make_unique<PgEnergyStore>(pool.get(), cfg.node, options.carbon);
    GREENLOOP_ASSIGN_OR_RETURN(std::optional<SavedState> saved, store->Load());
    if (saved.has_value()) {
      collector.Restore(*saved, boot_id, absl::Now());
      logging::Info("continuing from saved state",
                    {{"runs", static_cast<std::int64_t>(saved->runs.size())},
                     {"same_boot", saved->boot_id == boot_id}});
    }
    writer = std::make_unique<BufferedWriter>(
        WriterOptions{.sample_resolution = absl::FromChrono(cfg.sample_resolution),
                      .flush_interval = absl::FromChrono(cfg.flush_interval),
                      .max_buffered_samples = static_cast<std::size_t>(cfg.max_buffered_samples)},
        store.get());
    writer->Start();
  } else {
    logging::Warn("pg.url is empty: figures are kept in memory only and lost on restart");
  }

  // Metrics and gRPC.
  GREENLOOP_ASSIGN_OR_RETURN(std::unique_ptr<metrics::MetricsServer> metrics_server,
                             metrics::MetricsServer::Start(cfg.metrics_address));
  metrics::RegisterBuildInfo(*metrics_server->registry(), "energy", GREENLOOP_VERSION);
  EnergyMetrics metrics(*metrics_server->registry(), cfg.node, options.carbon,
                        absl::FromChrono(cfg.run_series_grace));
  metrics.SetAuthDisabled(cfg.auth_disabled);
  std::unique_ptr<rpc::Authenticator> authenticator;
  if (cfg.auth_disabled) {
    logging::Warn("authentication is disabled: any caller may register runs (auth.disabled)");
  } else {
    rpc::ClientOptions feedback_options;
    if (!cfg.auth_feedback_ca_path.empty()) {
      feedback_options.tls =
          rpc::ClientTlsOptions{.root_ca_path = cfg.auth_feedback_ca_path,
                                .server_name_override = cfg.auth_feedback_server_name};
    }
    GREENLOOP_ASSIGN_OR_RETURN(auto channel,
                               rpc::CreateChannel(cfg.auth_feedback_address, feedback_options));
    authenticator = std::make_unique<rpc::WhoAmIAuthenticator>(channel);
  }
  SampleHub hub;
  EnergyGrpcService service(&collector, store.get(), &hub, authenticator.get(),
                            {.hostname = Hostname(),
                             .version = GREENLOOP_VERSION,
                             .start_time = absl::Now(),
                             .interval = absl::FromChrono(cfg.interval),
                             .cpu = cpu},
                            metrics_server->registry().get());
  rpc::ServerOptions server_options{.address = cfg.grpc_address, .service_name = "energy"};
  if (!cfg.tls_cert_path.empty()) {
    server_options.tls = rpc::ServerTlsOptions{.cert_chain_path = cfg.tls_cert_path,
                                               .private_key_path = cfg.tls_key_path};
  }
  rpc::Server server(server_options);
  server.Add(&service);

  bool warned_meters = false;
  SamplingLoop loop(
      &collector, absl::FromChrono(cfg.interval),
      {[&](const IntervalSample& sample, absl::Duration lag) {
        metrics.Observe(sample, lag);
        std::vector<MeterHealth> health = collector.Meters();
        metrics.ObserveMeters(health, collector.EstimatedDomains());
        if (!warned_meters && sample.interval > absl::ZeroDuration()) {
          warned_meters = true;
          for (const MeterHealth& m : health) {
            if (!m.healthy && !m.info.id.starts_with("estimator:")) {
              logging::Warn(
                  "meter unreadable; its domain is estimated",
                  {{"meter", m.info.id}, {"error", m.last_error}, {"fix", m.remediation}});
            }
          }
        }
        hub.Publish(sample);
        const absl::Time now = absl::Now();
        std::vector<RunEnergy> runs = collector.ListRuns(true);
        metrics.ExpireRuns(runs, now);
        if (writer != nullptr) {
          writer->Add(sample, runs, collector.Save(boot_id));
          metrics.ObserveWriter(writer->Stats());
        }
        collector.ForgetEndedRuns(now, absl::FromChrono(cfg.run_retention));
      }});
  loop.Start();
  GREENLOOP_RETURN_IF_ERROR(server.Start());
  std::string sources;
  for (const MeterHealth& m : collector.Meters()) {
    sources += (sources.empty() ? "" : ",") + m.info.id;
  }
  logging::Info("greenloop-energy serving",
                {{"node", cfg.node},
                 {"grpc_port", server.port()},
                 {"metrics_port", metrics_server->port()},
                 {"tls", server_options.tls.has_value()},
                 {"meters", sources},
                 {"storage", pool != nullptr ? pool->target() : std::string("memory")}});

  std::optional<int> signal = signals->Wait();
  logging::Info("shutting down", {{"signal", signal.value_or(0)}});
  service.CloseStreams();
  server.Shutdown();
  loop.Stop();  // one last tick
  if (writer != nullptr) {
    writer->Stop();  // writes everything still buffered
    if (!writer->Stats().store_up) {
      logging::Warn(
          "PostgreSQL was down at shutdown; unwritten figures were lost",
          {{"buffered_samples", static_cast<std::int64_t>(writer->Stats().buffered_samples)}});
    }
  }
  metrics_server->Stop();
  return absl::OkStatus();
}

}  // namespace
}  // namespace greenloop::energy

int main(int argc, char** argv) {
  absl::Status status = greenloop::energy::Run(argc, argv);
  if (!status.ok()) {
    std::cerr << "greenloop-energy: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
