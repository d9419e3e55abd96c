// PgRunStore against the real PostgreSQL of the `pg` fixture.
#include "services/trainer/storage/pg_run_store.h"

#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include "tests/support/test_pg.h"

namespace greenloop::trainer {
namespace {

using google::protobuf::util::TimeUtil;

class PgRunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pool = pg::Pool::Create({.url = db_.url()});
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    ASSERT_TRUE(ApplyTrainerMigrations(*pool_).ok());
    ASSERT_TRUE(ApplyTrainerMigrations(*pool_).ok());  // idempotent
    store_ = std::make_unique<PgRunStore>(pool_.get());
  }

  static v1::Run MakeRun(const std::string& id, int seconds) {
    v1::Run run;
    run.set_run_id(id);
    run.set_rank(0);
    run.set_world_size(1);
    run.set_node("node-a");
    run.set_state(v1::RUN_STATE_RUNNING);
    run.mutable_config()->set_dataset(v1::DATASET_FASHION_MNIST);
    run.mutable_config()->set_mode(v1::MODE_HITL);
    run.mutable_config()->set_experiment_id("exp-7");
    *run.mutable_create_time() = TimeUtil::SecondsToTimestamp(1700000000 + seconds);
    run.mutable_progress()->set_step(12);
    run.mutable_model()->set_parameter_count(52138);
    return run;
  }

  greenloop::testing::ScratchDatabase db_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<PgRunStore> store_;
};

TEST_F(PgRunStoreTest, RunsRoundTripNewestFirstAndUpdateInPlace) {
  v1::Run older = MakeRun("run-a", 0);
  v1::Run newer = MakeRun("run-b", 60);
  ASSERT_TRUE(store_->SaveRun(older).ok());
  ASSERT_TRUE(store_->SaveRun(newer).ok());
  older.set_state(v1::RUN_STATE_SUCCEEDED);
  older.set_finish_reason(v1::FINISH_REASON_TARGET_REACHED);
  older.set_best_eval_accuracy(0.0);  // a real zero, kept apart from unset
  older.set_energy_to_target_joules(123.5);
  *older.mutable_end_time() = TimeUtil::SecondsToTimestamp(1700000100);
  ASSERT_TRUE(store_->SaveRun(older).ok());

  absl::StatusOr<std::vector<v1::Run>> runs = store_->LoadRuns("node-a");
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].run_id(), "run-b");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*runs)[1], older));
  EXPECT_TRUE((*runs)[1].has_best_eval_accuracy());
  EXPECT_TRUE(store_->LoadRuns("node-b")->empty());

  auto row = pool_->Run([](pqxx::work& tx) {
    auto r = tx.exec1(
        "SELECT state, finish_reason, energy_to_target_joules, parameter_count, mode, "
        "experiment_id, end_time IS NOT NULL FROM runs WHERE run_id = 'run-a'");
    return std::make_tuple(r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<double>(),
                           r[3].as<long long>(), r[4].as<std::string>(), r[5].as<std::string>(),
                           r[6].as<bool>());
  });
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_EQ(std::get<0>(*row), "RUN_STATE_SUCCEEDED");
  EXPECT_EQ(std::get<1>(*row), "FINISH_REASON_TARGET_REACHED");
  EXPECT_DOUBLE_EQ(std::get<2>(*row), 123.5);
  EXPECT_EQ(std::get<3>(*row), 52138);
  EXPECT_EQ(std::get<4>(*row), "MODE_HITL");
  EXPECT_EQ(std::get<5>(*row), "exp-7");
  EXPECT_TRUE(std::get<6>(*row));
}

TEST_F(PgRunStoreTest, CurvesAndChangesAreStoredForReports) {
  ASSERT_TRUE(store_->SaveRun(MakeRun("run-c", 0)).ok());
  for (int i = 1; i <= 3; ++i) {
    EvaluationPoint p;
    p.step = static_cast<std::uint64_t>(100 * i);
    p.epoch = static_cast<std::uint32_t>(i);
    p.eval_accuracy = 0.5 + 0.1 * i;
    p.energy_joules = 10.0 * i;
    p.record_time = absl::Now();
    ASSERT_TRUE(store_->AddEvaluation("run-c", 0, p).ok());
  }
  std::vector<SampleChange> changes(3);
  changes[0] = {.step = 5,
                .sample_index = 17,
                .action = ChangeAction::kRelabel,
                .old_label = 1,
                .new_label = 2,
                .source = ChangeSource::kHuman,
                .item_id = "i-17",
                .revision = 1,
                .confidence = 0.9,
                .clean_label = 2,
                .correct = true};
  changes[1] = {.step = 5,
                .sample_index = 18,
                .action = ChangeAction::kDrop,
                .old_label = 3,
                .new_label = 3,
                .new_weight = 0,
                .source = ChangeSource::kAuto,
                .confidence = 0.95,
                .clean_label = 3,
                .correct = false};
  changes[2] = {.step = 9,
                .sample_index = 19,
                .action = ChangeAction::kKeep,
                .old_label = 4,
                .new_label = 4,
                .source = ChangeSource::kHuman,
                .confidence = 0.8,
                .clean_label = 4,
                .correct = true};
  ASSERT_TRUE(store_->AddChanges("run-c", 0, changes).ok());

  auto summary = pool_->Run([](pqxx::work& tx) {
    auto curve = tx.exec1(
        "SELECT count(*), max(energy_joules), min(eval_accuracy) FROM run_evaluations "
        "WHERE run_id = 'run-c'");
    auto humans = tx.exec1(
        "SELECT count(*) FILTER (WHERE source = 'human'), "
        "count(*) FILTER (WHERE source = 'human' AND correct), "
        "count(*) FILTER (WHERE action = 'drop') FROM run_changes WHERE run_id = 'run-c'");
    return std::make_tuple(curve[0].as<int>(), curve[1].as<double>(), curve[2].as<double>(),
                           humans[0].as<int>(), humans[1].as<int>(), humans[2].as<int>());
  });
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(std::get<0>(*summary), 3);
  EXPECT_DOUBLE_EQ(std::get<1>(*summary), 30.0);
  EXPECT_DOUBLE_EQ(std::get<2>(*summary), 0.6);
  EXPECT_EQ(std::get<3>(*summary), 2);
  EXPECT_EQ(std::get<4>(*summary), 2);
  EXPECT_EQ(std::get<5>(*summary), 1);

  // An evaluation of an unknown run violates the foreign key: FAILED_PRECONDITION.
  EXPECT_EQ(store_->AddEvaluation("ghost", 0, EvaluationPoint{.record_time = absl::Now()}).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace greenloop::trainer
