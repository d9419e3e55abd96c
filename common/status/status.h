// greenloop's error policy, in one header.
//
// Core and storage code return absl::Status / absl::StatusOr<T>. Adapters convert exactly once,
// at the edge, with ToGrpcStatus(); clients convert back with FromGrpcStatus() (both in
// common/grpc/status.h, so that this library and the cores stay free of gRPC). Pick the most
// specific canonical code:
//
//   INVALID_ARGUMENT     the caller sent something wrong; the message says what and how to fix it
//   NOT_FOUND            the thing named does not exist
//   ALREADY_EXISTS       creating something that is already there
//   FAILED_PRECONDITION  the system is not in a state where this is allowed (e.g. a lease expired)
//   ABORTED              contention (serialization failure, lost race); retrying the whole
//                        operation may succeed
//   UNAVAILABLE          a dependency (PostgreSQL, another service) is down; retry with backoff
//   DEADLINE_EXCEEDED    the caller's deadline passed
//   UNAUTHENTICATED      missing or wrong credentials
//   PERMISSION_DENIED    authenticated, but the role may not do this
//   RESOURCE_EXHAUSTED   a bounded resource (rate limit, buffer, lease quota) is full
//   INTERNAL             a bug or an invariant broken; the details go to the log, not the client
//
// Impossible states crash loudly (CHECK-style), they are not Status values.
//
// Thread-safety: every function here is pure and thread-safe.
#pragma once

#include <exception>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace greenloop {

// Converts the exception in flight (call from a catch block) to an INTERNAL status whose message
// names `where` and the exception's what(). Used by every handler's catch-all.
absl::Status StatusFromCurrentException(std::string_view where);

}  // namespace greenloop

// Evaluates `expr` (an absl::Status); returns it from the enclosing function if not OK.
#define GREENLOOP_RETURN_IF_ERROR(expr)           \
  do {                                            \
    if (::absl::Status _st = (expr); !_st.ok()) { \
      return _st;                                 \
    }                                             \
  } while (false)

#define GREENLOOP_STATUS_CONCAT_INNER_(a, b) a##b
#define GREENLOOP_STATUS_CONCAT_(a, b) GREENLOOP_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, otherwise moves the value
// into `lhs`, which may be a declaration: GREENLOOP_ASSIGN_OR_RETURN(auto conn, pool.Acquire());
#define GREENLOOP_ASSIGN_OR_RETURN(lhs, rexpr) \
  GREENLOOP_ASSIGN_OR_RETURN_IMPL_(GREENLOOP_STATUS_CONCAT_(_statusor_, __LINE__), lhs, rexpr)

#define GREENLOOP_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (!statusor.ok()) {                                        \
    return std::move(statusor).status();                       \
  }                                                            \
  lhs = std::move(statusor).value()
