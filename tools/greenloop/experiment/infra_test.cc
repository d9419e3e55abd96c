#include "tools/greenloop/experiment/infra.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace greenloop::experiment {
namespace {

using ::testing::HasSubstr;

TEST(ParseInfraProcesses, ReadsNamedPidFilesAndRefusesWhatIsNotOne) {
  absl::StatusOr<std::vector<InfraProcess>> p =
      ParseInfraProcesses("feedback=.local/services/feedback.pid,pg=/x/postmaster.pid");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].name, "feedback");
  EXPECT_EQ((*p)[1].pid_file, "/x/postmaster.pid");
  EXPECT_TRUE(ParseInfraProcesses("")->empty());
  for (const char* bad :
       {"feedback", "feedback=", "Feed=x", "a=x,a=y", "averyveryverylongname=x"}) {
    absl::StatusOr<std::vector<InfraProcess>> r = ParseInfraProcesses(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("infra.pid_files")) << bad;
  }
}

TEST(ReadPidFile, TakesTheFirstLineOfAServicePidFileOrPostmasterPid) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("greenloop-pid-" + std::to_string(::getpid())))
          .string();
  std::ofstream(path) << "4242\n/var/lib/postgresql/data\n1700000000\n";
  EXPECT_EQ(*ReadPidFile(path), 4242);
  std::ofstream(path) << "not-a-pid\n";
  EXPECT_EQ(ReadPidFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::ofstream(path) << "-3\n";
  EXPECT_EQ(ReadPidFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove(path);
  EXPECT_EQ(ReadPidFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(InfraRunId, AppendsTheNameWithinTheCollectorsLimit) {
  EXPECT_EQ(*InfraRunId("exp-1-s0-hitl", "pg"), "exp-1-s0-hitl-pg");
  EXPECT_EQ(InfraRunId(std::string(60, 'a'), "feedback").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace greenloop::experiment
