#include "services/energy/core/store.h"

#include <set>

#include "gtest/gtest.h"

namespace greenloop::energy {
namespace {

absl::Time T(double seconds) {
  return absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(seconds);
}

// An EnergyStore in memory that can be switched off to play a PostgreSQL outage.
class FakeStore final : public EnergyStore {
 public:
  absl::Status Write(const StoreBatch& batch) override {
    if (down) return absl::UnavailableError("connection refused");
    ids.push_back(batch.batch_id);
    // As the contract says: a batch committed before is not applied again.
    if (!batch.batch_id.empty() && !committed.insert(batch.batch_id).second) {
      return absl::OkStatus();
    }
    Apply(batch);
    if (lose_next_answer) {
      lose_next_answer = false;
      return absl::UnavailableError("server closed the connection during COMMIT");
    }
    return absl::OkStatus();
  }
  void Apply(const StoreBatch& batch) {
    for (const SampleRow& s : batch.samples) {
      SampleRow& row = rows[{s.zone, s.bucket_start}];
      row.zone = s.zone;
      row.bucket_start = s.bucket_start;
      row.energy_joules += s.energy_joules;
      row.covered_seconds += s.covered_seconds;
    }
    for (const RunEnergy& r : batch.runs) runs[r.run_id] = r;
    if (batch.state.has_value()) state = batch.state;
  }
  absl::StatusOr<std::optional<SavedState>> Load() override { return state; }
  absl::StatusOr<RunEnergy> LoadRun(std::string_view id) override {
    auto it = runs.find(std::string(id));
    if (it == runs.end()) return absl::NotFoundError("no run");
    return it->second;
  }
  double TotalJoules() const {
    double sum = 0;
    for (const auto& [k, row] : rows) sum += row.energy_joules;
    return sum;
  }

  bool down = false;
  bool lose_next_answer = false;  // commit the next batch, then answer as if the link broke
  std::vector<std::string> ids;   // every batch_id written, in order
  std::set<std::string> committed;
  std::map<std::pair<std::string, absl::Time>, SampleRow> rows;
  std::map<std::string, RunEnergy> runs;
  std::optional<SavedState> state;
};

IntervalSample OneSecond(double at, double joules) {
  IntervalSample s;
  s.time = T(at);
  s.interval = absl::Seconds(1);
  s.zones.push_back({.meter_id = "node",
                     .domain = Domain::kNode,
                     .zone = "node",
                     .energy_joules = joules,
                     .idle_power_watts = 1});
  return s;
}

TEST(BufferedWriter, DownsamplesIntoBucketsOfTheResolution) {
  FakeStore store;
  BufferedWriter writer({.sample_resolution = absl::Seconds(10)}, &store);
  for (int i = 1; i <= 25; ++i) writer.Add(OneSecond(i, 2), {}, {});
  ASSERT_TRUE(writer.Flush(T(25)).ok());
  // Buckets [0,10) and [10,20) are closed; [20,30) stays open.
  ASSERT_EQ(store.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(store.rows.begin()->second.energy_joules, 2 * 10);  // midpoints 0.5 .. 9.5
  ASSERT_TRUE(writer.FlushAll().ok());
  EXPECT_DOUBLE_EQ(store.TotalJoules(), 50);
  EXPECT_EQ(store.rows.size(), 3u);
}

// An outage loses nothing while the buffer holds, and the buffer is bounded: beyond it the
// oldest rows are dropped and counted, never silently.
TEST(BufferedWriter, BuffersThroughAnOutageAndBackfills) {
  FakeStore store;
  BufferedWriter writer({.sample_resolution = absl::Seconds(1), .max_buffered_samples = 1000},
                        &store);
  RunEnergy run{.run_id = "run-a", .active = true};
  for (int i = 1; i <= 10; ++i) {
    run.active_joules = i;
    writer.Add(OneSecond(i, 1), {run}, {});
  }
  store.down = true;
  EXPECT_FALSE(writer.Flush(T(11)).ok());
  for (int i = 11; i <= 20; ++i) {
    run.active_joules = i;
    writer.Add(OneSecond(i, 1), {run}, {});
    EXPECT_FALSE(writer.Flush(T(i + 1)).ok());
  }
  EXPECT_EQ(writer.Stats().buffered_samples, 20u);
  EXPECT_FALSE(writer.Stats().store_up);
  store.down = false;
  ASSERT_TRUE(writer.Flush(T(21)).ok());
  EXPECT_DOUBLE_EQ(store.TotalJoules(), 20);
  EXPECT_DOUBLE_EQ(store.runs["run-a"].active_joules, 20) << "latest figures win";
  EXPECT_EQ(writer.Stats().dropped_samples, 0u);
  EXPECT_TRUE(writer.Stats().store_up);
}

TEST(BufferedWriter, BoundedBufferDropsTheOldestAndCountsThem) {
  FakeStore store;
  store.down = true;
  BufferedWriter writer({.sample_resolution = absl::Seconds(1), .max_buffered_samples = 5}, &store);
  for (int i = 1; i <= 12; ++i) {
    writer.Add(OneSecond(i, 1), {}, {});
    writer.Flush(T(i + 1)).IgnoreError();
  }
  EXPECT_EQ(writer.Stats().dropped_samples, 7u);
  store.down = false;
  ASSERT_TRUE(writer.FlushAll().ok());
  EXPECT_DOUBLE_EQ(store.TotalJoules(), 5);
  EXPECT_EQ(store.rows.begin()->first.second, T(7)) << "the newest rows (buckets 7..11) are kept";
}

// Issue 17, hole 6: a batch whose commit went through but whose answer was lost is tried again
// as it was, under its id, and the store skips it: nothing is counted twice, and what came in
// meanwhile goes in a batch of its own.
TEST(BufferedWriter, ARetryAfterALostCommitAnswerCountsOnce) {
  FakeStore store;
  BufferedWriter writer({.sample_resolution = absl::Seconds(1)}, &store);
  for (int i = 1; i <= 5; ++i) writer.Add(OneSecond(i, 2), {}, {});
  store.lose_next_answer = true;
  EXPECT_FALSE(writer.Flush(T(6)).ok());
  EXPECT_DOUBLE_EQ(store.TotalJoules(), 10);  // committed all the same
  for (int i = 6; i <= 8; ++i) writer.Add(OneSecond(i, 2), {}, {});
  ASSERT_TRUE(writer.Flush(T(9)).ok());
  EXPECT_DOUBLE_EQ(store.TotalJoules(), 16) << "the retried batch was counted twice";
  ASSERT_EQ(store.ids.size(), 3u);
  EXPECT_EQ(store.ids[0], store.ids[1]) << "the retry kept its id";
  EXPECT_NE(store.ids[2], store.ids[0]) << "the newer rows rode on the retried batch";
  EXPECT_FALSE(store.ids[0].empty());
}

}  // namespace
}  // namespace greenloop::energy
