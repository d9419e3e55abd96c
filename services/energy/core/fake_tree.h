// Test helper: fake powercap, hwmon and procfs trees in a scratch directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace greenloop::energy::testing {

/// A scratch directory holding fake sysfs/procfs trees; removed on destruction.
class FakeTree final {
 public:
  FakeTree();
  ~FakeTree();
  FakeTree(const FakeTree&) = delete;
  FakeTree& operator=(const FakeTree&) = delete;

  std::string path(const std::string& relative = "") const;
  void Write(const std::string& relative, const std::string& content) const;
  void Remove(const std::string& relative) const;

  /// powercap/<dir>/{name,energy_uj,max_energy_range_uj}.
  void AddRaplZone(const std::string& dir, const std::string& name, std::uint64_t max_range_uj,
                   std::uint64_t energy_uj = 0) const;
  void SetRaplEnergy(const std::string& dir, std::uint64_t energy_uj) const;
  std::string powercap() const { return path("powercap"); }

  /// proc/stat with the given busy (user) and idle ticks.
  void SetCpu(std::uint64_t busy_ticks, std::uint64_t idle_ticks) const;
  /// proc/<pid>/stat with utime = ticks.
  void SetProcess(int pid, int ppid, std::uint64_t ticks, std::uint64_t start_ticks = 100) const;
  std::string proc() const { return path("proc"); }

 private:
  std::filesystem::path root_;
};

}  // namespace greenloop::energy::testing
