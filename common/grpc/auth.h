// Who is calling, and may they: bearer-token authentication and role checks for gRPC handlers.
#pragma once

#include <grpcpp/server_context.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace greenloop::rpc {

/// What a caller may do. Raters judge samples, workers (trainers, the energy collector, the CLI on
/// behalf of a job) enqueue and read verdicts, admins manage campaigns and tokens.
enum class Role { kRater, kWorker, kAdmin };

/// "rater", "worker" or "admin": the spelling used in tokens, logs and error messages.
std::string_view RoleName(Role role);

/// An authenticated caller.
struct Principal {
  std::string id;    // stable key, e.g. the auth_tokens row id
  std::string name;  // for people and logs, e.g. "alice"
  Role role = Role::kRater;
};

/// \brief Turns a bearer token into the Principal it belongs to.
///
/// The feedback service implements one over a table of hashed tokens in PostgreSQL; tests and
/// local development use StaticAuthenticator. Implementations return UNAUTHENTICATED for a token
/// they do not know (never NOT_FOUND, which would tell a prober more than it needs), and
/// UNAVAILABLE when their store is down.
///
/// Thread-safety: implementations must be safe to call from many RPC threads at once.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  /// Returns the principal holding `bearer_token`; UNAUTHENTICATED when no one does.
  virtual absl::StatusOr<Principal> Authenticate(std::string_view bearer_token) const = 0;
};

/// \brief An Authenticator over a fixed token → principal table held in memory.
///
/// For tests and local development only: tokens sit in memory in clear text. Services in
/// production authenticate against hashed tokens in their database.
///
/// Tokens are compared in constant time with respect to their contents (the length of the
/// presented token is not hidden), and every entry is compared on every call, so the response time
/// does not say which token matched or how much of one did.
///
/// Thread-safety: immutable after construction; safe to share between threads.
///
/// \code
///   StaticAuthenticator auth({{"dev-admin-token", {"1", "admin", Role::kAdmin}}});
/// \endcode
class StaticAuthenticator final : public Authenticator {
 public:
  /// Holds `tokens` (token, principal). Empty tokens are never matched.
  explicit StaticAuthenticator(std::vector<std::pair<std::string, Principal>> tokens);
  /// Returns the principal of `bearer_token`; UNAUTHENTICATED when it is not in the table.
  absl::StatusOr<Principal> Authenticate(std::string_view bearer_token) const override;

 private:
  std::vector<std::pair<std::string, Principal>> tokens_;
};

/// Returns the token of the call's `authorization: Bearer <token>` metadata ("Bearer" is matched
/// case-insensitively). UNAUTHENTICATED when the header is missing, repeated, of another scheme or
/// carries an empty token. The view points into `context`'s metadata.
absl::StatusOr<std::string_view> BearerToken(const ::grpc::ServerContextBase& context);

/// Authenticates the caller of an RPC and checks its role: the first thing every handler does.
///
/// Returns the Principal when the call carries a bearer token `authenticator` knows and whose role
/// is in `allowed` (an empty list admits every authenticated principal). Errors:
///   UNAUTHENTICATED    no, malformed or unknown token (see BearerToken)
///   PERMISSION_DENIED  a known principal whose role is not allowed; the message names the roles
///                      that are
///   anything else      as `authenticator` returned it (e.g. UNAVAILABLE: token store down)
///
/// This is a function called by handlers rather than a server interceptor because gRPC 1.51's
/// experimental server interceptors cannot reject a call, and because the roles allowed differ per
/// method.
///
/// \code
///   ::grpc::Status Lease(::grpc::ServerContext* ctx, const LeaseRequest* req, LeaseReply* reply) {
///     absl::StatusOr<Principal> caller = Authorize(*ctx, *auth_, {Role::kRater, Role::kAdmin});
///     if (!caller.ok()) return ToGrpcStatus(caller.status());
///     ...
/// \endcode
absl::StatusOr<Principal> Authorize(const ::grpc::ServerContextBase& context,
                                    const Authenticator& authenticator,
                                    std::initializer_list<Role> allowed);

}  // namespace greenloop::rpc
