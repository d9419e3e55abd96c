#include "services/energy/core/rapl.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/energy/core/fake_tree.h"

namespace greenloop::energy {
namespace {

using testing::FakeTree;
using ::testing::HasSubstr;

absl::Time T(int seconds) { return absl::FromUnixSeconds(1'700'000'000 + seconds); }

TEST(CounterDelta, WrapsAtTheRange) {
  EXPECT_EQ(CounterDelta(100, 250, 1000), 150u);
  EXPECT_EQ(CounterDelta(900, 50, 1000), 150u);  // 900 -> 1000 (=0) -> 50
  EXPECT_EQ(CounterDelta(1500, 50, 1000), 50u);  // previous out of range: a restart
}

TEST(Rapl, DiscoversZonesNamesThemAndRecordsContainment) {
  FakeTree tree;
  tree.AddRaplZone("intel-rapl:0", "package-0", 262143328850);
  tree.AddRaplZone("intel-rapl:0:0", "core", 262143328850);
  tree.AddRaplZone("intel-rapl:0:1", "uncore", 262143328850);
  tree.AddRaplZone("intel-rapl:0:2", "dram", 262143328850);
  tree.AddRaplZone("intel-rapl:1", "package-1", 262143328850);
  tree.AddRaplZone("intel-rapl:1:0", "dram", 262143328850);
  tree.AddRaplZone("intel-rapl-mmio:0", "package-0", 262143328850);  // duplicate path: skipped
  tree.Write("powercap/intel-rapl/enabled", "1\n");                  // control type, not a zone

  absl::StatusOr<MeterList> meters = DiscoverRaplZones({.sysfs_root = tree.powercap()});
  ASSERT_TRUE(meters.ok()) << meters.status();
  std::vector<std::string> zones;
  for (const auto& m : *meters) zones.push_back(m->info().zone);
  EXPECT_THAT(zones, ::testing::ElementsAre("package-0", "core-0", "uncore-0", "dram-0",
                                            "package-1", "dram-1"));
  EXPECT_EQ((*meters)[1]->info().domain, Domain::kCore);
  EXPECT_EQ((*meters)[1]->info().parent_zone, "package-0");
  EXPECT_EQ((*meters)[3]->info().domain, Domain::kDram);
  EXPECT_EQ((*meters)[3]->info().parent_zone, "") << "RAPL package excludes DRAM";
  EXPECT_EQ((*meters)[0]->info().id, "rapl:intel-rapl:0");
  EXPECT_DOUBLE_EQ((*meters)[0]->info().max_energy_range_joules, 262143.32885);
}

TEST(Rapl, MissingTreeMeansNoMeters) {
  absl::StatusOr<MeterList> meters = DiscoverRaplZones({.sysfs_root = "/nonexistent/powercap"});
  ASSERT_TRUE(meters.ok());
  EXPECT_TRUE(meters->empty());
}

// A counter advancing by known amounts through several wrap-arounds integrates to exactly the
// known total, in integer microjoules, per zone and summed.
TEST(Rapl, IntegratesExactlyAcrossWrapArounds) {
  FakeTree tree;
  const std::uint64_t range0 = 1'000'000;  // tiny ranges: wraps every few steps
  const std::uint64_t range1 = 777'777;
  tree.AddRaplZone("intel-rapl:0", "package-0", range0, 999'000);
  tree.AddRaplZone("intel-rapl:1", "package-1", range1, 5);
  absl::StatusOr<MeterList> meters = DiscoverRaplZones({.sysfs_root = tree.powercap()});
  ASSERT_TRUE(meters.ok());
  ASSERT_EQ(meters->size(), 2u);
  ASSERT_EQ(*(*meters)[0]->Read(T(0)), 0u) << "the first read primes";
  ASSERT_EQ(*(*meters)[1]->Read(T(0)), 0u);

  std::uint64_t truth0 = 0, truth1 = 0, got0 = 0, got1 = 0;
  std::uint64_t c0 = 999'000, c1 = 5;
  int wraps0 = 0, wraps1 = 0;
  for (int step = 1; step <= 50; ++step) {
    const std::uint64_t d0 = 333'333 + static_cast<std::uint64_t>(step) * 7;
    const std::uint64_t d1 = 250'001 + static_cast<std::uint64_t>(step % 5) * 11'111;
    truth0 += d0;
    truth1 += d1;
    if (c0 + d0 >= range0) ++wraps0;
    if (c1 + d1 >= range1) ++wraps1;
    c0 = (c0 + d0) % range0;
    c1 = (c1 + d1) % range1;
    tree.SetRaplEnergy("intel-rapl:0", c0);
    tree.SetRaplEnergy("intel-rapl:1", c1);
    absl::StatusOr<std::uint64_t> r0 = (*meters)[0]->Read(T(step));
    absl::StatusOr<std::uint64_t> r1 = (*meters)[1]->Read(T(step));
    ASSERT_TRUE(r0.ok() && r1.ok());
    got0 += *r0;
    got1 += *r1;
  }
  EXPECT_GE(wraps0, 10);
  EXPECT_GE(wraps1, 10);
  EXPECT_EQ(got0, truth0);
  EXPECT_EQ(got1, truth1);
  EXPECT_EQ(got0 + got1, truth0 + truth1);
  EXPECT_EQ((*meters)[0]->counter_resets(), 0u);
}

TEST(Rapl, CounterResetIsCountedAndNeverNegative) {
  FakeTree tree;
  tree.AddRaplZone("intel-rapl:0", "package-0", 262143328850, 200'000'000'000);
  MeterList meters = *DiscoverRaplZones({.sysfs_root = tree.powercap()});
  ASSERT_EQ(*meters[0]->Read(T(0)), 0u);
  // Went backwards by far more than any wrap in 1 s could explain: a reset to 0, then 40 J.
  tree.SetRaplEnergy("intel-rapl:0", 40'000'000);
  absl::StatusOr<std::uint64_t> r = meters[0]->Read(T(1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 40'000'000u);
  EXPECT_EQ(meters[0]->counter_resets(), 1u);
  tree.SetRaplEnergy("intel-rapl:0", 90'000'000);
  EXPECT_EQ(*meters[0]->Read(T(2)), 50'000'000u);
}

TEST(Rapl, VanishedZoneIsNotFoundWithRemediationAndReprimes) {
  FakeTree tree;
  tree.AddRaplZone("intel-rapl:0", "package-0", 262143328850, 1000);
  MeterList meters = *DiscoverRaplZones({.sysfs_root = tree.powercap()});
  ASSERT_EQ(*meters[0]->Read(T(0)), 0u);
  tree.Remove("powercap/intel-rapl:0");
  absl::StatusOr<std::uint64_t> r = meters[0]->Read(T(1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(meters[0]->remediation(), HasSubstr("vanished"));
  tree.AddRaplZone("intel-rapl:0", "package-0", 262143328850, 9'000'000);
  EXPECT_EQ(*meters[0]->Read(T(2)), 0u) << "re-primes: the stretch it was gone is not invented";
  tree.SetRaplEnergy("intel-rapl:0", 9'500'000);
  EXPECT_EQ(*meters[0]->Read(T(3)), 500'000u);
}

// energy_uj is root-only since CVE-2020-8694. Tests often run as root, for whom file modes do not
// apply, so the read is done by a child that drops to nobody.
TEST(Rapl, PermissionDeniedNamesTheFixAndTheCve) {
  FakeTree tree;
  tree.AddRaplZone("intel-rapl:0", "package-0", 262143328850, 1000);
  std::filesystem::permissions(tree.path("powercap/intel-rapl:0/energy_uj"),
                               std::filesystem::perms::owner_write);
  for (const char* dir : {"", "powercap", "powercap/intel-rapl:0"}) {
    std::filesystem::permissions(tree.path(dir), std::filesystem::perms::all);
  }
  MeterList meters = *DiscoverRaplZones({.sysfs_root = tree.powercap()});
  ASSERT_EQ(meters.size(), 1u);
  auto check = [&]() -> int {
    absl::StatusOr<std::uint64_t> r = meters[0]->Read(T(0));
    if (r.status().code() != absl::StatusCode::kPermissionDenied) return 1;
    if (meters[0]->remediation().find("CVE-2020-8694") == std::string::npos) return 2;
    if (meters[0]->remediation().find("docs/energy.md#rapl-permissions") == std::string::npos) {
      return 3;
    }
    return 0;
  };
  if (::geteuid() != 0) {
    EXPECT_EQ(check(), 0);
    return;
  }
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    ::_exit(check());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: wrong code, 2/3: remediation incomplete, 10: setuid";
}

}  // namespace
}  // namespace greenloop::energy
