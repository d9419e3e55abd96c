// RAPL (Running Average Power Limit) energy counters, read through the Linux powercap sysfs tree:
// Intel, and AMD since Linux 5.8, both under /sys/class/powercap/intel-rapl:*.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "services/energy/core/meter.h"

namespace greenloop::energy {

struct RaplOptions {
  std::string sysfs_root = "/sys/class/powercap";  // tests point it at a fake tree
  // A counter that goes backwards is a wrap-around unless the wrapped delta would mean more than
  // this average power over the interval; then it is a reset (counted, energy since the reset
  // taken as the delta). 5 kW is far above any socket and far below a full 2^32 µJ wrap per second.
  double max_plausible_watts = 5000;
};

/// Returns one meter per RAPL zone and subzone under `options.sysfs_root` (`intel-rapl:N` and
/// `intel-rapl:N:M`), in sysfs order. Zones are named from their `name` attribute: top-level
/// zones as is ("package-0", "psys"), subzones with their socket ("core-0", "uncore-0",
/// "dram-0"). core and uncore record their package as parent_zone (contained in it); dram does
/// not (RAPL's package domain excludes DRAM). `intel-rapl-mmio:*` zones repeat the package
/// counter through MMIO and are skipped.
///
/// A missing tree yields an empty list (no RAPL here: a VM, a container without /sys, an ARM box).
/// A zone whose energy_uj cannot be read is still returned: it fails on Read() with
/// PERMISSION_DENIED and a remediation, so the collector reports it and falls back.
absl::StatusOr<MeterList> DiscoverRaplZones(const RaplOptions& options);

/// Returns the number of microjoules between two readings of a counter that wraps at
/// `max_range_uj` (RAPL's max_energy_range_uj): `current - previous` when it went up, otherwise
/// `max_range_uj - previous + current`. Exposed for tests.
std::uint64_t CounterDelta(std::uint64_t previous, std::uint64_t current,
                           std::uint64_t max_range_uj);

}  // namespace greenloop::energy
