// Client side of greenloop's gRPC: one place for channels, retries, keepalive and deadlines.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace greenloop::rpc {

/// TLS for a client channel. Paths name PEM files, read by CreateChannel().
struct ClientTlsOptions {
  std::string root_ca_path;          // CA that signed the server's cert; empty: the system roots
  std::string cert_chain_path;       // optional client certificate, for servers that require mTLS
  std::string private_key_path;      // its key; set both or neither
  std::string server_name_override;  // expected name in the server's cert, when the target's
                                     // host differs (tests dialing 127.0.0.1)
};

/// Retries of calls that fail with UNAVAILABLE (server down, restarting, connection reset), with
/// exponential backoff and jitter, done by gRPC itself below the stub. Other codes are never
/// retried: they are answers. gRPC caps attempts at 5.
///
/// With `throttle`, gRPC stops retrying while most recent calls to the target failed (a token
/// bucket of 10, each failure -1, each success +0.1, retries only above 5), so a dependency that is
/// down is not stormed. That bucket is process-wide per target name, shared by every channel to it.
struct RetryPolicy {
  int max_attempts = 4;  // including the first; 1 disables retries
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  double backoff_multiplier = 2.0;
  bool throttle = true;  // tests that count attempts turn it off
};

/// How a client channel connects. The defaults suit calls between greenloop services.
struct ClientOptions {
  std::optional<ClientTlsOptions> tls;  // plaintext when empty
  RetryPolicy retry;
  std::chrono::milliseconds keepalive_time{30000};  // ping an idle connection this often; at least
                                                    // 10 s, or rpc::Server sends GOAWAY
  std::chrono::milliseconds keepalive_timeout{10000};  // and drop it if the ping is not answered
  int max_message_bytes = 4 * 1024 * 1024;             // largest reply accepted
};

/// Returns a channel to `target` ("host:port", "dns:///name:port", "unix:/path") that retries
/// UNAVAILABLE per `options.retry` and keeps idle connections alive. Connects lazily: a server
/// that is down shows up as UNAVAILABLE on the first call, not here. INVALID_ARGUMENT for an empty
/// target, a retry policy out of range, or an unreadable or empty TLS file (naming the path).
///
/// Thread-safety: the channel is thread-safe and meant to be shared by every stub to that target.
///
/// \code
///   GREENLOOP_ASSIGN_OR_RETURN(auto channel, rpc::CreateChannel("feedback:7102"));
///   auto stub = greenloop::v1::Feedback::NewStub(channel);
///   auto ctx = rpc::NewClientContext(std::chrono::seconds(2), token);
///   grpc::Status status = stub->Enqueue(ctx.get(), request, &reply);
/// \endcode
absl::StatusOr<std::shared_ptr<::grpc::Channel>> CreateChannel(std::string_view target,
                                                               const ClientOptions& options = {});

/// Returns a context for one call: its deadline is now + `deadline` (across all retry attempts),
/// and when `bearer_token` is not empty it carries metadata `authorization: Bearer <token>`.
/// A context is single-use; make a new one per call.
std::unique_ptr<::grpc::ClientContext> NewClientContext(std::chrono::milliseconds deadline,
                                                        std::string_view bearer_token = {});

/// The service config JSON CreateChannel() gives gRPC for `policy`; exposed for tests and logs.
std::string RetryServiceConfigJson(const RetryPolicy& policy);

}  // namespace greenloop::rpc
