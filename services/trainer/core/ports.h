// What the training loop needs from the world outside the process, as interfaces: the energy
// collector of the node, the feedback queue, the run store, the other ranks. The gRPC clients
// (services/trainer/grpc), the PostgreSQL store (services/trainer/storage) and c10d/Gloo
// (distributed.h) implement them; tests use in-memory fakes.
//
// Thread-safety: each implementation says; the loop calls a port from its own thread only, except
// FeedbackQueue, whose verdicts arrive on a background thread of the implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "greenloop/v1/feedback.pb.h"
#include "greenloop/v1/trainer.pb.h"

namespace greenloop::trainer {

// The energy collector of this rank's node (EnergyService). A run that cannot register does not
// train: greenloop does not train unmeasured.
class EnergyMeter {
 public:
  virtual ~EnergyMeter() = default;
  // Registers `pid` of rank `rank` under `run_id` on this node.
  virtual absl::Status Register(const std::string& run_id, int pid, std::uint32_t rank) = 0;
  // Unregisters `pid` of `run_id`; OK when it was not registered.
  virtual absl::Status Unregister(const std::string& run_id, int pid) = 0;
  // Returns the active energy of the run on this node so far, in joules.
  virtual absl::StatusOr<double> RunEnergyJoules(const std::string& run_id) = 0;
};

// A verdict as received from the stream, with the cursor to resume after it.
struct ReceivedVerdict {
  v1::Verdict verdict;
  std::string cursor;
  absl::Time receive_time;
};

// The feedback queue (FeedbackService) as a run sees it: enqueue candidates, follow verdicts
// without ever blocking training on people.
class FeedbackQueue {
 public:
  virtual ~FeedbackQueue() = default;
  // Makes sure `campaign_id` exists with `spec` (idempotent create). ALREADY_EXISTS when it exists
  // with another spec; a campaign created beforehand with the same spec is fine.
  virtual absl::Status EnsureCampaign(const std::string& campaign_id,
                                      const v1::CampaignSpec& spec) = 0;
  // Enqueues `items` (at most 500) into `campaign_id`.
  virtual absl::Status Enqueue(const std::string& campaign_id,
                               const std::vector<v1::ItemInput>& items) = 0;
  // Starts following the campaign's verdicts after `cursor` (empty: from the first) on a
  // background thread, reconnecting from the last cursor when the stream breaks.
  virtual absl::Status StartWatching(const std::string& campaign_id, const std::string& cursor) = 0;
  // Returns the verdicts received since the previous call, in stream order. Never blocks.
  virtual std::vector<ReceivedVerdict> TakeVerdicts() = 0;
  // Stops following verdicts; idempotent.
  virtual void StopWatching() = 0;
};

// One point of a run's accuracy curve.
struct EvaluationPoint {
  std::uint64_t step = 0;
  std::uint32_t epoch = 0;
  std::uint64_t samples_processed = 0;
  double eval_accuracy = 0;
  double eval_loss = 0;
  double train_loss = 0;
  double energy_joules = 0;       // whole run
  double node_energy_joules = 0;  // this rank's node
  double elapsed_seconds = 0;
  absl::Time record_time;
};

// Who or what decided a change.
enum class ChangeSource { kHuman, kAuto };
// What a verdict did to a sample.
enum class ChangeAction { kKeep, kRelabel, kDrop, kReweight };

std::string_view ChangeSourceName(ChangeSource source);  // "human", "auto"
std::string_view ChangeActionName(ChangeAction action);  // "keep", "relabel", "drop", "reweight"

// One verdict applied to one training sample: what it was, what it became, who decided, and
// whether that agrees with the clean label (kept apart from training; see datasets.h).
struct SampleChange {
  std::uint64_t step = 0;
  std::uint64_t sample_index = 0;  // SampleRef index
  ChangeAction action = ChangeAction::kKeep;
  std::int64_t old_label = 0;
  std::int64_t new_label = 0;
  double old_weight = 1;
  double new_weight = 1;
  ChangeSource source = ChangeSource::kHuman;
  std::string item_id;  // empty for automatic verdicts
  std::uint32_t revision = 0;
  double confidence = 0;
  std::int64_t clean_label = 0;
  bool correct = false;  // the change moved the sample towards its clean label
};

// Persists runs, their curves and their changes (tables runs, run_*). Thread-safe.
class RunStore {
 public:
  virtual ~RunStore() = default;
  // Inserts or replaces the run (keyed by run_id and rank).
  virtual absl::Status SaveRun(const v1::Run& run) = 0;
  // Appends one evaluation to the run's curve.
  virtual absl::Status AddEvaluation(const std::string& run_id, std::uint32_t rank,
                                     const EvaluationPoint& point) = 0;
  // Appends applied verdicts to the run's change log.
  virtual absl::Status AddChanges(const std::string& run_id, std::uint32_t rank,
                                  const std::vector<SampleChange>& changes) = 0;
  // Returns the runs of `node`, newest first.
  virtual absl::StatusOr<std::vector<v1::Run>> LoadRuns(const std::string& node) = 0;
};

// The other ranks of a data-parallel run. Every rank calls every method in the same order; a
// rank that disappears makes the others' calls fail within the collective timeout (UNAVAILABLE,
// naming the operation), never hang.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual std::uint32_t rank() const = 0;
  virtual std::uint32_t world_size() const = 0;
  // Sums `values` element-wise across ranks, in place.
  virtual absl::Status AllReduceSum(std::span<float> values) = 0;
  // Sends rank 0's `bytes` to every rank (others' input is replaced).
  virtual absl::Status Broadcast(std::string& bytes) = 0;
  // Returns every rank's `mine`, indexed by rank.
  virtual absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) = 0;
};

// The single-process case: every collective is the identity.
class LocalCollective final : public Collective {
 public:
  std::uint32_t rank() const override { return 0; }
  std::uint32_t world_size() const override { return 1; }
  absl::Status AllReduceSum(std::span<float>) override { return absl::OkStatus(); }
  absl::Status Broadcast(std::string&) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& mine) override {
    return std::vector<std::string>{mine};
  }
};

}  // namespace greenloop::trainer
