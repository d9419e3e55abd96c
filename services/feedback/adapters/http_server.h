// The feedback service's HTTP port: the rater web page and a JSON API that carries the contract's
// own messages through protobuf's JSON mapping.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "services/feedback/adapters/api.h"
#include "services/feedback/core/auth_throttle.h"

namespace httplib {
class Server;
}

namespace greenloop::feedback {

struct HttpOptions {
  std::string address = "0.0.0.0:8080";          // host:port; port 0 picks a free one
  std::size_t max_body_bytes = 4 * 1024 * 1024;  // larger bodies get 413, unread
  int threads = 8;
  // Failed authentications a client (peer address) may make in a row, and how fast that refills;
  // beyond, its API calls get 429 before their token is looked up.
  double auth_failure_burst = 20;
  double auth_failures_per_second = 1;
  // PEM certificate chain and key: set both and the port speaks HTTPS only (raters' tokens and
  // answers never cross the network in the clear); empty: plain HTTP, for loopback.
  std::string tls_cert_path;
  std::string tls_key_path;
};

/// \brief Serves, on one port:
///
///   GET  /                     the rater page (index.html, app.js, style.css, embedded)
///   GET  /healthz              "ok"
///   POST /api/v1/<Rpc>         the unary FeedbackService RPCs: body = <Rpc>Request as JSON,
///                              answer = <Rpc>Response as JSON (200) or {"code","message"} with
///                              the HTTP status of the gRPC code (400, 401, 403, 404, 409, 429,
///                              503, ...); bearer token in the `Authorization` header
///
/// A body that is not JSON for the request message is 400 INVALID_ARGUMENT and nothing is done.
/// WatchVerdicts is gRPC only. The handlers go through the same FeedbackApi as gRPC, so roles,
/// validation and errors are identical.
///
/// Untrusted callers cost little: the RPC's name and the caller's token are checked before the
/// body is read (an unknown RPC, a missing or unknown token are answered without reading it, and
/// the connection is closed), a body over `max_body_bytes` is 413, and a client whose
/// authentications keep failing is answered 429 with Retry-After before its token is looked up
/// (AuthThrottle). Every response carries `X-Content-Type-Options: nosniff` and a
/// Content-Security-Policy with `frame-ancestors 'none'` (the page cannot be framed).
///
/// Thread-safety: Start() and Stop() from the owning thread; the api must outlive the server.
class FeedbackHttpServer final {
 public:
  FeedbackHttpServer(FeedbackApi* api, HttpOptions options);
  ~FeedbackHttpServer();

  /// Binds and starts serving on a background thread. INVALID_ARGUMENT for a malformed address,
  /// UNAVAILABLE when it cannot be bound.
  absl::Status Start();
  /// The bound port; 0 before Start().
  int port() const { return port_; }
  /// Stops accepting and joins the server thread. Idempotent.
  void Stop();

 private:
  FeedbackApi* const api_;
  const HttpOptions options_;
  AuthThrottle throttle_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

/// The HTTP status for a canonical code (Google's mapping: INVALID_ARGUMENT 400, ... ).
int HttpStatusFor(absl::StatusCode code);

}  // namespace greenloop::feedback
