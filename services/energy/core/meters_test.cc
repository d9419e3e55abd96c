#include <dlfcn.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/energy/core/estimator.h"
#include "services/energy/core/fake_tree.h"
#include "services/energy/core/hwmon.h"
#include "services/energy/core/nvml.h"
#include "services/energy/core/procfs.h"

namespace greenloop::energy {
namespace {

using testing::FakeTree;

absl::Time T(double seconds) {
  return absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(seconds);
}

TEST(ProcFs, ParsesStatLinesWithAwkwardCommandNames) {
  absl::StatusOr<ProcessStat> s = ParseProcessStat(
      "4242 (python (worker) 3) R 17 1 1 0 -1 0 0 0 0 0 150 50 7 3 20 0 1 0 123456 0 0");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(s->ppid, 17);
  EXPECT_EQ(s->cpu_ticks, 150u + 50u + 7u + 3u);
  EXPECT_EQ(s->start_ticks, 123456u);
  EXPECT_FALSE(ParseProcessStat("garbage").ok());
}

TEST(ProcFs, ReadsTheRealProcOfThisMachine) {
  ProcFs procfs;
  absl::StatusOr<CpuTimes> cpu = procfs.ReadCpuTimes();
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_GT(cpu->total_ticks, cpu->busy_ticks);
  absl::StatusOr<ProcessStat> self = procfs.ReadProcess(::getpid());
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_EQ(procfs.ReadProcess(999'999'999).status().code(), absl::StatusCode::kNotFound);
  EXPECT_GE(procfs.ReadCpuInfo().logical_cpus, 1);
}

TEST(Estimator, LinearInUtilisation) {
  FakeTree tree;
  ProcFs procfs(tree.proc());
  tree.SetCpu(1000, 1000);
  EstimatorMeter meter(
      {.domain = Domain::kPackage, .zone = "cpu", .idle_watts = 10, .tdp_watts = 50}, &procfs);
  EXPECT_EQ(meter.info().source, Source::kEstimated);
  ASSERT_EQ(*meter.Read(T(0)), 0u);
  tree.SetCpu(1000 + 50, 1000 + 50);  // 50 % busy over 2 s: P = 10 + 40 × 0.5 = 30 W
  EXPECT_EQ(*meter.Read(T(2)), 60'000'000u);
  EXPECT_DOUBLE_EQ(meter.last_utilisation(), 0.5);
  tree.SetCpu(1050, 1050 + 100);  // idle over 1 s: 10 J
  EXPECT_EQ(*meter.Read(T(3)), 10'000'000u);
  tree.SetCpu(1050 + 100, 1150);  // fully busy over 0.5 s: 25 J
  EXPECT_EQ(*meter.Read(T(3.5)), 25'000'000u);
}

TEST(Estimator, SavesAndRestoresAcrossARestart) {
  FakeTree tree;
  ProcFs procfs(tree.proc());
  tree.SetCpu(0, 0);
  EstimatorOptions options{.idle_watts = 10, .tdp_watts = 50};
  EstimatorMeter before(options, &procfs);
  ASSERT_EQ(*before.Read(T(0)), 0u);
  std::string state = before.SaveState();
  ASSERT_FALSE(state.empty());
  tree.SetCpu(100, 100);  // 50 % over the 10 s the collector was down: 300 J
  EstimatorMeter after(options, &procfs);
  ASSERT_TRUE(after.RestoreState(state, T(0)));
  EXPECT_EQ(*after.Read(T(10)), 300'000'000u);
  EXPECT_FALSE(after.RestoreState("not numbers", T(0)));
}

TEST(Hwmon, IntegratesPowerAndDifferencesEnergy) {
  FakeTree tree;
  tree.Write("hwmon/hwmon0/name", "acpi_power_meter\n");
  tree.Write("hwmon/hwmon0/power1_input", "100000000\n");  // 100 W in µW
  tree.Write("hwmon/hwmon1/name", "amd_energy\n");
  tree.Write("hwmon/hwmon1/energy1_input", "5000000\n");
  tree.Write("hwmon/hwmon1/energy1_label", "Esocket0\n");
  tree.Write("hwmon/hwmon1/temp1_input", "40000\n");  // not power: ignored
  absl::StatusOr<MeterList> meters = DiscoverHwmonSensors(tree.path("hwmon"));
  ASSERT_TRUE(meters.ok());
  ASSERT_EQ(meters->size(), 2u);
  Meter& power = *(*meters)[0];
  Meter& energy = *(*meters)[1];
  EXPECT_EQ(power.info().zone, "acpi_power_meter:power1");
  EXPECT_EQ(power.info().kind, MeterKind::kHwmonPower);
  EXPECT_EQ(energy.info().zone, "amd_energy:Esocket0");
  ASSERT_EQ(*power.Read(T(0)), 0u);
  ASSERT_EQ(*energy.Read(T(0)), 0u);
  tree.Write("hwmon/hwmon0/power1_input", "200000000\n");  // 100 W -> 200 W over 2 s: 300 J
  tree.Write("hwmon/hwmon1/energy1_input", "7500000\n");
  EXPECT_EQ(*power.Read(T(2)), 300'000'000u);
  EXPECT_EQ(*energy.Read(T(2)), 2'500'000u);
}

TEST(Nvml, AbsentLibraryIsNotFound) {
  absl::StatusOr<NvmlDiscovery> d = DiscoverNvmlGpus("libgreenloop-no-such-nvml.so.1");
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
}

TEST(Nvml, EnergyCounterAndPowerPollingThroughTheRealDlopenPath) {
  void* handle = ::dlopen(GREENLOOP_FAKE_NVML, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << ::dlerror();
  auto set = reinterpret_cast<void (*)(int, unsigned long long, unsigned)>(
      ::dlsym(handle, "fake_nvml_set"));
  ASSERT_NE(set, nullptr);
  set(0, 1'000'000, 0);  // 1000 J so far
  set(1, 0, 250'000);    // 250 W
  absl::StatusOr<NvmlDiscovery> d = DiscoverNvmlGpus(GREENLOOP_FAKE_NVML);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->gpus.size(), 2u);
  EXPECT_EQ(d->gpus[0].uuid, "GPU-fake-0");
  EXPECT_TRUE(d->gpus[0].has_energy_counter);
  EXPECT_FALSE(d->gpus[1].has_energy_counter);
  EXPECT_EQ(d->meters[0]->info().kind, MeterKind::kNvmlEnergyCounter);
  EXPECT_EQ(d->meters[1]->info().kind, MeterKind::kNvmlPowerPoll);
  EXPECT_EQ(d->meters[1]->info().domain, Domain::kGpu);
  ASSERT_EQ(*d->meters[0]->Read(T(0)), 0u);
  ASSERT_EQ(*d->meters[1]->Read(T(0)), 0u);
  set(0, 1'000'750, 0);  // +750 mJ
  set(1, 0, 350'000);    // 250 W -> 350 W over 4 s: 1200 J
  EXPECT_EQ(*d->meters[0]->Read(T(4)), 750'000u);
  EXPECT_EQ(*d->meters[1]->Read(T(4)), 1'200'000'000u);
  ::dlclose(handle);
}

}  // namespace
}  // namespace greenloop::energy
