// Internal to greenloop::grpc: reading the PEM files TLS options name.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace greenloop::rpc::internal {

// Returns the contents of `path`. INVALID_ARGUMENT naming `what` and the path when the file cannot
// be read or is empty.
absl::StatusOr<std::string> ReadPemFile(std::string_view what, const std::string& path);

}  // namespace greenloop::rpc::internal
