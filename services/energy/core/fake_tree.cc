#include "services/energy/core/fake_tree.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <stdexcept>

#include "fmt/format.h"
#include "gtest/gtest.h"

namespace greenloop::energy::testing {

namespace fs = std::filesystem;

FakeTree::FakeTree() {
  static std::atomic<int> counter{0};
  root_ = fs::path(::testing::TempDir()) /
          fmt::format("greenloop-energy-{}-{}", ::getpid(), counter.fetch_add(1));
  fs::remove_all(root_);
  fs::create_directories(root_);
}

FakeTree::~FakeTree() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

std::string FakeTree::path(const std::string& relative) const {
  return relative.empty() ? root_.string() : (root_ / relative).string();
}

void FakeTree::Write(const std::string& relative, const std::string& content) const {
  fs::path p = root_ / relative;
  fs::create_directories(p.parent_path());
  // Write then rename, as the kernel's attributes change atomically for a reader.
  fs::path tmp = p;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
    out << content;
  }
  fs::rename(tmp, p);
}

void FakeTree::Remove(const std::string& relative) const { fs::remove_all(root_ / relative); }

void FakeTree::AddRaplZone(const std::string& dir, const std::string& name,
                           std::uint64_t max_range_uj, std::uint64_t energy_uj) const {
  Write("powercap/" + dir + "/name", name + "\n");
  Write("powercap/" + dir + "/max_energy_range_uj", fmt::format("{}\n", max_range_uj));
  SetRaplEnergy(dir, energy_uj);
}

void FakeTree::SetRaplEnergy(const std::string& dir, std::uint64_t energy_uj) const {
  Write("powercap/" + dir + "/energy_uj", fmt::format("{}\n", energy_uj));
}

void FakeTree::SetCpu(std::uint64_t busy_ticks, std::uint64_t idle_ticks) const {
  Write("proc/stat", fmt::format("cpu  {} 0 0 {} 0 0 0 0 0 0\ncpu0 {} 0 0 {} 0 0 0 0 0 0\n",
                                 busy_ticks, idle_ticks, busy_ticks, idle_ticks));
}

void FakeTree::SetProcess(int pid, int ppid, std::uint64_t ticks, std::uint64_t start_ticks) const {
  // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice threads itreal starttime ...
  Write(fmt::format("proc/{}/stat", pid),
        fmt::format("{} (fake worker) S {} 1 1 0 -1 0 0 0 0 0 {} 0 0 0 20 0 1 0 {} 0 0\n", pid,
                    ppid, ticks, start_ticks));
}

}  // namespace greenloop::energy::testing
