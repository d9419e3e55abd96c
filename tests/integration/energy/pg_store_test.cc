#include "services/energy/storage/pg_store.h"

#include "common/pg/migrations.h"
#include "gtest/gtest.h"
#include "tests/support/test_pg.h"

namespace greenloop::energy {
namespace {

absl::Time T(double s) { return absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(s); }

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pool = pg::Pool::Create({.url = db_.url()});
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
    ASSERT_TRUE(pg::ApplyMigrations(*pool_, "energy", EnergyMigrations()).ok());
  }
  greenloop::testing::ScratchDatabase db_;
  std::unique_ptr<pg::Pool> pool_;
};

TEST_F(PgStoreTest, RunsStateAndSamplesRoundTrip) {
  CarbonFactors carbon{.pue = 1.5, .grid_intensity_grams_per_kwh = 400, .source = "test"};
  PgEnergyStore store(pool_.get(), "node-a", carbon);
  EXPECT_FALSE(store.Load()->has_value()) << "nothing saved yet";

  RunEnergy run{.run_id = "run-a",
                .active = true,
                .first_register_time = T(0),
                .register_time = T(0),
                .end_time = T(10),
                .duration_seconds = 10,
                .active_joules = 36e5,
                .idle_joules = 100};
  run.domains[{Domain::kPackage, Source::kRapl}] = {
      .zones = {"package-0", "package-1"}, .active_joules = 30e5, .seconds = 10};
  run.estimated_domains = {Domain::kDram};
  run.pids = {10, 11};
  run.live_pids = {11};
  run.ranks = {0, 1};
  run.owner = "17";  // the registrant's principal id survives a restart
  SavedState state{.boot_id = "boot-1",
                   .saved_at = T(10),
                   .has_cpu_times = true,
                   .busy_ticks = 5,
                   .total_ticks = 9};
  state.meters["rapl:intel-rapl:0"] = "123";
  state.processes.push_back({11, 77, 42});
  StoreBatch batch{.samples = {{.zone = "node",
                                .bucket_start = T(0),
                                .domain = Domain::kNode,
                                .source = Source::kRapl,
                                .bucket_seconds = 10,
                                .energy_joules = 5,
                                .idle_joules = 1,
                                .covered_seconds = 10}},
                   .runs = {run},
                   .state = state};
  batch.batch_id = "writer-1";
  ASSERT_TRUE(store.Write(batch).ok());
  // Issue 17, hole 6: the same batch again (a retry after a commit whose answer was lost) is
  // skipped; another batch of the same bucket adds to it.
  ASSERT_TRUE(store.Write(batch).ok());
  batch.batch_id = "writer-2";
  ASSERT_TRUE(store.Write(batch).ok()) << "a second write of the same bucket adds to it";
  ASSERT_TRUE(store.Write(batch).ok());

  absl::StatusOr<std::optional<SavedState>> loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  const SavedState& s = **loaded;
  EXPECT_EQ(s.boot_id, "boot-1");
  EXPECT_EQ(s.saved_at, T(10));
  EXPECT_EQ(s.meters.at("rapl:intel-rapl:0"), "123");
  ASSERT_EQ(s.processes.size(), 1u);
  EXPECT_EQ(s.processes[0].cpu_ticks, 42u);
  ASSERT_EQ(s.runs.size(), 1u);
  const RunEnergy& r = s.runs[0];
  EXPECT_DOUBLE_EQ(r.active_joules, 36e5);
  EXPECT_EQ(r.live_pids, std::vector<int>{11});
  EXPECT_EQ(r.ranks, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(r.owner, "17");
  EXPECT_TRUE(r.estimated_domains.contains(Domain::kDram));
  EXPECT_EQ(r.domains.at({Domain::kPackage, Source::kRapl}).zones.size(), 2u);

  double joules = pool_
                      ->Run([](pqxx::work& tx) {
                        return tx.exec1("SELECT energy_joules FROM energy_samples")[0].as<double>();
                      })
                      .value();
  EXPECT_DOUBLE_EQ(joules, 10);
  double carbon_grams =
      pool_
          ->Run([](pqxx::work& tx) {
            return tx.exec1("SELECT carbon_grams FROM energy_runs")[0].as<double>();
          })
          .value();
  EXPECT_DOUBLE_EQ(carbon_grams, 600) << "1 kWh × 1.5 × 400 g/kWh";

  EXPECT_EQ(store.LoadRun("never").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.LoadRun("run-a").ok());
  PgEnergyStore other_node(pool_.get(), "node-b", carbon);
  EXPECT_EQ(other_node.LoadRun("run-a").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace greenloop::energy
