#include "tests/bench/feedback/cpu_meter.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace greenloop::feedback::bench {
namespace {

// Fields of /proc/PID/stat after the command name: state is field 3, ppid 4, utime 14, stime 15,
// cutime 16, cstime 17 (proc(5)).
struct Stat {
  pid_t ppid = 0;
  double self_seconds = 0;
  double children_seconds = 0;
  bool ok = false;
};

Stat ReadStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Stat s;
  const std::size_t close = text.rfind(')');  // the command name may hold spaces and ')'
  if (close == std::string::npos) return s;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f;
  for (std::string word; fields >> word;) f.push_back(word);
  if (f.size() < 15) return s;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  s.ppid = static_cast<pid_t>(std::stol(f[1]));
  s.self_seconds = (std::stod(f[11]) + std::stod(f[12])) / tick;
  s.children_seconds = (std::stod(f[13]) + std::stod(f[14])) / tick;
  s.ok = true;
  return s;
}

}  // namespace

CpuMeter CpuMeter::PostgresOf(pid_t backend_pid) {
  // A server on another machine has its pids there: only a local postgres process counts.
  std::ifstream comm("/proc/" + std::to_string(backend_pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  if (!name.starts_with("postgres")) return CpuMeter(0);
  return CpuMeter(ReadStat(backend_pid).ppid, /*with_live_children=*/true);
}

double CpuMeter::Seconds() const {
  const Stat self = ReadStat(pid_);
  if (!self.ok) return 0;
  double total = self.self_seconds + self.children_seconds;
  if (!with_live_children_) return total;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const Stat child = ReadStat(static_cast<pid_t>(std::stol(name)));
    if (child.ok && child.ppid == pid_) total += child.self_seconds;
  }
  return total;
}

}  // namespace greenloop::feedback::bench
