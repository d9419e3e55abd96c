#include "tools/greenloop/experiment/infra.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>

namespace greenloop::experiment {
namespace {

constexpr std::size_t kMaxRunId = 63;

bool GoodName(std::string_view name) {
  return !name.empty() && name.size() <= 12 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

}  // namespace

absl::StatusOr<std::vector<InfraProcess>> ParseInfraProcesses(std::string_view text) {
  std::vector<InfraProcess> out;
  std::set<std::string> names;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view entry = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq + 1 == entry.size()) {
      return absl::InvalidArgumentError(
          fmt::format("infra.pid_files: \"{}\" is not name=path", entry));
    }
    InfraProcess p{std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1))};
    if (!GoodName(p.name)) {
      return absl::InvalidArgumentError(
          fmt::format("infra.pid_files: name \"{}\" must be 1 to 12 of [a-z0-9]", p.name));
    }
    if (!names.insert(p.name).second) {
      return absl::InvalidArgumentError(
          fmt::format("infra.pid_files: name \"{}\" appears twice", p.name));
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<int> ReadPidFile(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return absl::NotFoundError(fmt::format("cannot read pid file {}", path));
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  int pid = 0;
  const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
  if (ec != std::errc() || end != line.data() + line.size() || pid <= 0) {
    return absl::InvalidArgumentError(
        fmt::format("pid file {} does not start with a pid: \"{}\"", path, line));
  }
  return pid;
}

absl::StatusOr<std::string> InfraRunId(const std::string& run_id, const std::string& name) {
  std::string id = fmt::format("{}-{}", run_id, name);
  if (id.size() > kMaxRunId) {
    return absl::InvalidArgumentError(
        fmt::format("run id {} would pass the collector's {} characters; use a shorter spec name",
                    id, kMaxRunId));
  }
  return id;
}

}  // namespace greenloop::experiment
