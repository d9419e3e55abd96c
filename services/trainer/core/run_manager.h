// The runs one trainer worker knows, and the one it trains: TrainerService's logic without gRPC.
//
// A worker trains one rank of one run at a time, on a thread of its own. StartRun validates and
// accepts a run (RUN_STATE_PENDING) and returns at once; the run's thread then loads the dataset,
// connects to the energy collector (and, on rank 0 of a human-in-the-loop run, the feedback
// queue), meets the other ranks, trains (RUN_STATE_RUNNING) and ends SUCCEEDED, FAILED or
// STOPPED. Everything that goes wrong after acceptance ends the run as FAILED with a message;
// nothing reaches the caller as an exception.
//
// Progress fans out to subscribers (StreamProgress), step events thinned per subscriber; runs,
// curves and changes go to the RunStore when one is given; metrics go to the registry when one is
// given.
//
// The dependencies that talk to other services come in as factories, so tests plug fakes and main
// plugs gRPC clients:
//
//   RunManager runs(settings, &datasets, {.energy = MakeEnergyClient, .feedback = ...,
//                                         .collective = ConnectGlooFor}, store, registry);
//   absl::StatusOr<v1::Run> run = runs.StartRun(request);
//
// Thread-safety: every method is thread-safe. Shutdown() (or destruction) stops the active run at
// its next step boundary, waits for it and ends every subscription.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/ports.h"
#include "services/trainer/core/worker_policy.h"

namespace prometheus {
class Registry;
}

namespace greenloop::trainer {

// What this worker is, from its config.
struct WorkerSettings {
  std::string node;
  int pid = 0;
  int threads = 0;                      // LibTorch intra-op threads; 0: LibTorch's default
  std::size_t max_queued_events = 256;  // per subscriber, before step events are dropped
  WorkerPolicy policy;                  // where runs may write, whom the worker sends its token
};

// Connects the run's outside world. Each returns UNAVAILABLE (or the most specific code) when it
// cannot; the run then fails with that message.
struct RunDependencies {
  std::function<absl::StatusOr<std::unique_ptr<EnergyMeter>>(const std::string& endpoint)> energy;
  std::function<absl::StatusOr<std::unique_ptr<FeedbackQueue>>(const std::string& endpoint)>
      feedback;
  // Meets the other ranks of a run with world_size > 1.
  std::function<absl::StatusOr<std::unique_ptr<Collective>>(const v1::StartRunRequest& request)>
      collective;
};

// One StreamProgress client's view of a run.
class ProgressSubscription final {
 public:
  ProgressSubscription(std::chrono::milliseconds min_step_interval, std::size_t max_queued);

  // Waits up to `timeout` for the next event; nullopt when none came (or the stream is over:
  // check done()).
  std::optional<v1::StreamProgressResponse> Next(std::chrono::milliseconds timeout);
  // True once the run has ended and every event was taken: end the stream with OK.
  bool done() const;
  // True when the worker shuts down: end the stream with UNAVAILABLE.
  bool shut_down() const;

  // Called by the manager.
  void Push(v1::StreamProgressResponse event);
  void Finish(bool shutdown);

 private:
  const std::chrono::milliseconds min_step_interval_;
  const std::size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::StreamProgressResponse> queue_;
  std::chrono::steady_clock::time_point last_step_{};
  bool finished_ = false;
  bool shutdown_ = false;
};

class RunManager final {
 public:
  RunManager(WorkerSettings settings, DatasetCache* datasets, RunDependencies dependencies,
             RunStore* store = nullptr, std::shared_ptr<prometheus::Registry> registry = nullptr);
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;
  ~RunManager();

  // Reads this node's stored runs, so they stay readable across restarts. A stored run that was
  // PENDING or RUNNING was left behind by a crash: it is marked FAILED (resume it with StartRun).
  absl::Status LoadStoredRuns();

  // See TrainerService.StartRun in trainer.proto for the contract and error codes.
  absl::StatusOr<v1::Run> StartRun(const v1::StartRunRequest& request);
  // See TrainerService.StopRun.
  absl::StatusOr<v1::Run> StopRun(const std::string& run_id, const std::string& reason);
  // See TrainerService.GetRun.
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) const;
  // See TrainerService.ListRuns.
  absl::StatusOr<v1::ListRunsResponse> ListRuns(const v1::ListRunsRequest& request) const;
  // Starts following a run: the first event is a snapshot. See TrainerService.StreamProgress.
  absl::StatusOr<std::shared_ptr<ProgressSubscription>> Subscribe(const std::string& run_id,
                                                                  std::uint32_t min_interval_ms);
  // Blocks until `run_id` is in a terminal state or `timeout` passes; returns the run.
  absl::StatusOr<v1::Run> WaitForEnd(const std::string& run_id,
                                     std::chrono::milliseconds timeout) const;
  // Stops the active run (checkpoint written), waits for it, ends every subscription. Idempotent.
  void Shutdown();

 private:
  struct Record;
  class Listener;
  struct Metrics;

  void RunThread(std::shared_ptr<Record> record, v1::StartRunRequest request);
  void Publish(Record& record, v1::ProgressEventKind kind, const std::string& message);
  void Persist(const v1::Run& run);

  const WorkerSettings settings_;
  DatasetCache* const datasets_;
  const RunDependencies deps_;
  RunStore* const store_;
  std::unique_ptr<Metrics> metrics_;

  mutable std::mutex mu_;
  mutable std::condition_variable ended_;
  std::map<std::string, std::shared_ptr<Record>> runs_;
  std::string active_;  // run_id of the run this worker trains; empty when idle
  bool shutting_down_ = false;
};

// Whether `state` is SUCCEEDED, FAILED or STOPPED.
bool IsTerminal(v1::RunState state);

}  // namespace greenloop::trainer
