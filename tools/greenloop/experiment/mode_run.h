// One mode of one paired seed, run through the services, in phases:
//
//   Connect       channels to every rank and the collector
//   StartCrowd    human modes: the simulated crowd (it waits for the campaign, which rank 0
//                 creates from RunConfig.feedback)
//   RegisterInfra the feedback service and PostgreSQL under <run_id>-<name>, in every mode
//   StartRanks    StartRun on every rank
//   Follow        rank 0's progress stream (curve, projections, progress bar), Ctrl-C watched
//   StopCrowd     the crowd's figures; the campaign closed
//   ReadInfra     the infrastructure's energy, unregistered
//   ReadRun       rank 0's final Run (retried: the worker may be busy writing it)
//   ReadEnergy    the collector's figures of the run
//
// A failing phase records the run as failed with one line naming the service; the phases that
// undo earlier ones (the crowd, the infrastructure's registrations) still run.
//
// Thread-safety: one Run() per object; Follow() runs a watcher thread of its own.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "greenloop/v1/trainer.grpc.pb.h"
#include "tools/greenloop/experiment/crowd.h"
#include "tools/greenloop/experiment/oracle.h"
#include "tools/greenloop/experiment/results.pb.h"
#include "tools/greenloop/experiment/runner.h"
#include "tools/greenloop/experiment/spec.h"

namespace greenloop::experiment {

// The run id of `mode_name` in paired seed `seed` of an experiment with `seeds` seeds:
// "<experiment>-s<seed>-<mode>" ("<experiment>-<mode>" for one seed), '_' turned into '-'.
std::string RunIdFor(const std::string& experiment_id, std::int64_t seed, std::int64_t seeds,
                     std::string mode_name);

class ModeRun final {
 public:
  // Every reference must outlive the object. `target`: what the trainer stops at (0: none);
  // `seed`: the paired seed's index.
  ModeRun(const Spec& spec, const RunnerOptions& options, std::ostream& progress,
          const std::string& experiment_id, const Oracle* oracle, v1::Mode mode, double target,
          std::int64_t seed);

  // Runs the phases and returns the figures.
  cli::ModeResult Run();
  // Whether Ctrl-C stopped the run (the experiment then ends).
  bool stopped_by_user() const { return stopped_by_user_; }

 private:
  absl::Status Connect();
  std::vector<std::string> Campaigns() const;
  absl::Status StartCrowd();
  void StopCrowd();
  void RegisterInfra();
  void ReadInfra();
  absl::Status StartRanks();
  void Follow();
  void DrawProgress(const v1::StreamProgressResponse& event);
  absl::Status ReadRun();
  void ReadEnergy();
  void PrintSummary();
  cli::ModeResult Failed(const absl::Status& status);

  const Spec& spec_;
  const RunnerOptions& options_;
  std::ostream& progress_;
  const std::string experiment_id_;
  const Oracle* oracle_;
  const v1::Mode mode_;
  const std::string mode_name_;
  const double target_;
  const std::int64_t seed_;
  const std::string run_id_;
  cli::ModeResult m_;
  std::vector<std::unique_ptr<v1::TrainerService::Stub>> trainers_;
  std::shared_ptr<::grpc::Channel> energy_channel_;
  std::shared_ptr<::grpc::Channel> feedback_channel_;
  std::unique_ptr<SimulatedCrowd> crowd_;
  // The infrastructure registered for this run: (process, pid, run id), in order.
  struct Registered {
    InfraProcess process;
    int pid = 0;
    std::string run_id;
  };
  std::vector<Registered> infra_;
  bool stopped_by_user_ = false;
};

}  // namespace greenloop::experiment
