// The feedback service's HTTP port: the rater web page and a JSON API that carries the contract's
// own messages through protobuf's JSON mapping.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "services/feedback/adapters/api.h"

namespace httplib {
class Server;
}

namespace greenloop::feedback {

struct HttpOptions {
  std::string address = "0.0.0.0:8080";           // host:port; port 0 picks a free one
  std::size_t max_body_bytes = 64 * 1024 * 1024;  // larger bodies get 413
  int threads = 8;
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
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

/// The HTTP status for a canonical code (Google's mapping: INVALID_ARGUMENT 400, ... ).
int HttpStatusFor(absl::StatusCode code);

}  // namespace greenloop::feedback
