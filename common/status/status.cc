#include "common/status/status.h"

#include <fmt/format.h>

#include <string>

namespace greenloop {

absl::Status StatusFromCurrentException(std::string_view where) {
  try {
    throw;
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("{}: {}", where, e.what()));
  } catch (...) {
    return absl::InternalError(fmt::format("{}: unknown exception", where));
  }
}

}  // namespace greenloop
