// Rank 0's verdict streams of a run that asks humans: the run's campaign created from its config
// and followed from a cursor, one stream per campaign. Most modes have one campaign; in
// MODE_HITL_COMBINED the label questions and the feature questions each have their own (a campaign
// asks one kind of question), followed at once through two clients of the feedback service, each
// stream with its own cursor.
//
//   VerdictStreams streams(config, dataset, run_id, ports.feedback, ports.feature_feedback);
//   streams.Restore(checkpoint.verdict_cursor(), checkpoint.feature_verdict_cursor());
//   RETURN_IF_ERROR(streams.Open());
//   every step:  for (Incoming& v : streams.Take()) ...;   after applying:  streams.Advance(batch);
//   at the end:  streams.Stop();
//
// Training never waits on a stream (FeedbackQueue::TakeVerdicts does not block).
//
// Thread-safety: used by the training thread of rank 0 only.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "greenloop/v1/trainer.pb.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/ports.h"
#include "services/trainer/core/verdicts.h"

namespace greenloop::trainer {

class VerdictStreams final {
 public:
  // A verdict as one of the streams brought it.
  struct Incoming {
    ReceivedVerdict received;
    bool feature_stream = false;  // MODE_HITL_COMBINED's feature questions' stream
  };

  // `feedback` follows the run's campaign (FeedbackTarget.campaign_id); `feature_feedback`, used
  // in MODE_HITL_COMBINED only, its feature questions' campaign (feature_campaign_id). Neither is
  // owned; both must outlive the object.
  VerdictStreams(const v1::RunConfig& config, const LoadedDataset& dataset, std::string run_id,
                 FeedbackQueue* feedback, FeedbackQueue* feature_feedback);

  // Puts a checkpoint's cursors back (before Open).
  void Restore(std::string cursor, std::string feature_cursor);
  // Creates the campaign(s) (idempotent; one made beforehand under the id is used as it is) and
  // starts following each from its cursor. FAILED_PRECONDITION when a port the mode needs is
  // missing; a port's error names the feedback service.
  absl::Status Open();
  // The verdicts every stream brought since the last call: the sample questions' first, then the
  // feature questions'. Never blocks.
  std::vector<Incoming> Take();
  // After `applied` (in broadcast order) took effect: each stream's cursor moves past the last of
  // its verdicts in it.
  void Advance(const std::vector<PendingVerdict>& applied);
  // Stops following every stream; idempotent.
  void Stop();

  // The cursors a checkpoint keeps: the sample (or only) questions' stream, the feature questions'.
  const std::string& cursor() const { return cursor_; }
  const std::string& feature_cursor() const { return feature_cursor_; }
  // The campaign a verdict of `feature_stream` came from, for logs.
  const std::string& CampaignOf(bool feature_stream) const;

 private:
  bool Combined() const { return config_.mode() == v1::MODE_HITL_COMBINED; }
  absl::Status OpenOne(FeedbackQueue& port, const std::string& campaign_id,
                       const v1::CampaignSpec& spec, const std::string& cursor);

  const v1::RunConfig& config_;
  const LoadedDataset& dataset_;
  const std::string run_id_;
  FeedbackQueue* feedback_;
  FeedbackQueue* feature_feedback_;
  std::string cursor_;
  std::string feature_cursor_;
};

}  // namespace greenloop::trainer
