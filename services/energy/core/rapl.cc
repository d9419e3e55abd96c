#include "services/energy/core/rapl.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <system_error>
#include <tuple>

#include "fmt/format.h"
#include "services/energy/core/sysfs.h"

namespace greenloop::energy {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPermissionRemediation =
    "energy_uj is readable by root only since the PLATYPUS fix (CVE-2020-8694): run "
    "greenloop-energy as root or with CAP_DAC_READ_SEARCH, or grant read access at boot "
    "(chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj; a udev rule is in "
    "docs/energy.md#rapl-permissions). Until then this domain is estimated.";

std::optional<Domain> DomainOfZoneName(std::string_view name) {
  if (name.starts_with("package")) return Domain::kPackage;
  if (name.starts_with("core")) return Domain::kCore;
  if (name.starts_with("uncore")) return Domain::kUncore;
  if (name.starts_with("dram")) return Domain::kDram;
  if (name.starts_with("psys")) return Domain::kPsys;
  return std::nullopt;
}

class RaplZoneMeter final : public Meter {
 public:
  RaplZoneMeter(MeterInfo info, std::string energy_path, std::uint64_t max_range_uj,
                double max_plausible_watts)
      : info_(std::move(info)),
        energy_path_(std::move(energy_path)),
        max_range_uj_(max_range_uj),
        max_plausible_watts_(max_plausible_watts) {}

  const MeterInfo& info() const override { return info_; }

  absl::StatusOr<std::uint64_t> Read(absl::Time now) override {
    absl::StatusOr<std::uint64_t> counter = ReadUint64File(energy_path_);
    if (!counter.ok()) {
      // Re-prime on recovery: whatever the counter did meanwhile is not ours to guess.
      previous_.reset();
      remediation_ = counter.status().code() == absl::StatusCode::kPermissionDenied
                         ? std::string(kPermissionRemediation)
                     : counter.status().code() == absl::StatusCode::kNotFound
                         ? "the zone vanished (driver unloaded or CPU offlined); this "
                           "domain is estimated until it returns"
                         : "";
      return counter.status();
    }
    remediation_.clear();
    if (!previous_.has_value()) {
      previous_ = *counter;
      previous_time_ = now;
      return 0;
    }
    std::uint64_t delta = 0;
    if (*counter >= *previous_) {
      delta = *counter - *previous_;
    } else {
      delta = CounterDelta(*previous_, *counter, max_range_uj_);
      double seconds = std::max(absl::ToDoubleSeconds(now - previous_time_), 1e-3);
      if (max_range_uj_ == 0 || static_cast<double>(delta) / 1e6 / seconds > max_plausible_watts_) {
        // Not a wrap: the counter restarted (driver reload, firmware). Count what it measured
        // since the restart; never go negative.
        delta = *counter;
        ++resets_;
      }
    }
    previous_ = *counter;
    previous_time_ = now;
    return delta;
  }

  std::string remediation() const override { return remediation_; }

  std::string SaveState() const override {
    return previous_.has_value() ? std::to_string(*previous_) : std::string();
  }

  bool RestoreState(std::string_view state, absl::Time saved_at) override {
    std::uint64_t counter = 0;
    auto [end, ec] = std::from_chars(state.data(), state.data() + state.size(), counter);
    if (state.empty() || ec != std::errc() || end != state.data() + state.size()) return false;
    previous_ = counter;
    previous_time_ = saved_at;
    return true;
  }

  std::uint64_t counter_resets() const override { return resets_; }

 private:
  MeterInfo info_;
  std::string energy_path_;
  std::uint64_t max_range_uj_;
  double max_plausible_watts_;
  std::optional<std::uint64_t> previous_;
  absl::Time previous_time_;
  std::string remediation_;
  std::uint64_t resets_ = 0;
};

}  // namespace

std::uint64_t CounterDelta(std::uint64_t previous, std::uint64_t current,
                           std::uint64_t max_range_uj) {
  if (current >= previous) return current - previous;
  if (previous > max_range_uj) return current;  // out of range: treat as a restart
  return max_range_uj - previous + current;
}

absl::StatusOr<MeterList> DiscoverRaplZones(const RaplOptions& options) {
  MeterList meters;
  std::error_code ec;
  if (!fs::is_directory(options.sysfs_root, ec)) return meters;

  static const std::regex kZoneDir(R"(intel-rapl:(\d+)(?::(\d+))?)");
  struct Found {
    int socket;
    int sub;  // -1 for top-level zones
    fs::path dir;
  };
  std::vector<Found> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(options.sysfs_root, ec)) {
    std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, kZoneDir)) continue;  // "intel-rapl" (control), mmio, others
    found.push_back({std::stoi(m[1]), m[2].matched ? std::stoi(m[2]) : -1, entry.path()});
  }
  if (ec) {
    return absl::UnavailableError(
        fmt::format("cannot list {}: {}", options.sysfs_root, ec.message()));
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.socket, a.sub) < std::tie(b.socket, b.sub);
  });

  std::map<int, std::string> package_zone;  // socket index -> top-level zone name
  for (const Found& f : found) {
    absl::StatusOr<std::string> name = ReadLineFile((f.dir / "name").string());
    if (!name.ok()) continue;  // not a zone we can name; nothing to report it as
    std::optional<Domain> domain = DomainOfZoneName(*name);
    if (!domain.has_value()) continue;
    MeterInfo info;
    info.kind = MeterKind::kRaplZone;
    info.source = Source::kRapl;
    info.domain = *domain;
    info.path = f.dir.string();
    info.id = fmt::format("rapl:{}", f.dir.filename().string());
    if (f.sub < 0) {
      info.zone = *name;
      package_zone[f.socket] = *name;
    } else {
      info.zone = fmt::format("{}-{}", *name, f.socket);
      if (*domain == Domain::kCore || *domain == Domain::kUncore) {
        auto parent = package_zone.find(f.socket);
        info.parent_zone =
            parent != package_zone.end() ? parent->second : fmt::format("package-{}", f.socket);
      }
    }
    absl::StatusOr<std::uint64_t> range = ReadUint64File((f.dir / "max_energy_range_uj").string());
    std::uint64_t max_range_uj = range.ok() ? *range : 0;
    info.max_energy_range_joules = static_cast<double>(max_range_uj) / 1e6;
    meters.push_back(std::make_unique<RaplZoneMeter>(std::move(info),
                                                     (f.dir / "energy_uj").string(), max_range_uj,
                                                     options.max_plausible_watts));
  }
  return meters;
}

}  // namespace greenloop::energy
