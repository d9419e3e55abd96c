// PostgreSQL persistence of one node's energy figures (tables energy_*, deploy/db/energy/).
#pragma once

#include <string>

#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "services/energy/core/store.h"

namespace greenloop::energy {

/// \brief EnergyStore over PostgreSQL through a common/pg Pool.
///
/// Sample buckets are upserted additively (a bucket written in two parts, e.g. across a restart,
/// sums); run rows and the restart state are replaced by their latest value. One Write() is one
/// transaction.
///
/// Thread-safety: safe from any thread (the Pool is).
class PgEnergyStore final : public EnergyStore {
 public:
  /// `pool` must outlive the store. `carbon` gives the carbon columns of energy_runs.
  PgEnergyStore(pg::Pool* pool, std::string node, CarbonFactors carbon);

  absl::Status Write(const StoreBatch& batch) override;
  absl::StatusOr<std::optional<SavedState>> Load() override;
  absl::StatusOr<RunEnergy> LoadRun(std::string_view run_id) override;

 private:
  pg::Pool* const pool_;
  const std::string node_;
  const CarbonFactors carbon_;
};

/// Returns the energy component's migrations (deploy/db/energy), embedded at build time.
std::vector<pg::Migration> EnergyMigrations();

}  // namespace greenloop::energy
