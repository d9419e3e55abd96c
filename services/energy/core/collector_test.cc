#include "services/energy/core/collector.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/energy/core/fake_tree.h"
#include "services/energy/core/rapl.h"

namespace greenloop::energy {
namespace {

using ::testing::DoubleNear;
using testing::FakeTree;
using ::testing::HasSubstr;

absl::Time T(double seconds) {
  return absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(seconds);
}

constexpr std::uint64_t kRange = 262'143'328'850;

// A node with one socket (package-0 with core and dram subzones) and three processes: pid 100
// (run a), pid 200 (run b), pid 300 (not registered).
class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.AddRaplZone("intel-rapl:0", "package-0", kRange, 0);
    tree_.AddRaplZone("intel-rapl:0:0", "core", kRange, 0);
    tree_.AddRaplZone("intel-rapl:0:1", "dram", kRange, 0);
    tree_.SetCpu(0, 0);
    tree_.SetProcess(100, 1, 0);
    tree_.SetProcess(200, 1, 0);
    tree_.SetProcess(300, 1, 0);
  }

  std::unique_ptr<Collector> Make(CollectorOptions options = {}) {
    if (options.node.empty()) options.node = "node-a";
    options.process_rescan_intervals = rescan_;
    options.estimator = {.cpu_idle_watts = 5, .cpu_max_watts = 25, .dram_watts = 2};
    return std::make_unique<Collector>(options,
                                       *DiscoverRaplZones({.sysfs_root = tree_.powercap()}),
                                       std::vector<GpuDescription>{}, &procfs_);
  }

  // Advances every counter: package by `package_j`, core by half of it, dram by `dram_j`.
  void Advance(double package_j, double dram_j) {
    package_uj_ += static_cast<std::uint64_t>(package_j * 1e6);
    dram_uj_ += static_cast<std::uint64_t>(dram_j * 1e6);
    tree_.SetRaplEnergy("intel-rapl:0", package_uj_ % kRange);
    tree_.SetRaplEnergy("intel-rapl:0:0", (package_uj_ / 2) % kRange);
    tree_.SetRaplEnergy("intel-rapl:0:1", dram_uj_ % kRange);
  }

  int rescan_ = 1;
  FakeTree tree_;
  ProcFs procfs_{tree_.proc()};
  std::uint64_t package_uj_ = 0, dram_uj_ = 0;
};

const DomainTotals& Key(const RunEnergy& r, Domain d, Source s) {
  static const DomainTotals kNone;
  auto it = r.domains.find({d, s});
  return it == r.domains.end() ? kNone : it->second;
}

// Two processes with known CPU-time shares get the matching split of known active energy; idle
// energy is reported apart; a child started later counts for its parent's run.
TEST_F(CollectorTest, SplitsActiveEnergyByCpuTimeAndReportsIdleApart) {
  auto collector = Make();
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0)).ok());
  ASSERT_TRUE(collector->Register("run-b", {200}, {}, 1, T(0)).ok());
  collector->Tick(T(0));  // primes

  // Interval 1: idle node, 10 W package + 2 W dram: sets the idle baselines.
  Advance(10, 2);
  collector->Tick(T(1));

  // Interval 2: 40 W package + 5 W dram; 60 busy ticks: run a 30, run b 10, pid 300 20.
  Advance(40, 5);
  tree_.SetCpu(60, 0);
  tree_.SetProcess(100, 1, 30);
  tree_.SetProcess(200, 1, 10);
  tree_.SetProcess(300, 1, 20);
  std::vector<IntervalSample> samples = collector->Tick(T(2));
  ASSERT_EQ(samples.size(), 1u);
  const IntervalSample& s = samples[0];
  ASSERT_EQ(s.runs.size(), 2u);
  EXPECT_DOUBLE_EQ(s.runs[0].cpu_share, 0.5);
  EXPECT_DOUBLE_EQ(s.runs[1].cpu_share, 10.0 / 60);

  // Node active = (40 − 10) + (5 − 2) = 33 J: a gets half, b a sixth.
  RunEnergy a = *collector->GetRun("run-a");
  RunEnergy b = *collector->GetRun("run-b");
  EXPECT_THAT(a.active_joules, DoubleNear(16.5, 1e-9));
  EXPECT_THAT(b.active_joules, DoubleNear(5.5, 1e-9));
  // Idle: 12 W over 2 s, for each run (not split).
  EXPECT_THAT(a.idle_joules, DoubleNear(24, 1e-9));
  EXPECT_THAT(b.idle_joules, DoubleNear(24, 1e-9));
  EXPECT_DOUBLE_EQ(a.duration_seconds, 2);
  EXPECT_THAT(Key(a, Domain::kPackage, Source::kRapl).active_joules, DoubleNear(15, 1e-9));
  EXPECT_THAT(Key(a, Domain::kDram, Source::kRapl).active_joules, DoubleNear(1.5, 1e-9));
  EXPECT_THAT(Key(a, Domain::kNode, Source::kRapl).active_joules, DoubleNear(16.5, 1e-9));
  EXPECT_TRUE(a.estimated_domains.empty());

  // Interval 3: run a forks pid 101, which burns 40 of 40 busy ticks.
  Advance(50, 2);
  tree_.SetCpu(100, 0);
  tree_.SetProcess(101, 100, 40, 500);
  collector->Tick(T(3));
  a = *collector->GetRun("run-a");
  EXPECT_THAT(a.active_joules, DoubleNear(16.5 + 40, 1e-9));
  EXPECT_THAT(collector->GetRun("run-b")->active_joules, DoubleNear(5.5, 1e-9));
}

// A child that exits is reaped into its parent's cutime: the time it had when last seen was
// counted already and must not count again; only its tail (after the last tick) is new.
TEST_F(CollectorTest, AReapedChildIsNotCountedTwice) {
  auto collector = Make();
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0)).ok());
  collector->Tick(T(0));
  Advance(10, 0);
  collector->Tick(T(1));  // idle baseline 10 W
  // Interval 2: the child (pid 101) burns 40 of 40 busy ticks: 40 J active, all the run's.
  Advance(50, 0);
  tree_.SetCpu(40, 0);
  tree_.SetProcess(101, 100, 40, 500);
  collector->Tick(T(2));
  EXPECT_THAT(collector->GetRun("run-a")->active_joules, DoubleNear(40, 1e-9));
  // Interval 3: the child runs 10 more ticks and exits; the parent reaps its 50 ticks (cutime)
  // and burns 10 of its own; pid 300 burns 40. The run's ticks are 20 of 60, not 60 of 60.
  Advance(30, 0);
  tree_.SetCpu(100, 0);
  tree_.Remove("proc/101");
  tree_.SetProcess(100, 1, 10 + 50);
  tree_.SetProcess(300, 1, 40);
  collector->Tick(T(3));
  EXPECT_THAT(collector->GetRun("run-a")->active_joules, DoubleNear(40 + 20.0 / 3, 1e-9));
  // Interval 4: the parent alone, 10 of 20 busy ticks: half of 20 J.
  Advance(30, 0);
  tree_.SetCpu(120, 0);
  tree_.SetProcess(100, 1, 70);
  collector->Tick(T(4));
  EXPECT_THAT(collector->GetRun("run-a")->active_joules, DoubleNear(40 + 20.0 / 3 + 10, 1e-9));
}

// Between full /proc scans only known processes are read; a child found at the next scan still
// gets its whole CPU time attributed, just later.
TEST_F(CollectorTest, ChildFoundAtALaterScanIsAttributedInFull) {
  rescan_ = 3;
  auto collector = Make();
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0)).ok());
  collector->Tick(T(0));
  Advance(10, 0);
  collector->Tick(T(1));  // idle baseline 10 W
  tree_.SetProcess(101, 100, 0, 500);
  double busy = 0;
  for (int i = 2; i <= 5; ++i) {
    Advance(20, 0);  // +10 J active per interval, all of it the child's
    busy += 10;
    tree_.SetCpu(static_cast<std::uint64_t>(busy), 0);
    tree_.SetProcess(101, 100, static_cast<std::uint64_t>(busy), 500);
    collector->Tick(T(i));
  }
  // Intervals 2 and 3 ran before the scan found pid 101: their active energy went unattributed
  // then, but from the scan on the child's whole time counts. Total CPU share over the four
  // intervals is what matters: the run got its energy for every interval from the scan on, and
  // its CPU time for the missed ones is counted in the scan's interval (capped at the whole).
  RunEnergy a = *collector->GetRun("run-a");
  EXPECT_GT(a.active_joules, 10.0);
  EXPECT_LE(a.active_joules, 40.0 + 1e-9);
}

// Core is inside its package and never added to the node total; psys contains package and dram
// and, where present, is the node total on its own.
TEST_F(CollectorTest, NeverAddsAZoneToItsParentOrPsysToThePackage) {
  auto collector = Make();
  collector->Tick(T(0));
  Advance(30, 6);
  std::vector<IntervalSample> s = collector->Tick(T(1));
  const ZoneSample& node = s.back().zones.back();
  ASSERT_EQ(node.domain, Domain::kNode);
  EXPECT_DOUBLE_EQ(node.energy_joules, 36);  // package + dram, core (15) not added
  for (const ZoneSample& z : s.back().zones) {
    if (z.domain == Domain::kCore) {
      EXPECT_FALSE(z.in_node_total);
    }
  }

  FakeTree with_psys;
  with_psys.AddRaplZone("intel-rapl:0", "package-0", kRange, 0);
  with_psys.AddRaplZone("intel-rapl:0:0", "dram", kRange, 0);
  with_psys.AddRaplZone("intel-rapl:1", "psys", kRange, 0);
  with_psys.SetCpu(0, 0);
  ProcFs procfs(with_psys.proc());
  Collector c2({.node = "laptop"}, *DiscoverRaplZones({.sysfs_root = with_psys.powercap()}), {},
               &procfs);
  c2.Tick(T(0));
  with_psys.SetRaplEnergy("intel-rapl:0", 20'000'000);
  with_psys.SetRaplEnergy("intel-rapl:0:0", 3'000'000);
  with_psys.SetRaplEnergy("intel-rapl:1", 28'000'000);
  std::vector<IntervalSample> s2 = c2.Tick(T(1));
  EXPECT_DOUBLE_EQ(s2.back().zones.back().energy_joules, 28) << "psys alone, not 20 + 3 + 28";
}

// A zone that vanishes mid-run: its stand-in estimator takes over from that interval, labelled
// estimated, the meter reports the error, and no energy is negative or zeroed.
TEST_F(CollectorTest, VanishedZoneFallsBackToTheEstimator) {
  auto collector = Make();
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0)).ok());
  collector->Tick(T(0));
  Advance(10, 2);
  collector->Tick(T(1));
  tree_.Remove("powercap/intel-rapl:0");
  tree_.SetCpu(50, 50);  // 50 % busy: stand-in P = 5 + 20 × 0.5 = 15 W
  tree_.SetProcess(100, 1, 50);
  std::vector<IntervalSample> s = collector->Tick(T(2));
  bool saw_estimated_package = false;
  for (const ZoneSample& z : s.back().zones) {
    EXPECT_GE(z.energy_joules, 0);
    if (z.domain == Domain::kPackage) {
      EXPECT_EQ(z.source, Source::kEstimated);
      EXPECT_DOUBLE_EQ(z.energy_joules, 15);
      saw_estimated_package = true;
    }
  }
  EXPECT_TRUE(saw_estimated_package);
  EXPECT_EQ(s.back().zones.back().source, Source::kEstimated) << "node total is part estimated";
  std::vector<MeterHealth> meters = collector->Meters();
  EXPECT_FALSE(meters[0].healthy);
  EXPECT_TRUE(meters[0].fallback_active);
  EXPECT_EQ(meters[0].read_errors, 1u);
  EXPECT_THAT(meters[0].last_error, HasSubstr("energy_uj"));
  RunEnergy a = *collector->GetRun("run-a");
  EXPECT_TRUE(a.estimated_domains.contains(Domain::kPackage));
  EXPECT_GT(Key(a, Domain::kPackage, Source::kEstimated).active_joules, 0);
  EXPECT_TRUE(collector->EstimatedDomains().contains(Domain::kPackage));
}

TEST_F(CollectorTest, NoRaplMeansTheWholeNodeIsEstimated) {
  FakeTree empty;
  empty.SetCpu(0, 0);
  ProcFs procfs(empty.proc());
  Collector c({.node = "vm", .estimator = {.cpu_idle_watts = 4, .cpu_max_watts = 20}}, {}, {},
              &procfs);
  c.Tick(T(0));
  empty.SetCpu(25, 75);  // 25 %: 4 + 16 × 0.25 = 8 W over 2 s
  std::vector<IntervalSample> s = c.Tick(T(2));
  ASSERT_EQ(s.back().zones.size(), 2u);
  EXPECT_EQ(s.back().zones[0].zone, "cpu");
  EXPECT_DOUBLE_EQ(s.back().zones[0].energy_joules, 16);
  EXPECT_DOUBLE_EQ(s.back().zones[0].idle_power_watts, 4);
  EXPECT_EQ(s.back().zones[1].source, Source::kEstimated);
}

TEST_F(CollectorTest, RegisterValidatesItsInput) {
  auto collector = Make();
  EXPECT_EQ(collector->Register("Bad_Run", {100}, {}, 0, T(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(collector->Register("run-a", {}, {}, 0, T(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(collector->Register("run-a", {-3}, {}, 0, T(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status missing = collector->Register("run-a", {4242}, {}, 0, T(0)).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("4242"));
  EXPECT_EQ(collector->Register("run-a", {100}, {GpuRequest{.index = 0}}, 0, T(0)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(collector->GetRun("never").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(collector->Unregister("never", {}, T(0)).status().code(), absl::StatusCode::kNotFound);
}

// Unregister takes one last reading, so the tail of the run is attributed; the run stays readable;
// registering again opens a new interval whose figures add up.
// Issue 17, hole 3: a run belongs to whoever registered it, and a process's energy to one run.
TEST_F(CollectorTest, ARunBelongsToItsRegistrantAndAPidToOneRun) {
  auto collector = Make();
  const Registrant alice{.id = "7"};
  const Registrant mallory{.id = "9"};
  const Registrant admin{.id = "1", .admin = true};
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0), alice).ok());
  EXPECT_EQ(collector->GetRun("run-a")->owner, "7");
  // Another worker may neither add to alice's run nor end it.
  absl::Status added = collector->Register("run-a", {300}, {}, 0, T(1), mallory).status();
  EXPECT_EQ(added.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(added.message()), HasSubstr("run-a"));
  EXPECT_EQ(collector->Unregister("run-a", {}, T(1), mallory).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(collector->GetRun("run-a")->active);
  // Nor register alice's process to a run of its own (and read its CPU share there).
  absl::Status stolen = collector->Register("run-m", {100}, {}, 0, T(1), mallory).status();
  EXPECT_EQ(stolen.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(stolen.message()), HasSubstr("pid 100"));
  EXPECT_THAT(std::string(stolen.message()), HasSubstr("run-a"));
  EXPECT_FALSE(collector->GetRun("run-m").ok()) << "a refused registration left a run behind";
  // Alice adds her own processes; an admin may end her run; then the pid is free again.
  EXPECT_TRUE(collector->Register("run-a", {300}, {}, 1, T(1), alice).ok());
  EXPECT_TRUE(collector->Unregister("run-a", {}, T(2), admin).ok());
  EXPECT_FALSE(collector->GetRun("run-a")->active);
  EXPECT_TRUE(collector->Register("run-m", {100}, {}, 0, T(3), mallory).ok());
  // Without authentication everyone is "" and owns every run, as before.
  EXPECT_TRUE(collector->Register("run-x", {200}, {}, 0, T(3)).ok());
  EXPECT_TRUE(collector->Unregister("run-x", {}, T(4)).ok());
}

// Issue 17, hole 5: a run whose processes all exited (its worker killed, nobody to unregister
// it) ends at the next tick instead of staying active and accruing idle energy forever.
TEST_F(CollectorTest, ARunWhoseProcessesAllExitedEnds) {
  auto collector = Make();
  collector->Tick(T(0));
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0)).ok());
  ASSERT_TRUE(collector->Register("run-b", {200}, {}, 0, T(0)).ok());
  Advance(10, 1);
  tree_.SetCpu(100, 100);
  tree_.SetProcess(100, 1, 50);
  collector->Tick(T(1));
  tree_.Remove("proc/100");  // killed
  Advance(10, 1);
  tree_.SetCpu(200, 200);
  collector->Tick(T(2));
  absl::StatusOr<RunEnergy> a = collector->GetRun("run-a");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->active);
  EXPECT_TRUE(a->ended_on_exit);
  EXPECT_EQ(a->unregister_time, T(2));
  const double idle_then = a->idle_joules;
  Advance(10, 1);
  tree_.SetCpu(300, 300);
  collector->Tick(T(3));
  EXPECT_DOUBLE_EQ(collector->GetRun("run-a")->idle_joules, idle_then) << "still accruing";
  EXPECT_TRUE(collector->GetRun("run-b")->active) << "a live run is not affected";
  EXPECT_FALSE(collector->GetRun("run-b")->ended_on_exit);
}

TEST_F(CollectorTest, UnregisterTakesALastReadingAndResumesAdd) {
  auto collector = Make();
  ASSERT_TRUE(collector->Register("run-a", {100}, {}, 0, T(0)).ok());
  collector->Tick(T(0));
  Advance(10, 0);
  collector->Tick(T(1));
  Advance(20, 0);  // +10 J above idle, all busy time is run a's
  tree_.SetCpu(10, 0);
  tree_.SetProcess(100, 1, 10);
  absl::StatusOr<RunEnergy> ended = collector->Unregister("run-a", {}, T(1.5));
  ASSERT_TRUE(ended.ok());
  EXPECT_FALSE(ended->active);
  EXPECT_THAT(ended->active_joules, DoubleNear(20 - 10 * 0.5, 1e-9));
  std::vector<IntervalSample> next = collector->Tick(T(2));
  ASSERT_EQ(next.size(), 2u) << "the reading Unregister took is handed to the sinks first";
  EXPECT_THAT(collector->GetRun("run-a")->active_joules, DoubleNear(15, 1e-9));

  ASSERT_TRUE(collector->Register("run-a", {200}, {}, 0, T(3)).ok());
  EXPECT_TRUE(collector->GetRun("run-a")->active);
  EXPECT_THAT(collector->GetRun("run-a")->pids, ::testing::ElementsAre(100, 200));
  EXPECT_EQ(collector->ListRuns(false).size(), 1u);
}

// A restarted collector continues from the saved counters: the energy spent while it was down is
// attributed once, not lost, not doubled.
TEST_F(CollectorTest, RestartContinuesWithoutLossOrDoubleCounting) {
  // Reference: one collector that never stops.
  auto reference = Make();
  ASSERT_TRUE(reference->Register("run-a", {100}, {}, 0, T(0)).ok());
  reference->Tick(T(0));

  auto first = Make();
  ASSERT_TRUE(first->Register("run-a", {100}, {}, 0, T(0)).ok());
  first->Tick(T(0));
  Advance(10, 1);
  reference->Tick(T(1));
  first->Tick(T(1));
  SavedState saved = first->Save("boot-1");
  SavedState decoded;
  ASSERT_TRUE(DecodeCounters(EncodeCounters(saved), decoded).ok());
  decoded.boot_id = saved.boot_id;
  decoded.saved_at = saved.saved_at;
  decoded.runs = saved.runs;
  first.reset();  // crash

  // While it is down: 30 J package, the run busy all the time.
  Advance(30, 1);
  tree_.SetCpu(20, 0);
  tree_.SetProcess(100, 1, 20);
  auto second = Make();
  second->Restore(decoded, "boot-1", T(3));
  second->Tick(T(3));
  reference->Tick(T(3));
  RunEnergy got = *second->GetRun("run-a");
  RunEnergy want = *reference->GetRun("run-a");
  EXPECT_THAT(got.active_joules, DoubleNear(want.active_joules, 1e-9));
  EXPECT_GT(got.active_joules, 0);
  EXPECT_THAT(got.idle_joules, DoubleNear(want.idle_joules, 1e-9));
  EXPECT_DOUBLE_EQ(got.duration_seconds, want.duration_seconds);
  EXPECT_DOUBLE_EQ(got.gap_seconds, 0);
}

TEST_F(CollectorTest, RestartAfterRebootIsAGapNotAGuess) {
  auto first = Make();
  ASSERT_TRUE(first->Register("run-a", {100}, {}, 0, T(0)).ok());
  first->Tick(T(0));
  Advance(10, 1);
  first->Tick(T(1));
  SavedState saved = first->Save("boot-1");
  first.reset();
  auto second = Make();
  second->Restore(saved, "boot-2", T(61));
  RunEnergy r = *second->GetRun("run-a");
  EXPECT_DOUBLE_EQ(r.gap_seconds, 60);
  EXPECT_DOUBLE_EQ(r.duration_seconds, 61);
}

TEST(CarbonGrams, KilowattHoursTimesPueTimesIntensity) {
  EXPECT_DOUBLE_EQ(CarbonGrams(3.6e6, {.pue = 1.5, .grid_intensity_grams_per_kwh = 400}), 600);
}

}  // namespace
}  // namespace greenloop::energy
