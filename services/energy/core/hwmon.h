// hwmon sensors (/sys/class/hwmon/hwmon*): power*_input (microwatts, polled and integrated) and
// energy*_input (microjoules, differenced), as boards, PSUs and some CPUs (amd_energy) expose them.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "services/energy/core/meter.h"

namespace greenloop::energy {

/// Returns one meter per power*_input and energy*_input file under `sysfs_root`
/// ("/sys/class/hwmon"), zone "<chip name>:<label>" (label from the matching *_label file, else
/// the attribute name, e.g. "acpi_power_meter:power1"). A missing tree yields an empty list.
absl::StatusOr<MeterList> DiscoverHwmonSensors(const std::string& sysfs_root);

}  // namespace greenloop::energy
