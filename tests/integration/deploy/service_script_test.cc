// deploy/local/service.sh after a crash (issue 17, hole 9): a service killed a moment ago is a
// zombie until its parent reaps it, and `kill -0` still finds it; a pid file can also outlive its
// process and name a pid the system has given to another one. Neither may pass for "running", or
// the local stack would refuse to start the service again.
//
// This test makes itself the child subreaper (prctl), so the service that service.sh leaves behind
// is re-parented to it and stays a zombie after SIGKILL until the test reaps it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

// Runs service.sh with `args`; its exit code.
int Script(const std::string& args) {
  const std::string command = std::string(GREENLOOP_SERVICE_SH) + " " + args + " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

pid_t PidIn(const fs::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

TEST(ServiceScript, AZombieOrAReusedPidIsNotARunningService) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const fs::path dir =
      fs::temp_directory_path() / ("greenloop-service-" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string where = "dummy --dir " + dir.string();
  ASSERT_EQ(Script("start " + where + " -- sleep 300"), 0);
  ASSERT_EQ(Script("status " + where), 0);
  const pid_t first = PidIn(dir / "dummy.pid");
  ASSERT_GT(first, 0);

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // Not reaped: a zombie (once the kill has landed), which `kill -0` still finds.
  std::string text;
  for (int i = 0; i < 200 && text.find(") Z") == std::string::npos; ++i) {
    ::usleep(5'000);
    std::ifstream stat("/proc/" + std::to_string(first) + "/stat");
    text.assign(std::istreambuf_iterator<char>(stat), {});
  }
  ASSERT_NE(text.find(") Z"), std::string::npos) << "not a zombie: " << text;
  ASSERT_EQ(::kill(first, 0), 0);
  EXPECT_EQ(Script("status " + where), 3) << "a killed service reads as running";
  ASSERT_EQ(Script("start " + where + " -- sleep 300"), 0);
  const pid_t second = PidIn(dir / "dummy.pid");
  EXPECT_NE(second, first) << "start after a crash did not start it";
  EXPECT_EQ(::waitpid(first, nullptr, 0), first);

  // A pid file that names another live process (its pid reused): not this service.
  { std::ofstream(dir / "dummy.pid") << getpid() << "\n"; }
  EXPECT_EQ(Script("status " + where), 3) << "a reused pid reads as the service";
  ::kill(second, SIGKILL);
  ::waitpid(second, nullptr, 0);
  fs::remove_all(dir);
}

}  // namespace
