#include "common/grpc/server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc/tls_files.h"
#include "common/logging/logging.h"

namespace greenloop::rpc {
namespace {

// Keepalive: the server pings an idle client every minute to notice dead peers, and accepts client
// pings as often as every 10 s (ClientOptions::keepalive_time must not be shorter, or gRPC answers
// with GOAWAY "too_many_pings").
constexpr int kKeepaliveTimeMs = 60'000;
constexpr int kKeepaliveTimeoutMs = 20'000;
constexpr int kMinClientPingIntervalMs = 10'000;

// gRPC keeps the list of registered service names private; a builder plugin is the public way to
// read it. Finish() runs after Server::Start(), so the default health service is in the list.
class ServiceNamesPlugin final : public ::grpc::ServerBuilderPlugin {
 public:
  explicit ServiceNamesPlugin(std::vector<std::string>* names) : names_(names) {}
  std::string name() override { return "greenloop_service_names"; }
  void InitServer(::grpc::ServerInitializer* /*si*/) override {}
  void Finish(::grpc::ServerInitializer* si) override { *names_ = *si->GetServiceList(); }
  void ChangeArguments(const std::string& /*name*/, void* /*value*/) override {}

 private:
  std::vector<std::string>* names_;
};

class ServiceNamesOption final : public ::grpc::ServerBuilderOption {
 public:
  explicit ServiceNamesOption(std::vector<std::string>* names) : names_(names) {}
  void UpdateArguments(::grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<::grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->push_back(std::make_unique<ServiceNamesPlugin>(names_));
  }

 private:
  std::vector<std::string>* names_;
};

absl::Status ValidateAddress(std::string_view address) {
  if (address.starts_with("unix:") || address.starts_with("unix-abstract:")) {
    return absl::OkStatus();
  }
  const std::size_t colon = address.rfind(':');
  int port = -1;
  if (colon != std::string_view::npos) {
    const std::string_view digits = address.substr(colon + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (error != std::errc() || end != digits.data() + digits.size() || digits.empty()) port = -1;
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("gRPC listen address '", std::string(address),
                                                   "' is not host:port (e.g. 0.0.0.0:7101)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> MakeCredentials(
    const std::optional<ServerTlsOptions>& tls) {
  if (!tls.has_value()) {
    return ::grpc::InsecureServerCredentials();
  }
  ::grpc::SslServerCredentialsOptions ssl;
  ::grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert =
      internal::ReadPemFile("certificate chain", tls->cert_chain_path);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = internal::ReadPemFile("private key", tls->private_key_path);
  if (!key.ok()) return key.status();
  pair.cert_chain = *std::move(cert);
  pair.private_key = *std::move(key);
  ssl.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls->client_ca_path.empty()) {
    absl::StatusOr<std::string> ca = internal::ReadPemFile("client CA", tls->client_ca_path);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return ::grpc::SslServerCredentials(ssl);
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { Shutdown(); }

void Server::Add(::grpc::Service* service) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != State::kNew || service == nullptr) {
    // A wiring bug in main, not a runtime condition: crash loudly.
    logging::Error("rpc::Server::Add called after Start() or with a null service",
                   {{"service", options_.service_name}});
    std::abort();
  }
  services_.push_back(service);
}

absl::Status Server::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ != State::kNew) {
    return absl::FailedPreconditionError("rpc::Server::Start called twice");
  }
  if (absl::Status valid = ValidateAddress(options_.address); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> credentials =
      MakeCredentials(options_.tls);
  if (!credentials.ok()) {
    return credentials.status();
  }

  // Both are process-wide switches read when a builder is made; they must precede it.
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  ::grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.address, *credentials, &port);
  for (::grpc::Service* service : services_) {
    builder.RegisterService(service);
  }
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // Without this, gRPC sets SO_REUSEPORT and a second server "binds" a port already in use.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             kMinClientPingIntervalMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.SetOption(std::make_unique<ServiceNamesOption>(&service_names_));

  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen for gRPC on ", options_.address,
                                               " (port in use or address not local?)"));
  }
  port_ = port;
  state_ = State::kStarted;
  // gRPC's health service knows only "" (SERVING) until told; name every service explicitly so a
  // probe for "greenloop.v1.Feedback" gets an answer rather than NOT_FOUND.
  ::grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving_);
  for (const std::string& name : service_names_) {
    health->SetServingStatus(name, serving_);
  }
  logging::Info("grpc server listening", {{"service", options_.service_name},
                                          {"address", options_.address},
                                          {"port", port_},
                                          {"tls", options_.tls.has_value()},
                                          {"serving", serving_},
                                          {"services", absl::StrJoin(service_names_, ",")}});
  return absl::OkStatus();
}

int Server::port() const {
  std::lock_guard<std::mutex> lock(mu_);
  return port_;
}

std::vector<std::string> Server::service_names() const {
  std::lock_guard<std::mutex> lock(mu_);
  return service_names_;
}

void Server::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == State::kShutDown || serving_ == serving) {
    return;
  }
  serving_ = serving;
  if (state_ != State::kStarted) {
    return;
  }
  ::grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(serving);
  for (const std::string& name : service_names_) {
    health->SetServingStatus(name, serving);
  }
  logging::Info("grpc serving status changed",
                {{"service", options_.service_name}, {"serving", serving}});
}

absl::Status Server::SetServing(std::string_view service_name, bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == State::kNew) {
    return absl::FailedPreconditionError(
        absl::StrCat("SetServing('", std::string(service_name), "') before the server started"));
  }
  if (std::find(service_names_.begin(), service_names_.end(), service_name) ==
      service_names_.end()) {
    return absl::NotFoundError(absl::StrCat("no service '", std::string(service_name),
                                            "' on this server; it has ",
                                            absl::StrJoin(service_names_, ", ")));
  }
  if (state_ == State::kStarted) {
    server_->GetHealthCheckService()->SetServingStatus(std::string(service_name), serving);
    logging::Info(
        "grpc serving status changed",
        {{"service", options_.service_name}, {"grpc_service", service_name}, {"serving", serving}});
  }
  return absl::OkStatus();
}

void Server::Shutdown() {
  bool wait_instead = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kNew) {
      return;
    }
    if (state_ == State::kShutDown) {
      // Another caller is shutting down or has; return when it is done, as promised.
      wait_instead = true;
    } else {
      state_ = State::kShutDown;
      // NOT_SERVING everywhere (Watch streams see it) and no further changes, before the listener
      // closes, so that probes and load balancers stop sending new work first.
      server_->GetHealthCheckService()->Shutdown();
    }
  }
  if (wait_instead) {
    server_->Wait();
    return;
  }
  logging::Info("grpc server shutting down",
                {{"service", options_.service_name},
                 {"grace_ms", static_cast<std::int64_t>(options_.shutdown_grace.count())}});
  // Outside mu_: this waits for handlers, which may call SetServing() or port().
  server_->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace);
  logging::Info("grpc server stopped", {{"service", options_.service_name}});
}

void Server::Wait() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::kNew) {
      return;
    }
  }
  server_->Wait();
}

}  // namespace greenloop::rpc
