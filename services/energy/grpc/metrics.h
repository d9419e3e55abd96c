// The energy collector's Prometheus series (names in docs/architecture.md and docs/energy.md).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/energy/core/collector.h"
#include "services/energy/core/store.h"

namespace greenloop::energy {

/// \brief Exports the collector's readings, meter health and storage state.
///
/// Label sets are bounded: node series by (domain, source); run series exist while a run is
/// registered and for `run_series_grace` after it ended, then they are removed.
///
/// Thread-safety: all methods are safe from any thread.
class EnergyMetrics final {
 public:
  EnergyMetrics(prometheus::Registry& registry, std::string node, CarbonFactors carbon,
                absl::Duration run_series_grace);

  /// Adds one interval's energy to the counters and sets the power gauges.
  void Observe(const IntervalSample& sample, absl::Duration lag);
  /// Updates reader-error counters and the estimated-domain gauges.
  void ObserveMeters(const std::vector<MeterHealth>& meters, const std::set<Domain>& estimated);
  /// Updates the storage gauges and counters.
  void ObserveWriter(const WriterStats& stats);
  /// Removes the series of runs that ended more than the grace period before `now`.
  void ExpireRuns(const std::vector<RunEnergy>& runs, absl::Time now);
  /// Sets greenloop_energy_auth_disabled.
  void SetAuthDisabled(bool disabled);

 private:
  const std::string node_;
  const CarbonFactors carbon_;
  const absl::Duration grace_;
  prometheus::Family<prometheus::Counter>& node_energy_;
  prometheus::Family<prometheus::Gauge>& node_power_;
  prometheus::Family<prometheus::Counter>& run_energy_;
  prometheus::Family<prometheus::Counter>& run_carbon_;
  prometheus::Family<prometheus::Counter>& reader_errors_;
  prometheus::Family<prometheus::Counter>& counter_resets_;
  prometheus::Family<prometheus::Gauge>& estimated_;
  prometheus::Gauge& lag_;
  prometheus::Gauge& registered_runs_;
  prometheus::Gauge& buffered_samples_;
  prometheus::Counter& dropped_samples_;
  prometheus::Counter& failed_writes_;
  prometheus::Gauge& storage_up_;
  prometheus::Gauge& auth_disabled_;

  absl::Mutex mu_;
  std::map<std::string, std::uint64_t> seen_errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::uint64_t> seen_resets_ ABSL_GUARDED_BY(mu_);
  std::uint64_t seen_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t seen_failed_ ABSL_GUARDED_BY(mu_) = 0;
  // Run series to remove once their run has ended for longer than the grace period.
  std::map<std::string, std::vector<prometheus::Counter*>> run_series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace greenloop::energy
