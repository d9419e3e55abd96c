#include "services/trainer/core/worker_policy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <regex>

#include "services/trainer/core/run_config.h"

namespace greenloop::trainer {
namespace {

absl::Status CheckEndpoint(std::string_view key, const std::string& endpoint,
                           const WorkerPolicy& policy) {
  if (std::find(policy.endpoints.begin(), policy.endpoints.end(), endpoint) !=
      policy.endpoints.end()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(fmt::format(
      "{} '{}' is not a service this worker sends its token to (its endpoints.allowed: {}); "
      "name one of those, or add it to the worker's config",
      key, endpoint,
      policy.endpoints.empty() ? "none" : fmt::format("{}", fmt::join(policy.endpoints, ", "))));
}

// A relative path of plain names: no root, no '.' or '..', no empty component.
bool PlainRelativePath(std::string_view path) {
  if (path.empty() || path.size() > 255 || path.front() == '/') return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

absl::StatusOr<v1::RunConfig> ApplyWorkerPolicy(const v1::RunConfig& config,
                                                const WorkerPolicy& policy) {
  if (absl::Status s = CheckEndpoint("config.energy_endpoint", config.energy_endpoint(), policy);
      !s.ok()) {
    return s;
  }
  if (UsesHumans(config.mode())) {
    if (absl::Status s =
            CheckEndpoint("config.feedback.endpoint", config.feedback().endpoint(), policy);
        !s.ok()) {
      return s;
    }
  }
  v1::RunConfig out = config;
  if (config.checkpoint_dir().empty()) return out;
  if (!PlainRelativePath(config.checkpoint_dir())) {
    return absl::InvalidArgumentError(fmt::format(
        "config.checkpoint_dir '{}' must name a folder inside the worker's checkpoint root: a "
        "relative path of names made of letters, digits, '.', '_' and '-' (no '..')",
        config.checkpoint_dir()));
  }
  if (policy.checkpoint_root.empty()) {
    return absl::FailedPreconditionError(
        "config.checkpoint_dir is set but this worker keeps no checkpoints (its "
        "checkpoints.root is empty)");
  }
  out.set_checkpoint_dir(policy.checkpoint_root + "/" + config.checkpoint_dir());
  return out;
}

absl::Status CheckCheckpointName(std::string_view name, std::string_view latest_file) {
  static const std::regex kName(R"(epoch-[0-9]{1,9}-step-[0-9]{1,19})");
  if (std::regex_match(name.begin(), name.end(), kName)) return absl::OkStatus();
  return absl::DataLossError(fmt::format(
      "{} does not name a checkpoint of this directory (epoch-N-step-M); not following it",
      latest_file));
}

}  // namespace greenloop::trainer
