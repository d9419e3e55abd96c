// The gRPC server every greenloop service runs: health checking, reflection, TLS, clean shutdown.
#pragma once

#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

namespace greenloop::rpc {

/// TLS for a Server. Paths name PEM files, read once by Server::Start().
struct ServerTlsOptions {
  std::string cert_chain_path;   // the server's certificate chain
  std::string private_key_path;  // its private key
  std::string client_ca_path;    // optional: when set, clients must present a cert it signed (mTLS)
};

/// How a Server listens and stops. Services fill it from their typed config.
struct ServerOptions {
  std::string address = "0.0.0.0:0";               // "host:port" (port 0: any free port)
  std::string service_name = "greenloop";          // for logs, e.g. "feedback"
  std::chrono::milliseconds shutdown_grace{5000};  // in-flight calls get this long to finish
  std::optional<ServerTlsOptions> tls;             // plaintext when empty
  int max_message_bytes = 4 * 1024 * 1024;         // for requests received and replies sent
};

/// \brief A started gRPC server with what every greenloop service exposes besides its own API.
///
/// On top of grpc::ServerBuilder it adds, for every service the same way:
///   - health checking (grpc.health.v1.Health), overall ("") and per registered service name,
///     driven by SetServing() (e.g. NOT_SERVING while PostgreSQL is unreachable);
///   - server reflection (grpc.reflection.v1alpha.ServerReflection), so grpcurl and grpc_cli work;
///   - optional TLS and mTLS from PEM files;
///   - a bind failure reported as UNAVAILABLE instead of a null pointer and a log line
///     (SO_REUSEPORT is off, so a second process cannot silently share the port);
///   - Shutdown(): NOT_SERVING first, then in-flight calls get `shutdown_grace` to finish before
///     they are cancelled.
///
/// Services are registered with Add() before Start() and are not owned; they must outlive the
/// Server. gRPC's default health service and reflection plugin are process-wide switches; Start()
/// turns both on, so every gRPC server in the process gets them.
///
/// gRPC's own threads run from Start() until Shutdown() (or destruction, which shuts down).
///
/// Thread-safety: Add() and Start() from one thread, before serving. port(), SetServing(),
/// Shutdown() and Wait() are safe from any thread, including from inside handlers (except
/// Shutdown(), which waits for handlers and would deadlock in one).
///
/// \code
///   FeedbackGrpcService feedback(queue, auth);
///   rpc::Server server({.address = "0.0.0.0:7102", .service_name = "feedback"});
///   server.Add(&feedback);
///   GREENLOOP_RETURN_IF_ERROR(server.Start());
///   GREENLOOP_ASSIGN_OR_RETURN(auto signals, rpc::ShutdownSignal::Install());
///   signals->Wait();
///   server.Shutdown();
/// \endcode
class Server final {
 public:
  /// Keeps `options`; nothing is bound or read until Start().
  explicit Server(ServerOptions options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// Shuts down (see Shutdown()) if still running.
  ~Server();

  /// Registers `service` (not owned; must outlive this). Crashes if called after Start().
  void Add(::grpc::Service* service);
  /// Reads TLS files, binds and starts serving. INVALID_ARGUMENT for a malformed address or an
  /// unreadable or empty TLS file (naming the path); UNAVAILABLE naming the address when it cannot
  /// be bound (port in use); FAILED_PRECONDITION when called twice.
  absl::Status Start();
  /// The bound TCP port (the chosen one when the address said port 0); 0 before Start().
  int port() const;
  /// Fully-qualified names of the services served, health and reflection included; empty before
  /// Start().
  std::vector<std::string> service_names() const;
  /// Sets the overall status ("") and that of every served service. Before Start() it sets the
  /// status Start() begins with (SERVING by default). Ignored after Shutdown().
  void SetServing(bool serving);
  /// Sets one service's status, e.g. "greenloop.v1.Feedback". NOT_FOUND for a name not served;
  /// FAILED_PRECONDITION before Start().
  absl::Status SetServing(std::string_view service_name, bool serving);
  /// Marks everything NOT_SERVING, stops accepting calls, waits up to `shutdown_grace` for calls in
  /// flight and cancels the rest; returns when all have ended. Idempotent; a no-op before Start().
  void Shutdown();
  /// Blocks until Shutdown() has completed (from another thread). Returns at once if not started.
  void Wait();

 private:
  enum class State { kNew, kStarted, kShutDown };

  const ServerOptions options_;
  mutable std::mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  bool serving_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<::grpc::Service*> services_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> service_names_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  // Set once by Start(); destroyed only by ~Server(), so it may be used without mu_ once started.
  std::unique_ptr<::grpc::Server> server_;
};

}  // namespace greenloop::rpc
