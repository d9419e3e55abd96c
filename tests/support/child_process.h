// A service binary run by a test as a child process: output to a log file, readiness read from
// that log, signals and exit codes. Used by the e2e tests that drive the real binaries.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace greenloop::testing {

/// Returns the whole content of a file ("" when it cannot be read).
std::string ReadFile(const std::filesystem::path& path);

/// \brief One child process running `argv` with stdout and stderr in a log file.
///
/// Thread-safety: one test thread. The destructor SIGKILLs a child still running.
class ChildProcess final {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Kill(9); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Starts `argv` (argv[0] is the binary) with its output in `log` (truncated first).
  void Start(const std::vector<std::string>& argv, std::filesystem::path log);

  /// Waits until the log matches `pattern` and returns the match; nullopt (the log says why) when
  /// the child exits first or `timeout` passes.
  std::optional<std::smatch> WaitForLog(const std::regex& pattern,
                                        std::chrono::milliseconds timeout);

  /// Sends `signal`, waits for the exit and returns the exit code (-1 when killed by a signal or
  /// not running).
  int Kill(int signal);

  bool running() const { return pid_ > 0; }
  std::string log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
  std::string matched_log_;  // the log text the last WaitForLog() match points into
};

}  // namespace greenloop::testing
