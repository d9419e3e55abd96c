// The CLI's PostgreSQL tables (deploy/db/cli): experiments, experiment_runs, predictions and
// study_points.
//
//   GREENLOOP_ASSIGN_OR_RETURN(auto store, ExperimentStore::Open(url));   // applies migrations
//   GREENLOOP_RETURN_IF_ERROR(store->Save(result, files));
//   absl::StatusOr<cli::ExperimentResult> again = store->Load(result.experiment_id());
//
// Errors: UNAVAILABLE when PostgreSQL is unreachable, NOT_FOUND for an unknown experiment,
// DATA_LOSS for a stored result that no longer parses.
// Thread-safety: thread-safe (the pool is).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/pg/pool.h"
#include "tools/greenloop/experiment/prediction.h"
#include "tools/greenloop/experiment/report.h"
#include "tools/greenloop/experiment/results.pb.h"
#include "tools/greenloop/experiment/study.h"

namespace greenloop::experiment {

class ExperimentStore final {
 public:
  // Connects to `url` and applies the cli migrations.
  static absl::StatusOr<std::unique_ptr<ExperimentStore>> Open(const std::string& url);
  explicit ExperimentStore(std::unique_ptr<pg::Pool> pool) : pool_(std::move(pool)) {}

  // Inserts or replaces the experiment and its runs.
  absl::Status Save(const cli::ExperimentResult& result, const ReportFiles& files);
  absl::StatusOr<cli::ExperimentResult> Load(const std::string& experiment_id);
  // The latest experiment id, for `greenloop report latest`.
  absl::StatusOr<std::string> Latest();

  // Every stored run that ended on its own with energy, as regression observations (node kind =
  // the node name).
  absl::StatusOr<std::vector<RunObservation>> Observations();

  // Inserts or replaces point `row.id` of study `study_id` with its run `run`.
  absl::Status SaveStudyPoint(const std::string& study_id, const std::string& spec_path,
                              const StudyRow& row, const cli::ModeResult& run);
  // The run of a point of the study that succeeded with the same label (the same settings);
  // nothing when it is missing, did not succeed or was another grid's point (a re-run runs it).
  absl::StatusOr<std::optional<cli::ModeResult>> SucceededStudyPoint(const std::string& study_id,
                                                                     const std::string& point_id,
                                                                     const std::string& label);

  absl::Status SavePrediction(const std::string& spec_path, const RunFeatures& features,
                              const Estimate& estimate, std::optional<double> loo_error,
                              std::size_t runs_used);

 private:
  std::unique_ptr<pg::Pool> pool_;
};

}  // namespace greenloop::experiment
