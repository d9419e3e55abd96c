#include "services/trainer/core/run_energy.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/logging/logging.h"

namespace greenloop::trainer {

RunEnergy::RunEnergy(EnergyMeter& meter, Collective& collective, std::string run_id, int pid,
                     std::uint32_t rank, double max_energy_joules, absl::Duration max_stale)
    : meter_(meter),
      collective_(collective),
      run_id_(std::move(run_id)),
      pid_(pid),
      rank_(rank),
      max_energy_joules_(max_energy_joules),
      max_stale_(max_stale) {}

absl::Status RunEnergy::Register(const std::string& endpoint) {
  absl::Status status = meter_.Register(run_id_, pid_, rank_);
  if (!status.ok()) {
    return absl::Status(status.code(),
                        fmt::format("cannot register with the energy collector at {} "
                                    "(greenloop does not train unmeasured): {}",
                                    endpoint, std::string(status.message())));
  }
  registered_ = true;
  return absl::OkStatus();
}

absl::Status RunEnergy::CountRanksOnNode(const std::string& node) {
  absl::StatusOr<std::vector<std::string>> nodes = collective_.AllGather(node);
  if (!nodes.ok()) return nodes.status();
  ranks_on_node_ = static_cast<double>(std::count(nodes->begin(), nodes->end(), node));
  return absl::OkStatus();
}

absl::Status RunEnergy::Refresh(v1::Progress& progress, absl::Time now) {
  absl::StatusOr<double> node = meter_.RunEnergyJoules(run_id_);
  if (node.ok()) {
    progress.set_node_energy_joules(*node);
    unread_since_.reset();
  } else {
    // The last figure stays, marked: a stale figure must not pass for a good one.
    progress.set_energy_incomplete(true);
    if (!unread_since_) unread_since_ = now;
    if (max_energy_joules_ > 0 && now - *unread_since_ >= max_stale_) stale_ = true;
    logging::Warn("cannot read the run's energy; keeping the last figure, marked incomplete",
                  {{"run", run_id_},
                   {"error", node.status().ToString()},
                   {"unread_seconds", absl::ToDoubleSeconds(now - *unread_since_)}});
  }
  if (collective_.world_size() > 1) {
    float share[1] = {static_cast<float>(progress.node_energy_joules() / ranks_on_node_)};
    if (absl::Status s = collective_.AllReduceSum(share); !s.ok()) return s;
    progress.set_energy_joules(share[0]);
  } else {
    progress.set_energy_joules(progress.node_energy_joules());
  }
  if (max_energy_joules_ > 0 && progress.energy_joules() >= max_energy_joules_) exceeded_ = true;
  return absl::OkStatus();
}

void RunEnergy::Finish(v1::Progress& progress) {
  if (!registered_) return;
  if (absl::StatusOr<double> e = meter_.RunEnergyJoules(run_id_); e.ok()) {
    progress.set_node_energy_joules(*e);
    if (collective_.world_size() == 1) progress.set_energy_joules(*e);
  } else {
    progress.set_energy_incomplete(true);  // the run's tail is not in the figures
  }
  if (absl::Status s = meter_.Unregister(run_id_, pid_); !s.ok()) {
    logging::Warn("cannot unregister from the energy collector",
                  {{"run", run_id_}, {"error", s.ToString()}});
  }
  registered_ = false;
}

void ProjectTotalEnergy(v1::Progress& progress, std::uint64_t warmup_steps) {
  if (progress.step() == 0 || progress.planned_steps() == 0) return;
  if (progress.step() < warmup_steps) return;
  const double per_step = progress.energy_joules() / static_cast<double>(progress.step());
  progress.set_projected_total_energy_joules(per_step *
                                             static_cast<double>(progress.planned_steps()));
}

void UpdateEta(v1::Progress& progress, double elapsed_seconds, std::uint64_t warmup_steps) {
  progress.set_elapsed_seconds(elapsed_seconds);
  if (progress.step() < warmup_steps || progress.planned_steps() == 0 || progress.step() == 0) {
    return;
  }
  const double per_step = elapsed_seconds / static_cast<double>(progress.step());
  const double left = progress.planned_steps() > progress.step()
                          ? static_cast<double>(progress.planned_steps() - progress.step())
                          : 0.0;
  progress.set_eta_seconds(per_step * left);
}

}  // namespace greenloop::trainer
