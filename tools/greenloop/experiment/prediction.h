// Energy prediction maths, free of I/O: the early projection of a run's total energy from its
// first steps, and the before-the-run regression over stored runs (after the Green-ML study:
// short profiling and model size predict total energy).
//
//   EnergyPoint points[] = {{50, 80.0}, {100, 160.0}};
//   std::optional<double> total = ProjectTotalEnergy(points, /*warmup_steps=*/50, 1000);
//
//   absl::StatusOr<EnergyModel> model = FitEnergyModel(stored_runs);
//   Estimate e = model->Predict(features);         // joules, with a 95 % interval
//   absl::StatusOr<double> loo = LeaveOneOutError(stored_runs);  // mean |relative error|
//   absl::StatusOr<double> loao = LeaveOneArchitectureOutError(stored_runs);
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace greenloop::experiment {

// Cumulative active energy of a run at a step.
struct EnergyPoint {
  std::uint64_t step = 0;
  double energy_joules = 0;
};

// Projects a run's total energy at `planned_steps`: the energy at the last point plus joules per
// step × remaining steps, joules per step being the least-squares slope of the points at or
// after `warmup_steps` (so start-up costs before the warm-up do not bias it). Nothing while fewer
// than two points lie past the warm-up or planned_steps is 0.
std::optional<double> ProjectTotalEnergy(std::span<const EnergyPoint> points,
                                         std::uint64_t warmup_steps, std::uint64_t planned_steps);

// (projected − actual) / actual.
double RelativeError(double projected, double actual);

// What the before-the-run regression knows about a run.
struct RunFeatures {
  double parameters = 0;         // trainable parameters
  double macs_per_sample = 0;    // forward MACs per sample
  double samples_processed = 0;  // training samples over the whole run
  double batch_size = 0;         // global batch
  std::string node_kind;         // e.g. the CPU model; one-hot in the regression
  // The model as the trainer names it, e.g. "MODEL_KIND_RESNET width=16 depth=1" (empty: a run
  // stored before the zoo, of the dataset's default model). Not a regression column: its family
  // (ArchitectureFamily) is the group LeaveOneArchitectureOutError leaves out.
  std::string architecture;
};

// The family of an architecture name: the model kind, without its shape ("MODEL_KIND_RESNET").
std::string ArchitectureFamily(const std::string& architecture);
struct RunObservation {
  RunFeatures features;
  double energy_joules = 0;  // measured (or estimated) active energy of the whole run
};

struct Estimate {
  double energy_joules = 0;
  double low_joules = 0;  // 95 % prediction interval (log-normal residuals)
  double high_joules = 0;
};

// ln E = w · [1, ln parameters, ln MACs/sample, ln samples, ln batch, one-hot(node kind)], fitted
// by ridge-regularised least squares (a tiny ridge keeps constant columns, e.g. one model only,
// solvable).
class EnergyModel final {
 public:
  Estimate Predict(const RunFeatures& features) const;
  const std::vector<double>& weights() const { return weights_; }
  double residual_sigma() const { return sigma_; }

 private:
  friend absl::StatusOr<EnergyModel> FitEnergyModel(std::span<const RunObservation> runs);
  std::vector<double> Row(const RunFeatures& f) const;
  std::vector<std::string> kinds_;  // node kinds after the first, one column each
  std::vector<double> weights_;
  double sigma_ = 0;
};

// Fits the model. FAILED_PRECONDITION with fewer than 3 runs, INVALID_ARGUMENT for a run with a
// non-positive feature or energy.
absl::StatusOr<EnergyModel> FitEnergyModel(std::span<const RunObservation> runs);

// Mean absolute relative error of predicting each run from a model fitted on all the others.
// FAILED_PRECONDITION with fewer than 4 runs.
absl::StatusOr<double> LeaveOneOutError(std::span<const RunObservation> runs);

// Mean absolute relative error of predicting every run of each architecture family from a model
// fitted on the runs of the other families only: the energy of a model family the regression has
// never seen, from its size. FAILED_PRECONDITION with fewer than 2 architectures or when leaving
// one out leaves fewer than 3 runs.
absl::StatusOr<double> LeaveOneArchitectureOutError(std::span<const RunObservation> runs);

}  // namespace greenloop::experiment
