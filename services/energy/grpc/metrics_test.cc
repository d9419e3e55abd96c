#include "services/energy/grpc/metrics.h"

#include <prometheus/text_serializer.h>

#include "gtest/gtest.h"

namespace greenloop::energy {
namespace {

std::string Text(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

absl::Time T(double s) { return absl::FromUnixSeconds(1'700'000'000) + absl::Seconds(s); }

TEST(EnergyMetrics, CountsEnergyErrorsAndRemovesEndedRunsAfterTheGrace) {
  prometheus::Registry registry;
  EnergyMetrics metrics(registry, "node-a", {.pue = 1, .grid_intensity_grams_per_kwh = 3600},
                        absl::Minutes(5));
  IntervalSample s;
  s.time = T(1);
  s.interval = absl::Seconds(1);
  s.zones.push_back({.domain = Domain::kPackage,
                     .zone = "package-0",
                     .source = Source::kRapl,
                     .energy_joules = 30,
                     .power_watts = 30});
  s.zones.push_back({.domain = Domain::kPackage,
                     .zone = "package-1",
                     .source = Source::kRapl,
                     .energy_joules = 10,
                     .power_watts = 10});
  RunShare share{.run_id = "run-a", .cpu_share = 0.5, .active_joules = 1000};
  share.active_joules_by_key[{Domain::kNode, Source::kRapl}] = 1000;
  s.runs.push_back(share);
  metrics.Observe(s, absl::Milliseconds(3));
  metrics.Observe(s, absl::Milliseconds(3));

  std::string text = Text(registry);
  EXPECT_NE(
      text.find(
          R"(greenloop_node_energy_joules_total{domain="package",node="node-a",source="rapl"} 80)"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(R"(greenloop_node_power_watts{domain="package",node="node-a",source="rapl"} 40)"),
      std::string::npos);
  EXPECT_NE(
      text.find(
          R"(greenloop_run_energy_joules_total{domain="node",node="node-a",run="run-a"} 2000)"),
      std::string::npos);
  // 2000 J = 1/1800 kWh at 3600 g/kWh: 2 g.
  EXPECT_NE(text.find(R"(greenloop_run_carbon_grams_total{run="run-a"} 2)"), std::string::npos);

  MeterHealth failing{.read_errors = 3};
  failing.info.id = "rapl:intel-rapl:0";
  metrics.ObserveMeters({failing}, {Domain::kPackage});
  failing.read_errors = 5;
  metrics.ObserveMeters({failing}, {Domain::kPackage});
  text = Text(registry);
  EXPECT_NE(
      text.find(
          R"(greenloop_energy_reader_errors_total{meter="rapl:intel-rapl:0",node="node-a"} 5)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(greenloop_energy_domain_estimated{domain="package",node="node-a"} 1)"),
            std::string::npos);

  RunEnergy ended{.run_id = "run-a", .active = false};
  ended.unregister_time = T(10);
  metrics.ExpireRuns({ended}, T(10) + absl::Minutes(4));
  EXPECT_NE(Text(registry).find(R"(run="run-a")"), std::string::npos) << "kept during the grace";
  metrics.ExpireRuns({ended}, T(10) + absl::Minutes(6));
  EXPECT_EQ(Text(registry).find(R"(run="run-a")"), std::string::npos) << "removed after it";
}

}  // namespace
}  // namespace greenloop::energy
