// What one mode's run reports, turned into its ModeResult: the progress stream's evaluations and
// projections, the trainer's final Run, and the collector's energy (the run's and the
// infrastructure's). Pure mappings, so that each figure's origin can be tested.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "greenloop/v1/energy.pb.h"
#include "greenloop/v1/trainer.pb.h"
#include "tools/greenloop/experiment/results.pb.h"

namespace greenloop::experiment {

// Adds an evaluation event to the curve (once per step) and any projection to the projections,
// with the first projections past 10 % and 25 % of the planned steps.
void RecordProgress(const v1::StreamProgressResponse& event, cli::ModeResult& m);

// Fills state, accuracies, counters, model size and projection errors from the trainer's final
// Run. `stopped_by_user`: a stop was Ctrl-C (state "interrupted"), not the trainer's own.
void FillFromRun(const v1::Run& run, bool stopped_by_user, cli::ModeResult& m);

// Fills the collector's figures (active and idle energy, carbon, source, per domain) summed over
// the nodes of `response`.
void FillEnergy(const v1::GetRunEnergyResponse& response, cli::ModeResult& m);

// One infrastructure process's figures from its collector registration's final energy.
cli::InfraEnergy InfraFrom(const std::string& name, int pid, const v1::NodeRunEnergy& energy);

// "succeeded", "stopped", ... as reports print them; the trainer's finish reason likewise.
std::string FinishReasonName(v1::FinishReason reason);

}  // namespace greenloop::experiment
