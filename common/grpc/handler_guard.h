// The one policy for an RPC handler's failures, shared by every service (common/status/status.h:
// INTERNAL is a bug, its details go to the log, not the client).
//
//   HandlerGuard guard("energy", HandlerGuard::CountIn(registry, "greenloop_energy_errors_total"));
//   return guard.Run("Register", [&]() -> absl::Status { ...; return absl::OkStatus(); });
//
// Thread-safety: Run() and Account() are thread-safe (the count callback must be).
#pragma once

#include <grpcpp/support/status.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "common/grpc/status.h"
#include "common/status/status.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace greenloop::rpc {

/// \brief Runs handlers under one error policy: an exception that escapes becomes INTERNAL naming
/// the RPC and the exception; an INTERNAL or UNKNOWN status (thrown or returned) is logged with
/// the service and RPC and counted once; the client gets ToGrpcStatus()'s generic message for it.
/// Every other status passes through unchanged, neither logged nor counted: it is an answer.
class HandlerGuard final {
 public:
  /// Called once per INTERNAL or UNKNOWN answer with the RPC's name.
  using Counter = std::function<void(std::string_view rpc)>;

  /// `count` may be empty: failures are then logged only (tests, tools).
  HandlerGuard(std::string service, Counter count)
      : service_(std::move(service)), count_(std::move(count)) {}

  /// A Counter that increments `metric`{rpc=...} in `registry` (none when `registry` is null).
  static Counter CountIn(prometheus::Registry* registry, const std::string& metric);

  /// Runs `fn` (returning absl::Status) under the policy and answers with its gRPC status.
  template <typename F>
  ::grpc::Status Run(std::string_view rpc, F&& fn) const {
    absl::Status status;
    try {
      status = std::forward<F>(fn)();
    } catch (...) {
      status = StatusFromCurrentException(rpc);
    }
    return ToGrpcStatus(Account(rpc, status));
  }

  /// Logs and counts `status` when it is INTERNAL or UNKNOWN; returns it. For adapters that do
  /// not answer through Run(): streams, the HTTP API.
  const absl::Status& Account(std::string_view rpc, const absl::Status& status) const;

 private:
  const std::string service_;
  const Counter count_;
};

}  // namespace greenloop::rpc
