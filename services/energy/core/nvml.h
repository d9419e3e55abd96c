// NVIDIA GPUs through NVML, loaded at run time with dlopen("libnvidia-ml.so.1"): no CUDA or NVML
// header or library is needed to build, and a node without the driver simply has no GPU meters.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/energy/core/meter.h"

namespace greenloop::energy {

/// One GPU as NVML reports it.
struct GpuDescription {
  unsigned index = 0;
  std::string uuid;
  std::string name;
  bool has_energy_counter = false;  // nvmlDeviceGetTotalEnergyConsumption works (Volta and newer)
};

/// GPU meters and the devices behind them.
struct NvmlDiscovery {
  MeterList meters;  // one per GPU: its energy counter, or its power polled and integrated
  std::vector<GpuDescription> gpus;
};

/// Loads NVML from `library` (a soname or path; default "libnvidia-ml.so.1"), initialises it and
/// returns a meter per GPU, zone = the GPU's UUID. NOT_FOUND when the library cannot be loaded
/// (no NVIDIA driver: the caller logs one info line and goes on without GPU meters); UNAVAILABLE
/// when it loads but nvmlInit fails or a required symbol is missing (message says which).
absl::StatusOr<NvmlDiscovery> DiscoverNvmlGpus(const std::string& library = "libnvidia-ml.so.1");

}  // namespace greenloop::energy
