#include "services/energy/core/nvml.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "fmt/format.h"

// NVML's opaque device type, declared at global scope as nvml.h does: a pointer type declared in
// our own namespace would make every call through dlsym'd pointers a call through the wrong
// function type (UBSan's -fsanitize=function reports it against the test's stand-in library).
struct nvmlDevice_st;

namespace greenloop::energy {
namespace {

// The few NVML declarations we use, from NVML's public API (nvml.h); the ABI is stable.
using nvmlReturn_t = int;
using nvmlDevice_t = ::nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;

// \brief The loaded library: dlopen handle and the resolved entry points. Shared by every GPU
// meter; nvmlShutdown and dlclose when the last one goes.
class NvmlLibrary final {
 public:
  static absl::StatusOr<std::shared_ptr<NvmlLibrary>> Load(const std::string& path) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      return absl::NotFoundError(
          fmt::format("NVML not available ({})", why != nullptr ? why : path));
    }
    auto lib = std::shared_ptr<NvmlLibrary>(new NvmlLibrary(handle));
    if (absl::Status s = lib->Resolve(); !s.ok()) return s;
    if (nvmlReturn_t r = lib->init_(); r != kNvmlSuccess) {
      return absl::UnavailableError(fmt::format("nvmlInit_v2 failed: {}", lib->Error(r)));
    }
    lib->initialised_ = true;
    return lib;
  }

  ~NvmlLibrary() {
    if (initialised_ && shutdown_ != nullptr) shutdown_();
    ::dlclose(handle_);
  }

  std::string Error(nvmlReturn_t r) const {
    const char* text = error_string_ != nullptr ? error_string_(r) : nullptr;
    return text != nullptr ? fmt::format("{} (nvmlReturn {})", text, r)
                           : fmt::format("nvmlReturn {}", r);
  }

  nvmlReturn_t (*init_)() = nullptr;
  nvmlReturn_t (*shutdown_)() = nullptr;
  const char* (*error_string_)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*get_count_)(unsigned*) = nullptr;
  nvmlReturn_t (*get_handle_)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*get_uuid_)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*get_name_)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*get_energy_)(nvmlDevice_t, unsigned long long*) = nullptr;  // millijoules
  nvmlReturn_t (*get_power_)(nvmlDevice_t, unsigned*) = nullptr;             // milliwatts

 private:
  explicit NvmlLibrary(void* handle) : handle_(handle) {}

  template <typename F>
  absl::Status Bind(F*& fn, const char* name) {
    fn = reinterpret_cast<F*>(::dlsym(handle_, name));
    if (fn == nullptr) return absl::UnavailableError(fmt::format("NVML lacks {}", name));
    return absl::OkStatus();
  }

  absl::Status Resolve() {
    for (absl::Status s :
         {Bind(init_, "nvmlInit_v2"), Bind(shutdown_, "nvmlShutdown"),
          Bind(error_string_, "nvmlErrorString"), Bind(get_count_, "nvmlDeviceGetCount_v2"),
          Bind(get_handle_, "nvmlDeviceGetHandleByIndex_v2"), Bind(get_uuid_, "nvmlDeviceGetUUID"),
          Bind(get_name_, "nvmlDeviceGetName"),
          Bind(get_energy_, "nvmlDeviceGetTotalEnergyConsumption"),
          Bind(get_power_, "nvmlDeviceGetPowerUsage")}) {
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  void* handle_;
  bool initialised_ = false;
};

class NvmlGpuMeter final : public Meter {
 public:
  NvmlGpuMeter(MeterInfo info, std::shared_ptr<NvmlLibrary> lib, nvmlDevice_t device)
      : info_(std::move(info)), lib_(std::move(lib)), device_(device) {}

  const MeterInfo& info() const override { return info_; }

  absl::StatusOr<std::uint64_t> Read(absl::Time now) override {
    if (info_.kind == MeterKind::kNvmlEnergyCounter) {
      unsigned long long mj = 0;
      if (nvmlReturn_t r = lib_->get_energy_(device_, &mj); r != kNvmlSuccess) {
        previous_.reset();
        return absl::UnavailableError(
            fmt::format("nvmlDeviceGetTotalEnergyConsumption({}): {}", info_.zone, lib_->Error(r)));
      }
      std::uint64_t uj = static_cast<std::uint64_t>(mj) * 1000;
      if (!previous_.has_value()) {
        previous_ = uj;
        return 0;
      }
      std::uint64_t delta = uj >= *previous_ ? uj - *previous_ : uj;  // driver reload: reset
      if (uj < *previous_) ++resets_;
      previous_ = uj;
      return delta;
    }
    unsigned mw = 0;
    if (nvmlReturn_t r = lib_->get_power_(device_, &mw); r != kNvmlSuccess) {
      previous_.reset();
      return absl::UnavailableError(
          fmt::format("nvmlDeviceGetPowerUsage({}): {}", info_.zone, lib_->Error(r)));
    }
    if (!previous_.has_value()) {
      previous_ = mw;
      previous_time_ = now;
      return 0;
    }
    // Trapezoid: milliwatts × seconds × 1000 = microjoules.
    const double seconds = std::max(absl::ToDoubleSeconds(now - previous_time_), 0.0);
    carry_uj_ += (static_cast<double>(*previous_) + mw) / 2 * seconds * 1000;
    const double whole = std::floor(carry_uj_);
    carry_uj_ -= whole;
    previous_ = mw;
    previous_time_ = now;
    return static_cast<std::uint64_t>(whole);
  }

  std::uint64_t counter_resets() const override { return resets_; }

 private:
  MeterInfo info_;
  std::shared_ptr<NvmlLibrary> lib_;
  nvmlDevice_t device_;
  std::optional<std::uint64_t> previous_;
  absl::Time previous_time_;
  double carry_uj_ = 0;
  std::uint64_t resets_ = 0;
};

}  // namespace

absl::StatusOr<NvmlDiscovery> DiscoverNvmlGpus(const std::string& library) {
  absl::StatusOr<std::shared_ptr<NvmlLibrary>> lib = NvmlLibrary::Load(library);
  if (!lib.ok()) return lib.status();
  unsigned count = 0;
  if (nvmlReturn_t r = (*lib)->get_count_(&count); r != kNvmlSuccess) {
    return absl::UnavailableError(fmt::format("nvmlDeviceGetCount_v2: {}", (*lib)->Error(r)));
  }
  NvmlDiscovery found;
  for (unsigned i = 0; i < count; ++i) {
    nvmlDevice_t device = nullptr;
    if (nvmlReturn_t r = (*lib)->get_handle_(i, &device); r != kNvmlSuccess) {
      return absl::UnavailableError(
          fmt::format("nvmlDeviceGetHandleByIndex_v2({}): {}", i, (*lib)->Error(r)));
    }
    char uuid[96] = {};
    char name[96] = {};
    (*lib)->get_uuid_(device, uuid, sizeof uuid);
    (*lib)->get_name_(device, name, sizeof name);
    unsigned long long probe = 0;
    GpuDescription gpu{.index = i,
                       .uuid = uuid[0] != '\0' ? uuid : fmt::format("gpu-{}", i),
                       .name = name,
                       .has_energy_counter = (*lib)->get_energy_(device, &probe) == kNvmlSuccess};
    MeterInfo info;
    info.id = fmt::format("nvml:{}", gpu.uuid);
    info.kind = gpu.has_energy_counter ? MeterKind::kNvmlEnergyCounter : MeterKind::kNvmlPowerPoll;
    info.domain = Domain::kGpu;
    info.zone = gpu.uuid;
    info.source = Source::kNvml;
    info.path = fmt::format("nvml:{}", gpu.uuid);
    found.meters.push_back(std::make_unique<NvmlGpuMeter>(std::move(info), *lib, device));
    found.gpus.push_back(std::move(gpu));
  }
  return found;
}

}  // namespace greenloop::energy
