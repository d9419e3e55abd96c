// greenloop-feedback: the feedback queue. Wiring only: config, PostgreSQL and migrations, the
// bootstrap admin token, the queue, gRPC, HTTP, metrics, background work, and a clean shutdown on
// SIGTERM.
#include <cstdlib>
#include <iostream>

#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/grpc/shutdown_signal.h"
#include "common/logging/logging.h"
#include "common/metrics/metrics_server.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "common/status/status.h"
#include "fmt/format.h"
#include "services/feedback/adapters/api.h"
#include "services/feedback/adapters/grpc_service.h"
#include "services/feedback/adapters/http_server.h"
#include "services/feedback/adapters/metrics.h"
#include "services/feedback/adapters/verdict_streams.h"
#include "services/feedback/core/queue.h"
#include "services/feedback/core/tokens.h"
#include "services/feedback/storage/pg_store.h"

#ifndef GREENLOOP_VERSION
#define GREENLOOP_VERSION "dev"
#endif

namespace greenloop::feedback {
namespace {

struct Config {
  std::string grpc_address = "0.0.0.0:7102";
  std::string metrics_address = "0.0.0.0:9102";
  std::string http_address = "0.0.0.0:8080";
  std::int64_t http_threads = 16;
  std::int64_t http_max_body_bytes = 4 << 20;
  double http_auth_failure_burst = 20;
  double http_auth_failures_per_second = 1;
  std::int64_t max_message_bytes = 64 << 20;
  std::string pg_url;
  std::int64_t pg_pool_size = 16;
  bool auth_disabled = false;
  std::string bootstrap_admin_token;
  std::chrono::milliseconds auth_cache_ttl{300'000};
  std::chrono::milliseconds auth_revocation_check{1000};
  std::string tls_cert_path;
  std::string tls_key_path;
  std::int64_t max_payload_bytes = 1 << 20;
  std::int64_t max_live_leases = 20;
  double rate_limit_rps = 50;
  double rate_limit_burst = 100;
  std::chrono::milliseconds reap_interval{1000};
  std::int64_t head_size = 1024;
  std::chrono::milliseconds head_max_age{1000};
  std::chrono::milliseconds reestimate_interval{30'000};
  std::chrono::milliseconds stream_poll_interval{1000};
  std::chrono::milliseconds gauge_interval{15'000};
  std::string log_format = "text";
  std::string log_level = "info";
};

absl::Status Run(int argc, char** argv) {
  Config cfg;
  config::Schema schema("greenloop-feedback");
  schema.Add("grpc.address", &cfg.grpc_address, "gRPC listen address, host:port")
      .Add("grpc.max_message_bytes", &cfg.max_message_bytes, "largest gRPC message",
           {.min = 1 << 20})
      .Add("metrics.address", &cfg.metrics_address, "Prometheus /metrics listen address")
      .Add("http.address", &cfg.http_address, "rater web page and JSON API listen address")
      .Add("http.threads", &cfg.http_threads, "HTTP worker threads", {.min = 1, .max = 1024})
      .Add("http.max_body_bytes", &cfg.http_max_body_bytes,
           "largest JSON API body (413 beyond, unread)", {.min = 64 << 10, .max = 64 << 20})
      .Add("http.auth_failure_burst", &cfg.http_auth_failure_burst,
           "failed authentications a client address may make in a row before it gets 429",
           {.min = 1.0, .max = 1e6})
      .Add("http.auth_failures_per_second", &cfg.http_auth_failures_per_second,
           "how fast a client's allowance of failed authentications refills",
           {.min = 0.001, .max = 1e6})
      .Add("pg.url", &cfg.pg_url, "PostgreSQL connection string (required)", {.secret = true})
      .Add("pg.pool_size", &cfg.pg_pool_size, "most PostgreSQL connections", {.min = 2, .max = 500})
      .Add("auth.disabled", &cfg.auth_disabled,
           "accept every call without a token (local development only; logged and exported)")
      .Add("auth.bootstrap_admin_token", &cfg.bootstrap_admin_token,
           "an admin token to create at start if no token has its hash yet (e.g. from a secret); "
           "empty: one is generated and printed once when no admin token exists",
           {.secret = true})
      .Add("auth.cache_ttl", &cfg.auth_cache_ttl,
           "how long a checked token is trusted (a revoke anywhere drops the cache sooner)",
           {.min = 0, .max = 3'600'000})
      .Add("auth.revocation_check", &cfg.auth_revocation_check,
           "how often the token cache looks for revokes made through other replicas",
           {.min = 100, .max = 60'000})
      .Add("tls.cert_path", &cfg.tls_cert_path,
           "PEM certificate chain: gRPC and the HTTP port speak TLS only (optional)")
      .Add("tls.key_path", &cfg.tls_key_path, "PEM private key for gRPC TLS")
      .Add("limits.max_payload_bytes", &cfg.max_payload_bytes, "largest item payload",
           {.min = 1024, .max = 16 << 20})
      .Add("limits.max_live_leases", &cfg.max_live_leases, "live leases a rater may hold",
           {.min = 1, .max = 20})
      .Add("rate_limit.requests_per_second", &cfg.rate_limit_rps,
           "requests per second per rater token (0: no limit)", {.min = 0})
      .Add("rate_limit.burst", &cfg.rate_limit_burst, "burst above the rate", {.min = 1})
      .Add("leases.reap_interval", &cfg.reap_interval, "how often expired leases are ended",
           {.min = 50})
      .Add("leases.head_size", &cfg.head_size,
           "queue-head items kept in memory per campaign for Lease to take (0: every Lease "
           "walks the head in PostgreSQL)",
           {.min = 0, .max = 100'000})
      .Add("leases.head_max_age", &cfg.head_max_age,
           "oldest in-memory queue head served; a higher-priority item waits at most this long",
           {.min = 10, .max = 60'000})
      .Add("consensus.reestimate_interval", &cfg.reestimate_interval,
           "how often Dawid-Skene is re-run over campaigns with new ratings", {.min = 100})
      .Add("streams.poll_interval", &cfg.stream_poll_interval,
           "how often idle verdict streams look for verdicts from other replicas", {.min = 50})
      .Add("metrics.gauge_interval", &cfg.gauge_interval, "how often queue gauges are refreshed",
           {.min = 100})
      .Add("log.format", &cfg.log_format, "text or json", {.one_of = {"text", "json"}})
      .Add("log.level", &cfg.log_level, "debug, info, warn or error",
           {.one_of = {"debug", "info", "warn", "error"}})
      .Check([&cfg]() -> absl::Status {
        if (cfg.pg_url.empty()) {
          return absl::InvalidArgumentError(
              "pg.url is required (--pg.url, GREENLOOP_PG_URL, or pg.url in --config FILE)");
        }
        if (cfg.tls_cert_path.empty() != cfg.tls_key_path.empty()) {
          return absl::InvalidArgumentError("set both tls.cert_path and tls.key_path, or neither");
        }
        // Before connecting to anything: a placeholder must never become an admin token.
        if (!cfg.bootstrap_admin_token.empty()) {
          return CheckBootstrapSecret("auth.bootstrap_admin_token", cfg.bootstrap_admin_token);
        }
        return absl::OkStatus();
      });
  GREENLOOP_RETURN_IF_ERROR(schema.Load(argc, argv));
  if (schema.help_requested()) {
    std::cout << schema.Usage();
    return absl::OkStatus();
  }
  logging::Init({.service = "feedback",
                 .format = *logging::ParseFormat(cfg.log_format),
                 .level = *logging::ParseLevel(cfg.log_level)});
  GREENLOOP_ASSIGN_OR_RETURN(std::unique_ptr<rpc::ShutdownSignal> signals,
                             rpc::ShutdownSignal::Install());

  // Storage: fail fast with one line when PostgreSQL is not there.
  GREENLOOP_ASSIGN_OR_RETURN(
      std::unique_ptr<pg::Pool> pool,
      pg::Pool::Create({.url = cfg.pg_url, .max_size = static_cast<int>(cfg.pg_pool_size)}));
  GREENLOOP_RETURN_IF_ERROR(pg::ApplyMigrations(*pool, "feedback", FeedbackMigrations()));
  PgFeedbackStore store(pool.get());

  GREENLOOP_ASSIGN_OR_RETURN(std::unique_ptr<metrics::MetricsServer> metrics_server,
                             metrics::MetricsServer::Start(cfg.metrics_address));
  metrics::RegisterBuildInfo(*metrics_server->registry(), "feedback", GREENLOOP_VERSION);
  FeedbackMetrics metrics(*metrics_server->registry());
  metrics.SetAuthDisabled(cfg.auth_disabled);

  FeedbackQueue queue(&store,
                      {.limits = {.max_payload_bytes = cfg.max_payload_bytes,
                                  .max_live_leases = static_cast<int>(cfg.max_live_leases)},
                       .rater_requests_per_second = cfg.rate_limit_rps,
                       .rater_burst = cfg.rate_limit_burst,
                       .head_size = static_cast<int>(cfg.head_size),
                       .head_max_age = absl::FromChrono(cfg.head_max_age)},
                      &metrics);

  // Tokens: the first admin token comes from config, or is made here and shown once.
  std::unique_ptr<TokenAuthenticator> authenticator;
  if (cfg.auth_disabled) {
    logging::Warn(
        "authentication is disabled: every caller acts as 'anonymous' with every role "
        "(auth.disabled); never expose this instance beyond loopback");
  } else {
    authenticator = std::make_unique<TokenAuthenticator>(
        &store, absl::FromChrono(cfg.auth_cache_ttl), absl::FromChrono(cfg.auth_revocation_check));
    if (!cfg.bootstrap_admin_token.empty()) {
      GREENLOOP_ASSIGN_OR_RETURN(
          bool created, queue.EnsureAdminToken(cfg.bootstrap_admin_token, "bootstrap admin"));
      if (created) logging::Info("created the bootstrap admin token from config");
    } else {
      GREENLOOP_ASSIGN_OR_RETURN(bool has_admin, store.HasLiveAdmin());
      if (!has_admin) {
        GREENLOOP_ASSIGN_OR_RETURN(std::string secret, GenerateTokenSecret());
        GREENLOOP_RETURN_IF_ERROR(queue.EnsureAdminToken(secret, "bootstrap admin").status());
        std::cerr << "greenloop-feedback: no admin token existed; created one (shown only now, "
                     "store it):\n  "
                  << secret << "\n";
      }
    }
  }

  FeedbackApi api(&queue, authenticator.get(), &metrics);
  VerdictStreams streams(&queue, absl::FromChrono(cfg.stream_poll_interval));
  queue.SetVerdictListener([&streams](const std::string& c) { streams.Notify(c); });
  FeedbackGrpcService service(&api, &streams);
  rpc::ServerOptions server_options{.address = cfg.grpc_address,
                                    .service_name = "feedback",
                                    .max_message_bytes = static_cast<int>(cfg.max_message_bytes)};
  if (!cfg.tls_cert_path.empty()) {
    server_options.tls = rpc::ServerTlsOptions{.cert_chain_path = cfg.tls_cert_path,
                                               .private_key_path = cfg.tls_key_path};
  }
  rpc::Server server(server_options);
  server.Add(&service);
  FeedbackHttpServer http(&api,
                          {.address = cfg.http_address,
                           .max_body_bytes = static_cast<std::size_t>(cfg.http_max_body_bytes),
                           .threads = static_cast<int>(cfg.http_threads),
                           .auth_failure_burst = cfg.http_auth_failure_burst,
                           .auth_failures_per_second = cfg.http_auth_failures_per_second,
                           .tls_cert_path = cfg.tls_cert_path,
                           .tls_key_path = cfg.tls_key_path});

  MaintenanceLoop maintenance(
      &queue, absl::FromChrono(cfg.reap_interval), absl::FromChrono(cfg.reestimate_interval),
      [](const absl::Status& s) {
        logging::Warn("background work failed; retrying", {{"error", s.ToString()}});
      });
  GaugeRefresher gauges(&metrics, absl::FromChrono(cfg.gauge_interval),
                        [&store, &queue]() -> absl::StatusOr<GaugeRefresher::Snapshot> {
                          GREENLOOP_ASSIGN_OR_RETURN(PgFeedbackStore::Gauges g, store.ReadGauges());
                          GaugeRefresher::Snapshot s{g.depth, g.live_leases, {}};
                          for (const auto& [campaign, depth] : g.depth) {
                            v1::GetCampaignStatsRequest req;
                            req.set_campaign_id(campaign);
                            auto stats = queue.GetCampaignStats(Caller::Anonymous(), req);
                            if (stats.ok() && stats->has_fleiss_kappa()) {
                              s.agreement[campaign] = stats->fleiss_kappa();
                            }
                          }
                          return s;
                        });

  streams.Start();
  maintenance.Start();
  gauges.Start();
  GREENLOOP_RETURN_IF_ERROR(server.Start());
  GREENLOOP_RETURN_IF_ERROR(http.Start());
  logging::Info("greenloop-feedback serving", {{"grpc_port", server.port()},
                                               {"http_port", http.port()},
                                               {"metrics_port", metrics_server->port()},
                                               {"storage", pool->target()},
                                               {"auth", cfg.auth_disabled ? "disabled" : "tokens"},
                                               {"tls", !cfg.tls_cert_path.empty()}});

  std::optional<int> signal = signals->Wait();
  logging::Info("shutting down", {{"signal", signal.value_or(0)}});
  // Streams end first (UNAVAILABLE: trainers resume from their cursor), then in-flight calls get
  // the server's grace; everything acknowledged is already committed.
  streams.CloseAll();
  http.Stop();
  server.Shutdown();
  streams.Stop();
  maintenance.Stop();
  gauges.Stop();
  metrics_server->Stop();
  return absl::OkStatus();
}

}  // namespace
}  // namespace greenloop::feedback

int main(int argc, char** argv) {
  absl::Status status = greenloop::feedback::Run(argc, argv);
  if (!status.ok()) {
    std::cerr << "greenloop-feedback: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
