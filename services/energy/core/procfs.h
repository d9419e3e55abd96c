// CPU time from procfs: the node's busy time (/proc/stat) and each process's (/proc/<pid>/stat),
// the inputs of CPU-time attribution and of the estimator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace greenloop::energy {

/// The aggregate "cpu" line of /proc/stat, in clock ticks summed over every logical CPU.
struct CpuTimes {
  std::uint64_t busy_ticks = 0;   // user + nice + system + irq + softirq + steal
  std::uint64_t total_ticks = 0;  // busy + idle + iowait
};

/// One line of /proc/<pid>/stat, the fields attribution needs.
struct ProcessStat {
  int pid = 0;
  int ppid = 0;
  // utime + stime + cutime + cstime: the process's CPU time plus that of its children it has
  // reaped, so a child's time moves into its parent's figure when it exits instead of vanishing.
  std::uint64_t cpu_ticks = 0;
  std::uint64_t start_ticks = 0;  // start time after boot; (pid, start_ticks) names a process
};

/// What /proc/cpuinfo says about the processors.
struct CpuInfo {
  std::string model;
  int sockets = 1;
  int logical_cpus = 1;
};

/// \brief Reads procfs under a configurable root ("/proc"; tests build fake trees).
///
/// Thread-safety: stateless; safe from any thread.
class ProcFs final {
 public:
  explicit ProcFs(std::string root = "/proc") : root_(std::move(root)) {}

  /// Returns the node's CPU times. UNAVAILABLE (naming the path) when /proc/stat is unreadable or
  /// DATA_LOSS when it has no aggregate cpu line.
  absl::StatusOr<CpuTimes> ReadCpuTimes() const;

  /// Returns one process's stat. NOT_FOUND when the process does not exist (any more).
  absl::StatusOr<ProcessStat> ReadProcess(int pid) const;

  /// Returns every process that could be read; processes vanishing during the scan are skipped.
  std::vector<ProcessStat> ReadAllProcesses() const;

  /// Returns the processor description; defaults (1 socket, 1 CPU) for what cannot be read.
  CpuInfo ReadCpuInfo() const;

  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

/// Parses one /proc/<pid>/stat line (the command name may hold spaces and parentheses).
absl::StatusOr<ProcessStat> ParseProcessStat(std::string_view line);

/// Parses /proc/stat content.
absl::StatusOr<CpuTimes> ParseCpuTimes(std::string_view content);

}  // namespace greenloop::energy
