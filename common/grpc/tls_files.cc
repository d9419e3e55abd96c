#include "common/grpc/tls_files.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace greenloop::rpc::internal {

absl::StatusOr<std::string> ReadPemFile(std::string_view what_view, const std::string& path) {
  const std::string what(what_view);
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("TLS ", what, " path is empty"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read TLS ", what, " '", path, "': ", std::strerror(errno)));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (contents.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("TLS ", what, " '", path, "' is empty"));
  }
  return contents.str();
}

}  // namespace greenloop::rpc::internal
