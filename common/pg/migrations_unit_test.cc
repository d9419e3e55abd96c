// LoadMigrationsFromDir and the build-time embedding; no server needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/pg/migrations.h"

namespace greenloop::pg {
namespace testing {
// Generated from testdata/migrations by greenloop_embed_migrations() (see CMakeLists.txt).
std::vector<Migration> TestdataMigrations();
}  // namespace testing

namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

// A fresh directory under the test's temporary directory, with the given files.
fs::path MakeDir(const std::string& name,
                 const std::vector<std::pair<std::string, std::string>>& files) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("migrations_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& [file, contents] : files) std::ofstream(dir / file) << contents;
  return dir;
}

std::string TestName() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

TEST(PgMigrationFileNameTest, AcceptsVersionAndName) {
  absl::StatusOr<Migration> m = ParseMigrationFileName("0042_add_rater_index.sql");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, 42);
  EXPECT_EQ(m->name, "add_rater_index");
  EXPECT_EQ(MigrationFileName(*m), "0042_add_rater_index.sql");
}

TEST(PgMigrationFileNameTest, RejectsBadNamesNamingTheFile) {
  for (const std::string bad :
       {"1_init.sql", "0001-init.sql", "0001_Init.sql", "0001_.sql", "0000_init.sql",
        "0001_init.SQL", "00001_init.sql", "0001_in-it.sql", "abcd_init.sql"}) {
    absl::StatusOr<Migration> m = ParseMigrationFileName(bad);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr(bad));
  }
}

TEST(PgLoadMigrationsFromDirTest, ReadsTestdataSortedByVersion) {
  absl::StatusOr<std::vector<Migration>> migrations =
      LoadMigrationsFromDir(GREENLOOP_PG_TESTDATA_DIR);
  ASSERT_TRUE(migrations.ok()) << migrations.status();
  EXPECT_THAT(
      *migrations,
      ElementsAre(AllOf(Field(&Migration::version, 1), Field(&Migration::name, "create_widgets"),
                        Field(&Migration::sql, HasSubstr("CREATE TABLE"))),
                  AllOf(Field(&Migration::version, 2), Field(&Migration::name, "seed_widgets")),
                  AllOf(Field(&Migration::version, 3), Field(&Migration::name, "awkward_text"))));
}

TEST(PgLoadMigrationsFromDirTest, SortsNumericallyAndIgnoresOtherFiles) {
  const fs::path dir = MakeDir(TestName(), {{"0010_ten.sql", "SELECT 10;"},
                                            {"0002_two.sql", "SELECT 2;"},
                                            {"README.md", "not a migration"},
                                            {"0009_nine.sql", "SELECT 9;"}});
  absl::StatusOr<std::vector<Migration>> migrations = LoadMigrationsFromDir(dir);
  ASSERT_TRUE(migrations.ok()) << migrations.status();
  EXPECT_THAT(*migrations, ElementsAre(Field(&Migration::version, 2), Field(&Migration::version, 9),
                                       Field(&Migration::version, 10)));
  EXPECT_EQ((*migrations)[0].sql, "SELECT 2;");
}

TEST(PgLoadMigrationsFromDirTest, RejectsBadFileName) {
  const fs::path dir = MakeDir(TestName(), {{"0001_ok.sql", "SELECT 1;"}, {"2_bad.sql", "x"}});
  absl::StatusOr<std::vector<Migration>> migrations = LoadMigrationsFromDir(dir);
  EXPECT_EQ(migrations.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(migrations.status().message(), HasSubstr("2_bad.sql"));
}

TEST(PgLoadMigrationsFromDirTest, RejectsDuplicateVersionNamingBothFiles) {
  const fs::path dir =
      MakeDir(TestName(), {{"0003_one.sql", "SELECT 1;"}, {"0003_other.sql", "SELECT 2;"}});
  absl::StatusOr<std::vector<Migration>> migrations = LoadMigrationsFromDir(dir);
  EXPECT_EQ(migrations.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(migrations.status().message(),
              AllOf(HasSubstr("0003_one.sql"), HasSubstr("0003_other.sql")));
}

TEST(PgLoadMigrationsFromDirTest, RejectsEmptyFile) {
  const fs::path dir = MakeDir(TestName(), {{"0001_blank.sql", "  \n\t\n"}});
  absl::StatusOr<std::vector<Migration>> migrations = LoadMigrationsFromDir(dir);
  EXPECT_EQ(migrations.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(migrations.status().message(), HasSubstr("0001_blank.sql"));
}

TEST(PgLoadMigrationsFromDirTest, MissingDirectoryIsNotFound) {
  EXPECT_EQ(LoadMigrationsFromDir("/nonexistent/greenloop/migrations").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(PgValidateMigrationsTest, RejectsDuplicateVersionsAndBadFields) {
  EXPECT_TRUE(ValidateMigrations({{1, "a", "SELECT 1"}, {2, "b", "SELECT 2"}}).ok());
  absl::Status duplicate = ValidateMigrations({{1, "a", "SELECT 1"}, {1, "b", "SELECT 2"}});
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(duplicate.message(), AllOf(HasSubstr("0001_a.sql"), HasSubstr("0001_b.sql")));
  EXPECT_EQ(ValidateMigrations({{0, "a", "SELECT 1"}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateMigrations({{1, "A", "SELECT 1"}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateMigrations({{1, "a", " \n"}}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PgEmbeddedMigrationsTest, SameBytesAsTheFiles) {
  absl::StatusOr<std::vector<Migration>> from_files =
      LoadMigrationsFromDir(GREENLOOP_PG_TESTDATA_DIR);
  ASSERT_TRUE(from_files.ok()) << from_files.status();
  const std::vector<Migration> embedded = testing::TestdataMigrations();
  ASSERT_EQ(embedded.size(), 3u);
  EXPECT_EQ(embedded, *from_files);
  // The awkward file survives the raw string and CMake intact.
  EXPECT_THAT(embedded[2].sql, HasSubstr(")sql\" b )sql1\" c ${x}; d \\n [[e]] f ''g'' é"));
}

}  // namespace
}  // namespace greenloop::pg
