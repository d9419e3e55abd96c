// A rank's view of its run's energy: registration with the node's collector, the run's total
// over the ranks, the energy budget, and the projections made from them.
//
// RunEnergy registers the rank's pid under the run (a run that cannot register does not train:
// greenloop does not train unmeasured), reads the node's figure when asked, and composes the
// run's total: every rank contributes its node's figure divided by the number of ranks on that
// node, summed in one all-reduce, so that a node is counted once. Finish() takes one last reading
// and unregisters, whatever the end of the run.
//
// ProjectTotalEnergy() and UpdateEta() extrapolate from the steps so far to the planned steps.
//
// Thread-safety: owned by the training loop; the meter and collective are called from its
// thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

class RunEnergy final {
 public:
  // `meter` and `collective` must outlive this. `max_energy_joules` 0: no budget.
  RunEnergy(EnergyMeter& meter, Collective& collective, std::string run_id, int pid,
            std::uint32_t rank, double max_energy_joules,
            absl::Duration max_stale = absl::Seconds(60));

  // Registers the pid; the error names `endpoint` and says why training refuses to go on.
  absl::Status Register(const std::string& endpoint);
  // Learns how many ranks share this rank's `node` (a collective: every rank calls it).
  absl::Status CountRanksOnNode(const std::string& node);
  // Reads the node's figure at `now` and sets progress.node_energy_joules and .energy_joules (the
  // run's total: a collective when the run has several ranks). A read that fails keeps the last
  // figure, with a warning, and marks progress.energy_incomplete; a budgeted run whose reads keep
  // failing for `max_stale` becomes stale(). UNAVAILABLE when the collective fails.
  absl::Status Refresh(v1::Progress& progress, absl::Time now = absl::Now());
  // After the run: one last reading into `progress` (so that the figures include the run's tail)
  // and the pid unregistered. Does nothing when Register() did not succeed.
  void Finish(v1::Progress& progress);

  // Whether the run's total has reached the energy budget.
  bool exceeded() const { return exceeded_; }
  // Whether the run has a budget and its energy has gone unread for `max_stale`: the budget can
  // no longer be checked.
  bool stale() const { return stale_; }

 private:
  EnergyMeter& meter_;
  Collective& collective_;
  const std::string run_id_;
  const int pid_;
  const std::uint32_t rank_;
  const double max_energy_joules_;
  double ranks_on_node_ = 1;
  const absl::Duration max_stale_;
  bool registered_ = false;
  bool exceeded_ = false;
  bool stale_ = false;
  std::optional<absl::Time> unread_since_;  // the first failed read since the last good one
};

// Sets progress.projected_total_energy_joules to the joules per step so far times the planned
// steps, once `warmup_steps` have passed; leaves it alone before that or without a plan.
void ProjectTotalEnergy(v1::Progress& progress, std::uint64_t warmup_steps);

// Sets progress.elapsed_seconds, and eta_seconds from the seconds per step so far once
// `warmup_steps` have passed and the run has a plan.
void UpdateEta(v1::Progress& progress, double elapsed_seconds, std::uint64_t warmup_steps);

}  // namespace greenloop::trainer
