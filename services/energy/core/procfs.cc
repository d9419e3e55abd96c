#include "services/energy/core/procfs.h"

#include <dirent.h>

#include <charconv>
#include <set>
#include <sstream>

#include "fmt/format.h"
#include "services/energy/core/sysfs.h"

namespace greenloop::energy {
namespace {

// Splits on runs of spaces.
std::vector<std::string_view> Fields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  return fields;
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

absl::StatusOr<CpuTimes> ParseCpuTimes(std::string_view content) {
  std::string_view line = content.substr(0, content.find('\n'));
  std::vector<std::string_view> f = Fields(line);
  if (f.size() < 5 || f[0] != "cpu") {
    return absl::DataLossError("/proc/stat has no aggregate 'cpu' line");
  }
  // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
  std::uint64_t v[8] = {};
  for (std::size_t i = 1; i < f.size() && i <= 8; ++i) {
    if (!ParseNumber(f[i], v[i - 1])) {
      return absl::DataLossError(fmt::format("/proc/stat cpu line field {} is not a number", i));
    }
  }
  CpuTimes t;
  t.busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  t.total_ticks = t.busy_ticks + v[3] + v[4];
  return t;
}

absl::StatusOr<ProcessStat> ParseProcessStat(std::string_view line) {
  std::size_t open = line.find('(');
  std::size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return absl::DataLossError("malformed /proc/<pid>/stat line");
  }
  ProcessStat s;
  if (!ParseNumber(line.substr(0, open > 0 ? open - 1 : 0), s.pid)) {
    return absl::DataLossError("malformed pid in /proc/<pid>/stat");
  }
  // Fields after the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
  // ... starttime(22); index 0 here is field 3.
  std::vector<std::string_view> f = Fields(line.substr(close + 1));
  if (f.size() < 20) return absl::DataLossError("short /proc/<pid>/stat line");
  std::uint64_t utime = 0, stime = 0;
  std::int64_t cutime = 0, cstime = 0;  // signed in the kernel's format
  if (!ParseNumber(f[1], s.ppid) || !ParseNumber(f[11], utime) || !ParseNumber(f[12], stime) ||
      !ParseNumber(f[13], cutime) || !ParseNumber(f[14], cstime) ||
      !ParseNumber(f[19], s.start_ticks)) {
    return absl::DataLossError("malformed number in /proc/<pid>/stat");
  }
  s.cpu_ticks = utime + stime + static_cast<std::uint64_t>(std::max<std::int64_t>(cutime, 0)) +
                static_cast<std::uint64_t>(std::max<std::int64_t>(cstime, 0));
  return s;
}

absl::StatusOr<CpuTimes> ProcFs::ReadCpuTimes() const {
  absl::StatusOr<std::string> content = ReadSmallFile(root_ + "/stat");
  if (!content.ok()) return absl::UnavailableError(content.status().message());
  return ParseCpuTimes(*content);
}

absl::StatusOr<ProcessStat> ProcFs::ReadProcess(int pid) const {
  absl::StatusOr<std::string> content = ReadSmallFile(fmt::format("{}/{}/stat", root_, pid));
  if (!content.ok()) {
    if (content.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(fmt::format("no process {} on this node", pid));
    }
    return content.status();
  }
  return ParseProcessStat(*content);
}

std::vector<ProcessStat> ProcFs::ReadAllProcesses() const {
  std::vector<ProcessStat> all;
  DIR* dir = ::opendir(root_.c_str());
  if (dir == nullptr) return all;
  while (dirent* e = ::readdir(dir)) {
    int pid = 0;
    std::string_view name = e->d_name;
    if (!ParseNumber(name, pid) || pid <= 0) continue;
    absl::StatusOr<ProcessStat> s = ReadProcess(pid);
    if (s.ok()) all.push_back(*s);
  }
  ::closedir(dir);
  return all;
}

CpuInfo ProcFs::ReadCpuInfo() const {
  CpuInfo info;
  absl::StatusOr<std::string> content = ReadSmallFile(root_ + "/cpuinfo");
  if (!content.ok()) return info;
  std::istringstream in(*content);
  std::string line;
  std::set<std::string> physical_ids;
  int processors = 0;
  while (std::getline(in, line)) {
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "processor") ++processors;
    if (key == "model name" && info.model.empty()) info.model = value;
    if (key == "physical id") physical_ids.insert(value);
  }
  info.logical_cpus = std::max(processors, 1);
  info.sockets = std::max<int>(static_cast<int>(physical_ids.size()), 1);
  return info;
}

}  // namespace greenloop::energy
