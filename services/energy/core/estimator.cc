#include "services/energy/core/estimator.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "fmt/format.h"

namespace greenloop::energy {

EstimatorMeter::EstimatorMeter(EstimatorOptions options, const ProcFs* procfs)
    : options_(std::move(options)), procfs_(procfs) {
  info_.id = fmt::format("estimator:{}", options_.zone);
  info_.kind = MeterKind::kEstimator;
  info_.domain = options_.domain;
  info_.zone = options_.zone;
  info_.source = Source::kEstimated;
  info_.path = procfs_->root() + "/stat";
  info_.tdp_watts = options_.tdp_watts;
  info_.model_idle_watts = options_.idle_watts;
}

std::string EstimatorMeter::SaveState() const {
  if (!primed_) return {};
  return fmt::format("{} {}", previous_.busy_ticks, previous_.total_ticks);
}

bool EstimatorMeter::RestoreState(std::string_view state, absl::Time saved_at) {
  CpuTimes t;
  std::size_t space = state.find(' ');
  if (space == std::string_view::npos) return false;
  std::string_view busy = state.substr(0, space), total = state.substr(space + 1);
  auto a = std::from_chars(busy.data(), busy.data() + busy.size(), t.busy_ticks);
  auto b = std::from_chars(total.data(), total.data() + total.size(), t.total_ticks);
  if (a.ec != std::errc() || b.ec != std::errc() || b.ptr != total.data() + total.size()) {
    return false;
  }
  previous_ = t;
  previous_time_ = saved_at;
  primed_ = true;
  return true;
}

absl::StatusOr<std::uint64_t> EstimatorMeter::Read(absl::Time now) {
  absl::StatusOr<CpuTimes> times = procfs_->ReadCpuTimes();
  if (!times.ok()) {
    primed_ = false;
    return times.status();
  }
  if (!primed_ || times->total_ticks < previous_.total_ticks) {
    primed_ = true;
    previous_ = *times;
    previous_time_ = now;
    return 0;
  }
  const double total = static_cast<double>(times->total_ticks - previous_.total_ticks);
  const double busy = static_cast<double>(times->busy_ticks - previous_.busy_ticks);
  last_utilisation_ = total > 0 ? std::clamp(busy / total, 0.0, 1.0) : 0.0;
  const double seconds = std::max(absl::ToDoubleSeconds(now - previous_time_), 0.0);
  const double watts =
      options_.idle_watts + (options_.tdp_watts - options_.idle_watts) * last_utilisation_;
  carry_uj_ += watts * seconds * 1e6;
  const double whole = std::floor(carry_uj_);
  carry_uj_ -= whole;
  previous_ = *times;
  previous_time_ = now;
  return static_cast<std::uint64_t>(whole);
}

}  // namespace greenloop::energy
