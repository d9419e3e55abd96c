#include "services/energy/core/hwmon.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <regex>

#include "fmt/format.h"
#include "services/energy/core/sysfs.h"

namespace greenloop::energy {
namespace {

namespace fs = std::filesystem;

class HwmonMeter final : public Meter {
 public:
  HwmonMeter(MeterInfo info, std::string input_path)
      : info_(std::move(info)), input_path_(std::move(input_path)) {}

  const MeterInfo& info() const override { return info_; }

  absl::StatusOr<std::uint64_t> Read(absl::Time now) override {
    absl::StatusOr<std::uint64_t> value = ReadUint64File(input_path_);
    if (!value.ok()) {
      previous_.reset();
      return value.status();
    }
    if (!previous_.has_value()) {
      previous_ = *value;
      previous_time_ = now;
      return 0;
    }
    std::uint64_t delta = 0;
    if (info_.kind == MeterKind::kHwmonEnergy) {
      if (*value >= *previous_) {
        delta = *value - *previous_;
      } else {
        delta = *value;  // sensor reset; energy*_input has no documented wrap range
        ++resets_;
      }
    } else {
      // Trapezoid over the interval: microwatts × seconds = microjoules.
      const double seconds = std::max(absl::ToDoubleSeconds(now - previous_time_), 0.0);
      carry_uj_ += (static_cast<double>(*previous_) + static_cast<double>(*value)) / 2 * seconds;
      const double whole = std::floor(carry_uj_);
      carry_uj_ -= whole;
      delta = static_cast<std::uint64_t>(whole);
    }
    previous_ = *value;
    previous_time_ = now;
    return delta;
  }

  std::uint64_t counter_resets() const override { return resets_; }

 private:
  MeterInfo info_;
  std::string input_path_;
  std::optional<std::uint64_t> previous_;
  absl::Time previous_time_;
  double carry_uj_ = 0;
  std::uint64_t resets_ = 0;
};

}  // namespace

absl::StatusOr<MeterList> DiscoverHwmonSensors(const std::string& sysfs_root) {
  MeterList meters;
  std::error_code ec;
  if (!fs::is_directory(sysfs_root, ec)) return meters;
  std::vector<fs::path> chips;
  for (const fs::directory_entry& e : fs::directory_iterator(sysfs_root, ec)) {
    if (e.path().filename().string().starts_with("hwmon")) chips.push_back(e.path());
  }
  std::sort(chips.begin(), chips.end());
  static const std::regex kInput(R"((power|energy)(\d+)_input)");
  for (const fs::path& chip : chips) {
    std::string chip_name = ReadLineFile((chip / "name").string()).value_or(chip.filename());
    std::vector<std::string> inputs;
    for (const fs::directory_entry& e : fs::directory_iterator(chip, ec)) {
      std::string file = e.path().filename().string();
      if (std::regex_match(file, kInput)) inputs.push_back(file);
    }
    std::sort(inputs.begin(), inputs.end());
    for (const std::string& file : inputs) {
      std::smatch m;
      std::regex_match(file, m, kInput);
      std::string attribute = fmt::format("{}{}", m[1].str(), m[2].str());
      std::string label =
          ReadLineFile((chip / (attribute + "_label")).string()).value_or(attribute);
      MeterInfo info;
      info.kind = m[1] == "energy" ? MeterKind::kHwmonEnergy : MeterKind::kHwmonPower;
      info.domain = Domain::kHwmon;
      info.source = Source::kHwmon;
      info.zone = fmt::format("{}:{}", chip_name, label);
      info.path = (chip / file).string();
      info.id = fmt::format("hwmon:{}:{}", chip.filename().string(), attribute);
      meters.push_back(std::make_unique<HwmonMeter>(std::move(info), (chip / file).string()));
    }
  }
  return meters;
}

}  // namespace greenloop::energy
