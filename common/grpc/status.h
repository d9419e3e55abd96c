// The gRPC edge of greenloop's error policy (common/status/status.h): adapters convert a domain
// status exactly once, with ToGrpcStatus(); clients convert back with FromGrpcStatus(). Kept out
// of greenloop::status so that core libraries depend on abseil only.
//
// Thread-safety: every function here is pure and thread-safe.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace greenloop {

// Converts a domain status to the status an RPC returns. Codes map one to one (absl and gRPC
// share the canonical code space); the message is kept for every code but INTERNAL and UNKNOWN,
// whose message is replaced by a generic one so that internals never leak to a client (log the
// original before converting).
grpc::Status ToGrpcStatus(const absl::Status& status);

// Converts the status an RPC returned back to a domain status, keeping code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace greenloop
