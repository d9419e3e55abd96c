// RunStore over PostgreSQL: tables runs, run_evaluations and run_changes
// (deploy/db/trainer/*.sql, embedded and applied at start by ApplyTrainerMigrations()).
//
// A run row keeps queryable columns (state, experiment, accuracy, energy) next to the whole Run
// message as JSON, so that a worker restarted on the same node reads its runs back unchanged.
//
// Thread-safety: thread-safe (the pool is).
#pragma once

#include <memory>

#include "common/pg/pool.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

// Applies the trainer's migrations (component "trainer") under the advisory lock.
absl::Status ApplyTrainerMigrations(pg::Pool& pool);

class PgRunStore final : public RunStore {
 public:
  // `pool` is not owned and must outlive the store.
  explicit PgRunStore(pg::Pool* pool);

  absl::Status SaveRun(const v1::Run& run) override;
  absl::Status AddEvaluation(const std::string& run_id, std::uint32_t rank,
                             const EvaluationPoint& point) override;
  absl::Status AddChanges(const std::string& run_id, std::uint32_t rank,
                          const std::vector<SampleChange>& changes) override;
  absl::StatusOr<std::vector<v1::Run>> LoadRuns(const std::string& node) override;

 private:
  pg::Pool* const pool_;
};

}  // namespace greenloop::trainer
