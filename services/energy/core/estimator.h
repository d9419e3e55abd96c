// The estimator: energy where no meter is readable (VMs, containers, missing permissions), modelled
// from CPU utilisation. Its figures always carry source "estimated".
#pragma once

#include <string>

#include "services/energy/core/meter.h"
#include "services/energy/core/procfs.h"

namespace greenloop::energy {

/// Per-logical-CPU defaults of the linear power model, from the Cloud Carbon Footprint
/// methodology's AWS coefficients (average over AWS instance families: 0.74 W per vCPU at idle,
/// 3.5 W per vCPU at 100 %). docs/energy.md cites them; config overrides them per node.
inline constexpr double kDefaultIdleWattsPerCpu = 0.74;
inline constexpr double kDefaultMaxWattsPerCpu = 3.5;

struct EstimatorOptions {
  Domain domain = Domain::kPackage;
  std::string zone = "cpu";  // "cpu" when it stands for the whole node's CPUs, else the zone it
                             // replaces ("package-0", "dram-0")
  double idle_watts = 0;     // P_idle
  double tdp_watts = 0;      // power at 100 % utilisation
};

/// \brief P = P_idle + (TDP − P_idle) × utilisation, integrated over the time between reads, with
/// utilisation the node's busy share of CPU time from /proc/stat.
///
/// Thread-safety: none (read from the sampling thread only).
class EstimatorMeter final : public Meter {
 public:
  /// `procfs` must outlive the meter.
  EstimatorMeter(EstimatorOptions options, const ProcFs* procfs);

  const MeterInfo& info() const override { return info_; }
  absl::StatusOr<std::uint64_t> Read(absl::Time now) override;
  std::string SaveState() const override;
  bool RestoreState(std::string_view state, absl::Time saved_at) override;

  double idle_watts() const { return options_.idle_watts; }
  /// Utilisation over the last interval, in [0, 1].
  double last_utilisation() const { return last_utilisation_; }

 private:
  EstimatorOptions options_;
  MeterInfo info_;
  const ProcFs* procfs_;
  bool primed_ = false;
  CpuTimes previous_;
  absl::Time previous_time_;
  double carry_uj_ = 0;  // fractional microjoules not yet reported
  double last_utilisation_ = 0;
};

}  // namespace greenloop::energy
