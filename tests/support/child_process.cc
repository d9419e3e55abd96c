#include "tests/support/child_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace greenloop::testing {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void ChildProcess::Start(const std::vector<std::string>& argv, std::filesystem::path log) {
  log_ = std::move(log);
  std::filesystem::remove(log_);  // a log of an earlier run would answer WaitForLog() too early
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    std::FILE* out = std::freopen(log_.c_str(), "w", stdout);
    (void)out;
    ::dup2(::fileno(stdout), STDERR_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

std::optional<std::smatch> ChildProcess::WaitForLog(const std::regex& pattern,
                                                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    matched_log_ = log();
    std::smatch m;
    if (std::regex_search(matched_log_, m, pattern)) return m;
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

int ChildProcess::Kill(int signal) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace greenloop::testing
