#include "tools/greenloop/experiment/prediction.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace greenloop::experiment {
namespace {

constexpr double kRidge = 1e-6;

// Solves (XᵀX + λI) w = Xᵀy by Gaussian elimination with partial pivoting.
std::vector<double> Solve(const std::vector<std::vector<double>>& x, const std::vector<double>& y) {
  const std::size_t p = x.front().size();
  std::vector<std::vector<double>> a(p, std::vector<double>(p + 1, 0.0));
  for (std::size_t r = 0; r < x.size(); ++r) {
    for (std::size_t i = 0; i < p; ++i) {
      for (std::size_t j = 0; j < p; ++j) a[i][j] += x[r][i] * x[r][j];
      a[i][p] += x[r][i] * y[r];
    }
  }
  for (std::size_t i = 0; i < p; ++i) a[i][i] += kRidge * (i == 0 ? 0.0 : 1.0) + 1e-12;
  for (std::size_t c = 0; c < p; ++c) {
    std::size_t best = c;
    for (std::size_t r = c + 1; r < p; ++r) {
      if (std::abs(a[r][c]) > std::abs(a[best][c])) best = r;
    }
    std::swap(a[c], a[best]);
    const double pivot = a[c][c];
    if (std::abs(pivot) < 1e-300) continue;
    for (std::size_t r = 0; r < p; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / pivot;
      for (std::size_t k = c; k <= p; ++k) a[r][k] -= f * a[c][k];
    }
  }
  std::vector<double> w(p, 0.0);
  for (std::size_t i = 0; i < p; ++i) w[i] = std::abs(a[i][i]) < 1e-300 ? 0.0 : a[i][p] / a[i][i];
  return w;
}

}  // namespace

std::optional<double> ProjectTotalEnergy(std::span<const EnergyPoint> points,
                                         std::uint64_t warmup_steps, std::uint64_t planned_steps) {
  if (planned_steps == 0) return std::nullopt;
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  const EnergyPoint* last = nullptr;
  for (const EnergyPoint& p : points) {
    if (p.step < warmup_steps) continue;
    const double x = static_cast<double>(p.step);
    n += 1;
    sx += x;
    sy += p.energy_joules;
    sxx += x * x;
    sxy += x * p.energy_joules;
    last = &p;
  }
  if (n < 2 || last == nullptr) return std::nullopt;
  const double denom = n * sxx - sx * sx;
  if (denom <= 0) return std::nullopt;
  const double slope = (n * sxy - sx * sy) / denom;
  const double remaining =
      planned_steps > last->step ? static_cast<double>(planned_steps - last->step) : 0.0;
  return last->energy_joules + std::max(0.0, slope) * remaining;
}

double RelativeError(double projected, double actual) {
  return actual == 0 ? 0.0 : (projected - actual) / actual;
}

std::vector<double> EnergyModel::Row(const RunFeatures& f) const {
  std::vector<double> row = {1.0, std::log(f.parameters), std::log(f.macs_per_sample),
                             std::log(f.samples_processed), std::log(f.batch_size)};
  for (const std::string& k : kinds_) row.push_back(f.node_kind == k ? 1.0 : 0.0);
  return row;
}

Estimate EnergyModel::Predict(const RunFeatures& features) const {
  const std::vector<double> row = Row(features);
  double ln = 0;
  for (std::size_t i = 0; i < row.size(); ++i) ln += row[i] * weights_[i];
  return {.energy_joules = std::exp(ln),
          .low_joules = std::exp(ln - 1.96 * sigma_),
          .high_joules = std::exp(ln + 1.96 * sigma_)};
}

absl::StatusOr<EnergyModel> FitEnergyModel(std::span<const RunObservation> runs) {
  if (runs.size() < 3) {
    return absl::FailedPreconditionError(
        fmt::format("{} stored runs; the regression needs at least 3 (greenloop predict "
                    "--calibrate stores some)",
                    runs.size()));
  }
  EnergyModel model;
  for (const RunObservation& r : runs) {
    const RunFeatures& f = r.features;
    if (!(f.parameters > 0 && f.macs_per_sample > 0 && f.samples_processed > 0 &&
          f.batch_size > 0 && r.energy_joules > 0)) {
      return absl::InvalidArgumentError("a stored run has a non-positive feature or energy");
    }
    if (f.node_kind != runs.front().features.node_kind &&
        std::find(model.kinds_.begin(), model.kinds_.end(), f.node_kind) == model.kinds_.end()) {
      model.kinds_.push_back(f.node_kind);
    }
  }
  std::vector<std::vector<double>> x;
  std::vector<double> y;
  for (const RunObservation& r : runs) {
    x.push_back(model.Row(r.features));
    y.push_back(std::log(r.energy_joules));
  }
  model.weights_ = Solve(x, y);
  double ss = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double pred = 0;
    for (std::size_t j = 0; j < x[i].size(); ++j) pred += x[i][j] * model.weights_[j];
    ss += (y[i] - pred) * (y[i] - pred);
  }
  const double dof =
      std::max<double>(1.0, static_cast<double>(x.size()) -
                                static_cast<double>(std::min(x.size() - 1, x.front().size())));
  model.sigma_ = std::sqrt(ss / dof);
  return model;
}

absl::StatusOr<double> LeaveOneOutError(std::span<const RunObservation> runs) {
  if (runs.size() < 4) {
    return absl::FailedPreconditionError(
        fmt::format("{} stored runs; leave-one-out needs at least 4", runs.size()));
  }
  double sum = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    std::vector<RunObservation> rest;
    for (std::size_t j = 0; j < runs.size(); ++j) {
      if (j != i) rest.push_back(runs[j]);
    }
    absl::StatusOr<EnergyModel> m = FitEnergyModel(rest);
    if (!m.ok()) return m.status();
    sum +=
        std::abs(RelativeError(m->Predict(runs[i].features).energy_joules, runs[i].energy_joules));
  }
  return sum / static_cast<double>(runs.size());
}

std::string ArchitectureFamily(const std::string& architecture) {
  return architecture.substr(0, architecture.find(' '));
}

absl::StatusOr<double> LeaveOneArchitectureOutError(std::span<const RunObservation> runs) {
  std::vector<std::string> architectures;
  for (const RunObservation& r : runs) {
    const std::string family = ArchitectureFamily(r.features.architecture);
    if (std::find(architectures.begin(), architectures.end(), family) == architectures.end()) {
      architectures.push_back(family);
    }
  }
  if (architectures.size() < 2) {
    return absl::FailedPreconditionError(fmt::format(
        "{} architecture(s) among the stored runs; leave-one-architecture-out needs at least 2",
        architectures.size()));
  }
  double sum = 0;
  for (const std::string& left_out : architectures) {
    std::vector<RunObservation> rest;
    for (const RunObservation& r : runs) {
      if (ArchitectureFamily(r.features.architecture) != left_out) rest.push_back(r);
    }
    absl::StatusOr<EnergyModel> m = FitEnergyModel(rest);
    if (!m.ok()) return m.status();
    for (const RunObservation& r : runs) {
      if (ArchitectureFamily(r.features.architecture) != left_out) continue;
      sum += std::abs(RelativeError(m->Predict(r.features).energy_joules, r.energy_joules));
    }
  }
  return sum / static_cast<double>(runs.size());
}

}  // namespace greenloop::experiment
