// ApplyMigrations against the real PostgreSQL of the `pg` CTest fixture.
#include "common/pg/migrations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/barrier.h"
#include "common/pg/pool.h"
#include "tests/support/test_pg.h"

namespace greenloop::pg {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class PgMigrationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = NewPool();
    ASSERT_NE(pool_, nullptr);
    absl::StatusOr<std::vector<Migration>> loaded =
        LoadMigrationsFromDir(GREENLOOP_PG_TESTDATA_DIR);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    testdata_ = *std::move(loaded);
  }

  std::unique_ptr<Pool> NewPool() {
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create({.url = db_.url(), .max_size = 2});
    EXPECT_TRUE(pool.ok()) << pool.status();
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  int64_t Count(const std::string& sql) {
    absl::StatusOr<int64_t> n =
        pool_->Run([&](pqxx::work& tx) { return tx.exec1(sql)[0].as<int64_t>(); });
    EXPECT_TRUE(n.ok()) << sql << ": " << n.status();
    return n.value_or(-1);
  }

  testing::ScratchDatabase db_;
  std::unique_ptr<Pool> pool_;
  std::vector<Migration> testdata_;
};

TEST_F(PgMigrationsTest, AppliesAllInOrderAndRecordsThem) {
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", testdata_).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM widgets"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM notes WHERE body LIKE '%)sql\" b )sql1\" c ${x}; d%'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations WHERE component = 'widgets'"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations WHERE component = 'widgets' AND "
                  "version = 2 AND name = 'seed_widgets' AND length(checksum) = 64"),
            1);
  // The checksum is what `sha256sum 0003_awkward_text.sql` prints (backslashes, é and all).
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations WHERE version = 3 AND checksum = "
                  "'f75020e63a0dea6a685737f286e1e7258cca092ee2c98d5b7bd7e3d888e4b754'"),
            1);
}

TEST_F(PgMigrationsTest, SecondApplyIsANoOp) {
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", testdata_).ok());
  absl::StatusOr<std::string> applied_at = pool_->Run([](pqxx::work& tx) {
    return tx.exec1("SELECT max(applied_at)::text FROM schema_migrations")[0].as<std::string>();
  });
  ASSERT_TRUE(applied_at.ok());
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", testdata_).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM widgets"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations"), 3);
  EXPECT_EQ(*pool_->Run([](pqxx::work& tx) {
    return tx.exec1("SELECT max(applied_at)::text FROM schema_migrations")[0].as<std::string>();
  }),
            *applied_at);
}

TEST_F(PgMigrationsTest, ConcurrentAppliesFromTwoPoolsApplyEachMigrationOnce) {
  for (int round = 0; round < 3; ++round) {
    const std::string table = "widgets_" + std::to_string(round);
    // No unique constraint, so a second INSERT would show; the sleep makes the second process
    // arrive while the first is still migrating.
    const std::vector<Migration> migrations = {
        {1, "create_widgets", "CREATE TABLE " + table + " (name text NOT NULL);"},
        {2, "seed_widgets", "INSERT INTO " + table + " VALUES ('first'); SELECT pg_sleep(0.2);"},
    };
    std::unique_ptr<Pool> pools[2] = {NewPool(), NewPool()};
    ASSERT_TRUE(pools[0] != nullptr && pools[1] != nullptr);
    auto* start = new absl::Barrier(2);  // deleted by the thread whose Block() returns true
    absl::Status results[2];
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        if (start->Block()) delete start;
        results[i] = ApplyMigrations(*pools[i], table, migrations);
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_TRUE(results[0].ok()) << results[0];
    EXPECT_TRUE(results[1].ok()) << results[1];
    EXPECT_EQ(Count("SELECT count(*) FROM " + table), 1);
    EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations WHERE component = '" + table + "'"), 2);
  }
}

TEST_F(PgMigrationsTest, EditedAppliedMigrationIsRejectedNamingIt) {
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", testdata_).ok());
  std::vector<Migration> edited = testdata_;
  edited[1].sql = "INSERT INTO widgets (name) VALUES ('second');";
  edited.push_back({4, "more", "CREATE TABLE more_widgets (id int);"});
  absl::Status status = ApplyMigrations(*pool_, "widgets", edited);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("migration 2 "), HasSubstr("0002_seed_widgets.sql"),
                                      HasSubstr("add a new one")));
  // Nothing after the check ran.
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename = 'more_widgets'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM widgets"), 1);
}

TEST_F(PgMigrationsTest, NewMigrationIsAppliedOnNextStart) {
  const std::vector<Migration> first_two(testdata_.begin(), testdata_.begin() + 2);
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", first_two).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename = 'notes'"), 0);
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", testdata_).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM notes"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM widgets"), 1);
}

TEST_F(PgMigrationsTest, FailingMigrationStopsAndKeepsEarlierOnes) {
  const std::vector<Migration> migrations = {
      {1, "good", "CREATE TABLE good (id int);"},
      {2, "broken", "CREATE TABLE partial (id int); SELEC oops;"},
      {3, "after", "CREATE TABLE after_broken (id int);"},
  };
  absl::Status status = ApplyMigrations(*pool_, "broken", migrations);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("0002_broken.sql"), HasSubstr("syntax error")));
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations WHERE component = 'broken'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename IN ('partial', "
                  "'after_broken')"),
            0);
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename = 'good'"), 1);
}

TEST_F(PgMigrationsTest, ComponentsAreIndependent) {
  ASSERT_TRUE(ApplyMigrations(*pool_, "a", {{1, "t", "CREATE TABLE a_t (id int);"}}).ok());
  ASSERT_TRUE(ApplyMigrations(*pool_, "b", {{1, "t", "CREATE TABLE b_t (id int);"}}).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations"), 2);
}

TEST_F(PgMigrationsTest, ReleasesTheLockAndTheConnection) {
  ASSERT_TRUE(ApplyMigrations(*pool_, "widgets", testdata_).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                  "(SELECT oid FROM pg_database WHERE datname = current_database())"),
            0);
  const PoolStats stats = pool_->Stats();
  EXPECT_EQ(stats.in_use, 0);
  EXPECT_EQ(stats.connections_discarded, 0);
}

TEST_F(PgMigrationsTest, RejectsInvalidInputBeforeTouchingTheDatabase) {
  EXPECT_EQ(ApplyMigrations(*pool_, "", testdata_).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyMigrations(*pool_, "x", {{1, "a", "SELECT 1"}, {1, "b", "SELECT 1"}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'"), 0);
}

}  // namespace
}  // namespace greenloop::pg
