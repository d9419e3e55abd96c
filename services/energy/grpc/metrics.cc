#include "services/energy/grpc/metrics.h"

namespace greenloop::energy {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

}  // namespace

EnergyMetrics::EnergyMetrics(prometheus::Registry& registry, std::string node, CarbonFactors carbon,
                             absl::Duration run_series_grace)
    : node_(std::move(node)),
      carbon_(std::move(carbon)),
      grace_(run_series_grace),
      node_energy_(BuildCounter()
                       .Name("greenloop_node_energy_joules_total")
                       .Help("Energy the node used since the collector started, in joules, by "
                             "domain (node = the total without double counting) and source")
                       .Register(registry)),
      node_power_(BuildGauge()
                      .Name("greenloop_node_power_watts")
                      .Help("Average power over the latest sampling interval, in watts")
                      .Register(registry)),
      run_energy_(BuildCounter()
                      .Name("greenloop_run_energy_joules_total")
                      .Help("Active energy (above idle) attributed to a run on this node, in "
                            "joules, by domain (node = the run's total)")
                      .Register(registry)),
      run_carbon_(BuildCounter()
                      .Name("greenloop_run_carbon_grams_total")
                      .Help("Carbon of a run's active energy on this node, in grams CO2e")
                      .Register(registry)),
      reader_errors_(BuildCounter()
                         .Name("greenloop_energy_reader_errors_total")
                         .Help("Failed meter reads, by meter")
                         .Register(registry)),
      counter_resets_(BuildCounter()
                          .Name("greenloop_energy_meter_resets_total")
                          .Help("Hardware energy counters that restarted, by meter")
                          .Register(registry)),
      estimated_(BuildGauge()
                     .Name("greenloop_energy_domain_estimated")
                     .Help("1 while a domain's figure on this node is estimated rather than "
                           "measured")
                     .Register(registry)),
      lag_(BuildGauge()
               .Name("greenloop_energy_sample_lag_seconds")
               .Help("How late the latest sampling tick ran against its schedule, in seconds")
               .Register(registry)
               .Add({{"node", node_}})),
      registered_runs_(BuildGauge()
                           .Name("greenloop_energy_registered_runs")
                           .Help("Runs with processes registered on this node")
                           .Register(registry)
                           .Add({{"node", node_}})),
      buffered_samples_(BuildGauge()
                            .Name("greenloop_energy_storage_buffered_samples")
                            .Help("Sample rows waiting to be written to PostgreSQL")
                            .Register(registry)
                            .Add({{"node", node_}})),
      dropped_samples_(BuildCounter()
                           .Name("greenloop_energy_storage_dropped_samples_total")
                           .Help("Sample rows dropped because the buffer was full during a "
                                 "PostgreSQL outage")
                           .Register(registry)
                           .Add({{"node", node_}})),
      failed_writes_(BuildCounter()
                         .Name("greenloop_energy_storage_failed_writes_total")
                         .Help("Batches PostgreSQL did not accept (kept and retried)")
                         .Register(registry)
                         .Add({{"node", node_}})),
      storage_up_(BuildGauge()
                      .Name("greenloop_energy_storage_up")
                      .Help("1 when the latest write to PostgreSQL succeeded")
                      .Register(registry)
                      .Add({{"node", node_}})),
      auth_disabled_(BuildGauge()
                         .Name("greenloop_energy_auth_disabled")
                         .Help("1 when the collector accepts calls without a token (local "
                               "development)")
                         .Register(registry)
                         .Add({{"node", node_}})) {
  storage_up_.Set(1);
}

void EnergyMetrics::Observe(const IntervalSample& sample, absl::Duration lag) {
  lag_.Set(absl::ToDoubleSeconds(lag));
  registered_runs_.Set(static_cast<double>(sample.runs.size()));
  if (sample.interval <= absl::ZeroDuration()) return;
  std::map<std::pair<Domain, Source>, std::pair<double, double>> by_key;  // joules, watts
  for (const ZoneSample& z : sample.zones) {
    auto& [joules, watts] = by_key[{z.domain, z.source}];
    joules += z.energy_joules;
    watts += z.power_watts;
  }
  for (const auto& [key, value] : by_key) {
    std::map<std::string, std::string> labels = {{"node", node_},
                                                 {"domain", std::string(DomainName(key.first))},
                                                 {"source", std::string(SourceName(key.second))}};
    node_energy_.Add(labels).Increment(value.first);
    node_power_.Add(labels).Set(value.second);
  }
  absl::MutexLock lock(&mu_);
  for (const RunShare& run : sample.runs) {
    std::map<Domain, double> by_domain;
    for (const auto& [key, joules] : run.active_joules_by_key) by_domain[key.domain] += joules;
    std::vector<prometheus::Counter*>& series = run_series_[run.run_id];
    for (const auto& [domain, joules] : by_domain) {
      prometheus::Counter& c = run_energy_.Add(
          {{"run", run.run_id}, {"node", node_}, {"domain", std::string(DomainName(domain))}});
      c.Increment(joules);
      if (std::find(series.begin(), series.end(), &c) == series.end()) series.push_back(&c);
    }
    prometheus::Counter& carbon = run_carbon_.Add({{"run", run.run_id}});
    carbon.Increment(CarbonGrams(run.active_joules, carbon_));
    if (std::find(series.begin(), series.end(), &carbon) == series.end()) {
      series.push_back(&carbon);
    }
  }
}

void EnergyMetrics::ObserveMeters(const std::vector<MeterHealth>& meters,
                                  const std::set<Domain>& estimated) {
  absl::MutexLock lock(&mu_);
  for (const MeterHealth& m : meters) {
    std::map<std::string, std::string> labels = {{"node", node_}, {"meter", m.info.id}};
    prometheus::Counter& errors = reader_errors_.Add(labels);
    std::uint64_t& seen = seen_errors_[m.info.id];
    if (m.read_errors > seen) errors.Increment(static_cast<double>(m.read_errors - seen));
    seen = m.read_errors;
    prometheus::Counter& resets = counter_resets_.Add(labels);
    std::uint64_t& seen_r = seen_resets_[m.info.id];
    if (m.counter_resets > seen_r) resets.Increment(static_cast<double>(m.counter_resets - seen_r));
    seen_r = m.counter_resets;
  }
  for (Domain d : {Domain::kPackage, Domain::kDram, Domain::kGpu, Domain::kNode}) {
    estimated_.Add({{"node", node_}, {"domain", std::string(DomainName(d))}})
        .Set(estimated.contains(d) ? 1 : 0);
  }
}

void EnergyMetrics::ObserveWriter(const WriterStats& stats) {
  absl::MutexLock lock(&mu_);
  buffered_samples_.Set(static_cast<double>(stats.buffered_samples));
  if (stats.dropped_samples > seen_dropped_) {
    dropped_samples_.Increment(static_cast<double>(stats.dropped_samples - seen_dropped_));
  }
  seen_dropped_ = stats.dropped_samples;
  if (stats.failed_writes > seen_failed_) {
    failed_writes_.Increment(static_cast<double>(stats.failed_writes - seen_failed_));
  }
  seen_failed_ = stats.failed_writes;
  storage_up_.Set(stats.store_up ? 1 : 0);
}

void EnergyMetrics::ExpireRuns(const std::vector<RunEnergy>& runs, absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (const RunEnergy& r : runs) {
    if (r.active || !r.unregister_time.has_value() || *r.unregister_time + grace_ > now) continue;
    auto it = run_series_.find(r.run_id);
    if (it == run_series_.end()) continue;
    for (prometheus::Counter* c : it->second) {
      // Each family Remove()s only its own metrics; a pointer that is not in it is ignored.
      run_energy_.Remove(c);
      run_carbon_.Remove(c);
    }
    run_series_.erase(it);
  }
}

void EnergyMetrics::SetAuthDisabled(bool disabled) { auth_disabled_.Set(disabled ? 1 : 0); }

}  // namespace greenloop::energy
