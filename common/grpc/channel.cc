#include "common/grpc/channel.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc/tls_files.h"

namespace greenloop::rpc {
namespace {

// gRPC's duration syntax in service configs: seconds with up to 9 decimals and an "s".
std::string ProtoDuration(std::chrono::milliseconds d) {
  return absl::StrFormat("%d.%03ds", d.count() / 1000, d.count() % 1000);
}

absl::Status ValidateRetry(const RetryPolicy& policy) {
  if (policy.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("retry max_attempts must be at least 1, got ", policy.max_attempts));
  }
  if (policy.initial_backoff.count() <= 0 || policy.max_backoff < policy.initial_backoff) {
    return absl::InvalidArgumentError(
        "retry backoff must satisfy 0 < initial_backoff <= max_backoff");
  }
  if (!(policy.backoff_multiplier >= 1.0)) {
    return absl::InvalidArgumentError("retry backoff_multiplier must be at least 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<::grpc::ChannelCredentials>> MakeCredentials(
    const std::optional<ClientTlsOptions>& tls) {
  if (!tls.has_value()) {
    return ::grpc::InsecureChannelCredentials();
  }
  ::grpc::SslCredentialsOptions ssl;
  if (!tls->root_ca_path.empty()) {
    absl::StatusOr<std::string> ca = internal::ReadPemFile("root CA", tls->root_ca_path);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (tls->cert_chain_path.empty() != tls->private_key_path.empty()) {
    return absl::InvalidArgumentError(
        "client TLS: set both cert_chain_path and private_key_path, or neither");
  }
  if (!tls->cert_chain_path.empty()) {
    absl::StatusOr<std::string> cert =
        internal::ReadPemFile("client certificate chain", tls->cert_chain_path);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        internal::ReadPemFile("client private key", tls->private_key_path);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return ::grpc::SslCredentials(ssl);
}

}  // namespace

std::string RetryServiceConfigJson(const RetryPolicy& policy) {
  if (policy.max_attempts <= 1) {
    return R"({"methodConfig":[{"name":[{}]}]})";
  }
  // "name":[{}] applies the policy to every method of every service on the channel.
  return absl::StrCat(
      R"({"methodConfig":[{"name":[{}],"retryPolicy":{"maxAttempts":)", policy.max_attempts,
      R"(,"initialBackoff":")", ProtoDuration(policy.initial_backoff), R"(","maxBackoff":")",
      ProtoDuration(policy.max_backoff), R"(","backoffMultiplier":)",
      absl::StrFormat("%g", policy.backoff_multiplier),
      R"(,"retryableStatusCodes":["UNAVAILABLE"]}}])",
      policy.throttle ? R"(,"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}})" : "}");
}

absl::StatusOr<std::shared_ptr<::grpc::Channel>> CreateChannel(std::string_view target,
                                                               const ClientOptions& options) {
  if (target.empty()) {
    return absl::InvalidArgumentError("gRPC target is empty; expected host:port");
  }
  if (absl::Status valid = ValidateRetry(options.retry); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<std::shared_ptr<::grpc::ChannelCredentials>> credentials =
      MakeCredentials(options.tls);
  if (!credentials.ok()) {
    return credentials.status();
  }
  ::grpc::ChannelArguments args;
  args.SetServiceConfigJSON(RetryServiceConfigJson(options.retry));
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive_time.count()));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(options.keepalive_timeout.count()));
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.tls.has_value() && !options.tls->server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.tls->server_name_override);
  }
  return ::grpc::CreateCustomChannel(std::string(target), *credentials, args);
}

std::unique_ptr<::grpc::ClientContext> NewClientContext(std::chrono::milliseconds deadline,
                                                        std::string_view bearer_token) {
  auto context = std::make_unique<::grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!bearer_token.empty()) {
    context->AddMetadata("authorization", "Bearer " + std::string(bearer_token));
  }
  return context;
}

}  // namespace greenloop::rpc
