// `greenloop db status` against the real PostgreSQL of the `pg` fixture.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "tests/support/test_pg.h"
#include "tools/greenloop/commands.h"

namespace greenloop::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(DbStatus, ListsAppliedMigrationsPerComponent) {
  greenloop::testing::ScratchDatabase db;
  std::ostringstream out, err;
  const std::string url_flag = "--pg.url=" + db.url();

  ASSERT_EQ(DbStatus({url_flag}, {}, out, err), kExitOk) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("no migrations applied"));

  auto pool = pg::Pool::Create({.url = db.url()});
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_TRUE(pg::ApplyMigrations(**pool, "energy",
                                  {{1, "create_samples", "CREATE TABLE energy_samples (x int);"},
                                   {2, "add_node", "ALTER TABLE energy_samples ADD node text;"}})
                  .ok());
  out.str("");
  ASSERT_EQ(DbStatus({}, {{"GREENLOOP_PG_URL", db.url()}}, out, err), kExitOk) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("energy"));
  EXPECT_THAT(out.str(), MatchesRegex("(.|\n)*energy +1 +create_samples +20[0-9-]+T(.|\n)*"));
  EXPECT_THAT(out.str(), MatchesRegex("(.|\n)*energy +2 +add_node (.|\n)*"));
}

TEST(DbStatus, PostgresDownIsOneLineExitThreeWithoutPassword) {
  std::ostringstream out, err;
  // Port 1 on loopback: nothing listens there.
  const int code =
      DbStatus({"--pg.url=postgresql://greenloop:s3cret@127.0.0.1:1/greenloop"}, {}, out, err);
  EXPECT_EQ(code, kExitUnavailable);
  EXPECT_THAT(err.str(), HasSubstr("cannot connect to PostgreSQL at 127.0.0.1:1"));
  EXPECT_THAT(err.str(), Not(HasSubstr("s3cret")));
  const std::string text = err.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
}

}  // namespace
}  // namespace greenloop::cli
