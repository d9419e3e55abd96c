// What the energy collector reads: one Meter per zone or device, each turning its hardware (or
// model) into energy deltas in integer microjoules.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace greenloop::energy {

/// What part of the machine a meter covers (mirrors greenloop.v1.EnergyDomain).
enum class Domain { kPackage, kCore, kUncore, kDram, kPsys, kGpu, kHwmon, kNode };

/// How a figure was obtained (mirrors greenloop.v1.EnergySource).
enum class Source { kRapl, kNvml, kHwmon, kEstimated };

/// How a meter reads (mirrors greenloop.v1.MeterKind).
enum class MeterKind {
  kRaplZone,
  kNvmlEnergyCounter,
  kNvmlPowerPoll,
  kHwmonEnergy,
  kHwmonPower,
  kEstimator,
};

/// "package", "core", ..., "node": the spelling in metric labels, logs and the database.
std::string_view DomainName(Domain domain);
/// "rapl", "nvml", "hwmon", "estimated".
std::string_view SourceName(Source source);
/// True for the domains whose energy is split among runs by CPU time (everything but GPUs).
bool IsCpuDomain(Domain domain);

/// Static description of a meter, fixed at discovery.
struct MeterInfo {
  std::string
      id;  // stable on this node, e.g. "rapl:intel-rapl:0", "nvml:GPU-…", "estimator:package"
  MeterKind kind = MeterKind::kEstimator;
  Domain domain = Domain::kPackage;
  std::string zone;  // "package-0", "dram-1", a GPU UUID, a hwmon label, "cpu"
  Source source = Source::kEstimated;
  std::string path;  // where it reads: a sysfs directory, "nvml:<uuid>", "/proc/stat"
  // Zone this one is contained in ("package-0" for its core and uncore subzones); empty for
  // top-level zones. Contained zones never add to the node total.
  std::string parent_zone;
  double max_energy_range_joules = 0;  // RAPL counter range; 0 for meters without a counter
  double tdp_watts = 0;                // estimator only
  double model_idle_watts = -1;        // estimator: the model's P_idle; -1: measure the baseline
};

/// \brief One reader of energy: a RAPL zone, a GPU, a hwmon sensor, or the estimator.
///
/// Read() returns the energy since the previous successful Read(), in microjoules, never negative:
/// counter meters difference their counter (wrap-around removed), power meters integrate their
/// power over the time between reads. The first Read() primes the meter and returns 0.
///
/// A failed Read() returns a Status whose message says what failed, and remediation() then says
/// what an operator can do about it; the meter stays usable and a later Read() may succeed again
/// (it re-primes, so the energy of the failed stretch is not invented).
///
/// Thread-safety: none; the collector reads each meter from its sampling thread only.
class Meter {
 public:
  virtual ~Meter() = default;
  virtual const MeterInfo& info() const = 0;
  /// Returns microjoules since the previous successful read, measured up to `now`.
  virtual absl::StatusOr<std::uint64_t> Read(absl::Time now) = 0;
  /// What to do about the last error; empty when nothing can be done or the meter is healthy.
  virtual std::string remediation() const { return {}; }
  /// Returns what Restore() needs to continue across a collector restart: the last raw counter
  /// (RAPL, NVML and hwmon energy counters, the estimator's /proc/stat times). Empty for meters
  /// that integrate polled power: their energy while the collector was down is unknowable.
  virtual std::string SaveState() const { return {}; }
  /// Primes the meter from a SaveState() taken at `saved_at`, so that the next Read() covers the
  /// time since then (the downtime of a restarted collector). Returns false when `state` does not
  /// apply (empty, malformed, or a meter that cannot continue); the meter then primes normally.
  virtual bool RestoreState(std::string_view state, absl::Time saved_at) {
    (void)state;
    (void)saved_at;
    return false;
  }
  /// Times a hardware counter restarted (went backwards without a plausible wrap) since discovery.
  virtual std::uint64_t counter_resets() const { return 0; }
};

using MeterList = std::vector<std::unique_ptr<Meter>>;

}  // namespace greenloop::energy
