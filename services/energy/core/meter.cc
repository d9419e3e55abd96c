#include "services/energy/core/meter.h"

namespace greenloop::energy {

std::string_view DomainName(Domain domain) {
  switch (domain) {
    case Domain::kPackage:
      return "package";
    case Domain::kCore:
      return "core";
    case Domain::kUncore:
      return "uncore";
    case Domain::kDram:
      return "dram";
    case Domain::kPsys:
      return "psys";
    case Domain::kGpu:
      return "gpu";
    case Domain::kHwmon:
      return "hwmon";
    case Domain::kNode:
      return "node";
  }
  return "unknown";
}

std::string_view SourceName(Source source) {
  switch (source) {
    case Source::kRapl:
      return "rapl";
    case Source::kNvml:
      return "nvml";
    case Source::kHwmon:
      return "hwmon";
    case Source::kEstimated:
      return "estimated";
  }
  return "unknown";
}

bool IsCpuDomain(Domain domain) { return domain != Domain::kGpu; }

}  // namespace greenloop::energy
