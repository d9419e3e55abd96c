// `greenloop db status` against the real PostgreSQL of the `pg` fixture.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "tests/support/test_pg.h"
#include "tools/greenloop/commands.h"
#include "tools/greenloop/experiment/store.h"

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

// A study's points survive in PostgreSQL: a re-run resumes a point that succeeded with the same
// settings, runs a failed one or another grid's again; stored runs keep their architecture for
// greenloop predict.
TEST(StudyStore, ResumesOnlyPointsThatSucceededWithTheSameSettings) {
  greenloop::testing::ScratchDatabase db;
  auto store = experiment::ExperimentStore::Open(db.url());
  ASSERT_TRUE(store.ok()) << store.status();
  cli::ModeResult run;
  run.set_state("succeeded");
  run.set_run_id("zoo-study-p01-baseline");
  run.set_architecture("MODEL_KIND_MLP width=16 depth=1");
  run.set_energy_joules(12.5);
  run.add_inference()->set_batch_size(64);
  experiment::StudyPoint point{.id = "zoo-study-p01", .label = "mlp w16 d1 · batch 32"};
  ASSERT_TRUE(
      (*store)->SaveStudyPoint("zoo-study", "s.yaml", experiment::RowOf(point, run), run).ok());
  auto found = (*store)->SucceededStudyPoint("zoo-study", point.id, point.label);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->architecture(), "MODEL_KIND_MLP width=16 depth=1");
  EXPECT_EQ((*found)->inference(0).batch_size(), 64u);
  EXPECT_FALSE((*store)->SucceededStudyPoint("zoo-study", point.id, "cnn · batch 32")->has_value());
  run.set_state("failed");
  ASSERT_TRUE(
      (*store)->SaveStudyPoint("zoo-study", "s.yaml", experiment::RowOf(point, run), run).ok());
  EXPECT_FALSE((*store)->SucceededStudyPoint("zoo-study", point.id, point.label)->has_value());

  cli::ExperimentResult experiment;
  experiment.set_experiment_id("zoo-study-p01");
  experiment.set_name("zoo");
  experiment.set_spec_path("s.yaml");
  experiment.set_dataset("fashion_mnist");
  experiment.set_state("completed");
  experiment.set_start_time("2026-12-04T00:00:00Z");
  run.set_state("succeeded");
  run.set_parameter_count(12730);
  run.set_macs_per_sample(12704);
  run.set_samples_processed(6000);
  run.set_batch_size(32);
  run.set_node("node-a");
  *experiment.add_modes() = run;
  const absl::Status saved = (*store)->Save(experiment, {});
  ASSERT_TRUE(saved.ok()) << saved;
  auto observations = (*store)->Observations();
  ASSERT_TRUE(observations.ok()) << observations.status();
  ASSERT_EQ(observations->size(), 1u);
  EXPECT_EQ(observations->front().features.architecture, "MODEL_KIND_MLP width=16 depth=1");
}

}  // namespace
}  // namespace greenloop::cli
